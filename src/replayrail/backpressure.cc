#include "replayrail/backpressure.h"

#include <algorithm>

namespace replayrail {

namespace {
// Past this many cached streams, admit() drops the stale ones.
constexpr std::size_t kMaxCached = 10000;
}  // namespace

Backpressure::Ticket& Backpressure::Ticket::operator=(Ticket&& other) noexcept {
  if (this != &other) {
    if (owner_) owner_->inflight_ -= n_;
    owner_ = std::exchange(other.owner_, nullptr);
    n_ = other.n_;
  }
  return *this;
}

Backpressure::Ticket::~Ticket() {
  if (owner_) owner_->inflight_ -= n_;
}

Backpressure::Backpressure(store::Store& store, BackpressureConfig config)
    : store_(store), config_(config) {}

Error Backpressure::refuse(const char* reason, std::string message) {
  {
    std::lock_guard lock(mu_);
    ++rejections_[reason];
  }
  return make_error(errc::backpressure, std::move(message) + "; retry in " +
                                            std::to_string(config_.retry_after.count()) + " s");
}

result<Backpressure::Ticket> Backpressure::reserve(std::uint64_t n) {
  // A batch larger than the whole budget still goes through when nothing else is queued.
  std::uint64_t before = inflight_.fetch_add(n);
  Ticket ticket(this, n);
  if (before > 0 && before + n > config_.max_inflight) {
    return refuse("store_queue", "the server has " + std::to_string(before) +
                                     " events on their way to the store (at most " +
                                     std::to_string(config_.max_inflight) + ")");
  }
  return ticket;
}

store::task<result<Backpressure::Ticket>> Backpressure::admit(std::string_view stream,
                                                              std::uint64_t n) {
  Ticket ticket;
  RR_CO_TRY_ASSIGN(ticket, reserve(n));
  if (!checks_stream()) co_return ticket;

  const auto now = std::chrono::steady_clock::now();
  std::optional<Figures> cached;
  {
    std::lock_guard lock(mu_);
    auto it = figures_.find(stream);
    if (it != figures_.end() && now - it->second.fetched < config_.refresh) cached = it->second;
  }
  if (!cached) {
    Figures fresh{.fetched = now};
    auto info = co_await store_.info(stream);
    if (info) {
      fresh.length = info->length;
      fresh.groups = !info->groups.empty();
      for (const auto& g : info->groups) {
        fresh.lag = std::max(fresh.lag, g.lag);
        fresh.pending = std::max(fresh.pending, g.pending);
      }
    } else if (info.error().code != errc::stream_not_found) {
      co_return info.error();
    }
    std::lock_guard lock(mu_);
    if (figures_.size() >= kMaxCached) {
      std::erase_if(figures_,
                    [&](const auto& kv) { return now - kv.second.fetched >= config_.refresh; });
    }
    // Appends counted meanwhile are in `info` or not; counting them again errs on the safe side.
    figures_[std::string(stream)] = fresh;
    cached = fresh;
  }

  const std::uint64_t length = cached->length + cached->appended_since;
  if (config_.max_stream_length && length + n > config_.max_stream_length) {
    co_return refuse("stream_length", "stream " + std::string(stream) + " holds " +
                                          std::to_string(length) + " events (at most " +
                                          std::to_string(config_.max_stream_length) + ")");
  }
  // Every event appended since the figures were read is one more a group has not read yet.
  const std::uint64_t lag = cached->lag + cached->appended_since;
  if (config_.max_group_lag && cached->groups && lag + n > config_.max_group_lag) {
    co_return refuse("group_lag", "a consumer group of " + std::string(stream) + " is " +
                                      std::to_string(lag) + " events behind (at most " +
                                      std::to_string(config_.max_group_lag) + ")");
  }
  if (config_.max_group_pending && cached->pending >= config_.max_group_pending) {
    co_return refuse("group_pending", "a consumer group of " + std::string(stream) + " has " +
                                          std::to_string(cached->pending) +
                                          " unacknowledged events (at most " +
                                          std::to_string(config_.max_group_pending) + ")");
  }
  co_return ticket;
}

void Backpressure::appended(std::string_view stream, std::uint64_t n) {
  if (!checks_stream()) return;
  std::lock_guard lock(mu_);
  if (auto it = figures_.find(stream); it != figures_.end()) it->second.appended_since += n;
}

void Backpressure::forget(std::string_view stream) {
  if (!checks_stream()) return;
  std::lock_guard lock(mu_);
  if (auto it = figures_.find(stream); it != figures_.end()) figures_.erase(it);
}

std::map<std::string, std::uint64_t> Backpressure::rejections() const {
  std::lock_guard lock(mu_);
  return rejections_;
}

}  // namespace replayrail
