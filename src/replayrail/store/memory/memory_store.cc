#include "replayrail/store/memory/memory_store.h"

#include <algorithm>
#include <atomic>
#include <boost/asio/this_coro.hpp>
#include <chrono>
#include <deque>
#include <map>
#include <mutex>
#include <queue>

#include "replayrail/common/string_map.h"
#include "replayrail/core/random.h"
#include "replayrail/core/timestamp.h"
#include "replayrail/store/leases.h"
#include "replayrail/store/rules.h"
#include "replayrail/store/wait_list.h"

namespace replayrail::store {

namespace asio = boost::asio;

namespace {

using SteadyClock = std::chrono::steady_clock;

std::uint64_t idle_ms(SteadyClock::time_point since, SteadyClock::time_point now) {
  auto d = std::chrono::duration_cast<Millis>(now - since).count();
  return d > 0 ? static_cast<std::uint64_t>(d) : 0;
}

struct PendingMessage {
  std::string consumer;
  SteadyClock::time_point delivered_at;
  std::uint64_t delivery_count = 0;
};

struct Consumer {
  SteadyClock::time_point seen;
  std::uint64_t pending = 0;
};

struct Group {
  StreamId last_delivered;
  GroupOptions options;
  std::map<StreamId, PendingMessage> pel;
  SortedStringMap<Consumer> consumers;

  Consumer& touch_consumer(std::string_view name, SteadyClock::time_point now) {
    auto it = consumers.find(name);
    if (it == consumers.end()) it = consumers.emplace(std::string(name), Consumer{}).first;
    it->second.seen = now;
    return it->second;
  }

  // Records `id` as delivered to `consumer` now; a message pending for another consumer moves.
  void deliver(StreamId id, std::string_view consumer, SteadyClock::time_point now) {
    auto [it, inserted] = pel.try_emplace(id);
    if (!inserted) consumers[it->second.consumer].pending--;
    it->second = PendingMessage{std::string(consumer), now, 1};
    consumers[std::string(consumer)].pending++;
  }

  void remove_pending(std::map<StreamId, PendingMessage>::iterator it) {
    consumers[it->second.consumer].pending--;
    pel.erase(it);
  }
};

struct Stream {
  std::deque<EventPtr> entries;  // ascending ids
  StreamId last_id;
  StreamId trimmed_through;
  std::string epoch = make_epoch();
  SortedStringMap<Group> groups;

  // First entry with id > after.
  std::deque<EventPtr>::const_iterator after(StreamId id) const {
    return std::upper_bound(entries.begin(), entries.end(), id,
                            [](StreamId v, const EventPtr& e) { return v < e->id; });
  }

  EventPtr find(StreamId id) const {
    auto it = std::lower_bound(entries.begin(), entries.end(), id,
                               [](const EventPtr& e, StreamId v) { return e->id < v; });
    return it != entries.end() && (*it)->id == id ? *it : nullptr;
  }

  void drop_oldest() {
    trimmed_through = entries.front()->id;
    entries.pop_front();
  }

  StreamPosition position() const {
    return {epoch, entries.empty() ? StreamId{} : entries.front()->id, trimmed_through};
  }

  std::uint64_t count_after(StreamId id) const {
    return static_cast<std::uint64_t>(entries.end() - after(id));
  }
};

struct IdempotencyRecord {
  EventPtr event;
  Fingerprint fingerprint;
  SteadyClock::time_point expires;
};

struct Expiry {
  SteadyClock::time_point at;
  std::string stream;
  std::string event_id;
  bool operator>(const Expiry& o) const { return at > o.at; }
};

}  // namespace

struct MemoryStore::State {
  explicit State(Options o) : options(std::move(o)) {
    if (!options.now_ms) options.now_ms = unix_now_ms;
  }

  Options options;
  std::mutex mu;
  StringMap<Stream> streams;
  StringMap<StringMap<IdempotencyRecord>> idempotency;  // stream → event_id → record
  std::priority_queue<Expiry, std::vector<Expiry>, std::greater<>> expiries;
  SortedStringMap<Topic> topics;
  Leases leases;
  WaitList waiters;
  std::atomic<bool> closed = false;  // close()

