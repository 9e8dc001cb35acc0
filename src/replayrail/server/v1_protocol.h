#pragma once

// Pieces of the `replayrail.v1` WebSocket protocol (docs/protocol.md) that are not the fanout
// hub's: its message shapes, and consumer-group subscriptions (a `subscribe` with a `group`).

#include <atomic>
#include <boost/asio/any_io_executor.hpp>
#include <boost/asio/awaitable.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/json/object.hpp>
#include <chrono>
#include <cstdint>
#include <memory>
#include <optional>
#include <set>
#include <string>
#include <string_view>
#include <vector>

#include "replayrail/server/group_json.h"
#include "replayrail/server/hub.h"
#include "replayrail/topics.h"

namespace replayrail::server {

// A server message: {"type": type, "sub": sub (when given), ...fields}.
std::string v1_message(std::string_view type, const std::string* sub, boost::json::object fields);
// An `error` message; `fields` are added next to `error` (e.g. "op" of what it answers).
std::string v1_error(const std::string* sub, const Error& e, boost::json::object fields = {});
// {"code", "message", and "first_available" for replay_window_expired}.
boost::json::object error_object(const Error& e);

struct GroupSubscriptionOptions {
  std::string topic;
  std::string group;
  std::string consumer;
  std::vector<std::uint32_t> partitions;  // read only these; empty: every partition
  // Delivered and not yet acknowledged on this subscription at most: no read asks for more.
  std::size_t max_in_flight = 100;
  // > 0: pending messages of the group idle this long (another consumer's that died, or this
  // one's own unacknowledged) are claimed and delivered again.
  std::chrono::milliseconds claim_idle{0};
  // With claim_idle: a message that would be delivered more often goes to the dead-letter topic
  // (nullopt: the group's setting; 0: never).
  std::optional<std::uint64_t> max_deliveries;
  // How long one read waits for messages, so how soon the subscription notices it should end.
  std::chrono::milliseconds block{1000};
};

// The fields of a group `subscribe` message ("topic", "group", "consumer", "partitions",
// "max_in_flight", "claim_idle_ms", "max_deliveries"); unknown fields are refused.
result<GroupSubscriptionOptions> parse_group_subscribe(const boost::json::object& msg);

// One group subscription of a v1 connection: reads new messages for its consumer (XREADGROUP
// `>`, blocking without holding a thread), queues each as a `message` in the connection's
// outbox, and takes the client's acks. Lives on its connection's thread.
class GroupSubscription {
 public:
  // `executor`: the connection's. `topics` and `stopping` (the server is shutting down) must
  // outlive run().
  GroupSubscription(boost::asio::any_io_executor executor, Topics& topics,
                    std::shared_ptr<Outbox> outbox, std::string name,
                    GroupSubscriptionOptions options, std::uint32_t partition_count,
                    const std::atomic<bool>& stopping);

  // Delivers until stop(), a store error (an `error` for the subscription ends it), the
  // outbox closing, or the server stopping. `self` (this) keeps it alive meanwhile.
  boost::asio::awaitable<void> run(std::shared_ptr<GroupSubscription> self);
  // Acknowledges; answers `acked` (how many were pending) or an `error` with "op": "ack", which
  // leaves the subscription running.
  boost::asio::awaitable<void> ack(std::vector<PartitionIds> items);
  void stop();
  bool ended() const { return ended_; }

 private:
  bool done() const;
  void deliver(std::vector<PartitionMessage>& messages);
  void fail(const Error& e);
  // The partitions the next read asks and how many messages each, so that all together are at
  // most `budget`.
  std::pair<std::vector<std::uint32_t>, std::size_t> plan(std::size_t budget);

  Topics& topics_;
  std::shared_ptr<Outbox> outbox_;
  std::string name_;
  GroupSubscriptionOptions options_;
  std::vector<std::uint32_t> partitions_;  // what it reads
  const std::atomic<bool>& stopping_;
  std::size_t next_partition_ = 0;  // where a read for fewer messages than partitions starts
  std::set<std::pair<std::uint32_t, StreamId>> in_flight_;
  boost::asio::steady_timer wake_;  // cancelled by an ack or stop()
  bool stopped_ = false;
  bool ended_ = false;
};

}  // namespace replayrail::server
