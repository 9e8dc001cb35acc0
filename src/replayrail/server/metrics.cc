#include "replayrail/server/metrics.h"

#include <prometheus/counter.h>
#include <prometheus/gauge.h>
#include <prometheus/histogram.h>
#include <prometheus/registry.h>
#include <prometheus/text_serializer.h>

#include "replayrail/common/stream_id.h"
#include "replayrail/server/hub.h"

namespace replayrail::server {

namespace {

using prometheus::BuildCounter;
using prometheus::BuildGauge;
using prometheus::BuildHistogram;

// Now, in seconds since the Unix epoch: what the *_timestamp_seconds gauges hold.
double unix_seconds_now() { return static_cast<double>(unix_now_ms()) / 1000; }

const prometheus::Histogram::BucketBoundaries kPublishBuckets{
    0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5};
const prometheus::Histogram::BucketBoundaries kLagBuckets{
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60};

std::map<std::string, std::string> api_labels(std::string_view topic) {
  if (topic.empty()) return {{"api", "events"}};
  return {{"api", "topics"}, {"topic", std::string(topic)}};
}

}  // namespace

Metrics::Metrics()
    : registry_(std::make_shared<prometheus::Registry>()),
      published_events_(
          counter_family("replayrail_published_events_total",
                         "Events stored by publishes (api=events) and ingests (api=topics)")),
      published_bytes_(
          counter_family("replayrail_published_bytes_total",
                         "Request body bytes of the publishes and ingests that stored")),
      publish_seconds_(BuildHistogram()
                           .Name("replayrail_publish_duration_seconds")
                           .Help("From request to stored, per publish or ingest request")
                           .Register(*registry_)),
      responses_(counter_family("replayrail_http_responses_total", "HTTP responses by status")),
      errors_(counter_family("replayrail_errors_total", "Error answers by error code")),
      store_errors_(
          counter_family("replayrail_store_errors_total",
                         "Requests that failed because the store did (unavailable, internal)")),
      deliveries_(
          counter_family("replayrail_deliveries_total",
                         "Events queued for WebSocket and SSE subscribers, live and replayed")),
      delivery_lag_(BuildHistogram()
                        .Name("replayrail_delivery_lag_seconds")
                        .Help("From the store taking an event to the fanout hub reading it")
                        .Register(*registry_)
                        .Add({}, kLagBuckets)),
      catchups_(counter_family("replayrail_slow_consumer_catchups_total",
                               "Slow subscribers detached to catch up from the store")),
      rejections_(counter_family("replayrail_backpressure_rejections_total",
                                 "Publishes refused with 429, by reason")),
      connections_(gauge("replayrail_connections", "Open client connections")),
      streaming_(gauge("replayrail_streaming_sessions", "Open WebSocket and SSE sessions")),
      subscriptions_(gauge("replayrail_subscriptions", "Channel subscriptions of those sessions")),
      feeds_(gauge("replayrail_feeds", "Streams the fanout hub reads live")),
      archived_(counter_family("replayrail_archived_events_total",
                               "Events copied to the PostgreSQL archive")
                    .Add({})),
      archive_failures_(counter_family("replayrail_archive_failures_total",
                                       "Archive passes that failed (PostgreSQL or the store "
                                       "unreachable)")
                            .Add({})),
      archive_success_(gauge("replayrail_archive_last_success_timestamp_seconds",
                             "When the last archive pass that succeeded ended (the archive lags "
                             "by at most now minus this, plus a pass)")),
      archive_lag_(gauge("replayrail_archive_lag_seconds",
                         "How long the oldest event the last archive pass found waiting had been "
                         "stored (0: none was); about the pass interval while the archive keeps "
                         "up")),
      expired_(counter_family("replayrail_expired_events_total",
                              "Events removed for being older than --max-stream-age, or their "
                              "topic's max age")
                   .Add({})),
      expiry_passes_(counter_family("replayrail_expiry_passes_total",
                                    "Passes of retention by age this node ran (nodes sharing a "
                                    "Redis take turns: one runs each pass)")
                         .Add({})),
      expiry_failures_(counter_family("replayrail_expiry_failures_total",
                                      "Passes of retention by age that failed (the store "
                                      "unreachable)")
                           .Add({})),
      jwks_failures_(counter_family("replayrail_jwks_fetch_failures_total",
                                    "Fetches of the JWK set URL (--auth-jwks-url) that failed")
                         .Add({})),
      audit_records_(counter_family("replayrail_audit_records_total",
                                    "Changes recorded in the audit trail (--audit-channel)")
                         .Add({})),
      audit_failures_(counter_family("replayrail_audit_failures_total",
                                     "Changes made whose audit record could not be stored (the "
                                     "log has them)")
                          .Add({})),
      jwks_success_(gauge("replayrail_jwks_last_success_timestamp_seconds",
                          "When the JWK set was last fetched (0: never, or no --auth-jwks-url)")),
      jwks_keys_(gauge("replayrail_jwks_keys", "Keys of the JWK set last fetched")),
      events_published_(published_events_.Add(api_labels({}))),
      events_bytes_(published_bytes_.Add(api_labels({}))),
      events_seconds_(publish_seconds_.Add(api_labels({}), kPublishBuckets)) {}

prometheus::Family<prometheus::Counter>& Metrics::counter_family(const char* name,
                                                                 const char* help) {
  return BuildCounter().Name(name).Help(help).Register(*registry_);
}

prometheus::Gauge& Metrics::gauge(const char* name, const char* help) {
  return BuildGauge().Name(name).Help(help).Register(*registry_).Add({});
}

Metrics::~Metrics() = default;

void Metrics::archive_pass(bool ok, std::uint64_t events, std::chrono::milliseconds lag) {
  if (!ok) {
    archive_failures_.Increment();
    return;
  }
  archived_.Increment(static_cast<double>(events));
  archive_lag_.Set(std::chrono::duration<double>(lag).count());
  archive_success_.Set(unix_seconds_now());
}

void Metrics::expiry_pass(bool ok, std::uint64_t events) {
  expiry_passes_.Increment();
  if (!ok) {
    expiry_failures_.Increment();
    return;
  }
  expired_.Increment(static_cast<double>(events));
}

void Metrics::audit_record(bool ok) { (ok ? audit_records_ : audit_failures_).Increment(); }

void Metrics::jwks_fetch(bool ok, std::size_t keys) {
  if (!ok) {
    jwks_failures_.Increment();
    return;
  }
  jwks_keys_.Set(static_cast<double>(keys));
  jwks_success_.Set(unix_seconds_now());
}

ArchiveStatus Metrics::archive_status() const {
  return {.lag_seconds = archive_lag_.Value(),
          .last_success = archive_success_.Value(),
          .events = static_cast<std::uint64_t>(archived_.Value()),
          .failed_passes = static_cast<std::uint64_t>(archive_failures_.Value())};
}

void Metrics::published(std::string_view topic, std::size_t events, std::size_t bytes,
                        std::chrono::steady_clock::duration elapsed) {
  published_total_ += events;
  const double seconds = std::chrono::duration<double>(elapsed).count();
  if (topic.empty()) {
    events_published_.Increment(static_cast<double>(events));
    events_bytes_.Increment(static_cast<double>(bytes));
    events_seconds_.Observe(seconds);
    return;
  }
  auto labels = api_labels(topic);
  published_events_.Add(labels).Increment(static_cast<double>(events));
  published_bytes_.Add(labels).Increment(static_cast<double>(bytes));
  publish_seconds_.Add(labels, kPublishBuckets).Observe(seconds);
}

void Metrics::answered(unsigned status) {
  if (status >= by_status_.size()) status = 500;
  auto* c = by_status_[status].load(std::memory_order_acquire);
  if (!c) {
    c = &responses_.Add({{"status", std::to_string(status)}});
    by_status_[status].store(c, std::memory_order_release);
  }
  c->Increment();
}

void Metrics::failed(errc code) {
  errors_.Add({{"code", std::string(to_string(code))}}).Increment();
  if (code == errc::store_unavailable || code == errc::internal) {
    store_errors_.Add({{"code", std::string(to_string(code))}}).Increment();
  }
}

void Metrics::feed_batch(const Batch& batch) {
  const auto now_ms = std::chrono::duration_cast<std::chrono::milliseconds>(
                          std::chrono::system_clock::now().time_since_epoch())
                          .count();
  // An id's ms part is when the store took the event (it never runs ahead of the clock by more
  // than a clock step; a negative lag counts as 0).
  for (const auto& frame : batch.frames) {
    auto lag_ms = now_ms - static_cast<std::int64_t>(frame.id.ms);
    delivery_lag_.Observe(static_cast<double>(std::max<std::int64_t>(0, lag_ms)) / 1000.0);
  }
}

void Metrics::catch_up(prometheus::Family<prometheus::Counter>& family,
                       const std::map<std::string, std::string>& labels, std::uint64_t value) {
  auto& c = family.Add(labels);
  double delta = static_cast<double>(value) - c.Value();
  if (delta > 0) c.Increment(delta);
}

std::string Metrics::scrape(const MetricsSnapshot& snapshot) {
  std::lock_guard lock(scrape_mu_);
  catch_up(deliveries_, {}, snapshot.deliveries);
  catch_up(catchups_, {}, snapshot.catchups);
  for (const char* reason : {"stream_length", "group_lag", "group_pending", "store_queue"}) {
    auto it = snapshot.backpressure_rejections.find(reason);
    catch_up(rejections_, {{"reason", reason}},
             it == snapshot.backpressure_rejections.end() ? 0 : it->second);
  }
  connections_.Set(static_cast<double>(snapshot.connections));
  streaming_.Set(static_cast<double>(snapshot.streaming));
  subscriptions_.Set(static_cast<double>(snapshot.subscriptions));
  feeds_.Set(static_cast<double>(snapshot.feeds));
  return prometheus::TextSerializer().Serialize(registry_->Collect());
}

}  // namespace replayrail::server
