#include "support/redis_cluster.h"

#include <algorithm>
#include <chrono>
#include <sstream>
#include <stdexcept>
#include <thread>

#include "support/child_process.h"

namespace replayrail::testing {

namespace {

using std::chrono_literals::operator""ms;

}  // namespace

RedisCluster::RedisCluster(std::size_t primaries, std::size_t replicas, int node_timeout_ms) {
  for (std::size_t i = 0; i < primaries * (1 + replicas); ++i) {
    // Its cluster bus listens on the port + 10000.
    nodes_.push_back(std::make_unique<RedisServer>(
        std::vector<std::string>{"--cluster-enabled", "yes", "--cluster-config-file", "nodes.conf",
                                 "--cluster-node-timeout", std::to_string(node_timeout_ms),
                                 // a replica's first sync: at once, not after 5 s
                                 "--repl-diskless-sync", "no"},
        free_port(10000)));
    killed_.push_back(false);
    frozen_.push_back(false);
  }
  std::vector<std::string> create{"/usr/bin/redis-cli", "--cluster", "create"};
  for (const auto& node : nodes_) create.push_back("127.0.0.1:" + std::to_string(node->port()));
  create.insert(create.end(), {"--cluster-replicas", std::to_string(replicas), "--cluster-yes"});
  run_lines(create);
  wait_ok();
}

void RedisCluster::wait_ok() const {
  // Bounded poll: the nodes agree on the map by gossip, with no signal to wait on (and a
  // primary turns ok no sooner than 2 s after it started: Redis' CLUSTER_WRITABLE_DELAY).
  for (int attempt = 0; attempt < 3000; ++attempt) {
    bool ok = true;
    for (std::size_t i = 0; i < nodes_.size() && ok; ++i) {
      if (!answers(i)) continue;
      auto info = cli(i, {"CLUSTER", "INFO"});
      ok = !info.empty() && info.front().starts_with("cluster_state:ok");
    }
    if (ok) return;
    std::this_thread::sleep_for(10ms);
  }
  throw std::runtime_error("the Redis Cluster did not reach cluster_state:ok");
}

void RedisCluster::kill(std::size_t node) {
  nodes_.at(node)->kill();
  killed_[node] = true;
}

void RedisCluster::freeze(std::size_t node) {
  nodes_.at(node)->freeze();
  frozen_[node] = true;
}

void RedisCluster::thaw(std::size_t node) {
  nodes_.at(node)->thaw();
  frozen_[node] = false;
}

std::string RedisCluster::url() const { return nodes_.front()->url(); }

std::vector<std::string> RedisCluster::cli(std::size_t node,
                                           const std::vector<std::string>& args) const {
  std::vector<std::string> argv{"/usr/bin/redis-cli", "-h", "127.0.0.1", "-p",
                                std::to_string(port(node))};
  argv.insert(argv.end(), args.begin(), args.end());
  return run_lines(argv);
}

std::size_t RedisCluster::replica_of(std::size_t primary) const {
  // ROLE of a replica: "slave", its primary's host, port, link state, offset.
  const std::string primary_port = std::to_string(port(primary));
  for (std::size_t n = 0; n < nodes_.size(); ++n) {
    if (!answers(n)) continue;
    auto role = cli(n, {"ROLE"});
    if (role.size() > 2 && role[0] == "slave" && role[2] == primary_port) return n;
  }
  throw std::runtime_error("node " + std::to_string(primary) + " has no replica");
}

std::size_t RedisCluster::other_primary(std::size_t node) const {
  for (std::size_t n = 0; n < nodes_.size(); ++n) {
    if (n != node && answers(n) && cli(n, {"ROLE"}).at(0) == "master") return n;
  }
  throw std::runtime_error("no other primary than node " + std::to_string(node));
}

std::string RedisCluster::node_id(std::size_t node) const {
  return cli(node, {"CLUSTER", "MYID"}).at(0);
}

std::size_t RedisCluster::owner(std::uint16_t slot) const {
  // CLUSTER NODES: "<id> <ip:port@cport> <flags> <primary> <ping> <pong> <epoch> <link> <slots>…"
  std::size_t live = 0;
  while (!answers(live)) ++live;
  for (const auto& line : cli(live, {"CLUSTER", "NODES"})) {
    std::istringstream fields(line);
    std::string id, address, skip;
    fields >> id >> address;
    for (int i = 0; i < 6; ++i) fields >> skip;
    for (std::string range; fields >> range;) {
      if (range.starts_with('[')) continue;  // a slot being migrated or imported
      auto dash = range.find('-');
      int first = std::stoi(range.substr(0, dash));
      int last = dash == std::string::npos ? first : std::stoi(range.substr(dash + 1));
      if (slot < first || slot > last) continue;
      auto port = std::stoi(address.substr(address.find(':') + 1, address.find('@')));
      for (std::size_t n = 0; n < nodes_.size(); ++n) {
        if (nodes_[n]->port() == port) return n;
      }
    }
  }
  throw std::runtime_error("no node serves slot " + std::to_string(slot));
}

void RedisCluster::move_slot(std::uint16_t slot, std::size_t to) {
  const std::size_t from = owner(slot);
  if (from == to) return;
  const std::string s = std::to_string(slot);
  const std::string from_id = node_id(from), to_id = node_id(to);
  cli(to, {"CLUSTER", "SETSLOT", s, "IMPORTING", from_id});
  cli(from, {"CLUSTER", "SETSLOT", s, "MIGRATING", to_id});
  for (;;) {
    auto keys = cli(from, {"CLUSTER", "GETKEYSINSLOT", s, "2"});
    if (keys.empty() || keys.front().empty()) break;
    std::vector<std::string> migrate{"MIGRATE", "127.0.0.1", std::to_string(port(to)), "", "0",
                                     "5000",    "KEYS"};
    migrate.insert(migrate.end(), keys.begin(), keys.end());
    cli(from, migrate);
    std::this_thread::sleep_for(5ms);  // clients meet the slot half moved meanwhile
  }
  // The target first, then the source, then the others (the order redis-cli uses), so no node
  // sends a client to one that does not take the slot yet.
  cli(to, {"CLUSTER", "SETSLOT", s, "NODE", to_id});
  cli(from, {"CLUSTER", "SETSLOT", s, "NODE", to_id});
  for (std::size_t n = 0; n < nodes_.size(); ++n) {
    if (n != to && n != from && answers(n)) cli(n, {"CLUSTER", "SETSLOT", s, "NODE", to_id});
  }
}

}  // namespace replayrail::testing
