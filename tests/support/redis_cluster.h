#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "support/redis_server.h"

namespace replayrail::testing {

// A real Redis Cluster for one test binary: `primaries` redis-server processes in cluster mode on
// free loopback ports, each in its own temporary directory, and `replicas` replicas of each,
// joined by `redis-cli --cluster create` (the slots split evenly). The constructor returns once
// every node reports cluster_state:ok; the processes stop with the object. A node is taken for
// failed after `node_timeout_ms` without an answer (then a replica of it takes over).
class RedisCluster {
 public:
  explicit RedisCluster(std::size_t primaries = 3, std::size_t replicas = 0,
                        int node_timeout_ms = 5000);

  // redis://127.0.0.1:<port of the first node>/0: the seed a client starts from.
  std::string url() const;
  std::size_t size() const { return nodes_.size(); }
  std::uint16_t port(std::size_t node) const { return nodes_.at(node)->port(); }

  // The node serving `slot` now, as the live nodes see it.
  std::size_t owner(std::uint16_t slot) const;

  // The first replica of `primary` (by node order); throws when it has none.
  std::size_t replica_of(std::size_t primary) const;
  // A primary other than `node`.
  std::size_t other_primary(std::size_t node) const;

  // SIGKILLs a node, like a crash.
  void kill(std::size_t node);
  // SIGSTOPs a node (connections stay open, nothing is answered), SIGCONTs it.
  // The other methods leave a frozen node alone.
  void freeze(std::size_t node);
  void thaw(std::size_t node);
  // Waits (bounded) until every live node reports cluster_state:ok.
  void wait_ok() const;

  // Moves `slot` to `to` as `redis-cli --cluster reshard` does: SETSLOT IMPORTING on the target
  // and MIGRATING on the source, MIGRATE of its keys a few at a time (a client meanwhile gets ASK
  // for a key already moved, TRYAGAIN for a script over keys on both sides), then SETSLOT NODE on
  // every node (MOVED from then on).
  void move_slot(std::uint16_t slot, std::size_t to);

  // One redis-cli command against `node`; its output lines.
  std::vector<std::string> cli(std::size_t node, const std::vector<std::string>& args) const;

 private:
  std::string node_id(std::size_t node) const;

  std::vector<std::unique_ptr<RedisServer>> nodes_;
  // Whether a node answers: not killed nor frozen.
  bool answers(std::size_t node) const { return !killed_[node] && !frozen_[node]; }

  std::vector<bool> killed_, frozen_;
};

}  // namespace replayrail::testing
