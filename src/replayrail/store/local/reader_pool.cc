#include "replayrail/store/local/reader_pool.h"

#include "replayrail/store/rules.h"

namespace replayrail::store::local {

ReaderPool::Lease::Lease(ReaderPool& pool, std::unique_ptr<sqlite::Connection> conn)
    : pool_(&pool), conn_(std::move(conn)) {}

ReaderPool::Lease::~Lease() {
  if (!conn_) return;
  // Ends the read transaction; a connection that cannot is dropped rather than reused.
  if (!conn_->exec("COMMIT")) return;
  std::lock_guard lock(pool_->mu_);
  pool_->idle_.push_back(std::move(conn_));
}

result<ReaderPool::Lease> ReaderPool::lease() {
  std::unique_ptr<sqlite::Connection> conn;
  {
    std::lock_guard lock(mu_);
    if (closed_) return store_closed_error();
    if (!idle_.empty()) {
      conn = std::move(idle_.back());
      idle_.pop_back();
    }
  }
  if (!conn) {
    RR_TRY_ASSIGN(conn, sqlite::Connection::open(path_, false));
    RR_TRY(configure(*conn, fsync_));
    RR_TRY(conn->exec("PRAGMA query_only=1"));
  }
  RR_TRY(conn->exec("BEGIN"));
  return Lease(*this, std::move(conn));
}

void ReaderPool::close() {
  std::lock_guard lock(mu_);
  closed_ = true;
}

}  // namespace replayrail::store::local
