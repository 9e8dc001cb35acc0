#include "replayrail/store/local/rows.h"

namespace replayrail::store::local {

result<std::optional<StreamRow>> load_stream(sqlite::Connection& db, std::string_view stream) {
  auto st = db.prepare(
      "SELECT epoch, last_ms, last_seq, trimmed_ms, trimmed_seq, length FROM streams "
      "WHERE name = ?1");
  if (!st) return st.error();
  st->bind(1, stream);
  bool row;
  RR_TRY_ASSIGN(row, st->step());
  if (!row) return std::optional<StreamRow>();
  return StreamRow{std::string(st->text(0)),
                   {st->uint64(1), st->uint64(2)},
                   {st->uint64(3), st->uint64(4)},
                   st->uint64(5)};
}

result<StreamId> load_first_id(sqlite::Connection& db, std::string_view stream) {
  auto st = db.prepare("SELECT ms, seq FROM events WHERE stream = ?1 ORDER BY ms, seq LIMIT 1");
  if (!st) return st.error();
  st->bind(1, stream);
  bool row;
  RR_TRY_ASSIGN(row, st->step());
  return row ? StreamId{st->uint64(0), st->uint64(1)} : StreamId{};
}

result<void> check_stored_cursor(sqlite::Connection& db, std::string_view stream,
                                 const std::optional<StreamRow>& row, StreamId after,
                                 std::string_view epoch) {
  if (!row) return check_cursor(stream, nullptr, after, epoch);
  StreamPosition pos{row->epoch, {}, row->trimmed_through};
  auto fast = check_cursor(stream, &pos, after, epoch);
  if (fast) return fast;
  // Only an error needs the first retained id (for its message and first_available).
  RR_TRY_ASSIGN(pos.first_id, load_first_id(db, stream));
  return check_cursor(stream, &pos, after, epoch);
}

EventPtr read_event(const sqlite::Statement& st, int c) {
  auto e = std::make_shared<Event>();
  e->id = {st.uint64(c), st.uint64(c + 1)};
  e->event_id = st.text(c + 2);
  e->channel = st.text(c + 3);
  e->type = st.text(c + 4);
  e->payload = st.text(c + 5);
  e->actor = st.text(c + 6);
  e->metadata = st.text(c + 7);
  e->created_at = st.text(c + 8);
  return e;
}

result<std::vector<EventPtr>> load_events_after(sqlite::Connection& db, std::string_view stream,
                                                StreamId after, std::size_t limit) {
  auto st = db.prepare(kEventsAfterSql);
  if (!st) return st.error();
  st->bind(1, stream).bind(2, after.ms).bind(3, after.seq).bind(4, std::uint64_t{limit});
  std::vector<EventPtr> out;
  for (;;) {
    bool row;
    RR_TRY_ASSIGN(row, st->step());
    if (!row) return out;
    out.push_back(read_event(*st));
  }
}

result<std::vector<GroupInfo>> load_groups(sqlite::Connection& db, std::string_view stream) {
  auto st = db.prepare(
      "SELECT g.name, g.last_ms, g.last_seq, "
      "(SELECT count(*) FROM consumers c WHERE c.stream = g.stream AND c.grp = g.name), "
      "(SELECT count(*) FROM pending p WHERE p.stream = g.stream AND p.grp = g.name), "
      "(SELECT count(*) FROM events e WHERE e.stream = g.stream "
      " AND (e.ms, e.seq) > (g.last_ms, g.last_seq)), "
      "g.max_deliveries "
      "FROM groups g WHERE g.stream = ?1 ORDER BY g.name");
  if (!st) return st.error();
  st->bind(1, stream);
  std::vector<GroupInfo> out;
  for (;;) {
    bool row;
    RR_TRY_ASSIGN(row, st->step());
    if (!row) return out;
    out.push_back({std::string(st->text(0)),
                   st->uint64(3),
                   st->uint64(4),
                   {st->uint64(1), st->uint64(2)},
                   st->uint64(5),
                   st->uint64(6)});
  }
}

result<void> check_group(sqlite::Connection& db, std::string_view stream, std::string_view group) {
  auto st = db.prepare("SELECT 1 FROM groups WHERE stream = ?1 AND name = ?2");
  if (!st) return st.error();
  st->bind(1, stream).bind(2, group);
  bool row;
  RR_TRY_ASSIGN(row, st->step());
  if (!row) return no_group(stream, group);
  return {};
}

Topic topic_row(sqlite::Statement& st) {
  Topic t{std::string(st.text(0)),
          static_cast<std::uint32_t>(st.int64(1)),
          std::string(st.text(2)),
          {}};
  if (!st.is_null(3)) t.retention.max_length = static_cast<std::uint64_t>(st.int64(3));
  if (!st.is_null(4)) t.retention.max_age = Millis(st.int64(4));
  return t;
}

result<std::optional<Topic>> load_topic(sqlite::Connection& db, std::string_view name) {
  auto st = db.prepare(
      "SELECT name, partitions, created_at, max_length, max_age_ms FROM topics WHERE name = ?1");
  if (!st) return st.error();
  st->bind(1, name);
  bool row;
  RR_TRY_ASSIGN(row, st->step());
  if (!row) return std::optional<Topic>();
  return topic_row(*st);
}

}  // namespace replayrail::store::local
