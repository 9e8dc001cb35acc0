#pragma once

// Archive passes on a thread of their own, one every `interval` until stop(): what
// `replayrail serve --database-url` and `replayrail archive` run. A failure (PostgreSQL or the
// store unreachable) is logged once per outage and tried again at the next pass.

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <functional>
#include <memory>
#include <mutex>
#include <thread>

#include "replayrail/archive/archive.h"

namespace replayrail::archive {

// One pass, run to completion on an io_context of this thread's own (see Archiver::pass).
result<Pass> run_pass(Archiver& archiver, const std::atomic<bool>* stop = nullptr);

class ArchiveLoop {
 public:
  // Called on the loop's thread after each pass (for metrics).
  using OnPass = std::function<void(const result<Pass>&)>;

  ArchiveLoop(std::shared_ptr<store::Store> store, ArchiveOptions options,
              std::chrono::milliseconds interval, OnPass on_pass = {});
  ~ArchiveLoop() { stop(); }
  ArchiveLoop(const ArchiveLoop&) = delete;
  ArchiveLoop& operator=(const ArchiveLoop&) = delete;

  // No pass starts after this; the one in progress, if any, goes on. Does not wait.
  void request_stop();
  // Whether a pass is in progress.
  bool in_pass() const { return in_pass_; }
  // After request_stop(): cuts the pass in progress off PostgreSQL (its connection fails), for a
  // pass blocked on a server that does not answer, which stop() would otherwise wait for.
  void cut_off() { options_.interrupt->fire(); }
  // request_stop(), then waits up to `grace` for the pass in progress, if any, to end; false
  // when it has not (cut_off() then ends it).
  bool stop_within(std::chrono::milliseconds grace);
  // request_stop(), then waits for the pass in progress. Idempotent.
  void stop();

 private:
  void run();

  std::shared_ptr<store::Store> store_;
  ArchiveOptions options_;
  std::chrono::milliseconds interval_;
  OnPass on_pass_;
  std::mutex mu_;
  std::condition_variable wake_;
  std::atomic<bool> stopping_ = false;  // also read by the pass, between batches
  std::atomic<bool> in_pass_ = false;   // changed with mu_ held, and wake_ told
  std::thread thread_;
};

}  // namespace replayrail::archive
