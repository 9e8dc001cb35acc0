#include "replayrail/store/local/writer.h"

#include <algorithm>

#include "replayrail/core/random.h"
#include "replayrail/store/rules.h"

namespace replayrail::store::local {

namespace {

// How often the writer deletes expired idempotency records.
constexpr std::uint64_t kExpirySweepMs = 1000;

// While the previous batch's completions run, how long the writer waits for each next write
// before it commits what it has. A caller resumed there that writes again does so within a few
// microseconds; one that does not (an HTTP handler sending its response) costs at most this.
constexpr std::chrono::microseconds kArrivalGap(20);

// How long the writer polls for the next write, after it posted a batch's completions, before it
// sleeps. The callers they resume usually write again within microseconds, but waking a thread
// that sleeps on a condition variable takes 20-30 µs on the 2-vCPU machines we measure on
// (local_store_bench: ~45 µs from posting a batch to applying the first write of the next with
// two such wake-ups, ~18 µs with this poll), a fifth of a batch when fsync is off. Spin-then-park,
// as glibc's adaptive mutexes do; the poll yields the CPU to any runnable thread and ends as soon
// as the completions have run.
constexpr std::chrono::microseconds kPollBeforeSleep(50);
// After a failed batch, how long unfinished trims wait before the writer tries them again on its
// own (a write that comes meanwhile tries them with it).
constexpr std::chrono::milliseconds kTrimRetryPause(100);
// The most batches that sleep at once after polls that found nothing (see run()).
constexpr int kMaxPollSkips = 63;

// A spin-wait hint to the CPU (x86 PAUSE): lets a sibling hyper-thread run and saves power.
inline void cpu_relax() {
#if defined(__x86_64__) || defined(__i386__)
  __builtin_ia32_pause();
#endif
}

}  // namespace

result<WriteContext::Stream*> WriteContext::stream(std::string_view name, bool create) {
  if (auto it = streams_.find(name); it != streams_.end()) return &it->second;
  std::optional<StreamRow> row;
  RR_TRY_ASSIGN(row, load_stream(db, name));
  if (!row && !create) return nullptr;
  Stream s;
  if (row) {
    s.row = std::move(*row);
  } else {
    s.row.epoch = make_epoch();
    s.dirty = true;
  }
  s.target_length = s.loaded_length = s.row.length;
  if (auto left = unfinished_.find(name); left != unfinished_.end()) {
    s.target_length = std::min(s.target_length, left->second);
  }
  return &streams_.emplace(std::string(name), std::move(s)).first->second;
}

result<void> WriteContext::apply_trims() {
  for (auto& [name, s] : streams_) {
    if (s.row.length <= s.target_length) continue;
    // What the batch appended (row.length - loaded_length, with what it deleted so far taken
    // off, here or by trim_before) and trim_chunk_ more; none once it deleted that much.
    const std::uint64_t budget = trim_chunk_ + s.row.length;
    const std::uint64_t allowed = budget > s.loaded_length ? budget - s.loaded_length : 0;
    std::uint64_t drop = std::min(s.row.length - s.target_length, allowed);
    if (drop == 0) continue;
    auto last = db.prepare(
        "SELECT ms, seq FROM events WHERE stream = ?1 ORDER BY ms, seq LIMIT 1 OFFSET ?2");
    if (!last) return last.error();
    last->bind(1, name).bind(2, drop - 1);
    bool row;
    RR_TRY_ASSIGN(row, last->step());
    if (!row) return make_error(errc::internal, "stream length out of step with its events");
    RR_TRY(delete_oldest(name, s, {last->uint64(0), last->uint64(1)}, drop));
  }
  return {};
}

result<void> WriteContext::delete_oldest(std::string_view name, Stream& s, StreamId through,
                                         std::uint64_t count) {
  auto del = db.prepare("DELETE FROM events WHERE stream = ?1 AND (ms, seq) <= (?2, ?3)");
  if (!del) return del.error();
  RR_TRY(del->bind(1, name).bind(2, through.ms).bind(3, through.seq).run());
  s.row.length -= count;
  s.row.trimmed_through = through;
  s.dirty = true;
  return {};
}

result<std::uint64_t> WriteContext::trim_before(std::string_view name, StreamId before,
                                                std::uint64_t limit) {
  Stream* s;
  RR_TRY_ASSIGN(s, stream(name, false));
  if (!s) return 0;
  RR_TRY(apply_trims());  // a MAXLEN trim of this batch removes the oldest entries first
  auto oldest = db.prepare(
      "SELECT ms, seq FROM events WHERE stream = ?1 AND (ms, seq) < (?2, ?3) "
      "ORDER BY ms, seq LIMIT ?4");
  if (!oldest) return oldest.error();
  oldest->bind(1, name).bind(2, before.ms).bind(3, before.seq).bind(4, limit);
  std::uint64_t count = 0;
  StreamId through;
  for (;;) {
    bool row;
    RR_TRY_ASSIGN(row, oldest->step());
    if (!row) break;
    through = {oldest->uint64(0), oldest->uint64(1)};
    ++count;
  }
  if (count > 0) RR_TRY(delete_oldest(name, *s, through, count));
  return count;
}

result<void> WriteContext::flush() {
  RR_TRY(apply_trims());
  for (auto& [name, s] : streams_) {
    if (!s.dirty) continue;
    auto st = db.prepare(
        "INSERT INTO streams (name, epoch, last_ms, last_seq, trimmed_ms, trimmed_seq, length) "
        "VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7) ON CONFLICT (name) DO UPDATE SET "
        "last_ms = ?3, last_seq = ?4, trimmed_ms = ?5, trimmed_seq = ?6, length = ?7");
    if (!st) return st.error();
    const StreamRow& r = s.row;
    RR_TRY(st->bind(1, name)
               .bind(2, r.epoch)
               .bind(3, r.last_id.ms)
               .bind(4, r.last_id.seq)
               .bind(5, r.trimmed_through.ms)
               .bind(6, r.trimmed_through.seq)
               .bind(7, r.length)
               .run());
    s.dirty = false;
  }
  return {};
}

Writer::Writer(std::unique_ptr<sqlite::Connection> db, WaitList& waiters,
               std::function<std::uint64_t()> now_ms, Options options)
    : db_(std::move(db)),
      waiters_(waiters),
      now_ms_(std::move(now_ms)),
      max_batch_(options.max_batch),
      commit_delay_(options.commit_delay),
      sync_interval_(options.sync_interval),
      trim_chunk_(options.trim_chunk),
      thread_([this] { run(); }) {}

Writer::~Writer() {
  close();
  thread_.join();
  // Nothing can be queued after stopping_, and run() returned only with an empty queue.
}

void Writer::close() {
  {
    std::lock_guard lock(mu_);
    stopping_ = true;
  }
  cv_.notify_one();
}

void Writer::submit(std::unique_ptr<Op> op) {
  bool wake = false;
  {
    std::lock_guard lock(mu_);
    if (!stopping_) {
      queue_.push_back(std::move(op));
      queued_.store(queue_.size(), std::memory_order_relaxed);
      wake = std::exchange(idle_, false) || queue_.size() == wake_at_;
    }
  }
  if (op) {
    op->fail(store_closed_error());
    std::vector<std::unique_ptr<Op>> one;
    one.push_back(std::move(op));
    complete_all(one);
    return;
  }
  // A busy writer takes what queued up when it next looks; waking it each time would cost a
  // futex call per write.
  if (wake) cv_.notify_one();
}

void Writer::run() {
  std::vector<std::unique_ptr<Op>> batch;
  std::size_t last_batch = 0;
  for (;;) {
    // Adaptive, with exponential backoff: polls that keep finding nothing (callers that do not
    // write again at once, or an event loop too busy to run the completions soon) are made
    // rarer, 1, 3, 7 … up to 63 batches apart, rather than spend CPU the event loop needs; a
    // poll that finds a write makes the next batch poll again.
    if (poll_skips_ > 0) {
      --poll_skips_;
    } else if (completing_->load() > 0) {
      poll_backoff_ = poll_before_sleeping() ? 0 : std::min(2 * poll_backoff_ + 1, kMaxPollSkips);
      poll_skips_ = poll_backoff_;
    }
    bool work;
    {
      std::unique_lock lock(mu_);
      // An unfinished trim is work: the next batch goes on with it (after a failed batch, not
      // before trim_retry_at_, so a lasting error does not spin this thread).
      auto trimming = [this] {
        return !unfinished_trims_.empty() && !stopping_ &&
               std::chrono::steady_clock::now() >= trim_retry_at_;
      };
      idle_ = queue_.empty() && !trimming();
      auto ready = [this] { return stopping_ || !queue_.empty(); };
      if (!trimming()) {
        // What comes due without a write: an fsync, a trim's retry.
        auto until = sync_due_;
        if (!unfinished_trims_.empty() && !stopping_) {
          until = until ? std::min(*until, trim_retry_at_) : trim_retry_at_;
        }
        if (until) {
          cv_.wait_until(lock, *until, ready);
        } else {
          cv_.wait(lock, ready);
        }
      }
      idle_ = false;
      work = !queue_.empty() || trimming();
    }
    if (!work && stopping_) {  // nothing left to write
      // Appends waiting for a trim are stored: they complete, and the trim goes on when the
      // store is opened again and the stream appended to.
      std::vector<std::unique_ptr<Op>> held;
      for (auto& [name, ops] : held_) {
        for (auto& op : ops) held.push_back(std::move(op));
      }
      held_.clear();
      complete_all(held);
      sync_if_due(true);
      return;
    }
    sync_if_due(false);
    if (!work) continue;
    // Commit delay, as PostgreSQL's commit_delay but adaptive: the writers the previous batch
    // completed are likely about to write again. Waiting up to `commit_delay_` for most of them
    // lets one fsync serve them all instead of two. A lone writer never waits.
    std::size_t wanted = commit_delay_.count() > 0 ? last_batch - last_batch / 8 : 0;
    last_batch = run_batch(batch, wanted);
    if (sync_interval_.count() > 0 && !sync_due_) {
      sync_due_ = std::chrono::steady_clock::now() + sync_interval_;
    }
  }
}

void Writer::sync_if_due(bool now) {
  if (!sync_due_ || (!now && std::chrono::steady_clock::now() < *sync_due_)) return;
  // Every commit so far is in the WAL; once it is on disk, none needs a sync any more.
  sync_due_.reset();
  if (!db_->sync_journal()) sync_due_ = std::chrono::steady_clock::now() + sync_interval_;
}

bool Writer::poll_before_sleeping() {
  auto until = std::chrono::steady_clock::now() + kPollBeforeSleep;
  // Reads an atomic, not the queue: taking mu_ here would contend with the submits awaited.
  for (int round = 1; queued_.load(std::memory_order_relaxed) == 0; ++round) {
    if (completing_->load() == 0 || std::chrono::steady_clock::now() >= until) return false;
    if (round % 64 == 0) {
      std::this_thread::yield();  // about once a microsecond: a runnable thread here goes first
    } else {
      cpu_relax();
    }
  }
  return true;
}

void Writer::take(std::vector<std::unique_ptr<Op>>& batch) {
  std::lock_guard lock(mu_);
  while (!queue_.empty() && batch.size() < max_batch_) {
    batch.push_back(std::move(queue_.front()));
    queue_.pop_front();
  }
  queued_.store(queue_.size(), std::memory_order_relaxed);
}

bool Writer::wait_for_more(std::unique_lock<std::mutex>& lock, std::size_t gathered,
                           std::size_t wanted, std::chrono::steady_clock::time_point began) {
  // How many writes the writer lets queue up before it is woken to apply them, so applying
  // overlaps their arrival without a wake-up per write.
  constexpr std::size_t kWakeEvery = 4;
  if (!queue_.empty()) return true;
  if (stopping_ || gathered >= max_batch_) return false;
  auto now = std::chrono::steady_clock::now();
  bool short_of_wanted = gathered < wanted && now - began < commit_delay_;
  bool cohort = completing_->load() > 0;  // resumed callers may be about to write again
  if (!short_of_wanted && !cohort) return false;
  auto until = short_of_wanted ? began + commit_delay_ : now + kArrivalGap;
  std::size_t missing = short_of_wanted ? wanted - gathered : kWakeEvery;
  wake_at_ = std::min({missing, kWakeEvery, max_batch_ - gathered});
  cv_.wait_until(lock, until, [this] { return stopping_ || queue_.size() >= wake_at_; });
  wake_at_ = 0;
  return !queue_.empty();
}

void Writer::complete_all(std::vector<std::unique_ptr<Op>>& ops) {
  while (!ops.empty()) {
    auto executor = ops.front()->executor();
    std::vector<std::unique_ptr<Op>> group, rest;
    for (auto& op : ops) (op->executor() == executor ? group : rest).push_back(std::move(op));
    ops.swap(rest);
    completing_->fetch_add(1);
    boost::asio::post(executor, [group = std::move(group), running = completing_] {
      for (auto& op : group) op->complete();
      running->fetch_sub(1);
    });
  }
}

void Writer::settle_trims(WriteContext& ctx, std::vector<std::unique_ptr<Op>>& batch) {
  std::vector<std::string> ended;
  // Every unfinished trim's stream was loaded at the batch's start: one gone since was deleted.
  for (const auto& [name, target] : unfinished_trims_) {
    if (!ctx.streams_.contains(name)) ended.push_back(name);
  }
  for (auto& [name, s] : ctx.streams_) {
    if (s.row.length <= s.target_length) {  // the usual case: the trim was whole
      if (unfinished_trims_.contains(name)) ended.push_back(name);
      continue;
    }
    unfinished_trims_[name] = s.target_length;
    auto& held = held_[name];
    for (std::size_t i : s.waiting) {
      if (batch[i]) held.push_back(std::move(batch[i]));  // an append_batch waits once
    }
  }
  for (const auto& name : ended) {
    unfinished_trims_.erase(name);
    if (auto it = held_.find(name); it != held_.end()) {
      for (auto& op : it->second) batch.push_back(std::move(op));
      held_.erase(it);
    }
  }
  std::erase(batch, nullptr);
}

std::size_t Writer::run_batch(std::vector<std::unique_ptr<Op>>& batch, std::size_t wanted) {
  WriteContext ctx(*db_, now_ms_(), unfinished_trims_, trim_chunk_);
  auto fail_all = [&](Error e) {
    (void)db_->exec("ROLLBACK");
    trim_retry_at_ = std::chrono::steady_clock::now() + kTrimRetryPause;
    for (auto& op : batch) op->fail(e);
    std::size_t size = batch.size();
    complete_all(batch);
    return size;
  };
  if (auto begun = db_->exec("BEGIN IMMEDIATE"); !begun) {
    take(batch);
    return fail_all(begun.error());
  }
  // Trims earlier batches left unfinished go on in this one.
  for (const auto& [name, target] : unfinished_trims_) {
    if (auto loaded = ctx.stream(name, false); !loaded) {
      take(batch);
      return fail_all(loaded.error());
    }
  }
  auto began = std::chrono::steady_clock::now();
  for (std::size_t applied = 0;;) {
    take(batch);
    for (; applied < batch.size(); ++applied) {
      ctx.applying = applied;
      if (!batch[applied]->apply(ctx)) {
        return fail_all(
            make_error(errc::store_unavailable, "a write failed and its batch was rolled back"));
      }
    }
    std::unique_lock lock(mu_);
    if (!wait_for_more(lock, batch.size(), wanted, began)) break;
  }
  if (ctx.now_ms >= next_expiry_sweep_ms_) {
    auto sweep = db_->prepare("DELETE FROM idempotency WHERE expires_ms <= ?1");
    if (!sweep || !sweep->bind(1, ctx.now_ms).run()) {
      return fail_all(db_->error("idempotency expiry"));
    }
    next_expiry_sweep_ms_ = ctx.now_ms + kExpirySweepMs;
  }
  if (auto flushed = ctx.flush(); !flushed) return fail_all(flushed.error());
  if (auto committed = db_->exec("COMMIT"); !committed) return fail_all(committed.error());
  std::size_t size = batch.size();
  settle_trims(ctx, batch);
  complete_all(batch);
  std::sort(ctx.touched.begin(), ctx.touched.end());
  ctx.touched.erase(std::unique(ctx.touched.begin(), ctx.touched.end()), ctx.touched.end());
  for (const auto& name : ctx.touched) waiters_.notify(name);
  return size;
}

}  // namespace replayrail::store::local
