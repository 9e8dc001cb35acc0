#pragma once

#include <atomic>
#include <boost/asio/any_io_executor.hpp>
#include <boost/asio/async_result.hpp>
#include <boost/asio/execution.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/prefer.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <chrono>
#include <condition_variable>
#include <deque>
#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <thread>
#include <vector>

#include "replayrail/common/string_map.h"
#include "replayrail/store/local/rows.h"
#include "replayrail/store/wait_list.h"

namespace replayrail::store::local {

// Trims that one batch could not finish: stream → the length it is being trimmed to.
using UnfinishedTrims = StringMap<std::uint64_t>;

// What a write operation sees: the writer's connection inside the batch transaction, and the
// writer's cached state of the streams it touches.
class WriteContext {
 public:
  struct Stream {
    StreamRow row;
    bool dirty = false;  // row changed in this batch: written back before COMMIT
    // Retained length Redis would have after this batch's appends and MAXLEN trims; the
    // oldest entries beyond it are deleted at the end of the batch (or before another op): as
    // many as the batch appended, and at most `trim_chunk` more.
    std::uint64_t target_length = 0;
    std::uint64_t loaded_length = 0;  // row.length when the batch loaded the row
    // The batch's operations (by index) that are complete only once the stream is trimmed to
    // target_length (appends with an exact MAXLEN).
    std::vector<std::size_t> waiting;
  };

  // `unfinished`: what earlier batches left to trim; `trim_chunk`: the most entries one batch
  // deletes from one stream beyond those it appended.
  WriteContext(sqlite::Connection& db, std::uint64_t now_ms, const UnfinishedTrims& unfinished,
               std::uint64_t trim_chunk)
      : db(db), now_ms(now_ms), unfinished_(unfinished), trim_chunk_(trim_chunk) {}

  // The stream's cached state; nullptr when it does not exist and `create` is false.
  result<Stream*> stream(std::string_view name, bool create);
  // Deletes what MAXLEN trimming removes (per stream and batch: what the batch appended and up
  // to trim_chunk more), so every op sees the state Redis would show.
  result<void> apply_trims();
  // Deletes the oldest entries of `name` with an id below `before`, at most `limit` of them
  // (trim_before, in chunks); returns how many it deleted.
  result<std::uint64_t> trim_before(std::string_view name, StreamId before, std::uint64_t limit);
  // Writes dirty stream rows back.
  result<void> flush();
  void forget(std::string_view name) { streams_.erase(std::string(name)); }
  // The operation being applied completes only once `s` is trimmed to its target length.
  void wait_for_trim(Stream& s) { s.waiting.push_back(applying); }
  // Streams whose blocked readers to wake after COMMIT (a batch often appends to one stream
  // over and over: that is remembered once).
  void touch(std::string_view name) {
    if (touched.empty() || touched.back() != name) touched.emplace_back(name);
  }
  sqlite::Connection& db;
  std::uint64_t now_ms;
  std::vector<std::string> touched;
  std::size_t applying = 0;  // the index in its batch of the operation being applied

 private:
  friend class Writer;
  // Deletes the `count` oldest entries of `s`, the newest of them `through`, and records it as
  // the stream's trimmed_through.
  result<void> delete_oldest(std::string_view name, Stream& s, StreamId through,
                             std::uint64_t count);

