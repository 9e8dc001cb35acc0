#pragma once

// The OpenStream half of the HTTP API (issue 6): `/v1/topics/…` and `/v1/metrics/summary`, with
// the request and response shapes of the OpenStream walkthrough (`partition`, `redis_id`,
// `start_id`, `items`, …). No Beast here: the server hands over the method, the path and the
// body, and writes back the status and JSON this returns.

#include <atomic>
#include <functional>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "replayrail/archive/history.h"
#include "replayrail/auth/jwt.h"
#include "replayrail/server/audit_trail.h"
#include "replayrail/server/metrics.h"
#include "replayrail/topics.h"

namespace replayrail::server {

struct ApiResponse {
  unsigned status = 200;
  std::string body;          // JSON
  std::optional<errc> code;  // an error's
  std::string allow;         // a 405's: the methods the path takes (its Allow header)
  // What a change did, for the audit trail; none for reads and failures.
  std::optional<AuditEntry> audit;
};

// What the server reports about itself in the summary.
struct ServerCounters {
  std::size_t connections = 0;
  std::size_t streaming = 0;  // WebSocket and SSE sessions
  std::uint64_t subscriptions = 0;
  double published_per_second = 0;       // events stored, over the last second or more
  double delivered_per_second = 0;       // events queued for subscribers, likewise
  std::optional<ArchiveStatus> archive;  // when the server archives (--database-url)
};

// What a /v1 request needs from its token: a role (nullopt: any valid token) and, when not
// empty, the channel (topic) its `channels` claim must allow.
struct Access {
  std::optional<auth::Role> role;
  std::string channel;
};

// How a group read with `block_ms` waits: in store reads of at most `slice` each, and no further
// once `stopping` (the server is shutting down) is set; it then answers with what came, i.e.
// nothing, so a shutdown need not wait out a minute-long block.
struct BlockingReads {
  store::Millis slice{1000};
  const std::atomic<bool>* stopping = nullptr;
};

class PlatformApi {
 public:
  // `metrics`: where ingests are counted (may be null). `audit`: where changes are recorded,
  // and who may read and write which channel. `archive`: what /v1/archive/… reads (null without
  // a database URL: those routes answer not_found).
  PlatformApi(Topics& topics, std::function<ServerCounters()> counters, auth::JwtConfig jwt,
              std::string admin_secret, Metrics* metrics, AuditTrail& audit,
              BlockingReads blocking = {}, archive::ArchiveHistory* archive = nullptr)
      : topics_(topics),
        counters_(std::move(counters)),
        jwt_(std::move(jwt)),
        admin_secret_(std::move(admin_secret)),
        metrics_(metrics),
        audit_(audit),
        blocking_(blocking),
        archive_(archive) {}

  // The access a request needs; nullopt for POST /v1/auth/token, which needs none.
  static std::optional<Access> access(std::string_view method,
                                      const std::vector<std::string>& path);

  // The query's parameters, in order.
  using Params = std::vector<std::pair<std::string, std::string>>;

  // `path`: the segments after `v1`. nullopt when no /v1 route has this path; a route with
  // another method is method_not_allowed. `who`: the request's token, checked (null: auth is
  // off), its traceparent header and its address. An ingest records the token's subject as each
  // event's publisher (PublishBody::stamp_publisher) and keeps a valid traceparent in their
  // metadata; the summary shows only the topics and channels the token may read; a change
  // (ApiResponse::audit) is recorded in the audit trail before it is answered.
  store::task<std::optional<ApiResponse>> handle(std::string_view method,
                                                 const std::vector<std::string>& path,
                                                 std::string_view body, const Params& params,
                                                 const Requester& who);

 private:
  store::task<std::optional<ApiResponse>> route(std::string_view method,
                                                const std::vector<std::string>& path,
                                                std::string_view body, const Params& params,
                                                const Requester& who);
  store::task<ApiResponse> ingest(const std::string& topic, std::string_view body,
                                  std::string_view traceparent, const auth::Claims* caller);
  store::task<ApiResponse> describe(const std::string& topic);
  store::task<ApiResponse> list(const auth::Claims* caller);
  store::task<ApiResponse> configure(const std::string& topic, std::string_view body);
  store::task<ApiResponse> remove(const std::string& topic, const auth::Claims* caller);
  store::task<ApiResponse> purge(const std::string& topic, std::string_view body,
                                 const auth::Claims* caller);
  store::task<ApiResponse> create_group(const std::string& topic, std::string_view body);
  store::task<ApiResponse> group_action(const std::string& topic, const std::string& group,
                                        const std::string& action, std::string_view body);
  store::task<ApiResponse> summary(const auth::Claims* caller);
  // Topics::read_group, a blocking one cut into BlockingReads slices.
  store::task<result<std::vector<PartitionMessage>>> read_group(
      const std::string& topic, const std::string& group, const std::string& consumer,
      std::size_t count, std::optional<store::Millis> block, std::vector<std::uint32_t> partitions);
  ApiResponse mint_token(std::string_view body) const;
  // GET /v1/archive/streams, …/streams/{stream}/events, …/streams/{stream}/verify.
  store::task<std::optional<ApiResponse>> archive_route(std::string_view method,
                                                        const std::vector<std::string>& path,
                                                        const Params& params);

  Topics& topics_;
  std::function<ServerCounters()> counters_;
  auth::JwtConfig jwt_;
  std::string admin_secret_;
  Metrics* metrics_;
  AuditTrail& audit_;
  BlockingReads blocking_;
  archive::ArchiveHistory* archive_;
};

}  // namespace replayrail::server
