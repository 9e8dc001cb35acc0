#pragma once

// The commands that run ReplayRail itself: `serve`, `archive` and `audit verify`.

#include <CLI/CLI.hpp>
#include <optional>
#include <string>

#include "replayrail/server/server.h"

namespace replayrail::cli {

// What `serve` and `archive` are given (`archive` uses the store and archive settings).
struct ServeArgs {
  std::string store = "local";
  std::string data_dir = "replayrail-data";
  std::string fsync = "always";
  int fsync_interval_ms = 1000;
  std::string redis_url = "redis://127.0.0.1:6379/0";
  std::string redis_prefix = "rr";
  bool redis_cluster = false;   // the Redis URL names a node of a Redis Cluster
  int redis_wait_replicas = 0;  // replicas that must confirm a publish (WAIT)
  int redis_wait_timeout_ms = 1000;
  std::string listen = "127.0.0.1:8000";
  std::string start = "latest";
  bool redis_url_given = false;  // by --redis or REDIS_URL
  std::string log_level = "info";
  std::string log_format = "text";
  std::string database_url;  // the PostgreSQL archive; empty: none
  int archive_interval_ms = 1000;
  unsigned jwks_refresh_ms = 300'000;
  std::int64_t max_stream_age_ms = 0;  // --max-stream-age; 0: no age limit
  server::ServerOptions server;
};

// Registers serve, archive and audit verify on `app`; run() runs the one that was given.
class ServerCommands {
 public:
  explicit ServerCommands(CLI::App& app);
  ServerCommands(const ServerCommands&) = delete;
  ServerCommands& operator=(const ServerCommands&) = delete;

  // The exit code of the command given; nullopt when it was none of these.
  std::optional<int> run();

 private:
  // Each command binds its own variables: CLI11 reads an option's environment variable even for
  // a command that was not given, and would overwrite what another command's flag set.
  ServeArgs serve_;
  ServeArgs archive_;
  bool once_ = false;
  std::string audit_url_;
  std::string audit_stream_;
  CLI::App* serve_cmd_ = nullptr;
  CLI::App* archive_cmd_ = nullptr;
  CLI::App* verify_cmd_ = nullptr;
  CLI::Option* redis_option_ = nullptr;
};

}  // namespace replayrail::cli