  const UnfinishedTrims& unfinished_;
  std::uint64_t trim_chunk_;
  StringMap<Stream> streams_;
};

// The single writer of a local store (DESIGN §3): one thread, one connection, group commit.
// Concurrent write operations queue up; the thread applies them in one transaction, commits it
// with the configured fsync policy, and only then completes each operation (on the executor of
// the coroutine that awaits it) and wakes blocked readers.
//
// Gathering a batch: the thread begins a transaction with what is queued and applies writes as
// they arrive for as long as more are on their way, so the SQLite work overlaps the callers'
// own; it commits when no more are expected. More are expected while the completions of the
// previous batch are still running on their executors (a publisher resumed there usually writes
// again at once; the thread waits at most `kArrivalGap` for each next write), and, with a
// commit delay, until about as many writes as the previous batch had arrived (see run()).
//
// Trimming in chunks: a batch deletes at most `trim_chunk` entries of one stream beyond those it
// appended (a stream at its limit stays at it, however much a batch appends), so lowering a
// stream's MAXLEN far below its length (a retention cut from 1M to 10,000 events: 2 s of
// deletes) does not stall every other write for that long. What is left goes on in the next
// batches, which the thread runs even when nothing is queued; an append with an exact MAXLEN
// completes once its stream is down to its length, as on Redis (whose trims run 1,000 entries
// at a time), and one with MAXLEN ~ at its commit.
//
// Timed fsync (fsync=batch): commits do not fsync, and the thread fsyncs the WAL at most
// `sync_interval` after a commit, between batches or while idle, so a power cut loses at most
// about that much of what was acknowledged (Redis's appendfsync everysec). A failed fsync is
// tried again after another interval.
//
// Lifecycle: started by the constructor; close() refuses later writes (store_closed_error())
// and lets the thread finish what is queued (and fsync it, with a sync interval) and complete
// the appends still waiting for a trim (they are stored; the trim goes on at the stream's next
// append after a reopen); the destructor closes and joins the thread.
class Writer {
 public:
  // A queued write. apply() runs in the transaction; finish() completes it after the commit
  // (with `failure` set when the batch was rolled back).
  class Op {
   public:
    virtual ~Op() = default;
    // False: the transaction itself failed (the batch is rolled back for all).
    virtual bool apply(WriteContext& ctx) = 0;
    // Sets the outcome (`failure` when the batch was rolled back); then complete() runs on
    // executor(), where the awaiting coroutine lives.
    virtual void fail(const Error& failure) = 0;
    virtual const boost::asio::any_io_executor& executor() const = 0;
    virtual void complete() = 0;
  };

  struct Options {
    std::size_t max_batch = 4096;  // operations per transaction at most (1 or more)
    // How long the writer may wait for the writers of its previous batch to come back before it
    // commits a smaller one (zero: never waits).
    std::chrono::microseconds commit_delay{0};
    // The most time between a commit and the fsync of the WAL after it (zero: the writer never
    // fsyncs itself; the connection's synchronous level decides).
    std::chrono::milliseconds sync_interval{0};
    // Entries a batch deletes from a stream beyond those it adds (1 or more).
    std::uint64_t trim_chunk = 2000;
  };

  Writer(std::unique_ptr<sqlite::Connection> db, WaitList& waiters,
         std::function<std::uint64_t()> now_ms, Options options);
  ~Writer();

  // Runs `fn(WriteContext&) -> result<T>` on the writer thread inside a batch transaction and
  // returns its result once the transaction committed.
  template <class T, class Fn>
  task<result<T>> call(Fn fn);

  void close();

 private:
  template <class T, class Fn, class Handler>
  class TypedOp;

  void submit(std::unique_ptr<Op> op);
  void run();
  // Begins a transaction, gathers and applies a batch, commits, completes it (emptying
  // `batch`); returns how many operations it held.
  std::size_t run_batch(std::vector<std::unique_ptr<Op>>& batch, std::size_t wanted);
  // Polls the queue while completions posted by the last batch have not run yet, up to
  // kPollBeforeSleep: a caller they resume that writes again is then served without the cost
  // of waking this thread. False: nothing was queued meanwhile.
  bool poll_before_sleeping();
  // With a sync interval: fsyncs the WAL if a commit has waited for it since `sync_due_` (or
  // at all, when `now` is true).
  void sync_if_due(bool now);
  // Moves queued operations into `batch` (up to max_batch_).
  void take(std::vector<std::unique_ptr<Op>>& batch);
  // With the lock held, after applying what was queued: waits until more writes arrive or
  // none are expected any more; false ends the gathering.
  bool wait_for_more(std::unique_lock<std::mutex>& lock, std::size_t gathered, std::size_t wanted,
                     std::chrono::steady_clock::time_point began);
  // Completes `ops` with one post per executor rather than one per operation: a post to an
  // io_context contends on its scheduler and may wake its thread. completing_ counts the posts
  // that have not finished yet.
  void complete_all(std::vector<std::unique_ptr<Op>>& ops);
  // After a commit: records the trims `ctx` left unfinished, and moves the operations waiting
  // for one of them out of `batch` into held_, and those whose trim ended into `batch`.
  void settle_trims(WriteContext& ctx, std::vector<std::unique_ptr<Op>>& batch);

