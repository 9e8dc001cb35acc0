#pragma once

// Reading rr_archive_events rows back into events: shared by the audit (archive.cc) and replay
// from the archive (history.cc).

#include <cstdint>
#include <string>

#include "replayrail/archive/pg.h"
#include "replayrail/core/event.h"

namespace replayrail::archive {

// The columns read_event() expects first, in this order.
inline constexpr const char* kEventColumns =
    "ms, seq, event_id, channel, type, payload, actor, metadata, created_at";

// Whether the archive's tables exist (they are created together, by the first archiver).
inline result<bool> tables_exist(pg::Connection& db) {
  pg::Result r;
  RR_TRY_ASSIGN(r, db.exec("SELECT to_regclass('rr_archive_events') IS NOT NULL"));
  return pg::text(r, 0, 0) == "t";
}

// Column `col` of row `row` as an unsigned number (bigint columns the archive wrote).
inline std::uint64_t number(const pg::Result& r, int row, int col) {
  return std::stoull(pg::text(r, row, col));
}

// The event in row `row` of `r`, whose first columns are kEventColumns.
inline Event read_event(const pg::Result& r, int row) {
  return Event{.id = {number(r, row, 0), number(r, row, 1)},
               .event_id = pg::text(r, row, 2),
               .channel = pg::text(r, row, 3),
               .type = pg::text(r, row, 4),
               .payload = pg::text(r, row, 5),
               .actor = pg::text(r, row, 6),
               .metadata = pg::text(r, row, 7),
               .created_at = pg::text(r, row, 8)};
}

}  // namespace replayrail::archive
