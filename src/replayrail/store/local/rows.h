#pragma once

// Queries both the writer and the readers of the local store need.

#include <optional>
#include <string>

#include "replayrail/core/event.h"
#include "replayrail/store/local/sqlite.h"
#include "replayrail/store/rules.h"

namespace replayrail::store::local {

// A stream's row in `streams`.
struct StreamRow {
  std::string epoch;
  StreamId last_id;
  StreamId trimmed_through;
  std::uint64_t length = 0;
};

result<std::optional<StreamRow>> load_stream(sqlite::Connection& db, std::string_view stream);

// The first retained id (0-0 when the stream is empty).
result<StreamId> load_first_id(sqlite::Connection& db, std::string_view stream);

// check_cursor() for a stream as stored.
result<void> check_stored_cursor(sqlite::Connection& db, std::string_view stream,
                                 const std::optional<StreamRow>& row, StreamId after,
                                 std::string_view epoch);

// Columns of an event row, in this order, starting at column `first`:
// ms, seq, event_id, channel, type, payload, actor, metadata, created_at.
#define RR_EVENT_COLUMNS "ms, seq, event_id, channel, type, payload, actor, metadata, created_at"
// The query of load_events_after(): ?1 the stream, ?2 and ?3 the id after which, ?4 the limit.
inline constexpr char kEventsAfterSql[] = "SELECT " RR_EVENT_COLUMNS
                                          " FROM events WHERE stream = ?1 AND (ms, seq) > (?2, ?3) "
                                          "ORDER BY ms, seq LIMIT ?4";
EventPtr read_event(const sqlite::Statement& st, int first = 0);

// Events of `stream` with id > after, ascending, at most `limit`.
result<std::vector<EventPtr>> load_events_after(sqlite::Connection& db, std::string_view stream,
                                                StreamId after, std::size_t limit);

// The groups of a stream with their consumers, pending count and lag, sorted by name.
result<std::vector<GroupInfo>> load_groups(sqlite::Connection& db, std::string_view stream);

// no_group() unless the group exists on the stream.
result<void> check_group(sqlite::Connection& db, std::string_view stream, std::string_view group);

// A topic from a row of `SELECT name, partitions, created_at, max_length, max_age_ms`.
Topic topic_row(sqlite::Statement& st);
result<std::optional<Topic>> load_topic(sqlite::Connection& db, std::string_view name);

}  // namespace replayrail::store::local
