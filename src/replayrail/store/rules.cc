#include "replayrail/store/rules.h"

#include <algorithm>
#include <limits>

namespace replayrail::store {

namespace {

std::string quoted(std::string_view s) { return "\"" + std::string(s) + "\""; }

result<void> check_name(std::string_view value, std::string_view what) {
  if (value.empty() || value.size() > 200) {
    return make_error(errc::invalid_argument, std::string(what) + " must be 1-200 characters");
  }
  for (unsigned char c : value) {
    if (c < 0x20 || c == 0x7f) {
      return make_error(errc::invalid_argument,
                        std::string(what) + " must not contain control characters");
    }
  }
  return {};
}

}  // namespace

result<void> check_cursor(std::string_view name, const StreamPosition* s, StreamId after,
                          std::string_view expected_epoch) {
  if (!expected_epoch.empty() && (!s || s->epoch != expected_epoch)) {
    Error e =
        make_error(errc::stream_reset, "stream " + quoted(name) +
                                           (s ? " was deleted and created again" : " was deleted") +
                                           " since epoch " + quoted(expected_epoch) +
                                           (s ? " (now " + quoted(s->epoch) + ")" : std::string()) +
                                           "; cursors of the old history do not apply");
    e.first_available = s ? s->first_id : StreamId{};
    return e;
  }
  if (s && !after.is_zero() && after < s->trimmed_through) {
    StreamId first = s->first_id.is_zero() ? s->trimmed_through.next() : s->first_id;
    Error e = make_error(errc::replay_window_expired,
                         "cursor " + after.to_string() + " of stream " + quoted(name) +
                             " is older than retained history: events up to " +
                             s->trimmed_through.to_string() +
                             " were trimmed; the first available id is " + first.to_string());
    e.first_available = first;
    return e;
  }
  return {};
}

result<StreamId> next_stream_id(StreamId last, std::uint64_t now_ms) {
  if (now_ms > last.ms) return StreamId{now_ms, 0};
  if (last == StreamId::max()) {
    return make_error(errc::internal, "the stream's id space is exhausted");
  }
  return last.next();
}

result<void> check_read_args(std::size_t cursors, const ReadOptions& options) {
  if (cursors == 0) return make_error(errc::invalid_argument, "no stream to read");
  if (options.count == 0) return make_error(errc::invalid_argument, "count must be positive");
  if (options.block && options.block->count() < 0) {
    return make_error(errc::invalid_argument, "block must not be negative");
  }
  return {};
}

Error store_closed_error() { return make_error(errc::store_unavailable, "the store is closed"); }

Error no_stream(std::string_view stream) {
  return make_error(errc::stream_not_found, "stream " + quoted(stream) + " does not exist");
}

Error no_topic(std::string_view topic) {
  return make_error(errc::stream_not_found, "topic " + quoted(topic) + " does not exist");
}

Error no_group(std::string_view stream, std::string_view group) {
  return make_error(errc::group_not_found,
                    "no consumer group " + quoted(group) + " on stream " + quoted(stream));
}

Error group_exists_error(std::string_view stream, std::string_view group) {
  return make_error(errc::group_exists, "consumer group " + quoted(group) +
                                            " already exists on stream " + quoted(stream));
}

Error duplicate_conflict_error(std::string_view stream, std::string_view event_id) {
  return make_error(errc::duplicate_conflict, "event_id " + quoted(event_id) +
                                                  " was already published to " + quoted(stream) +
                                                  " with different content");
}

Error topic_conflict_error(std::string_view topic, std::uint32_t existing, std::uint32_t asked) {
  return make_error(errc::topic_conflict, "topic " + quoted(topic) + " exists with " +
                                              std::to_string(existing) + " partitions, not " +
                                              std::to_string(asked));
}

result<void> check_topic(std::string_view name, std::uint32_t partitions) {
  RR_TRY(validate_channel(name));
  if (partitions < 1 || partitions > kMaxPartitions) {
    return make_error(errc::invalid_argument,
                      "partitions must be 1-" + std::to_string(kMaxPartitions));
  }
  return {};
}

result<void> check_lease(std::string_view name, Millis ttl) {
  RR_TRY(validate_channel(name));
  if (ttl.count() <= 0) return make_error(errc::invalid_argument, "a lease's ttl must be positive");
  return {};
}

result<void> check_retention(const TopicRetention& retention) {
  if (retention.max_age &&
      (retention.max_age->count() < 0 || *retention.max_age > kMaxRetentionAge)) {
    return make_error(errc::invalid_argument, "max_age_ms must be 0 (no limit) to " +
                                                  std::to_string(kMaxRetentionAge.count()));
  }
  if (retention.max_length &&
      *retention.max_length >
          static_cast<std::uint64_t>(std::numeric_limits<std::int64_t>::max())) {
    return make_error(errc::invalid_argument, "max_length must be 0 (no limit) to 2^63 - 1");
  }
  return {};
}

result<bool> check_read_group_args(std::span<const GroupCursor> cursors, std::string_view consumer,
                                   const ReadOptions& options) {
  RR_TRY(check_read_args(cursors.size(), options));
  RR_TRY(check_consumer_name(consumer));
  return std::any_of(cursors.begin(), cursors.end(),
                     [](const GroupCursor& c) { return c.pending_after.has_value(); });
}

result<void> check_autoclaim_args(std::string_view consumer, Millis min_idle, std::size_t count) {
  if (count == 0) return make_error(errc::invalid_argument, "count must be positive");
  if (min_idle.count() < 0) {
    return make_error(errc::invalid_argument, "min_idle must not be negative");
  }
  return check_consumer_name(consumer);
}

result<void> check_group_name(std::string_view group) { return check_name(group, "group"); }

result<void> check_consumer_name(std::string_view consumer) {
  return check_name(consumer, "consumer");
}

}  // namespace replayrail::store
