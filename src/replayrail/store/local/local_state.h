#pragma once

// LocalStore's private state, shared by its implementation files.

#include <memory>
#include <span>

#include "replayrail/store/leases.h"
#include "replayrail/store/local/local_store.h"
#include "replayrail/store/local/reader_pool.h"
#include "replayrail/store/local/writer.h"
#include "replayrail/store/wait_list.h"

namespace replayrail::store {

struct LocalStore::State {
  ~State();

  // A blocked reader's registration on the streams it reads.
  template <class Cursor>
  std::unique_ptr<WaitList::Registration> register_waiter(boost::asio::any_io_executor ex,
                                                          std::span<const Cursor> cursors) {
    std::vector<std::string> names;
    for (const auto& c : cursors) names.push_back(c.stream);
    return waiters.watch(std::move(ex), std::move(names));
  }

  Options options;
  int lock_fd = -1;
  std::filesystem::path db_path;
  WaitList waiters;
  Leases leases;  // this process's: the data directory is locked to it
  std::unique_ptr<local::ReaderPool> readers;
  std::unique_ptr<local::Writer> writer;
};

}  // namespace replayrail::store
