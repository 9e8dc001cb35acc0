#pragma once

// A thin RAII layer over libpq (Debian's libpq5): a connection, statements with text parameters,
// and results that are freed when they go out of scope. Blocking: callers run it on a thread of
// their own, never on an event loop.

#include <libpq-fe.h>

#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "replayrail/common/errc.h"

namespace replayrail::archive::pg {

struct ResultFree {
  void operator()(PGresult* r) const { PQclear(r); }
};
using Result = std::unique_ptr<PGresult, ResultFree>;

// A statement parameter: text, or SQL NULL.
using Param = std::optional<std::string>;

// Lets another thread cut the connections it is given to (their sockets shut down), so that a
// call blocked on a PostgreSQL that does not answer returns, as a lost connection: libpq's
// blocking calls have no other way out (PQcancel itself waits for the server). Connections
// given to it after fire() are cut as they open.
class Interrupt {
 public:
  void fire();

 private:
  friend class Connection;
  void attach(int socket);
  void detach(int socket);

  std::mutex mu_;
  std::vector<int> sockets_;
  bool fired_ = false;
};

class Connection {
 public:
  Connection() = default;  // not connected: assign one open() made
  Connection(Connection&&) = default;
  Connection& operator=(Connection&& other) noexcept {
    detach();
    conn_ = std::move(other.conn_);
    interrupt_ = std::move(other.interrupt_);
    return *this;
  }
  ~Connection() { detach(); }
  // store_unavailable (with libpq's reason) when the server cannot be reached (within 10 s
  // unless the URL says otherwise: connect_timeout). With `interrupt`, fire() cuts it.
  static result<Connection> open(const std::string& url, std::shared_ptr<Interrupt> interrupt = {});
  explicit operator bool() const { return conn_ != nullptr; }

  // Runs `sql` with $1…$n bound to `params`; the server's error (code internal, or
  // invalid_argument for an SQL error the caller caused) with its message otherwise.
  result<Result> exec(const std::string& sql, const std::vector<Param>& params = {});

  // Runs a script of statements without parameters (schema changes).
  result<void> run(const std::string& sql);

  // COPY … FROM STDIN (`sql`) of `rows`, in COPY's text format (copy_text() escapes a value).
  result<void> copy(const std::string& sql, std::string_view rows);

  // BEGIN / COMMIT / ROLLBACK.
  result<void> begin();
  result<void> commit();
  void rollback();

 private:
  struct Close {
    void operator()(PGconn* c) const { PQfinish(c); }
  };
  explicit Connection(PGconn* c) : conn_(c) {}
  void detach();
  std::unique_ptr<PGconn, Close> conn_;
  std::shared_ptr<Interrupt> interrupt_;  // attached to while connected
};

// Appends `value` to `out` as a field of COPY's text format: backslash, tab, newline and
// carriage return escaped.
void append_copy_text(std::string& out, std::string_view value);

// Row `row`, column `col` of `r` as text ("" for NULL).
inline std::string text(const Result& r, int row, int col) {
  return std::string(PQgetvalue(r.get(), row, col),
                     static_cast<std::size_t>(PQgetlength(r.get(), row, col)));
}

}  // namespace replayrail::archive::pg
