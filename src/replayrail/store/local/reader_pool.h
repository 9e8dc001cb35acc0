#pragma once

#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "replayrail/store/local/schema.h"
#include "replayrail/store/local/sqlite.h"

namespace replayrail::store::local {

// Read-only connections to the local store's database, leased one per read operation, so
// readers never wait for the writer (WAL: each sees the last committed state).
// Thread-safe; a leased connection belongs to its lease's thread until the lease ends.
class ReaderPool {
 public:
  ReaderPool(std::string path, Fsync fsync) : path_(std::move(path)), fsync_(fsync) {}

  // A connection inside a read transaction: every query of one lease sees one snapshot.
  class Lease {
   public:
    Lease() = default;
    Lease(ReaderPool& pool, std::unique_ptr<sqlite::Connection> conn);
    Lease(Lease&&) noexcept = default;
    Lease& operator=(Lease&&) noexcept = default;
    ~Lease();

    sqlite::Connection& operator*() { return *conn_; }
    sqlite::Connection* operator->() { return conn_.get(); }

   private:
    ReaderPool* pool_ = nullptr;
    std::unique_ptr<sqlite::Connection> conn_;
  };

  // Fails with store_closed_error() once close() was called.
  result<Lease> lease();
  void close();

 private:
  std::string path_;
  Fsync fsync_;
  std::mutex mu_;
  bool closed_ = false;
  std::vector<std::unique_ptr<sqlite::Connection>> idle_;
};

}  // namespace replayrail::store::local
