#pragma once

// Rules of the store contract shared by every backend, so each one checks the same thing and
// says it in the same words.

#include <chrono>
#include <cstdint>
#include <optional>
#include <span>
#include <string_view>
#include <unordered_map>

#include "replayrail/store/store.h"

namespace replayrail::store {

// What a cursor check needs to know of a stream.
struct StreamPosition {
  std::string_view epoch;
  StreamId first_id;         // first retained id, 0-0 when empty
  StreamId trimmed_through;  // 0-0 when nothing was trimmed
};

// stream_reset when `expected_epoch` is given and the stream is gone (`stream` null) or has
// another epoch; replay_window_expired when entries after `after` were trimmed (`0-0` never is).
result<void> check_cursor(std::string_view name, const StreamPosition* stream, StreamId after,
                          std::string_view expected_epoch);

// The id XADD gives the next entry: `<now>-0` when the clock moved past the last id, otherwise
// the last id plus one, so ids stay strictly increasing even when the clock steps back.
result<StreamId> next_stream_id(StreamId last, std::uint64_t now_ms);

// How long a blocked read may still wait (ReadOptions::block; 0 = without limit).
class ReadDeadline {
 public:
  explicit ReadDeadline(const ReadOptions& o) {
    if (o.block && o.block->count() > 0) at_ = std::chrono::steady_clock::now() + *o.block;
  }
  // nullopt = without limit.
  std::optional<Millis> remaining() const {
    if (!at_) return std::nullopt;
    auto left = std::chrono::ceil<Millis>(*at_ - std::chrono::steady_clock::now());
    return left.count() > 0 ? left : Millis(0);
  }
  bool passed() const { return at_ && std::chrono::steady_clock::now() >= *at_; }
  // time_point::max() = without limit.
  std::chrono::steady_clock::time_point at() const {
    return at_.value_or(std::chrono::steady_clock::time_point::max());
  }

 private:
  std::optional<std::chrono::steady_clock::time_point> at_;
};

// Validates the arguments common to read() and read_group().
result<void> check_read_args(std::size_t cursors, const ReadOptions& options);

Error no_stream(std::string_view stream);
Error no_group(std::string_view stream, std::string_view group);
Error group_exists_error(std::string_view stream, std::string_view group);
Error duplicate_conflict_error(std::string_view stream, std::string_view event_id);
Error no_topic(std::string_view topic);
Error topic_conflict_error(std::string_view topic, std::uint32_t existing, std::uint32_t asked);
// What every call of a closed store (Store::close) fails with.
Error store_closed_error();

// Validates a topic name (channel rules) and partition count (1..kMaxPartitions).
result<void> check_topic(std::string_view name, std::uint32_t partitions);

// A lease's name (channel rules) and a positive ttl.
result<void> check_lease(std::string_view name, Millis ttl);

// A topic's retention: an age from 0 to kMaxRetentionAge, a length below 2^63.
result<void> check_retention(const TopicRetention& retention);

// read_group()'s arguments; returns whether any cursor re-reads pending history (then the
// read never blocks).
result<bool> check_read_group_args(std::span<const GroupCursor> cursors, std::string_view consumer,
                                   const ReadOptions& options);

// XAUTOCLAIM's arguments: count positive, min_idle not negative, a valid consumer name.
result<void> check_autoclaim_args(std::string_view consumer, Millis min_idle, std::size_t count);

// Group and consumer names: non-empty, at most 200 characters, no control characters.
result<void> check_group_name(std::string_view group);
result<void> check_consumer_name(std::string_view consumer);

// append_batch()'s conflict check, before anything is written: duplicate_conflict for the first
// event whose chosen event_id is remembered with another fingerprint, by the store
// (`remembered(event_id)` -> result<std::optional<Fingerprint>>) or by an earlier event of the
// batch (when the TTL makes appends remember).
template <class Remembered>
result<void> check_batch_conflicts(std::string_view stream, std::span<const NewEvent> events,
                                   const AppendOptions& options, Remembered remembered) {
  std::unordered_map<std::string_view, const Fingerprint*> in_batch;
  for (const NewEvent& e : events) {
    if (!e.chosen_event_id) continue;
    const std::string& id = e.event.event_id;
    std::optional<Fingerprint> stored;
    RR_TRY_ASSIGN(stored, remembered(id));
    const Fingerprint* known = stored ? &*stored : nullptr;
    if (auto it = in_batch.find(id); !known && it != in_batch.end()) known = it->second;
    if (known && *known != e.fingerprint) return duplicate_conflict_error(stream, id);
    if (!known && options.idempotency_ttl.count() > 0) in_batch.emplace(id, &e.fingerprint);
  }
  return {};
}

}  // namespace replayrail::store
