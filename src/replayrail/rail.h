#pragma once

// The library facade (DESIGN §1): publish, replay, read and subscribe on channels, over any
// store. This is what an application embeds; the server is built on it.

#include <algorithm>
#include <chrono>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "replayrail/backpressure.h"
#include "replayrail/common/string_map.h"
#include "replayrail/core/cursor.h"
#include "replayrail/core/event.h"
#include "replayrail/store/history.h"
#include "replayrail/store/store.h"

namespace replayrail {

// How often to remove what is older than `max_age`: a tenth of it, from 1 s to 1 min, so an
// event outlives it by that at most.
inline store::Millis expiry_interval(store::Millis max_age) {
  return std::clamp<store::Millis>(max_age / 10, std::chrono::seconds(1), std::chrono::minutes(1));
}

// Where a subscriber without a cursor starts.
enum class StartPosition { latest, earliest };

struct RailConfig {
  std::size_t default_replay_limit = 100;
  std::size_t max_replay_limit = 1000;
  std::uint64_t max_stream_length = 10000;  // retention: newest events kept per stream
  // Retention as Redis' MAXLEN ~: on Redis a stream is trimmed only once it is 100 events past
  // its limit, and publishes do not wait for it, so a stream may keep up to that many more, for
  // much less work in Redis. The local and memory stores trim exactly either way.
  bool approximate_trim = false;
  // Retention by age (JetStream's MaxAge, Kafka's retention.ms): events stored longer ago than
  // this are removed by Rail::expire_old_events(), whatever the length; 0 = no age limit.
  store::Millis max_stream_age{0};
  StartPosition default_start_position = StartPosition::latest;
  std::size_t subscribe_batch_size = 100;   // events per replay page and per live read
  std::size_t max_payload_bytes = 1 << 20;  // payload + actor + metadata text
  std::chrono::seconds idempotency_ttl{24 * 60 * 60};

  // What every append is given: retention and idempotency.
  store::AppendOptions append_options() const {
    return {max_stream_length, idempotency_ttl, approximate_trim};
  }
  // How often a server runs expire_old_events() for the max age: expiry_interval(max_stream_age).
  store::Millis expiry_interval() const { return replayrail::expiry_interval(max_stream_age); }
};

// What one Rail::expire_old_events() pass did.
struct Expired {
  std::size_t streams = 0;   // streams looked at
  std::uint64_t events = 0;  // events removed
};

class Subscription;

// Lifecycle: construct over a store; share it; it must outlive its subscriptions.
// Thread-safe: every method may be called from any thread concurrently.
class Rail {
 public:
  // `backpressure` (optional, shared with Topics): what may refuse a publish before it is stored.
  // `history` (optional, the archive): where replays read what the store has trimmed.
  explicit Rail(std::shared_ptr<store::Store> store, RailConfig config = {},
                std::shared_ptr<Backpressure> backpressure = nullptr,
                std::shared_ptr<store::History> history = nullptr);

  // Validates and stores the event; returns it with its cursor. A repeat of a remembered
  // event_id with the same content returns the first event (duplicate = true). Refused with
  // `backpressure` when the Backpressure says so.
  store::task<result<store::Appended>> publish(const EventInput& input);

  // Events after the cursor, oldest first; `limit` defaults to default_replay_limit and is
  // capped at max_replay_limit. `$` yields nothing (there is nothing after "now"). What the
  // store trimmed is read from the history, when there is one (store::range_across).
  store::task<result<std::vector<EventPtr>>> replay(std::string_view channel, Cursor after,
                                                    std::optional<std::size_t> limit = {});

  // Like replay, but waits up to `block` (0 = no limit) for an event when there is none yet;
  // `$` means events published after this call.
  store::task<result<std::vector<EventPtr>>> read(std::string_view channel, Cursor after,
                                                  std::optional<store::Millis> block,
                                                  std::optional<std::size_t> limit = {});

  // Replay from `from` (default: config.default_start_position), then follow live. A non-empty
  // `epoch` must match the stream's (else stream_reset). A cursor older than the store keeps is
  // replay_window_expired unless the history holds what was trimmed after it.
  store::task<result<Subscription>> subscribe(std::string_view channel,
                                              std::optional<Cursor> from = {},
                                              std::string epoch = {});

  // Retention by age: removes from every stream (channels and topic partitions) the events stored
  // more than config.max_stream_age before `now_ms`, by the time in their id (XTRIM MINID);
  // nothing without a max age. `own`: streams with a max age of their own (their topic's, from
  // Topics::own_max_ages(); 0: none), which config.max_stream_age does not govern. The server
  // runs it every expiry_interval() of the shortest age; an application that embeds the library
  // runs it on a timer of its own. It stops at the first stream that fails.
  store::task<result<Expired>> expire_old_events(std::uint64_t now_ms = unix_now_ms(),
                                                 const StringMap<store::Millis>& own = {});

  // The id `cursor` stands for now: `$` resolves to the stream's last id (0-0 if none yet),
  // any other cursor to its own id.
  store::task<result<StreamId>> resolve(std::string_view channel, Cursor cursor);

  store::Store& store() { return *store_; }
  // Null when there is none.
  store::History* history() const { return history_.get(); }
  const RailConfig& config() const { return config_; }

 private:
  std::shared_ptr<store::Store> store_;
  RailConfig config_;
  std::shared_ptr<Backpressure> backpressure_;
  std::shared_ptr<store::History> history_;
};

// One subscriber's view of one channel: replay pages up to the live edge, then live events,
// never an id at or below one already yielded, never a gap.
// Thread affinity: one coroutine at a time calls next().
class Subscription {
 public:
  // The next events (at least one), or empty when `timeout` (nullopt = no limit) passed first.
  store::task<result<std::vector<EventPtr>>> next(std::optional<store::Millis> timeout = {});

  const std::string& channel() const { return channel_; }
  // The last id yielded, or the starting cursor.
  StreamId position() const { return position_; }
  // Whether replay has reached the live edge.
  bool caught_up() const { return caught_up_; }
  // The stream's epoch when the subscription started (empty if the stream did not exist).
  const std::string& epoch() const { return epoch_; }

 private:
  friend class Rail;
  Subscription(store::Store& store, store::History* history, std::string channel, StreamId position,
               std::string epoch, std::size_t batch)
      : store_(&store),
        history_(history),
        channel_(std::move(channel)),
        position_(position),
        epoch_(std::move(epoch)),
        batch_(batch) {}

  store::Store* store_;
  store::History* history_;
  std::string channel_;
  StreamId position_;
  std::string epoch_;
  std::size_t batch_;
  bool caught_up_ = false;
};

}  // namespace replayrail
