#include "replayrail/server/hub.h"

#include <spdlog/spdlog.h>

#include <algorithm>
#include <atomic>
#include <boost/asio/as_tuple.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <cstring>

namespace replayrail::server {

namespace asio = boost::asio;

namespace {

constexpr auto kToken = asio::as_tuple(asio::use_awaitable);
// What an item costs beyond its bytes (the deque slot, the frame header on the wire).
constexpr std::size_t kItemOverhead = 64;

}  // namespace

Frame make_frame(const Event& e) {
  Frame f{e.id, e.id.to_string(), {}, {}};
  append_envelope(f.json, e);
  // Two memchr (vectorised) rather than find_first_of, which tests each byte against the set.
  if (std::memchr(f.json.data(), '\n', f.json.size()) ||
      std::memchr(f.json.data(), '\r', f.json.size())) {
    for (std::size_t i = 0; i < f.json.size(); ++i) {
      char c = f.json[i];
      if (c != '\r' && c != '\n') {
        f.sse_data.push_back(c);
        continue;
      }
      if (c == '\r' && i + 1 < f.json.size() && f.json[i + 1] == '\n') ++i;  // CRLF: one break
      f.sse_data += "\ndata: ";
    }
  }
  return f;
}

// --- Outbox ----------------------------------------------------------------------------------

Outbox::Outbox(asio::any_io_executor executor, std::size_t byte_limit)
    : byte_limit_(byte_limit),
      has_items_(executor, asio::steady_timer::time_point::max()),
      has_room_(executor, asio::steady_timer::time_point::max()) {}

std::size_t Outbox::size_of(const Item& item) {
  if (!item.batch) return item.message->size() + kItemOverhead;
  std::size_t wrap = item.wrap ? item.wrap->prefix.size() + item.wrap->suffix.size() : 0;
  return item.frame().json.size() + wrap + kItemOverhead;
}

void Outbox::push_frame(const void* owner, std::shared_ptr<const Wrap> wrap, const BatchPtr& batch,
                        std::size_t index) {
  if (closed_ || finishing_) return;
  items_.push_back({batch, index, std::move(wrap), nullptr, owner});
  bytes_ += size_of(items_.back());
  has_items_.cancel();
}

void Outbox::push_message(std::string message) {
  if (closed_ || finishing_) return;
  items_.push_back({nullptr, 0, nullptr, std::make_shared<const std::string>(std::move(message))});
  bytes_ += size_of(items_.back());
  has_items_.cancel();
}

asio::awaitable<std::optional<Outbox::Item>> Outbox::pop(std::chrono::milliseconds idle) {
  while (items_.empty() && !closed_ && !finishing_) {
    has_items_.expires_after(idle);
    auto [ec] = co_await has_items_.async_wait(kToken);
    if (!ec && items_.empty() && !closed_ && !finishing_) co_return Item{};  // idle
  }
  if (closed_ || items_.empty()) co_return std::nullopt;
  Item item = std::move(items_.front());
  items_.pop_front();
  co_return item;
}

void Outbox::finish() {
  finishing_ = true;
  has_items_.cancel();
}

void Outbox::pop_ready(std::vector<Item>& out, std::size_t max) {
  while (!items_.empty() && out.size() < max) {
    out.push_back(std::move(items_.front()));
    items_.pop_front();
  }
}

void Outbox::written(const Item& item) {
  bytes_ -= std::min(bytes_, size_of(item));
  if (bytes_ <= byte_limit_ / 2) has_room_.cancel();
}

void Outbox::close() {
  closed_ = true;
  items_.clear();
  bytes_ = 0;
  has_items_.cancel();
  has_room_.cancel();
}

asio::awaitable<void> Outbox::wait_for_room() {
  while (bytes_ > byte_limit_ / 2 && !closed_) {
    has_room_.expires_at(asio::steady_timer::time_point::max());
    co_await has_room_.async_wait(kToken);
  }
}

Outbox::Dropped Outbox::drop(const void* owner, bool keep_newest) {
  Dropped d;
  const Item* newest = nullptr;
  if (keep_newest) {
    for (auto it = items_.rbegin(); it != items_.rend(); ++it) {
      if (it->owner == owner && it->batch) {
        newest = &*it;
        break;
      }
    }
  }
  decltype(items_) kept;
  for (auto& item : items_) {
    if (item.owner != owner || !item.batch || &item == newest) {
      kept.push_back(std::move(item));
      continue;
    }
    if (d.count == 0) d.first = item.frame().id;
    d.last = item.frame().id;
    ++d.count;
    bytes_ -= std::min(bytes_, size_of(item));
  }
  items_.swap(kept);
  if (bytes_ <= byte_limit_ / 2) has_room_.cancel();
  return d;
}

// --- Subscriber ------------------------------------------------------------------------------

Subscriber::Subscriber(Hub& hub, std::size_t thread, std::shared_ptr<Outbox> outbox,
                       Options options)
    : hub_(hub),
      thread_(thread),
      outbox_(std::move(outbox)),
      options_(std::move(options)),
      position_(options_.position) {
  hub_.count(thread_, 1, 0, 0);
}

Subscriber::~Subscriber() {
  hub_.count(thread_, -1, 0, 0);
  *alive_ = false;
  if (attached_) hub_.detach(this);
}

void Subscriber::start() {
  hub_.attach(this);
  start_catchup();
}

void Subscriber::fail(const Error& e) {
  if (ended_) return;
  ended_ = true;
  buffered_.clear();
  if (options_.on_error) options_.on_error(e);
}

void Subscriber::start_catchup() {
  mode_ = Mode::catching_up;
  if (catchup_running_) return;
  catchup_running_ = true;
  asio::co_spawn(hub_.threads_[thread_], catchup(this, alive_, outbox_), asio::detached);
}

void Subscriber::on_batch(const BatchPtr& batch) {
  if (ended_) return;
  if (mode_ == Mode::live) return take(batch);
  // Catching up: keep the batch for the handoff, unless that grows past its bound (the store
  // has the same events).
  std::size_t size = 0;
  for (const auto& f : batch->frames) size += f.json.size();
  buffered_bytes_ += size;
  buffered_.push_back(batch);
  if (buffered_bytes_ > hub_.options().buffered_bytes_limit) {
    buffered_.clear();
    buffered_bytes_ = 0;
  }
}

void Subscriber::take(const BatchPtr& batch) {
  if (options_.epoch.empty()) options_.epoch = batch->epoch;
  if (!options_.epoch.empty() && !batch->epoch.empty() && batch->epoch != options_.epoch) {
    return fail(make_error(errc::stream_reset, "the stream " + options_.stream +
                                                   " was deleted and created again (epoch " +
                                                   batch->epoch + ")"));
  }
  if (batch->frames.empty() || batch->frames.back().id <= position_) return;
  if (batch->prev > position_) {
    // The batch does not follow what was sent: the events between come from the store.
    start_catchup();
    on_batch(batch);
    return;
  }
  std::uint64_t queued = 0;
  for (std::size_t i = 0; i < batch->frames.size(); ++i) {
    if (batch->frames[i].id > position_) {
      outbox_->push_frame(this, options_.wrap, batch, i);
      ++queued;
    }
  }
  hub_.count(thread_, 0, queued, 0);
  position_ = batch->frames.back().id;
  if (!outbox_->over_limit()) return;
  auto fell_behind = [this](std::string_view then) {
    spdlog::debug("a subscriber of stream={} fell behind at id={}: {}", options_.stream,
                  position_.to_string(), then);
  };
  switch (options_.policy) {
    case SlowPolicy::catchup:
      fell_behind("it catches up from the store");
      // Detached: what is queued drains, then the store supplies what follows P.
      ++catchups_;
      hub_.count(thread_, 0, 0, 1);
      start_catchup();
      break;
    case SlowPolicy::disconnect:
      fell_behind("it is disconnected");
      fail(make_error(errc::slow_consumer,
                      "the subscriber fell behind by more than the connection's outbound limit"));
      break;
    case SlowPolicy::latest: {
      fell_behind("it skips to the newest event");
      auto dropped = outbox_->drop(this, true);
      if (dropped.count > 0 && options_.on_skipped) options_.on_skipped(dropped);
      break;
    }
  }
}

bool Subscriber::go_live() {
  std::erase_if(buffered_, [this](const BatchPtr& b) { return b->frames.back().id <= position_; });
  if (!buffered_.empty() && buffered_.front()->prev > position_) return false;
  mode_ = Mode::live;
  auto pending = std::move(buffered_);
  buffered_.clear();
  buffered_bytes_ = 0;
  for (const auto& batch : pending) {
    if (ended_) break;
    if (mode_ == Mode::live) {
      take(batch);
    } else {
      on_batch(batch);
    }
  }
  return true;
}

asio::awaitable<void> Subscriber::catchup(Subscriber* self, std::shared_ptr<bool> alive,
                                          std::shared_ptr<Outbox> outbox) {
  store::Store& store = self->hub_.store();
  for (;;) {
    co_await outbox->wait_for_room();
    if (!*alive || outbox->closed() || self->ended_) co_return;
    std::string stream = self->options_.stream;
    auto page =
        co_await store::range_across(store, self->hub_.options_.history, stream, self->position_,
                                     self->options_.page, self->options_.epoch);
    if (!*alive || outbox->closed()) co_return;
    if (!page) {
      self->catchup_running_ = false;
      self->fail(page.error());
      co_return;
    }
    if (!page->empty()) {
      auto batch = std::make_shared<Batch>();
      batch->stream = stream;
      batch->epoch = self->options_.epoch;
      batch->prev = self->position_;
      batch->frames.reserve(page->size());
      for (const auto& e : *page) batch->frames.push_back(make_frame(*e));
      for (std::size_t i = 0; i < batch->frames.size(); ++i) {
        outbox->push_frame(self, self->options_.wrap, batch, i);
      }
      self->hub_.count(self->thread_, 0, batch->frames.size(), 0);
      self->position_ = batch->frames.back().id;
    }
    // A short page: the store had nothing more when it was read. Go live if the live batches
    // kept meanwhile follow on; otherwise read again.
    if (page->size() < self->options_.page && self->go_live()) {
      if (self->ended_) co_return;
      if (self->mode_ == Mode::live) {
        self->catchup_running_ = false;
        if (!self->caught_up_once_) {
          self->caught_up_once_ = true;
          if (self->options_.on_caught_up) self->options_.on_caught_up(self->position_);
        }
        co_return;
      }
    }
  }
}

// --- Hub -------------------------------------------------------------------------------------

struct alignas(64) Hub::Local {
  StringMap<std::vector<Subscriber*>> subscribers;
  // Written on the thread only; read by stats() from any.
  std::atomic<std::int64_t> subscriber_count = 0;
  std::atomic<std::uint64_t> deliveries = 0;
  std::atomic<std::uint64_t> catchups = 0;
};

struct Hub::Feed {
  std::string stream;
  asio::any_io_executor executor;
  std::vector<char> watching;   // per thread; guarded by Hub::mu_
  std::size_t subscribers = 0;  // on every thread; guarded by Hub::mu_
  bool running = false;
};

Hub::Hub(store::Store& store, std::vector<asio::any_io_executor> threads, HubOptions options)
    : store_(store), threads_(std::move(threads)), options_(options) {
  for (std::size_t i = 0; i < threads_.size(); ++i) locals_.push_back(std::make_unique<Local>());
}

Hub::~Hub() { *alive_ = false; }

std::size_t Hub::feeds() const {
  std::lock_guard lock(mu_);
  return feeds_.size();
}

void Hub::count(std::size_t thread, std::int64_t subscribers, std::uint64_t deliveries,
                std::uint64_t catchups) {
  auto& local = *locals_[thread];
  constexpr auto relaxed = std::memory_order_relaxed;
  // One writer per counter: a load and a store, no read-modify-write on the hot path.
  if (subscribers)
    local.subscriber_count.store(local.subscriber_count.load(relaxed) + subscribers, relaxed);
  if (deliveries) local.deliveries.store(local.deliveries.load(relaxed) + deliveries, relaxed);
  if (catchups) local.catchups.store(local.catchups.load(relaxed) + catchups, relaxed);
}

HubStats Hub::stats() const {
  HubStats out;
  for (const auto& local : locals_) {
    out.subscribers +=
        static_cast<std::uint64_t>(std::max<std::int64_t>(0, local->subscriber_count.load()));
    out.deliveries += local->deliveries.load();
    out.catchups += local->catchups.load();
  }
  return out;
}

void Hub::attach(Subscriber* s) {
  auto& list = locals_[s->thread_]->subscribers[s->stream()];
  list.push_back(s);
  s->attached_ = true;
  watch(s->stream(), s->thread_, true, list.size() == 1);
}

void Hub::detach(Subscriber* s) {
  s->attached_ = false;
  auto& subscribers = locals_[s->thread_]->subscribers;
  auto it = subscribers.find(s->stream());
  if (it == subscribers.end()) return;
  std::erase(it->second, s);
  const bool last = it->second.empty();
  if (last) subscribers.erase(it);
  watch(s->stream(), s->thread_, false, last);
}

void Hub::watch(const std::string& stream, std::size_t thread, bool on, bool toggle) {
  std::shared_ptr<Feed> start;
  {
    std::lock_guard lock(mu_);
    auto it = feeds_.find(stream);
    if (it == feeds_.end()) {
      if (!on) return;  // the feed failed and is gone
      auto feed = std::make_shared<Feed>();
      feed->stream = stream;
      feed->executor = threads_[next_feed_thread_++ % threads_.size()];
      feed->watching.assign(threads_.size(), 0);
      it = feeds_.emplace(stream, std::move(feed)).first;
    }
    auto& feed = it->second;
    if (on) {
      ++feed->subscribers;
    } else if (feed->subscribers > 0) {
      --feed->subscribers;
    }
    if (toggle) feed->watching[thread] = on;
    if (on && !feed->running) {
      feed->running = true;
      start = feed;
    }
  }
  // Outside the lock: the feed may start running on this thread at once.
  if (start) asio::co_spawn(start->executor, run_feed(this, alive_, start), asio::detached);
}

asio::awaitable<void> Hub::run_feed(Hub* hub, std::shared_ptr<bool> alive,
                                    std::shared_ptr<Feed> feed) {
  store::Store& store = hub->store_;
  // How long to gather after a batch (HubOptions); under the lock.
  auto gather = [&] {
    std::lock_guard lock(hub->mu_);
    return std::min(hub->options_.gather_max,
                    hub->options_.gather_per_subscriber * static_cast<long>(feed->subscribers));
  };
  asio::steady_timer gathering(feed->executor);
  // Which threads want this batch; under the lock. Empty: the feed ends (and is forgotten).
  auto watchers = [&] {
    std::vector<std::size_t> out;
    std::lock_guard lock(hub->mu_);
    for (std::size_t t = 0; t < feed->watching.size(); ++t) {
      if (feed->watching[t]) out.push_back(t);
    }
    if (out.empty()) {
      feed->running = false;
      hub->feeds_.erase(feed->stream);
    }
    return out;
  };
  auto fail = [&](const Error& e) {
    std::vector<std::size_t> threads;
    {
      std::lock_guard lock(hub->mu_);
      for (std::size_t t = 0; t < feed->watching.size(); ++t) {
        if (feed->watching[t]) threads.push_back(t);
      }
      feed->running = false;
      hub->feeds_.erase(feed->stream);
    }
    spdlog::warn("the live feed of stream={} ended: {}: {}; its subscribers get the error",
                 feed->stream, to_string(e.code), e.message);
    for (auto t : threads) {
      asio::post(hub->threads_[t], [hub, alive, t, stream = feed->stream, e] {
        if (*alive) hub->deliver_error(t, stream, e);
      });
    }
  };

  // H starts at the stream's last id: subscribers replay up to it from the store themselves.
  store::StreamCursor cursor{feed->stream, {}, {}};
  auto info = co_await store.info(feed->stream);
  if (!*alive) co_return;
  if (info) {
    cursor.after = info->last_id;
    cursor.epoch = info->epoch;
  } else if (info.error().code != errc::stream_not_found) {
    fail(info.error());
    co_return;
  }
  for (;;) {
    if (watchers().empty()) co_return;
    auto read =
        co_await store.read({&cursor, 1}, {hub->options_.feed_batch, hub->options_.feed_block});
    if (!*alive) co_return;
    if (!read) {
      fail(read.error());
      co_return;
    }
    if (read->empty()) continue;
    auto batch = std::make_shared<Batch>();
    batch->stream = feed->stream;
    batch->prev = cursor.after;
    auto& events = read->front().events;
    batch->frames.reserve(events.size());
    for (const auto& e : events) batch->frames.push_back(make_frame(*e));
    cursor.after = batch->frames.back().id;
    if (cursor.epoch.empty()) {
      // The stream was created after the feed started: learn its epoch once.
      auto created = co_await store.info(feed->stream);
      if (!*alive) co_return;
      if (created) cursor.epoch = created->epoch;
    }
    batch->epoch = cursor.epoch;
    if (hub->options_.on_feed_batch) hub->options_.on_feed_batch(*batch);
    BatchPtr shared = std::move(batch);
    for (auto t : watchers()) {
      asio::post(hub->threads_[t], [hub, alive, t, shared] {
        if (*alive) hub->deliver(t, shared);
      });
    }
    if (auto wait = gather(); wait.count() > 0) {
      gathering.expires_after(wait);
      co_await gathering.async_wait(kToken);
      if (!*alive) co_return;
    }
  }
}

void Hub::deliver(std::size_t thread, const BatchPtr& batch) {
  auto& subscribers = locals_[thread]->subscribers;
  auto it = subscribers.find(batch->stream);
  if (it == subscribers.end()) return;
  // By index: a subscriber may detach another (never itself) while this runs.
  auto& list = it->second;
  for (std::size_t i = 0; i < list.size(); ++i) list[i]->on_batch(batch);
}

void Hub::deliver_error(std::size_t thread, const std::string& stream, const Error& error) {
  auto& subscribers = locals_[thread]->subscribers;
  auto it = subscribers.find(stream);
  if (it == subscribers.end()) return;
  // They leave the feed that failed; a new subscriber starts a new one.
  auto list = std::move(it->second);
  subscribers.erase(it);
  for (auto* s : list) {
    s->attached_ = false;
    s->fail(error);
  }
}

}  // namespace replayrail::server
