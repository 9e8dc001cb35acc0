#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "replayrail/store/testing/temp_dir.h"
#include "support/child_process.h"

namespace replayrail::testing {

// A real redis-server for one test: on a free loopback port, in a temporary directory, no
// persistence. Stopped with the object; kill() and start() simulate an outage on the same port.
class RedisServer {
 public:
  // On `port`, or on a free_port() when 0.
  explicit RedisServer(std::vector<std::string> extra_args = {}, std::uint16_t port = 0);

  // Also listening for TLS on a second port, with a certificate for 127.0.0.1 made by the
  // openssl tool into the temporary directory.
  static std::unique_ptr<RedisServer> with_tls();

  std::uint16_t port() const { return port_; }
  // redis://127.0.0.1:<port>, with `credentials` ("user:pass@" or ":pass@") and `/db`.
  std::string url(const std::string& credentials = "", int db = 0) const;

  // A Sentinel (redis-server --sentinel) with `config` as its configuration file, which it
  // rewrites as it learns.
  static std::unique_ptr<RedisServer> sentinel(const std::string& config);

  // rediss://127.0.0.1:<tls port>/0 trusting the server's certificate (with_tls() only).
  std::string tls_url() const;
  std::string ca_file() const { return (dir_.path() / "cert.pem").string(); }

  void kill();    // SIGKILL, like a crash
  void start();   // again, on the same port; returns once it answers PING
  void freeze();  // SIGSTOP: connections stay open, nothing is answered (a hung server)
  void thaw();    // SIGCONT

 private:
  RedisServer(const std::string& sentinel_config, std::uint16_t port);

  TempDir dir_{"redis"};
  std::vector<std::string> extra_args_;
  std::uint16_t port_;
  std::uint16_t tls_port_ = 0;
  std::string config_file_;  // given first on the command line: a Sentinel's
  std::unique_ptr<ChildProcess> process_;
};

// Waits (bounded) until every replica of the Redis on `primary_port` has all it wrote so far:
// what WAIT does for the client that wrote (redis-cli's WAIT, on a connection of its own, waits
// for nothing).
void wait_for_replicas(std::uint16_t primary_port);

// A loopback TCP port nothing listens on right now, below the ephemeral range (so no client
// connection takes it meanwhile); with `also_free_at`, so is that port plus it (a cluster node's
// bus port is its port + 10000).
std::uint16_t free_port(std::uint16_t also_free_at = 0);

}  // namespace replayrail::testing
