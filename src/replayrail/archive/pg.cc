#include "replayrail/archive/pg.h"

namespace replayrail::archive::pg {

result<Connection> Connection::open(const std::string& url) {
  PGconn* c = PQconnectdb(url.c_str());
  if (!c) return make_error(errc::store_unavailable, "PostgreSQL: out of memory");
  Connection conn(c);
  if (PQstatus(c) != CONNECTION_OK) {
    std::string why = PQerrorMessage(c);
    while (!why.empty() && why.back() == '\n') why.pop_back();
    return make_error(errc::store_unavailable, "PostgreSQL: " + why);
  }
  return conn;
}

result<Result> Connection::exec(const std::string& sql, const std::vector<Param>& params) {
  std::vector<const char*> values;
  values.reserve(params.size());
  for (const auto& p : params) values.push_back(p ? p->c_str() : nullptr);
  Result r(PQexecParams(conn_.get(), sql.c_str(), static_cast<int>(values.size()), nullptr,
                        values.data(), nullptr, nullptr, 0));
  const auto status = r ? PQresultStatus(r.get()) : PGRES_FATAL_ERROR;
  if (status == PGRES_COMMAND_OK || status == PGRES_TUPLES_OK) return r;
  std::string why = r ? PQresultErrorMessage(r.get()) : PQerrorMessage(conn_.get());
  while (!why.empty() && why.back() == '\n') why.pop_back();
  const bool lost = PQstatus(conn_.get()) != CONNECTION_OK;
  return make_error(lost ? errc::store_unavailable : errc::internal, "PostgreSQL: " + why);
}

result<void> Connection::run(const std::string& sql) {
  Result r(PQexec(conn_.get(), sql.c_str()));
  const auto status = r ? PQresultStatus(r.get()) : PGRES_FATAL_ERROR;
  if (status == PGRES_COMMAND_OK || status == PGRES_TUPLES_OK) return {};
  std::string why = r ? PQresultErrorMessage(r.get()) : PQerrorMessage(conn_.get());
  while (!why.empty() && why.back() == '\n') why.pop_back();
  return make_error(errc::internal, "PostgreSQL: " + why);
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
