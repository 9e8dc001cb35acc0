#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "support/redis_server.h"

namespace replayrail::testing {

// A Redis primary with `replicas` replicas, watched by `sentinels` Sentinels as the service
// "mymaster", every process on a free loopback port in its own temporary directory. A primary
// is taken for down after `down_after_ms` without an answer (then the Sentinels promote a
// replica). The constructor returns once every Sentinel knows the replicas and the other
// Sentinels, so a failover can start; the processes stop with the object.
class RedisSentinel {
 public:
  // The servers' password (requirepass and masterauth; the Sentinels are given it) and the
  // Sentinels' own (requirepass in their configuration); empty: none.
  struct Passwords {
    std::string server, sentinel;
  };

  explicit RedisSentinel(std::size_t replicas = 1, std::size_t sentinels = 1,
                         int down_after_ms = 1000, Passwords passwords = {});

  // redis+sentinel://[:<password>@]127.0.0.1:<sentinel>,…/mymaster/0[?sentinel_password=…],
  // each Sentinel listed after `first` (a host:port to list before them, e.g. one nothing
  // listens on).
  std::string url(const std::string& first = "") const;

  // Server 0 is the first primary, then the replicas.
  RedisServer& server(std::size_t i) { return *servers_.at(i); }
  // The server the first live Sentinel names the primary now.
  std::size_t primary() const;
  // SIGKILLs a server, like a crash.
  void kill(std::size_t server);
  // SENTINEL FAILOVER: the Sentinels promote a replica while the primary still runs. Returns
  // the new primary once they name it and it says it is one; the old one turns into its replica
  // (and its clients are closed) only later, 10 s or more (see wait_for_role()).
  std::size_t failover();
  // Waits (bounded) until a server's ROLE is `role` ("master", "slave").
  void wait_for_role(std::size_t server, const std::string& role) const;
  // Waits (bounded) until the Sentinels name a primary other than `old` that says it is one.
  std::size_t wait_for_new_primary(std::size_t old) const;

  // One redis-cli command against a server, or a Sentinel; its output lines.
  std::vector<std::string> cli(std::size_t server, const std::vector<std::string>& args) const {
    return run_cli(servers_.at(server)->port(), passwords_.server, args);
  }
  std::vector<std::string> sentinel_cli(std::size_t sentinel,
                                        const std::vector<std::string>& args) const {
    return run_cli(sentinels_.at(sentinel)->port(), passwords_.sentinel, args);
  }

 private:
  std::vector<std::string> run_cli(std::uint16_t port, const std::string& password,
                                   const std::vector<std::string>& args) const;

  Passwords passwords_;
  std::vector<std::unique_ptr<RedisServer>> servers_;
  std::vector<std::unique_ptr<RedisServer>> sentinels_;
};

}  // namespace replayrail::testing
