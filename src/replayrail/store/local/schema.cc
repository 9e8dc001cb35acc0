#include "replayrail/store/local/schema.h"

#include <iterator>

namespace replayrail::store::local {

namespace {

// Ids are (ms, seq) integers: SQLite stores them as signed 64-bit, and no id the store generates
// reaches 2^63 (ms is wall-clock time, seq counts events within one ms).
constexpr const char* kSchema = R"sql(
CREATE TABLE streams (
  name TEXT PRIMARY KEY,
  epoch TEXT NOT NULL,
  last_ms INTEGER NOT NULL, last_seq INTEGER NOT NULL,
  trimmed_ms INTEGER NOT NULL, trimmed_seq INTEGER NOT NULL,
  length INTEGER NOT NULL
) WITHOUT ROWID;

CREATE TABLE events (
  stream TEXT NOT NULL, ms INTEGER NOT NULL, seq INTEGER NOT NULL,
  event_id TEXT NOT NULL, channel TEXT NOT NULL, type TEXT NOT NULL,
  payload TEXT NOT NULL, actor TEXT NOT NULL, metadata TEXT NOT NULL, created_at TEXT NOT NULL,
  PRIMARY KEY (stream, ms, seq)
) WITHOUT ROWID;

CREATE TABLE idempotency (
  stream TEXT NOT NULL, event_id TEXT NOT NULL,
  ms INTEGER NOT NULL, seq INTEGER NOT NULL, created_at TEXT NOT NULL,
  fingerprint BLOB NOT NULL, expires_ms INTEGER NOT NULL,
  PRIMARY KEY (stream, event_id)
) WITHOUT ROWID;
CREATE INDEX idempotency_expiry ON idempotency (expires_ms);

CREATE TABLE groups (
  stream TEXT NOT NULL, name TEXT NOT NULL,
  last_ms INTEGER NOT NULL, last_seq INTEGER NOT NULL,
  max_deliveries INTEGER NOT NULL DEFAULT 0,
  PRIMARY KEY (stream, name)
) WITHOUT ROWID;

CREATE TABLE consumers (
  stream TEXT NOT NULL, grp TEXT NOT NULL, name TEXT NOT NULL, seen_ms INTEGER NOT NULL,
  PRIMARY KEY (stream, grp, name)
) WITHOUT ROWID;

CREATE TABLE pending (
  stream TEXT NOT NULL, grp TEXT NOT NULL, ms INTEGER NOT NULL, seq INTEGER NOT NULL,
  consumer TEXT NOT NULL, delivered_ms INTEGER NOT NULL, delivery_count INTEGER NOT NULL,
  PRIMARY KEY (stream, grp, ms, seq)
) WITHOUT ROWID;

CREATE TABLE topics (
  name TEXT PRIMARY KEY, partitions INTEGER NOT NULL, created_at TEXT NOT NULL,
  max_length INTEGER, max_age_ms INTEGER  -- the topic's own retention; NULL: the server's
) WITHOUT ROWID;
)sql";

// What takes a database of version N to N + 1 (kMigrations[N - 1]); each runs in the transaction
// that also sets the new user_version.
constexpr const char* kMigrations[] = {
    // 1 -> 2: group options.
    "ALTER TABLE groups ADD COLUMN max_deliveries INTEGER NOT NULL DEFAULT 0;",
    // 2 -> 3: a topic's own retention.
    "ALTER TABLE topics ADD COLUMN max_length INTEGER;"
    "ALTER TABLE topics ADD COLUMN max_age_ms INTEGER;",
};
static_assert(std::size(kMigrations) == kSchemaVersion - 1);

result<int> pragma_int(sqlite::Connection& db, const char* sql) {
  auto st = db.prepare(sql);
  if (!st) return st.error();
  bool row;
  RR_TRY_ASSIGN(row, st->step());
  return row ? static_cast<int>(st->int64(0)) : 0;
}

}  // namespace

std::optional<Fsync> parse_fsync(std::string_view name) {
  if (name == "always") return Fsync::always;
  if (name == "batch") return Fsync::batch;
  if (name == "never") return Fsync::never;
  return std::nullopt;
}

result<void> configure(sqlite::Connection& db, Fsync fsync) {
  const char* sync = fsync == Fsync::always  ? "PRAGMA synchronous=FULL;"
                     : fsync == Fsync::batch ? "PRAGMA synchronous=NORMAL;"
                                             : "PRAGMA synchronous=OFF;";
  // busy_timeout: readers may meet a checkpoint; they wait rather than fail.
  RR_TRY(db.exec("PRAGMA busy_timeout=5000; PRAGMA foreign_keys=OFF;"));
  return db.exec(sync);
}

result<void> prepare_schema(sqlite::Connection& db) {
  // The first read of a damaged or foreign file fails here, with SQLite's reason.
  int app_id, version;
  RR_TRY_ASSIGN(app_id, pragma_int(db, "PRAGMA application_id"));
  RR_TRY_ASSIGN(version, pragma_int(db, "PRAGMA user_version"));
  if (app_id == 0 && version == 0) {
    int tables;
    RR_TRY_ASSIGN(tables, pragma_int(db, "SELECT count(*) FROM sqlite_schema"));
    if (tables != 0) {
      return make_error(errc::store_unavailable,
                        "the database holds tables but is not a ReplayRail database");
    }
    RR_TRY(db.exec("PRAGMA journal_mode=WAL;"));
    RR_TRY(db.exec(std::string("BEGIN IMMEDIATE;") + kSchema +
                   "PRAGMA application_id=" + std::to_string(kApplicationId) +
                   "; PRAGMA user_version=" + std::to_string(kSchemaVersion) + "; COMMIT;"));
    return {};
  }
  if (app_id != kApplicationId) {
    return make_error(errc::store_unavailable, "the database is not a ReplayRail database");
  }
  if (version > kSchemaVersion) {
    return make_error(errc::store_unavailable,
                      "the database has schema version " + std::to_string(version) +
                          ", newer than this build understands (" + std::to_string(kSchemaVersion) +
                          "); upgrade ReplayRail");
  }
  if (version < 1) {
    return make_error(errc::store_unavailable,
                      "the database has unknown schema version " + std::to_string(version));
  }
  for (; version < kSchemaVersion; ++version) {
    RR_TRY(db.exec(std::string("BEGIN IMMEDIATE;") + kMigrations[version - 1] +
                   "PRAGMA user_version=" + std::to_string(version + 1) + "; COMMIT;"));
  }
  return db.exec("PRAGMA journal_mode=WAL;");
}

}  // namespace replayrail::store::local
