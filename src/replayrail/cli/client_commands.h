#pragma once

// The commands of ReplayRail's users: the clients of a running server (`publish`, `replay`,
// `tail`, `groups …`, `bench`) and `token`, which signs a JWT with the server's secret.

#include <CLI/CLI.hpp>
#include <cstdint>
#include <deque>
#include <string>
#include <utility>
#include <vector>

#include "replayrail/auth/jwt.h"

namespace replayrail::cli {

// `replayrail token`: a JWT signed here with the server's secret, like the ones
// `POST /v1/auth/token` mints, for operators who hold the secret (no server needed).
struct TokenArgs {
  std::string subject;
  std::string role;
  std::vector<std::string> channels;
  std::int64_t ttl_seconds = 3600;
  auth::JwtConfig jwt;
};

// `replayrail groups …`: the consumer-group requests of the platform API (docs/platform-api.md).
struct GroupArgs {
  std::string topic, group, consumer, start;
  std::size_t count = 100;
  std::int64_t block_ms = -1;  // -1: not sent (the server's default)
  std::int64_t min_idle_ms = 60000;
  std::int64_t max_deliveries = -1;  // -1: not sent
  std::vector<std::uint32_t> partitions;
  std::vector<std::string> ids;  // `P:ID`, or `ID` for partition 0
};

// `replayrail bench`: load on a running server (loadgen::run_load).
struct BenchArgs {
  std::string channel = "bench";
  int publishers = 4;
  bool v1_publish = false;  // publish ops over replayrail.v1, not HTTP requests
  int events = 10000;
  int rate = 0;  // events/s; 0: as fast as the answers come
  int subscribers = 0;
  std::size_t payload_bytes = 200;
  int threads = 2;
  int timeout_seconds = 300;
};

// Registers the client commands and token on `app`; run() runs the one that was given.
class ClientCommands {
 public:
  explicit ClientCommands(CLI::App& app);
  ClientCommands(const ClientCommands&) = delete;
  ClientCommands& operator=(const ClientCommands&) = delete;

  // Runs the client command given (when no other command was) and returns its exit code.
  int run();

 private:
  // --url and --token, per command: CLI11 reads an option's environment variable even for a
  // command that was not given, and would overwrite what another command's flag set.
  struct Connection {
    std::string url = "http://127.0.0.1:8000";
    std::string token;
  };
  std::deque<Connection> connections_;  // stable addresses: CLI11 keeps pointers to them
  std::vector<CLI::App*> clients_;      // connections_[i] is clients_[i]'s
  std::string channel_, type_, payload_ = "{}", actor_, metadata_, event_id_, partition_key_;
  std::string after_ = "0-0", from_;
  std::string before_;                     // purge --before
  std::vector<std::uint32_t> partitions_;  // purge --partition
  // configure: -1 when not given (the server's setting).
  std::int64_t partition_count_ = -1, max_length_ = -1, max_age_ms_ = -1;
  std::size_t limit_ = 100;
  GroupArgs groups_;
  std::vector<std::pair<std::string, CLI::App*>> group_cmds_;
  TokenArgs token_;
  BenchArgs bench_;
  CLI::App* publish_cmd_ = nullptr;
  CLI::App* bench_cmd_ = nullptr;
  CLI::App* replay_cmd_ = nullptr;
  CLI::App* purge_cmd_ = nullptr;
  CLI::App* configure_cmd_ = nullptr;
  CLI::App* delete_cmd_ = nullptr;
  CLI::App* topics_cmd_ = nullptr;
  CLI::App* token_cmd_ = nullptr;
};

}  // namespace replayrail::cli
