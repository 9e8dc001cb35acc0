#pragma once

#include <boost/asio/any_completion_handler.hpp>
#include <boost/asio/any_io_executor.hpp>
#include <boost/asio/awaitable.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/strand.hpp>
#include <chrono>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "replayrail/common/stream_id.h"
#include "replayrail/resp/cluster.h"
#include "replayrail/resp/connection.h"

namespace replayrail::store::redis {

// Blocking reads over many streams through a few connections ("lanes"). Each lane keeps one
// `XREAD BLOCK` in flight over the union of what its waiters watch, each stream at the lowest
// cursor any of them holds. When a waiter needs what the XREAD in flight does not cover (a new
// stream or an earlier cursor), the XREAD is interrupted with `CLIENT UNBLOCK` sent on the command
// connection and issued again. No wake-up is lost across a re-issue: every XREAD names explicit
// ids (never `$`), so what arrived in between is returned at once.
//
// On a Redis Cluster one XREAD can name only keys of one slot: there is a lane per slot watched,
// connected to the primary serving it (and moved when the slot moves), with CLIENT UNBLOCK sent
// to that primary; a waiter watching several slots waits in each of their lanes, and the first
// to answer completes it. A lane left without waiters for kIdleLane closes.
//
// A waiter learns only that something arrived after one of its cursors (or that its deadline
// passed); it reads its pages itself, so the cursor checks stay in one place.
// Threads: wait() may be called from any thread and completes on the caller's executor; the lanes
// run on one strand.
// Lifecycle: start() returns it idle (lanes connect on first use); stop() fails every waiter
// with store_unavailable and closes the lanes.
class BlockingReads : public std::enable_shared_from_this<BlockingReads> {
 public:
  using Clock = std::chrono::steady_clock;
  struct Watch {
    std::string key;
    StreamId after;
  };

  // A single Redis, connected to as `server` says, whose `control` connection carries the CLIENT
  // UNBLOCK commands, with `lanes` lanes; or the `cluster` (when not null: `server` and
  // `control` are not used).
  static std::shared_ptr<BlockingReads> start(boost::asio::any_io_executor executor,
                                              resp::Connection::Options server,
                                              std::shared_ptr<resp::Connection> control,
                                              std::shared_ptr<resp::Cluster> cluster,
                                              std::size_t lanes);

  // true when one of the keys has an entry after its `after`; false when `deadline` passed
  // first. store_unavailable when the lane's connection fails.
  boost::asio::awaitable<result<bool>> wait(std::vector<Watch> watches, Clock::time_point deadline);

  void stop();

 private:
  using Handler = boost::asio::any_completion_handler<void(result<bool>)>;
  struct Waiter {
    std::vector<Watch> watches;
    Clock::time_point deadline;
    Handler handler;
    boost::asio::any_io_executor executor;
    bool done = false;  // completed (by any of its lanes)
  };
  using WaiterPtr = std::shared_ptr<Waiter>;
  // A waiter in one lane, with the watches that lane covers.
  struct Entry {
    WaiterPtr waiter;
    std::vector<Watch> watches;
  };
  struct Lane {
    explicit Lane(boost::asio::strand<boost::asio::any_io_executor>& strand)
        : wake(strand), expiry(strand) {}
    std::optional<std::uint16_t> slot;          // on a cluster
    std::string address;                        // the node `conn` is connected to (cluster)
    std::shared_ptr<resp::Connection> control;  // that node's shared connection (cluster)
    std::shared_ptr<resp::Connection> conn;     // connected on first use
    bool running = false;                       // run() is looping
    std::vector<Entry> entries;
    std::map<std::string, StreamId> issued;  // what the XREAD in flight covers
    bool in_flight = false;
    std::uint64_t round = 0;  // XREADs issued so far
    bool unblocking = false;
    boost::asio::steady_timer wake;    // an idle lane waits here for waiters
    boost::asio::steady_timer expiry;  // the earliest waiter deadline
    Clock::time_point expiry_at = Clock::time_point::max();
  };
  using LanePtr = std::shared_ptr<Lane>;

  BlockingReads(boost::asio::any_io_executor executor, resp::Connection::Options server,
                std::shared_ptr<resp::Connection> control, std::shared_ptr<resp::Cluster> cluster,
                std::size_t lanes);

  // On the strand.
  void add(WaiterPtr waiter);
  void place(const LanePtr& lane, const WaiterPtr& waiter, std::vector<Watch> watches);
  boost::asio::awaitable<void> run(LanePtr lane);
  // Connects a cluster lane to the primary serving its slot now; false when the map does not say.
  bool target(Lane& lane);
  bool covered(const Lane& lane, const Entry& entry) const;
  void interrupt(const LanePtr& lane);
  boost::asio::awaitable<void> unblock(LanePtr lane);
  void arm_expiry(const LanePtr& lane);
  void complete_where(Lane& lane, auto&& predicate, const result<bool>& value);
  static void complete(Waiter& waiter, result<bool> value);
  std::vector<LanePtr> all_lanes() const;

  boost::asio::any_io_executor executor_;
  boost::asio::strand<boost::asio::any_io_executor> strand_;
  resp::Connection::Options server_;
  std::shared_ptr<resp::Connection> control_;
  std::shared_ptr<resp::Cluster> cluster_;
  std::vector<LanePtr> lanes_;                   // a single Redis
  std::map<std::uint16_t, LanePtr> slot_lanes_;  // a cluster
  bool stopped_ = false;
};

}  // namespace replayrail::store::redis
