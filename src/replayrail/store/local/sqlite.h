#pragma once

// A thin RAII layer over the SQLite C API: connections, cached prepared statements, and errors as
// values. Hand-written rather than Debian's SQLiteC++ because that library reports every error by
// exception (the store reports failures as values, STYLE.md rule 4) and copies a shared_ptr for
// every column it reads, which the range-read hot path cannot afford.

#include <sqlite3.h>

#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <unordered_map>

#include "replayrail/common/errc.h"

namespace replayrail::store::sqlite {

class Connection;

// A prepared statement borrowed from a connection's cache; reset when the Statement goes.
// Thread affinity: that of its connection.
class Statement {
 public:
  Statement(Connection& conn, sqlite3_stmt* stmt) : conn_(&conn), stmt_(stmt) {}
  Statement(Statement&& o) noexcept : conn_(o.conn_), stmt_(std::exchange(o.stmt_, nullptr)) {}
  Statement(const Statement&) = delete;
  Statement& operator=(const Statement&) = delete;
  ~Statement();

  // Parameters are 1-based, as in SQL (?1, ?2 …). Text and blobs must outlive step().
  Statement& bind(int i, std::int64_t v);
  Statement& bind(int i, std::uint64_t v);  // clamped to INT64_MAX: no stored value exceeds it
  Statement& bind(int i, std::string_view text);
  Statement& bind_blob(int i, const void* data, std::size_t size);
  Statement& bind_null(int i);

  // Advances: true = a row is ready, false = done; errors are returned as store_unavailable.
  result<bool> step();
  // Runs to completion, ignoring rows.
  result<void> run();

  std::int64_t int64(int col) const { return sqlite3_column_int64(stmt_, col); }
  std::uint64_t uint64(int col) const { return static_cast<std::uint64_t>(int64(col)); }
  std::string_view text(int col) const;
  std::string_view blob(int col) const;
  bool is_null(int col) const { return sqlite3_column_type(stmt_, col) == SQLITE_NULL; }

 private:
  Connection* conn_;
  sqlite3_stmt* stmt_;
};

// One SQLite connection. Lifecycle: open, use from one thread at a time, destroy.
class Connection {
 public:
  static result<std::unique_ptr<Connection>> open(const std::string& path, bool create);
  ~Connection();
  Connection(const Connection&) = delete;
  Connection& operator=(const Connection&) = delete;

  // A cached prepared statement for `sql` (a string literal: the cache keys on its address).
  result<Statement> prepare(const char* sql);
  // Runs one or more statements without results (schema, pragmas, BEGIN/COMMIT).
  result<void> exec(std::string_view sql);

  // fsyncs the connection's journal (the WAL, in WAL mode) through SQLite's own file layer, as a
  // commit with synchronous=FULL does, so that what was committed before is on disk. Nothing to
  // do while the connection has no journal open. Call it between transactions.
  result<void> sync_journal();

  std::int64_t changes() const { return sqlite3_changes64(db_); }
  sqlite3* handle() { return db_; }

  // The last error, as a store_unavailable Error naming what failed.
  Error error(std::string_view what) const;

 private:
  explicit Connection(sqlite3* db) : db_(db) {}

  sqlite3* db_;
  std::unordered_map<const char*, sqlite3_stmt*> statements_;
};

}  // namespace replayrail::store::sqlite
