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

}  // namespace

BlockingReads::BlockingReads(asio::any_io_executor executor, resp::RedisUrl url,
                             std::shared_ptr<resp::Connection> control, std::size_t lanes)
    : executor_(executor),
      strand_(asio::make_strand(executor)),
      url_(std::move(url)),
      control_(std::move(control)) {
  for (std::size_t i = 0; i < std::max<std::size_t>(1, lanes); ++i) {
    lanes_.push_back(std::make_shared<Lane>(strand_));
  }
}

std::shared_ptr<BlockingReads> BlockingReads::start(asio::any_io_executor executor,
                                                    resp::RedisUrl url,
                                                    std::shared_ptr<resp::Connection> control,
                                                    std::size_t lanes) {
  return std::shared_ptr<BlockingReads>(
      new BlockingReads(std::move(executor), std::move(url), std::move(control), lanes));
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
    for (auto& lane : self->lanes_) {
      self->complete_where(
          *lane, [](const Waiter&) { return true; }, store_closed_error());
      lane->wake.cancel();
      lane->expiry.cancel();
      if (lane->conn) lane->conn->stop();
    }
  });
}

void BlockingReads::complete(Waiter& waiter, result<bool> value) {
  asio::post(waiter.executor, [handler = std::move(waiter.handler),
                               value = std::move(value)]() mutable { std::move(handler)(value); });
}

void BlockingReads::complete_where(Lane& lane, auto&& predicate, const result<bool>& value) {
  std::erase_if(lane.waiters, [&](const WaiterPtr& w) {
    if (!predicate(*w)) return false;
    complete(*w, value);
    return true;
  });
}

void BlockingReads::add(WaiterPtr waiter) {
  if (stopped_ || waiter->watches.empty()) {
    complete(*waiter, store_closed_error());
    return;
  }
  // Waiters on the same stream share a lane, so its XREAD names each stream once.
  const LanePtr& lane =
      lanes_[std::hash<std::string>{}(waiter->watches.front().key) % lanes_.size()];
  lane->waiters.push_back(waiter);
  arm_expiry(lane);
  if (!lane->conn) {
    lane->conn = resp::Connection::start(executor_, {.url = url_, .client_id = true});
    asio::co_spawn(
        strand_, [self = shared_from_this(), lane] { return self->run(lane); }, asio::detached);
  } else if (!lane->in_flight) {
    lane->wake.cancel();
  } else if (!covered(*lane, *waiter)) {
    interrupt(lane);
  }
}

bool BlockingReads::covered(const Lane& lane, const Waiter& waiter) const {
  return std::all_of(waiter.watches.begin(), waiter.watches.end(), [&](const Watch& w) {
    auto it = lane.issued.find(w.key);
    return it != lane.issued.end() && it->second <= w.after;
  });
}

asio::awaitable<void> BlockingReads::run(LanePtr lane) {
  while (!stopped_) {
    if (lane->waiters.empty()) {
      lane->wake.expires_at(Clock::time_point::max());
      co_await lane->wake.async_wait(kToken);
      continue;
    }
    if (!lane->conn->ready() && !co_await lane->conn->wait_ready(kConnectWait)) {
      complete_where(
          *lane, [](const Waiter&) { return true; },
          make_error(errc::store_unavailable, "Redis at " + url_.redacted() + ": not connected"));
      continue;
    }
    // Each stream at the lowest cursor any waiter holds for it.
    std::map<std::string, StreamId> set;
    for (const auto& w : lane->waiters) {
      for (const auto& watch : w->watches) {
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
      complete_where(
          *lane, [](const Waiter&) { return true; }, reply.error());
      continue;
    }
    if (reply->is_error()) {
      // (WRONGTYPE at one of the keys, say.) Everyone reads their pages again, and the read of
      // the stream at fault reports it with the store's words.
      complete_where(
          *lane, [](const Waiter&) { return true; }, true);
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
        [&](const Waiter& w) {
          return std::any_of(w.watches.begin(), w.watches.end(), [&](const Watch& watch) {
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
      auto reply = co_await control_->command(command("CLIENT", "UNBLOCK", std::to_string(id)));
      if (reply && reply->integer == 1) break;
    }
    pause.expires_after(kUnblockRetry);
    co_await pause.async_wait(kToken);
  }
  lane->unblocking = false;
  // Waiters that came while this ran and that the XREAD now in flight does not cover.
  if (lane->in_flight && !stopped_ &&
      !std::all_of(lane->waiters.begin(), lane->waiters.end(),
                   [&](const WaiterPtr& w) { return covered(*lane, *w); })) {
    interrupt(lane);
  }
}

void BlockingReads::arm_expiry(const LanePtr& lane) {
  auto next = Clock::time_point::max();
  for (const auto& w : lane->waiters) next = std::min(next, w->deadline);
  if (next == lane->expiry_at) return;
  lane->expiry_at = next;
  lane->expiry.expires_at(next);  // cancels the wait for the previous deadline
  if (next == Clock::time_point::max()) return;
  lane->expiry.async_wait(
      asio::bind_executor(strand_, [self = shared_from_this(), lane](boost::system::error_code ec) {
        if (ec || self->stopped_) return;
        auto now = Clock::now();
        self->complete_where(
            *lane, [now](const Waiter& w) { return w.deadline <= now; }, false);
        lane->expiry_at = Clock::time_point::max();
        self->arm_expiry(lane);
      }));
}

}  // namespace replayrail::store::redis
