#pragma once

// Archive passes on a thread of their own, one every `interval` until stop(): what
// `replayrail serve --database-url` and `replayrail archive` run. A failure (PostgreSQL or the
// store unreachable) is logged once per outage and tried again at the next pass.

#include <chrono>
#include <condition_variable>
#include <memory>
#include <mutex>
#include <thread>

#include "replayrail/archive/archive.h"

namespace replayrail::archive {

// One pass, run to completion on an io_context of this thread's own.
result<Pass> run_pass(Archiver& archiver);

class ArchiveLoop {
 public:
  ArchiveLoop(std::shared_ptr<store::Store> store, ArchiveOptions options,
              std::chrono::milliseconds interval);
  ~ArchiveLoop() { stop(); }
  ArchiveLoop(const ArchiveLoop&) = delete;
  ArchiveLoop& operator=(const ArchiveLoop&) = delete;

  // Ends the loop after the pass in progress, if any. Idempotent.
  void stop();

 private:
  void run();

  std::shared_ptr<store::Store> store_;
  ArchiveOptions options_;
  std::chrono::milliseconds interval_;
  std::mutex mu_;
  std::condition_variable wake_;
  bool stopping_ = false;
  std::thread thread_;
};

}  // namespace replayrail::archive
