#pragma once

// The OpenStream half of the HTTP API (issue 6): `/v1/topics/…` and `/v1/metrics/summary`, with
// the request and response shapes of the OpenStream walkthrough (`partition`, `redis_id`,
// `start_id`, `items`, …). No Beast here: the server hands over the method, the path and the
// body, and writes back the status and JSON this returns.

#include <functional>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "replayrail/auth/jwt.h"
#include "replayrail/server/metrics.h"
#include "replayrail/topics.h"

namespace replayrail::server {

struct ApiResponse {
  unsigned status = 200;
  std::string body;          // JSON
  std::optional<errc> code;  // an error's
};

// What the server reports about itself in the summary.
struct ServerCounters {
  std::size_t connections = 0;
  std::size_t streaming = 0;  // WebSocket and SSE sessions
  std::uint64_t subscriptions = 0;
  double published_per_second = 0;  // events stored, over the last second or more
  double delivered_per_second = 0;  // events queued for subscribers, likewise
};

// What a /v1 request needs from its token: a role (nullopt: any valid token) and, when not
// empty, the channel (topic) its `channels` claim must allow.
struct Access {
  std::optional<auth::Role> role;
  std::string channel;
};

class PlatformApi {
 public:
  // `metrics`: where ingests are counted (may be null).
  PlatformApi(Topics& topics, std::function<ServerCounters()> counters, auth::JwtConfig jwt,
              std::string admin_secret, Metrics* metrics)
      : topics_(topics),
        counters_(std::move(counters)),
        jwt_(std::move(jwt)),
        admin_secret_(std::move(admin_secret)),
        metrics_(metrics) {}

  // The access a request needs; nullopt for POST /v1/auth/token, which needs none.
  static std::optional<Access> access(std::string_view method,
                                      const std::vector<std::string>& path);

  // `path`: the segments after `v1`. nullopt when no /v1 route has this path; a route with
  // another method is method_not_allowed.
  store::task<std::optional<ApiResponse>> handle(std::string_view method,
                                                 const std::vector<std::string>& path,
                                                 std::string_view body);

 private:
  store::task<ApiResponse> ingest(const std::string& topic, std::string_view body);
  store::task<ApiResponse> describe(const std::string& topic);
  store::task<ApiResponse> create_group(const std::string& topic, std::string_view body);
  store::task<ApiResponse> group_action(const std::string& topic, const std::string& group,
                                        const std::string& action, std::string_view body);
  store::task<ApiResponse> summary();
  ApiResponse mint_token(std::string_view body) const;

  Topics& topics_;
  std::function<ServerCounters()> counters_;
  auth::JwtConfig jwt_;
  std::string admin_secret_;
  Metrics* metrics_;
};

}  // namespace replayrail::server
