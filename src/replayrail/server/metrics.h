#pragma once

// Prometheus metrics of the server (DESIGN §5), in the text format GET /metrics serves, built
// on prometheus-cpp. Labels are bounded: the API (`events` or `topics`), the topic of /v1
// ingests (never a channel of /events), an error code, an HTTP status, a backpressure reason.
//
// Counters that other parts keep (the hub's deliveries, the backpressure's rejections, the
// connection gauges) are read at scrape time from a Snapshot, so their hot paths stay free of
// Prometheus.

#include <array>
#include <atomic>
#include <chrono>
#include <cstdint>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>

#include "replayrail/common/errc.h"

namespace prometheus {
class Registry;
class Counter;
class Histogram;
class Gauge;
template <typename T>
class Family;
}  // namespace prometheus

namespace replayrail::server {

struct Batch;

// The archive as its passes left it (the summary's "archive").
struct ArchiveStatus {
  double lag_seconds = 0;           // replayrail_archive_lag_seconds
  double last_success = 0;          // unix seconds the last good pass ended; 0: none yet
  std::uint64_t events = 0;         // archived since the start
  std::uint64_t failed_passes = 0;  // since the start
};

// What the server reports when scraped.
struct MetricsSnapshot {
  std::size_t connections = 0;
  std::size_t streaming = 0;  // WebSocket and SSE sessions
  std::uint64_t subscriptions = 0;
  std::uint64_t deliveries = 0;
  std::uint64_t catchups = 0;
  std::size_t feeds = 0;
  std::map<std::string, std::uint64_t> backpressure_rejections;  // by reason
};

// Thread-safe.
class Metrics {
 public:
  Metrics();
  ~Metrics();

  // Events stored by one publish (POST /events: topic empty) or one ingest (its topic), taking
  // `elapsed` from request to stored.
  void published(std::string_view topic, std::size_t events, std::size_t bytes,
                 std::chrono::steady_clock::duration elapsed);
  // A request answered with `status`.
  void answered(unsigned status);
  // A request failed with `code` (counted once more as a store error when the store failed).
  void failed(errc code);
  // Events published since the start (for rates).
  std::uint64_t published_total() const { return published_total_.load(); }
  // Delivery lag of the events a feed read: now minus the time the store took each.
  void feed_batch(const Batch& batch);

  // An archive pass ended: `events` copied, the oldest found waiting `lag` old; or failed.
  void archive_pass(bool ok, std::uint64_t events, std::chrono::milliseconds lag);
  ArchiveStatus archive_status() const;
  // A retention-by-age pass (Rail::expire_old_events) ended: `events` removed; or failed.
  void expiry_pass(bool ok, std::uint64_t events);
  // A record of the audit trail (AuditTrail) stored, or not.
  void audit_record(bool ok);
  // A fetch of the JWK set URL ended: a set of `keys` keys, or failed (`keys` unused).
  void jwks_fetch(bool ok, std::size_t keys);

  // The text format.
  std::string scrape(const MetricsSnapshot& snapshot);

 private:
  prometheus::Family<prometheus::Counter>& counter_family(const char* name, const char* help);
  prometheus::Gauge& gauge(const char* name, const char* help);
  // Moves a counter kept elsewhere up to `value`.
  void catch_up(prometheus::Family<prometheus::Counter>& family,
                const std::map<std::string, std::string>& labels, std::uint64_t value);

  std::shared_ptr<prometheus::Registry> registry_;
  prometheus::Family<prometheus::Counter>& published_events_;
  prometheus::Family<prometheus::Counter>& published_bytes_;
  prometheus::Family<prometheus::Histogram>& publish_seconds_;
  prometheus::Family<prometheus::Counter>& responses_;
  prometheus::Family<prometheus::Counter>& errors_;
  prometheus::Family<prometheus::Counter>& store_errors_;
  prometheus::Family<prometheus::Counter>& deliveries_;
  prometheus::Histogram& delivery_lag_;
  prometheus::Family<prometheus::Counter>& catchups_;
  prometheus::Family<prometheus::Counter>& rejections_;
  prometheus::Gauge& connections_;
  prometheus::Gauge& streaming_;
  prometheus::Gauge& subscriptions_;
  prometheus::Gauge& feeds_;
  prometheus::Counter& archived_;
  prometheus::Counter& archive_failures_;
  prometheus::Gauge& archive_success_;
  prometheus::Gauge& archive_lag_;
  prometheus::Counter& expired_;
  prometheus::Counter& expiry_passes_;
  prometheus::Counter& expiry_failures_;
  prometheus::Counter& jwks_failures_;
  prometheus::Counter& audit_records_;
  prometheus::Counter& audit_failures_;
  prometheus::Gauge& jwks_success_;
  prometheus::Gauge& jwks_keys_;
  // The hot path's metrics, looked up once (Family::Add hashes the labels under a lock).
  prometheus::Counter& events_published_;
  prometheus::Counter& events_bytes_;
  prometheus::Histogram& events_seconds_;
  // By status, filled on first use (Add returns the same counter for the same labels, so a race
  // stores the same pointer twice).
  std::array<std::atomic<prometheus::Counter*>, 600> by_status_{};
  std::atomic<std::uint64_t> published_total_ = 0;
  std::mutex scrape_mu_;  // one scrape at a time (catch_up reads then increments)
};

}  // namespace replayrail::server
