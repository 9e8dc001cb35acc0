#pragma once

#include <cstdint>
#include <memory>
#include <string>

#include "replayrail/store/testing/temp_dir.h"
#include "support/child_process.h"

namespace replayrail::testing {

// A real PostgreSQL server for one test: a fresh cluster (initdb) in a temporary directory,
// listening on a free loopback port, with a superuser `rr` that needs no password. As root it
// runs as the `postgres` system user, since PostgreSQL refuses to run as root. Stopped (and its
// files removed) with the object.
class PostgresServer {
 public:
  PostgresServer();
  ~PostgresServer();

  std::uint16_t port() const { return port_; }
  // postgresql://rr@127.0.0.1:<port>/postgres
  std::string url() const;

  // SIGSTOP to the server and every backend: connections stay open, nothing is answered (a hung
  // server). thaw(): SIGCONT.
  void freeze();
  void thaw();

 private:
  TempDir dir_{"postgres"};
  std::uint16_t port_;
  std::unique_ptr<ChildProcess> process_;
  bool frozen_ = false;
};

}  // namespace replayrail::testing
