#include "replayrail/archive/pg.h"

#include <sys/socket.h>

namespace replayrail::archive::pg {

namespace {

// The failure of a statement (`r`, or the connection's when there is no result): store_unavailable
// when the connection is gone, else internal; with PostgreSQL's message.
Error failure(PGconn* conn, const PGresult* r) {
  std::string why = r ? PQresultErrorMessage(r) : PQerrorMessage(conn);
  while (!why.empty() && why.back() == '\n') why.pop_back();
  // libpq's messages run over several lines ("…failed: Connection refused\n\tIs the server
  // running…"): one line, for the log and the CLI.
  std::string line;
  for (char c : why) {
    if (c == '\n') {
      line += ' ';
    } else if (c != '\t') {
      line += c;
    }
  }
  why = std::move(line);
  const bool lost = PQstatus(conn) != CONNECTION_OK;
  return make_error(lost ? errc::store_unavailable : errc::internal, "PostgreSQL: " + why);
}

bool succeeded(const Result& r) {
  const auto status = r ? PQresultStatus(r.get()) : PGRES_FATAL_ERROR;
  return status == PGRES_COMMAND_OK || status == PGRES_TUPLES_OK;
}

}  // namespace

void Interrupt::fire() {
  std::lock_guard lock(mu_);
  fired_ = true;
  for (int s : sockets_) ::shutdown(s, SHUT_RDWR);
}

void Interrupt::attach(int socket) {
  std::lock_guard lock(mu_);
  sockets_.push_back(socket);
  if (fired_) ::shutdown(socket, SHUT_RDWR);
}

void Interrupt::detach(int socket) {
  std::lock_guard lock(mu_);
  std::erase(sockets_, socket);
}

void Connection::detach() {
  // Before PQfinish closes the socket, whose number may then be reused.
  if (interrupt_ && conn_) interrupt_->detach(PQsocket(conn_.get()));
  interrupt_.reset();
}

result<Connection> Connection::open(const std::string& url, std::shared_ptr<Interrupt> interrupt) {
  // A default connect_timeout first: the URL's own, expanded from dbname after it, wins.
  const char* keys[] = {"connect_timeout", "dbname", nullptr};
  const char* values[] = {"10", url.c_str(), nullptr};
  PGconn* c = PQconnectdbParams(keys, values, 1);
  if (!c) return make_error(errc::store_unavailable, "PostgreSQL: out of memory");
  Connection conn(c);
  if (PQstatus(c) != CONNECTION_OK) return failure(c, nullptr);
  if (interrupt) {
    interrupt->attach(PQsocket(c));
    conn.interrupt_ = std::move(interrupt);
  }
  return conn;
}

result<Result> Connection::exec(const std::string& sql, const std::vector<Param>& params) {
  std::vector<const char*> values;
  values.reserve(params.size());
  for (const auto& p : params) values.push_back(p ? p->c_str() : nullptr);
  Result r(PQexecParams(conn_.get(), sql.c_str(), static_cast<int>(values.size()), nullptr,
                        values.data(), nullptr, nullptr, 0));
  if (succeeded(r)) return r;
  return failure(conn_.get(), r.get());
}

result<void> Connection::run(const std::string& sql) {
  Result r(PQexec(conn_.get(), sql.c_str()));
  if (succeeded(r)) return {};
  return failure(conn_.get(), r.get());
}

result<void> Connection::copy(const std::string& sql, std::string_view rows) {
  Result started(PQexec(conn_.get(), sql.c_str()));
  if (!started || PQresultStatus(started.get()) != PGRES_COPY_IN) {
    return failure(conn_.get(), started.get());
  }
  const bool sent = PQputCopyData(conn_.get(), rows.data(), static_cast<int>(rows.size())) == 1 &&
                    PQputCopyEnd(conn_.get(), nullptr) == 1;
  // The COPY's own result, then the end of the results.
  Result done(PQgetResult(conn_.get()));
  for (Result more(PQgetResult(conn_.get())); more; more.reset(PQgetResult(conn_.get()))) {
  }
  if (sent && succeeded(done)) return {};
  return failure(conn_.get(), done.get());
}

void append_copy_text(std::string& out, std::string_view value) {
  for (char c : value) {
    switch (c) {
      case '\\':
        out += "\\\\";
        break;
      case '\t':
        out += "\\t";
        break;
      case '\n':
        out += "\\n";
        break;
      case '\r':
        out += "\\r";
        break;
      default:
        out += c;
    }
  }
}

result<void> Connection::begin() {
  RR_TRY(exec("BEGIN"));
  return {};
}

result<void> Connection::commit() {
  RR_TRY(exec("COMMIT"));
  return {};
}

void Connection::rollback() { (void)exec("ROLLBACK"); }

}  // namespace replayrail::archive::pg
