#include "support/redis_sentinel.h"

#include <chrono>
#include <stdexcept>
#include <thread>

#include "support/child_process.h"

namespace replayrail::testing {

namespace {

using std::chrono_literals::operator""ms;

constexpr const char* kService = "mymaster";

// A field of a reply given as alternating name and value lines (SENTINEL MASTER), or "".
std::string field(const std::vector<std::string>& lines, const std::string& name) {
  for (std::size_t i = 0; i + 1 < lines.size(); i += 2) {
    if (lines[i] == name) return lines[i + 1];
  }
  return "";
}

// Bounded poll: the processes agree by gossip and replication, with no signal to wait on. A
// redis-cli that fails is "not yet": when a Sentinel makes a server a replica it kills that
// server's clients (CLIENT KILL TYPE normal, in the MULTI that sends REPLICAOF), and a poll
// connected at that moment reads "Server closed the connection".
template <class Done>
void poll_until(Done done, const char* what) {
  std::string last_error;
  for (int attempt = 0; attempt < 3000; ++attempt) {
    try {
      if (done()) return;
    } catch (const std::runtime_error& e) {
      last_error = e.what();
    }
    std::this_thread::sleep_for(10ms);
  }
  throw std::runtime_error(std::string("Redis Sentinel: ") + what +
                           (last_error.empty() ? "" : " (last: " + last_error + ")"));
}

}  // namespace

RedisSentinel::RedisSentinel(std::size_t replicas, std::size_t sentinels, int down_after_ms,
                             Passwords passwords)
    : passwords_(std::move(passwords)) {
  // A replica syncs through an RDB file: a diskless sync waits 5 s for other replicas to join
  // it, then up to a second for the replica's first ACK before it streams the writes.
  std::vector<std::string> no_sync_delay{"--repl-diskless-sync", "no"};
  if (!passwords_.server.empty()) {
    no_sync_delay.insert(no_sync_delay.end(),
                         {"--requirepass", passwords_.server, "--masterauth", passwords_.server});
  }
  servers_.push_back(std::make_unique<RedisServer>(no_sync_delay));
  const std::string primary_port = std::to_string(servers_[0]->port());
  for (std::size_t i = 0; i < replicas; ++i) {
    auto args = no_sync_delay;
    args.insert(args.end(), {"--replicaof", "127.0.0.1", primary_port});
    servers_.push_back(std::make_unique<RedisServer>(args));
  }
  for (std::size_t i = 1; i < servers_.size(); ++i) {
    // ROLE of a replica: slave, host, port, link state, offset.
    poll_until([&] { return cli(i, {"ROLE"}).at(3) == "connected"; },
               "a replica did not connect to its primary");
  }
  // A majority of the Sentinels elects the one that runs a failover.
  const std::string quorum = std::to_string(sentinels / 2 + 1);
  const std::string service = kService;
  std::string config = "sentinel monitor " + service + " 127.0.0.1 " + primary_port + " " + quorum +
                       "\nsentinel down-after-milliseconds " + service + " " +
                       std::to_string(down_after_ms) + "\nsentinel failover-timeout " + service +
                       " 10000\n";
  if (!passwords_.server.empty()) {
    config += "sentinel auth-pass " + service + " " + passwords_.server + "\n";
  }
  if (!passwords_.sentinel.empty()) config += "requirepass " + passwords_.sentinel + "\n";
  for (std::size_t i = 0; i < sentinels; ++i) {
    sentinels_.push_back(RedisServer::sentinel(config));
  }
  for (const auto& sentinel : sentinels_) {
    poll_until(
        [&] {
          auto master =
              run_cli(sentinel->port(), passwords_.sentinel, {"SENTINEL", "MASTER", kService});
          return field(master, "num-slaves") == std::to_string(replicas) &&
                 field(master, "num-other-sentinels") == std::to_string(sentinels - 1);
        },
        "the Sentinels did not find the replicas and each other");
  }
}

std::string RedisSentinel::url(const std::string& first) const {
  std::string hosts = first;
  for (const auto& sentinel : sentinels_) {
    hosts +=
        (hosts.empty() ? "" : ",") + std::string("127.0.0.1:") + std::to_string(sentinel->port());
  }
  return "redis+sentinel://" + (passwords_.server.empty() ? "" : ":" + passwords_.server + "@") +
         hosts + "/" + kService + "/0" +
         (passwords_.sentinel.empty() ? "" : "?sentinel_password=" + passwords_.sentinel);
}

std::size_t RedisSentinel::primary() const {
  for (const auto& sentinel : sentinels_) {
    std::vector<std::string> addr;
    try {
      addr = run_cli(sentinel->port(), passwords_.sentinel,
                     {"SENTINEL", "GET-MASTER-ADDR-BY-NAME", kService});
    } catch (const std::runtime_error&) {
      continue;  // a Sentinel that does not answer: the next one
    }
    for (std::size_t i = 0; i < servers_.size() && addr.size() == 2; ++i) {
      if (std::to_string(servers_[i]->port()) == addr[1]) return i;
    }
  }
  throw std::runtime_error("no Sentinel names a primary");
}

void RedisSentinel::kill(std::size_t server) { servers_.at(server)->kill(); }

std::size_t RedisSentinel::wait_for_new_primary(std::size_t old) const {
  std::size_t now = old;
  poll_until(
      [&] {
        now = primary();
        return now != old && cli(now, {"ROLE"}).at(0) == "master";
      },
      "no new primary");
  return now;
}

std::size_t RedisSentinel::failover() {
  const std::size_t old = primary();
  sentinel_cli(0, {"SENTINEL", "FAILOVER", kService});
  return wait_for_new_primary(old);
}

void RedisSentinel::wait_for_role(std::size_t server, const std::string& role) const {
  poll_until([&] { return cli(server, {"ROLE"}).at(0) == role; }, "a server kept its role");
}

std::vector<std::string> RedisSentinel::run_cli(std::uint16_t port, const std::string& password,
                                                const std::vector<std::string>& args) const {
  std::vector<std::string> argv{"/usr/bin/redis-cli", "-h", "127.0.0.1", "-p",
                                std::to_string(port)};
  if (!password.empty()) argv.insert(argv.end(), {"--no-auth-warning", "-a", password});
  argv.insert(argv.end(), args.begin(), args.end());
  return run_lines(argv);
}

}  // namespace replayrail::testing
