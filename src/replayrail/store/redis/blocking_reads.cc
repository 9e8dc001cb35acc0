#include "replayrail/store/redis/blocking_reads.h"

#include <algorithm>
#include <boost/asio/as_tuple.hpp>
#include <boost/asio/bind_executor.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <functional>

#include "replayrail/store/redis/replies.h"
#include "replayrail/store/rules.h"

namespace replayrail::store::redis {

namespace asio = boost::asio;

namespace {

constexpr auto kToken = asio::as_tuple(asio::use_awaitable);

// How long a lane waits for its connection before failing its waiters.
constexpr Millis kConnectWait{2000};

// CLIENT UNBLOCK answers 0 when the XREAD has not reached Redis yet; it is tried again this often,
// this many times (past that, the XREAD ends by itself within kMaxBlock).
constexpr Millis kUnblockRetry{1};
constexpr int kUnblockAttempts = 200;

// The pause before an XREAD after one that Redis refused.
constexpr Millis kErrorPause{20};

// A cluster's lane with no waiters this long closes its connection (there is one per slot).
constexpr Millis kIdleLane{30000};

}  // namespace

BlockingReads::BlockingReads(asio::any_io_executor executor, resp::Connection::Options server,
                             std::shared_ptr<resp::Connection> control,
                             std::shared_ptr<resp::Cluster> cluster, std::size_t lanes)
    : executor_(executor),
      strand_(asio::make_strand(executor)),
      server_(std::move(server)),
      control_(std::move(control)),
      cluster_(std::move(cluster)) {
  if (cluster_) return;  // lanes per slot, on demand
  for (std::size_t i = 0; i < std::max<std::size_t>(1, lanes); ++i) {
    lanes_.push_back(std::make_shared<Lane>(strand_));
  }
}

std::shared_ptr<BlockingReads> BlockingReads::start(asio::any_io_executor executor,
                                                    resp::Connection::Options server,
                                                    std::shared_ptr<resp::Connection> control,
                                                    std::shared_ptr<resp::Cluster> cluster,
                                                    std::size_t lanes) {
  return std::shared_ptr<BlockingReads>(new BlockingReads(
      std::move(executor), std::move(server), std::move(control), std::move(cluster), lanes));
}

std::vector<BlockingReads::LanePtr> BlockingReads::all_lanes() const {
  std::vector<LanePtr> out = lanes_;
  for (const auto& [slot, lane] : slot_lanes_) out.push_back(lane);
  return out;
}

asio::awaitable<result<bool>> BlockingReads::wait(std::vector<Watch> watches,
                                                  Clock::time_point deadline) {
  return asio::async_initiate<decltype(asio::use_awaitable), void(result<bool>)>(
      [self = shared_from_this()](auto handler, std::vector<Watch> watches,
                                  Clock::time_point deadline) {
        // The executor is taken before the handler's type is erased: the caller resumes there.
        auto executor = asio::get_associated_executor(handler, self->strand_);
        auto waiter = std::make_shared<Waiter>(
            Waiter{std::move(watches), deadline, std::move(handler), std::move(executor)});
        asio::post(self->strand_, [self, waiter] { self->add(waiter); });
      },
      asio::use_awaitable, std::move(watches), deadline);
}

void BlockingReads::stop() {
  asio::post(strand_, [self = shared_from_this()] {
    self->stopped_ = true;
    for (auto& lane : self->all_lanes()) {
      self->complete_where(
          *lane, [](const Entry&) { return true; }, store_closed_error());
      lane->wake.cancel();
      lane->expiry.cancel();
      if (lane->conn) lane->conn->stop();
    }
  });
}

void BlockingReads::complete(Waiter& waiter, result<bool> value) {
  if (waiter.done) return;
  waiter.done = true;
  asio::post(waiter.executor, [handler = std::move(waiter.handler),
                               value = std::move(value)]() mutable { std::move(handler)(value); });
}

// Completes the entries `predicate` picks, and forgets those another lane completed.
void BlockingReads::complete_where(Lane& lane, auto&& predicate, const result<bool>& value) {
  std::erase_if(lane.entries, [&](const Entry& e) {
    if (e.waiter->done) return true;
    if (!predicate(e)) return false;
    complete(*e.waiter, value);
    return true;
  });
}

void BlockingReads::add(WaiterPtr waiter) {
  if (stopped_ || waiter->watches.empty()) {
    complete(*waiter, store_closed_error());
    return;
  }
  if (!cluster_) {
    // Waiters on the same stream share a lane, so its XREAD names each stream once.
    const LanePtr& lane =
        lanes_[std::hash<std::string>{}(waiter->watches.front().key) % lanes_.size()];
    place(lane, waiter, waiter->watches);
    return;
  }
  std::map<std::uint16_t, std::vector<Watch>> by_slot;
  for (const auto& w : waiter->watches) by_slot[resp::key_slot(w.key)].push_back(w);
  for (auto& [slot, watches] : by_slot) {
    LanePtr& lane = slot_lanes_[slot];
    if (!lane) {
      lane = std::make_shared<Lane>(strand_);
      lane->slot = slot;
    }
    place(lane, waiter, std::move(watches));
  }
}

void BlockingReads::place(const LanePtr& lane, const WaiterPtr& waiter,
                          std::vector<Watch> watches) {
  lane->entries.push_back({waiter, std::move(watches)});
  arm_expiry(lane);
  if (!lane->running) {
    lane->running = true;
    asio::co_spawn(
        strand_, [self = shared_from_this(), lane] { return self->run(lane); }, asio::detached);
  } else if (!lane->in_flight) {
    lane->wake.cancel();
  } else if (!covered(*lane, lane->entries.back())) {
    interrupt(lane);
  }
}

bool BlockingReads::target(Lane& lane) {
  if (!cluster_) {
    if (!lane.conn) {
      auto options = server_;
      options.client_id = true;
      lane.conn = resp::Connection::start(executor_, std::move(options));
    }
    lane.control = control_;
    return true;
  }
  auto node = cluster_->node(*lane.slot);
  if (!node) return false;
  if (lane.conn && node->address == lane.address) return true;
  if (lane.conn) lane.conn->stop();  // the slot moved
  lane.conn = resp::Connection::start(executor_, {.url = node->url, .client_id = true});
  lane.address = std::move(node->address);
  lane.control = std::move(node->connection);
  return true;
}

bool BlockingReads::covered(const Lane& lane, const Entry& entry) const {
  return std::all_of(entry.watches.begin(), entry.watches.end(), [&](const Watch& w) {
    auto it = lane.issued.find(w.key);
    return it != lane.issued.end() && it->second <= w.after;
  });
}

asio::awaitable<void> BlockingReads::run(LanePtr lane) {
  auto all = [](const Entry&) { return true; };
  while (!stopped_) {
    // Waiters another lane completed.
    std::erase_if(lane->entries, [](const Entry& e) { return e.waiter->done; });
    if (lane->entries.empty()) {
      // A cluster's lane closes when idle for long: it holds a connection per slot.
      lane->wake.expires_at(lane->slot ? Clock::now() + kIdleLane : Clock::time_point::max());
      auto [ec] = co_await lane->wake.async_wait(kToken);
      if (!ec && lane->slot && lane->entries.empty() && !stopped_) {
        if (lane->conn) lane->conn->stop();
        slot_lanes_.erase(*lane->slot);
        lane->running = false;
        co_return;
      }
      continue;
    }
    if (!target(*lane)) {
      complete_where(*lane, all, cluster_->not_ready_error());
      continue;
    }
    if (!lane->conn->ready() && !co_await lane->conn->wait_ready(kConnectWait)) {
      std::string where = lane->slot ? lane->address : server_.url.redacted();
      complete_where(*lane, all,
                     make_error(errc::store_unavailable, "Redis at " + where + ": not connected"));
      continue;
    }
    // Each stream at the lowest cursor any waiter holds for it.
    std::map<std::string, StreamId> set;
    for (const auto& e : lane->entries) {
      if (e.waiter->done) continue;
      for (const auto& watch : e.watches) {
        auto [it, added] = set.try_emplace(watch.key, watch.after);
        if (!added) it->second = std::min(it->second, watch.after);
      }
    }
    auto cmd =
        command("XREAD", "COUNT", "1", "BLOCK", std::to_string(kMaxBlock.count()), "STREAMS");
    cmd.reserve(cmd.size() + 2 * set.size());
    for (const auto& [key, after] : set) cmd.push_back(key);
    for (const auto& [key, after] : set) cmd.push_back(after.to_string());
    lane->issued = std::move(set);
    lane->in_flight = true;
    ++lane->round;
    auto reply = co_await lane->conn->command(std::move(cmd));
    lane->in_flight = false;
    lane->issued.clear();
    if (stopped_) break;
    if (!reply) {
      complete_where(*lane, all, reply.error());
      continue;
    }
    // The slot moved: the next round connects to its new primary.
    if (cluster_ && cluster_->redirected(*reply)) continue;
    if (reply->is_error()) {
      // (WRONGTYPE at one of the keys, say; or on a cluster a slot being migrated: ASK,
      // TRYAGAIN, UNBLOCKED.) Everyone reads their pages again, and the read of the stream at
      // fault reports it with the store's words; the next XREAD waits a moment, so a slot that
      // stays in migration is polled, not spun on.
      complete_where(*lane, all, true);
      asio::steady_timer pause(strand_, kErrorPause);
      co_await pause.async_wait(kToken);
      continue;
    }
    // Nil: timed out or unblocked. Otherwise [[key, [[id, fields]]], …].
    std::map<std::string_view, StreamId> arrived;
    for (const auto& stream : reply->elements) {
      if (stream.elements.size() == 2 && !stream.elements[1].elements.empty()) {
        arrived[stream.elements[0].str] =
            parse_id_or_zero(stream.elements[1].elements.front().elements.at(0));
      }
    }
    if (arrived.empty()) continue;
    complete_where(
        *lane,
        [&](const Entry& e) {
          return std::any_of(e.watches.begin(), e.watches.end(), [&](const Watch& watch) {
            auto it = arrived.find(watch.key);
            return it != arrived.end() && watch.after < it->second;
          });
        },
        true);
  }
}

void BlockingReads::interrupt(const LanePtr& lane) {
  if (lane->unblocking) return;
  lane->unblocking = true;
  asio::co_spawn(
      strand_, [self = shared_from_this(), lane] { return self->unblock(lane); }, asio::detached);
}

asio::awaitable<void> BlockingReads::unblock(LanePtr lane) {
  const std::uint64_t round = lane->round;
  asio::steady_timer pause(strand_);
  for (int attempt = 0; attempt < kUnblockAttempts; ++attempt) {
    if (stopped_ || !lane->in_flight || lane->round != round) break;
    if (std::int64_t id = lane->conn->client_id(); id >= 0) {
      // On the node the XREAD runs on (a client id names a connection of one server).
      auto control = lane->control;
      auto reply = co_await control->command(command("CLIENT", "UNBLOCK", std::to_string(id)));
      if (reply && reply->integer == 1) break;
    }
    pause.expires_after(kUnblockRetry);
    co_await pause.async_wait(kToken);
  }
  lane->unblocking = false;
  // Waiters that came while this ran and that the XREAD now in flight does not cover.
  if (lane->in_flight && !stopped_ &&
      !std::all_of(lane->entries.begin(), lane->entries.end(),
                   [&](const Entry& e) { return e.waiter->done || covered(*lane, e); })) {
    interrupt(lane);
  }
}

void BlockingReads::arm_expiry(const LanePtr& lane) {
  auto next = Clock::time_point::max();
  for (const auto& e : lane->entries) {
    if (!e.waiter->done) next = std::min(next, e.waiter->deadline);
  }
  if (next == lane->expiry_at) return;
  lane->expiry_at = next;
  lane->expiry.expires_at(next);  // cancels the wait for the previous deadline
  if (next == Clock::time_point::max()) return;
  lane->expiry.async_wait(
      asio::bind_executor(strand_, [self = shared_from_this(), lane](boost::system::error_code ec) {
        if (ec || self->stopped_) return;
        auto now = Clock::now();
        self->complete_where(
            *lane, [now](const Entry& e) { return e.waiter->deadline <= now; }, false);
        lane->expiry_at = Clock::time_point::max();
        self->arm_expiry(lane);
      }));
}

}  // namespace replayrail::store::redis
