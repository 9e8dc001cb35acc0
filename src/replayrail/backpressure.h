#pragma once

// Backpressure on publish (DESIGN §4): a stream at its length cap, a consumer group whose lag or
// pending passed its threshold, or more events on their way to the store than the server lets
// queue, and a publish is refused with `backpressure` (HTTP 429 with Retry-After) before anything
// is written.
//
// A stream's length and group figures come from Store::info, cached per stream for `refresh`;
// events appended through this process since are counted on top, and group operations through
// this process drop the cache, so one server enforces its caps exactly and several servers
// sharing a store within one refresh of staleness.

#include <atomic>
#include <chrono>
#include <cstdint>
#include <map>
#include <mutex>
#include <string>
#include <string_view>
#include <utility>

#include "replayrail/store/store.h"

namespace replayrail {

struct BackpressureConfig {
  std::uint64_t max_stream_length = 0;  // BACKPRESSURE_MAX_STREAM_LEN; 0: no cap
  std::uint64_t max_group_lag = 0;      // BACKPRESSURE_MAX_GROUP_LAG; 0: no threshold
  std::uint64_t max_group_pending = 0;  // BACKPRESSURE_MAX_GROUP_PENDING; 0: no threshold
  std::uint64_t max_inflight = 100000;  // events on their way to the store, server-wide
  store::Millis refresh{1000};          // how old a stream's cached figures may get
  std::chrono::seconds retry_after{1};  // what a refused client is told to wait
};

// Thread-safe.
class Backpressure {
 public:
  // Holds admitted events' place in the in-flight budget until destroyed (the appends ended).
  class Ticket {
   public:
    Ticket() = default;
    Ticket(Ticket&& other) noexcept : owner_(std::exchange(other.owner_, nullptr)), n_(other.n_) {}
    Ticket& operator=(Ticket&& other) noexcept;
    ~Ticket();

   private:
    friend class Backpressure;
    Ticket(Backpressure* owner, std::uint64_t n) : owner_(owner), n_(n) {}
    Backpressure* owner_ = nullptr;
    std::uint64_t n_ = 0;
  };

  Backpressure(store::Store& store, BackpressureConfig config);

  // May `n` events be appended to `stream` now? A ticket, or `backpressure` saying why.
  store::task<result<Ticket>> admit(std::string_view stream, std::uint64_t n);
  // The in-flight budget alone: all admit() asks when no stream threshold is set (checks_stream()
  // false), without a coroutine on the publish path.
  result<Ticket> reserve(std::uint64_t n);
  bool checks_stream() const {
    return config_.max_stream_length || config_.max_group_lag || config_.max_group_pending;
  }
  // `n` events were appended to `stream` through this process.
  void appended(std::string_view stream, std::uint64_t n);
  // `stream`'s groups changed (read, ack, claim, reset, create, destroy) or it was purged:
  // re-read its figures.
  void forget(std::string_view stream);

  // Publishes refused so far, by reason ("stream_length", "group_lag", "group_pending",
  // "store_queue"), for metrics.
  std::map<std::string, std::uint64_t> rejections() const;

 private:
  struct Figures {
    std::uint64_t length = 0;
    bool groups = false;
    std::uint64_t lag = 0;      // the largest of the stream's groups
    std::uint64_t pending = 0;  // the largest of the stream's groups
    std::uint64_t appended_since = 0;
    std::chrono::steady_clock::time_point fetched;
  };
  Error refuse(const char* reason, std::string message);

  store::Store& store_;
  const BackpressureConfig config_;
  std::atomic<std::uint64_t> inflight_ = 0;
  mutable std::mutex mu_;
  std::map<std::string, Figures, std::less<>> figures_;  // guarded by mu_
  std::map<std::string, std::uint64_t> rejections_;      // guarded by mu_
};

}  // namespace replayrail