  result<void> open() const {
    if (closed) return store_closed_error();
    return {};
  }

  // append() under `mu`.
  result<Appended> append(std::string_view stream, NewEvent& event,
                          const AppendOptions& append_options, SteadyClock::time_point now);
  const IdempotencyRecord* remembered(std::string_view stream, const std::string& event_id);

  Stream* find(std::string_view name) {
    auto it = streams.find(name);
    return it == streams.end() ? nullptr : &it->second;
  }

  Stream& get_or_create(std::string_view name) {
    auto it = streams.find(name);
    if (it == streams.end()) it = streams.emplace(std::string(name), Stream{}).first;
    return it->second;
  }

  result<Group*> find_group(std::string_view stream, std::string_view group) {
    Stream* s = find(stream);
    if (!s) return no_group(stream, group);
    auto it = s->groups.find(group);
    if (it == s->groups.end()) return no_group(stream, group);
    return &it->second;
  }

  void expire_idempotency(SteadyClock::time_point now) {
    while (!expiries.empty() && expiries.top().at <= now) {
      const Expiry& e = expiries.top();
      if (auto s = idempotency.find(e.stream); s != idempotency.end()) {
        auto r = s->second.find(e.event_id);
        if (r != s->second.end() && r->second.expires <= now) s->second.erase(r);
        if (s->second.empty()) idempotency.erase(s);
      }
      expiries.pop();
    }
  }
};

MemoryStore::MemoryStore() : MemoryStore(Options{}) {}
MemoryStore::MemoryStore(Options options) : state_(std::make_unique<State>(std::move(options))) {}
MemoryStore::~MemoryStore() = default;

// The idempotency record of a chosen event_id in `stream`; nullptr when there is none.
const IdempotencyRecord* MemoryStore::State::remembered(std::string_view stream,
                                                        const std::string& event_id) {
  auto records = idempotency.find(stream);
  if (records == idempotency.end()) return nullptr;
  auto it = records->second.find(event_id);
  return it == records->second.end() ? nullptr : &it->second;
}

result<Appended> MemoryStore::State::append(std::string_view stream, NewEvent& event,
                                            const AppendOptions& append_options,
                                            SteadyClock::time_point now) {
  if (event.chosen_event_id) {
    if (const auto* seen = remembered(stream, event.event.event_id)) {
      if (seen->fingerprint != event.fingerprint) {
        return duplicate_conflict_error(stream, event.event.event_id);
      }
      return Appended{seen->event, true};
    }
  }
  Stream& s = get_or_create(stream);
  StreamId id;
  RR_TRY_ASSIGN(id, next_stream_id(s.last_id, options.now_ms()));
  event.event.id = id;
  auto stored = std::make_shared<const Event>(std::move(event.event));
  s.entries.push_back(stored);
  s.last_id = id;
  while (append_options.maxlen && s.entries.size() > append_options.maxlen) s.drop_oldest();
  if (event.chosen_event_id && append_options.idempotency_ttl.count() > 0) {
    auto expires = now + append_options.idempotency_ttl;
    idempotency[std::string(stream)][stored->event_id] =
        IdempotencyRecord{stored, event.fingerprint, expires};
    expiries.push(Expiry{expires, std::string(stream), stored->event_id});
  }
  return Appended{std::move(stored), false};
}

task<result<Appended>> MemoryStore::append(std::string_view stream, NewEvent event,
                                           AppendOptions options) {
  RR_CO_TRY(state_->open());
  result<Appended> out;
  {
    std::lock_guard lock(state_->mu);
    auto now = SteadyClock::now();
    state_->expire_idempotency(now);
    out = state_->append(stream, event, options, now);
  }
  if (out && !out->duplicate) state_->waiters.notify(stream);
  co_return out;
}

task<result<std::vector<Appended>>> MemoryStore::append_batch(std::string_view stream,
                                                              std::vector<NewEvent> events,
                                                              AppendOptions options) {
  RR_CO_TRY(state_->open());
  std::vector<Appended> out;
  out.reserve(events.size());
  {
    std::lock_guard lock(state_->mu);
    auto now = SteadyClock::now();
    state_->expire_idempotency(now);
    RR_CO_TRY(check_batch_conflicts(
        stream, events, options,
        [&](const std::string& event_id) -> result<std::optional<Fingerprint>> {
          const auto* seen = state_->remembered(stream, event_id);
          return seen ? std::optional(seen->fingerprint) : std::nullopt;
        }));
    for (auto& e : events) {
      Appended appended;
      RR_CO_TRY_ASSIGN(appended, state_->append(stream, e, options, now));
      out.push_back(std::move(appended));
    }
  }
  if (!out.empty()) state_->waiters.notify(stream);
  co_return out;
}

task<result<std::vector<EventPtr>>> MemoryStore::range(std::string_view stream, StreamId after,
                                                       std::size_t limit, std::string_view epoch) {
  RR_CO_TRY(state_->open());
  std::lock_guard lock(state_->mu);
  const Stream* s = state_->find(stream);
  auto pos = s ? std::optional(s->position()) : std::nullopt;
  RR_CO_TRY(check_cursor(stream, pos ? &*pos : nullptr, after, epoch));
  std::vector<EventPtr> out;
  if (!s) co_return out;
  auto first = s->after(after);
  auto n = std::min<std::size_t>(limit, static_cast<std::size_t>(s->entries.end() - first));
  out.assign(first, first + static_cast<std::ptrdiff_t>(n));
  co_return out;
}

task<result<std::vector<StreamEvents>>> MemoryStore::read(std::span<const StreamCursor> cursors,
                                                          ReadOptions options) {
  RR_CO_TRY(check_read_args(cursors.size(), options));
  ReadDeadline deadline(options);
  auto executor = co_await asio::this_coro::executor;
  for (;;) {
    RR_CO_TRY(state_->open());
    std::unique_ptr<WaitList::Registration> registration;
    {
      std::lock_guard lock(state_->mu);
      std::vector<StreamEvents> out;
      for (const auto& c : cursors) {
        const Stream* s = state_->find(c.stream);
        auto pos = s ? std::optional(s->position()) : std::nullopt;
        RR_CO_TRY(check_cursor(c.stream, pos ? &*pos : nullptr, c.after, c.epoch));
        if (!s) continue;
        auto first = s->after(c.after);
        auto n = std::min<std::size_t>(options.count,
                                       static_cast<std::size_t>(s->entries.end() - first));
        if (n == 0) continue;
        out.push_back({c.stream, {first, first + static_cast<std::ptrdiff_t>(n)}});
      }
      if (!out.empty() || !options.block || deadline.passed()) co_return out;
      std::vector<std::string> names;
      for (const auto& c : cursors) names.push_back(c.stream);
      registration = state_->waiters.watch(executor, std::move(names));
    }
    if (!co_await registration->waiter().wait(deadline.remaining()) && deadline.passed()) {
      co_return std::vector<StreamEvents>{};
    }
  }
}

task<result<StreamInfo>> MemoryStore::info(std::string_view stream) {
  RR_CO_TRY(state_->open());
  std::lock_guard lock(state_->mu);
  const Stream* s = state_->find(stream);
  if (!s) co_return no_stream(stream);
  StreamInfo out;
  out.length = s->entries.size();
  auto pos = s->position();
  out.first_id = pos.first_id;
  out.last_id = s->last_id;
  out.trimmed_through = s->trimmed_through;
  out.epoch = s->epoch;
  for (const auto& [name, g] : s->groups) {
    out.groups.push_back({name, g.consumers.size(), g.pel.size(), g.last_delivered,
                          s->count_after(g.last_delivered), g.options.max_deliveries});
  }
  co_return out;
}

task<result<bool>> MemoryStore::delete_stream(std::string_view stream) {
  RR_CO_TRY(state_->open());
  std::lock_guard lock(state_->mu);
  auto it = state_->streams.find(stream);
  if (it == state_->streams.end()) co_return false;
  state_->streams.erase(it);
  if (auto r = state_->idempotency.find(stream); r != state_->idempotency.end()) {
    state_->idempotency.erase(r);
  }
  co_return true;
}

task<result<std::uint64_t>> MemoryStore::trim_before(std::string_view stream, StreamId before) {
  RR_CO_TRY(state_->open());
  std::lock_guard lock(state_->mu);
  auto it = state_->streams.find(stream);
  if (it == state_->streams.end()) co_return 0;
  Stream& s = it->second;
  std::uint64_t removed = 0;
  for (; !s.entries.empty() && s.entries.front()->id < before; ++removed) s.drop_oldest();
  co_return removed;
}

task<result<std::vector<std::string>>> MemoryStore::list_streams() {
  RR_CO_TRY(state_->open());
  std::lock_guard lock(state_->mu);
  std::vector<std::string> out;
  for (const auto& [name, _] : state_->streams) out.push_back(name);
  std::sort(out.begin(), out.end());
  co_return out;
}

task<result<void>> MemoryStore::group_create(std::string_view stream, std::string_view group,
                                             Cursor start, bool mkstream, GroupOptions options) {
  RR_CO_TRY(state_->open());
  RR_CO_TRY(check_group_name(group));
  std::lock_guard lock(state_->mu);
  Stream* s = state_->find(stream);
  if (!s && !mkstream) co_return no_stream(stream);
  if (!s) s = &state_->get_or_create(stream);
  if (s->groups.contains(group)) co_return group_exists_error(stream, group);
  Group& g = s->groups[std::string(group)];
  g.last_delivered = start.is_latest() ? s->last_id : start.id();
  g.options = options;
  co_return result<void>{};
}

task<result<void>> MemoryStore::group_setid(std::string_view stream, std::string_view group,
                                            Cursor id) {
  RR_CO_TRY(state_->open());
  std::lock_guard lock(state_->mu);
  Stream* s = state_->find(stream);
  if (!s) co_return no_stream(stream);
  auto it = s->groups.find(group);
  if (it == s->groups.end()) co_return no_group(stream, group);
  it->second.last_delivered = id.is_latest() ? s->last_id : id.id();
  co_return result<void>{};
}

task<result<bool>> MemoryStore::group_destroy(std::string_view stream, std::string_view group) {
  RR_CO_TRY(state_->open());
  std::lock_guard lock(state_->mu);
  Stream* s = state_->find(stream);
  if (!s) co_return no_stream(stream);
  auto it = s->groups.find(group);
  if (it == s->groups.end()) co_return false;
  s->groups.erase(it);
  co_return true;
}

task<result<std::vector<GroupStreamMessages>>> MemoryStore::read_group(
    std::string_view group, std::string_view consumer, std::span<const GroupCursor> cursors,
    ReadOptions options) {
  bool history;
  RR_CO_TRY_ASSIGN(history, check_read_group_args(cursors, consumer, options));
  ReadDeadline deadline(options);
  auto executor = co_await asio::this_coro::executor;
  for (;;) {
    RR_CO_TRY(state_->open());
    std::unique_ptr<WaitList::Registration> registration;
    {
      std::lock_guard lock(state_->mu);
      // Check every group before changing any, so a bad cursor changes nothing.
      std::vector<std::pair<Stream*, Group*>> targets;
      for (const auto& c : cursors) {
        Group* g;
        RR_CO_TRY_ASSIGN(g, state_->find_group(c.stream, group));
        targets.emplace_back(state_->find(c.stream), g);
      }
      auto now = SteadyClock::now();
      std::vector<GroupStreamMessages> out;
      for (std::size_t i = 0; i < cursors.size(); ++i) {
        auto [s, g] = targets[i];
        g->touch_consumer(consumer, now);
        GroupStreamMessages batch{cursors[i].stream, {}};
        if (cursors[i].pending_after) {
          for (auto it = g->pel.upper_bound(*cursors[i].pending_after);
               it != g->pel.end() && batch.messages.size() < options.count; ++it) {
            if (it->second.consumer != consumer) continue;
            it->second.delivered_at = now;
            ++it->second.delivery_count;
            batch.messages.push_back({it->first, s->find(it->first), it->second.delivery_count});
          }
          out.push_back(std::move(batch));
          continue;
        }
        for (auto it = s->after(g->last_delivered);
             it != s->entries.end() && batch.messages.size() < options.count; ++it) {
          g->deliver((*it)->id, consumer, now);
          g->last_delivered = (*it)->id;
          batch.messages.push_back({(*it)->id, *it, 1});
        }
        if (!batch.messages.empty()) out.push_back(std::move(batch));
      }
      if (!out.empty() || history || !options.block || deadline.passed()) co_return out;
      std::vector<std::string> names;
      for (const auto& c : cursors) names.push_back(c.stream);
      registration = state_->waiters.watch(executor, std::move(names));
    }
    if (!co_await registration->waiter().wait(deadline.remaining()) && deadline.passed()) {
      co_return std::vector<GroupStreamMessages>{};
    }
  }
}

task<result<std::uint64_t>> MemoryStore::ack(std::string_view stream, std::string_view group,
                                             std::span<const StreamId> ids) {
  RR_CO_TRY(state_->open());
  std::lock_guard lock(state_->mu);
  auto g = state_->find_group(stream, group);
  if (!g) co_return 0;
  std::uint64_t acked = 0;
  for (StreamId id : ids) {
    if (auto it = (*g)->pel.find(id); it != (*g)->pel.end()) {
      (*g)->remove_pending(it);
      ++acked;
    }
  }
  co_return acked;
}

task<result<AutoclaimResult>> MemoryStore::autoclaim(std::string_view stream,
                                                     std::string_view group,
                                                     std::string_view consumer, Millis min_idle,
                                                     StreamId start, std::size_t count) {
  RR_CO_TRY(state_->open());
  RR_CO_TRY(check_autoclaim_args(consumer, min_idle, count));
  std::lock_guard lock(state_->mu);
  Group* g;
  RR_CO_TRY_ASSIGN(g, state_->find_group(stream, group));
  const Stream* s = state_->find(stream);
  auto now = SteadyClock::now();
  g->touch_consumer(consumer, now);

  AutoclaimResult out;
  // XAUTOCLAIM examines at most ten entries per one it may claim.
  std::size_t attempts = count * 10;
  auto it = g->pel.lower_bound(start);
  while (it != g->pel.end() && attempts > 0 && out.claimed.size() < count) {
    --attempts;
    EventPtr event = s->find(it->first);
    if (!event) {
      out.deleted.push_back(it->first);
      auto gone = it++;
      g->remove_pending(gone);
      continue;
    }
    if (idle_ms(it->second.delivered_at, now) < static_cast<std::uint64_t>(min_idle.count())) {
      ++it;
      continue;
    }
    auto& p = it->second;
    if (p.consumer != consumer) {
      g->consumers[p.consumer].pending--;
      g->consumers[std::string(consumer)].pending++;
      p.consumer = consumer;
    }
    p.delivered_at = now;
    ++p.delivery_count;
    out.claimed.push_back({it->first, std::move(event), p.delivery_count});
    ++it;
  }
  out.next = it == g->pel.end() ? StreamId{} : it->first;
  co_return out;
}

task<result<PendingSummary>> MemoryStore::pending(std::string_view stream, std::string_view group) {
  RR_CO_TRY(state_->open());
  std::lock_guard lock(state_->mu);
  Group* g;
  RR_CO_TRY_ASSIGN(g, state_->find_group(stream, group));
  PendingSummary out;
  out.count = g->pel.size();
  if (!g->pel.empty()) {
    out.min_id = g->pel.begin()->first;
    out.max_id = g->pel.rbegin()->first;
  }
  for (const auto& [name, c] : g->consumers) {
    if (c.pending > 0) out.consumers.emplace_back(name, c.pending);
  }
  co_return out;
}

task<result<std::vector<PendingEntry>>> MemoryStore::pending_entries(std::string_view stream,
                                                                     std::string_view group,
                                                                     PendingQuery query) {
  RR_CO_TRY(state_->open());
  std::lock_guard lock(state_->mu);
  Group* g;
  RR_CO_TRY_ASSIGN(g, state_->find_group(stream, group));
  auto now = SteadyClock::now();
  std::vector<PendingEntry> out;
  for (auto it = g->pel.lower_bound(query.start);
       it != g->pel.end() && it->first <= query.end && out.size() < query.count; ++it) {
    if (query.consumer && it->second.consumer != *query.consumer) continue;
    auto idle = idle_ms(it->second.delivered_at, now);
    if (idle < query.min_idle_ms) continue;
    out.push_back({it->first, it->second.consumer, idle, it->second.delivery_count});
  }
  co_return out;
}

task<result<std::vector<ConsumerInfo>>> MemoryStore::consumers(std::string_view stream,
                                                               std::string_view group) {
  RR_CO_TRY(state_->open());
  std::lock_guard lock(state_->mu);
  Group* g;
  RR_CO_TRY_ASSIGN(g, state_->find_group(stream, group));
  auto now = SteadyClock::now();
  std::vector<ConsumerInfo> out;
  for (const auto& [name, c] : g->consumers) out.push_back({name, c.pending, idle_ms(c.seen, now)});
  co_return out;
}

task<result<Topic>> MemoryStore::create_topic(std::string_view name, std::uint32_t partitions) {
  RR_CO_TRY(state_->open());
  RR_CO_TRY(check_topic(name, partitions));
  std::lock_guard lock(state_->mu);
  if (auto it = state_->topics.find(name); it != state_->topics.end()) {
    if (it->second.partitions != partitions) {
      co_return topic_conflict_error(name, it->second.partitions, partitions);
    }
    co_return it->second;
  }
  Topic t{std::string(name), partitions, now_timestamp()};
  state_->topics.emplace(t.name, t);
  co_return t;
}

task<result<std::optional<Topic>>> MemoryStore::get_topic(std::string_view name) {
  RR_CO_TRY(state_->open());
  std::lock_guard lock(state_->mu);
  auto it = state_->topics.find(name);
  co_return it == state_->topics.end() ? std::nullopt : std::optional(it->second);
}

task<result<std::vector<Topic>>> MemoryStore::list_topics() {
  RR_CO_TRY(state_->open());
  std::lock_guard lock(state_->mu);
  std::vector<Topic> out;
  for (const auto& [_, t] : state_->topics) out.push_back(t);
  co_return out;
}

task<result<Topic>> MemoryStore::set_topic_retention(std::string_view name,
                                                     TopicRetention retention) {
  RR_CO_TRY(state_->open());
  RR_CO_TRY(check_retention(retention));
  std::lock_guard lock(state_->mu);
  auto it = state_->topics.find(name);
  if (it == state_->topics.end()) co_return no_topic(name);
  it->second.retention = retention;
  co_return it->second;
}

task<result<bool>> MemoryStore::delete_topic(std::string_view name) {
  RR_CO_TRY(state_->open());
  std::lock_guard lock(state_->mu);
  auto it = state_->topics.find(name);
  if (it == state_->topics.end()) co_return false;
  state_->topics.erase(it);
  co_return true;
}

task<result<bool>> MemoryStore::take_lease(std::string_view name, Millis ttl) {
  RR_CO_TRY(state_->open());
  RR_CO_TRY(check_lease(name, ttl));
  co_return state_->leases.take(name, ttl);
}

task<result<void>> MemoryStore::health() { co_return state_->open(); }

void MemoryStore::close() {
  state_->closed = true;
  state_->waiters.close();
}

}  // namespace replayrail::store