  std::unique_ptr<sqlite::Connection> db_;
  WaitList& waiters_;
  std::function<std::uint64_t()> now_ms_;
  std::size_t max_batch_;
  std::chrono::microseconds commit_delay_;
  std::chrono::milliseconds sync_interval_;
  std::uint64_t trim_chunk_;
  UnfinishedTrims unfinished_trims_;                     // the writer thread's only
  std::chrono::steady_clock::time_point trim_retry_at_;  // set by a failed batch
  StringMap<std::vector<std::unique_ptr<Op>>> held_;     // committed, waiting for those trims
  // When the WAL must next be fsynced: set by the first commit after an fsync.
  std::optional<std::chrono::steady_clock::time_point> sync_due_;
  std::uint64_t next_expiry_sweep_ms_ = 0;
  int poll_skips_ = 0;    // batches that skip poll_before_sleeping() (see run())
  int poll_backoff_ = 0;  // the skips after the last poll: grows while polls find nothing

  // Completions posted and not yet run: shared with the posted handlers, which may outlive us.
  std::shared_ptr<std::atomic<int>> completing_ = std::make_shared<std::atomic<int>>(0);

  std::mutex mu_;
  std::condition_variable cv_;
  std::deque<std::unique_ptr<Op>> queue_;
  std::atomic<std::size_t> queued_ = 0;  // queue_.size(), for poll_before_sleeping()
  bool stopping_ = false;
  bool idle_ = false;        // the writer thread waits for work: only then does submit() wake it
  std::size_t wake_at_ = 0;  // while gathering: the queue length at which submit() wakes it
  std::thread thread_;       // last: started after everything above exists
};

template <class T, class Fn, class Handler>
class Writer::TypedOp final : public Writer::Op {
 public:
  TypedOp(Fn fn, Handler handler)
      : fn_(std::move(fn)),
        handler_(std::move(handler)),
        work_(boost::asio::prefer(boost::asio::get_associated_executor(handler_),
                                  boost::asio::execution::outstanding_work.tracked)) {}

  bool apply(WriteContext& ctx) override {
    result_.emplace(fn_(ctx));
    return *result_ || result_->error().code != errc::store_unavailable;
  }

  void fail(const Error& failure) override { result_.emplace(failure); }
  const boost::asio::any_io_executor& executor() const override { return work_; }
  void complete() override { std::move(handler_)(std::move(*result_)); }

 private:
  Fn fn_;
  Handler handler_;
  boost::asio::any_io_executor work_;  // keeps the awaiting io_context running meanwhile
  std::optional<result<T>> result_;
};

template <class T, class Fn>
task<result<T>> Writer::call(Fn fn) {
  auto initiate = [this](auto handler, Fn fn) {
    using Handler = decltype(handler);
    submit(std::make_unique<TypedOp<T, Fn, Handler>>(std::move(fn), std::move(handler)));
  };
  return boost::asio::async_initiate<decltype(boost::asio::use_awaitable), void(result<T>)>(
      std::move(initiate), boost::asio::use_awaitable, std::move(fn));
}

}  // namespace replayrail::store::local
