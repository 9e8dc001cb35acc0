#include "replayrail/store/local/writer.h"

#include <algorithm>

#include "replayrail/core/random.h"

namespace replayrail::store::local {

namespace {

// How often the writer deletes expired idempotency records.
constexpr std::uint64_t kExpirySweepMs = 1000;

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
  s.target_length = s.row.length;
  return &streams_.emplace(std::string(name), std::move(s)).first->second;
}

result<void> WriteContext::apply_trims() {
  for (auto& [name, s] : streams_) {
    if (s.row.length <= s.target_length) continue;
    std::uint64_t drop = s.row.length - s.target_length;
    auto last = db.prepare(
        "SELECT ms, seq FROM events WHERE stream = ?1 ORDER BY ms, seq LIMIT 1 OFFSET ?2");
    if (!last) return last.error();
    last->bind(1, name).bind(2, drop - 1);
    bool row;
    RR_TRY_ASSIGN(row, last->step());
    if (!row) return make_error(errc::internal, "stream length out of step with its events");
    StreamId through{last->uint64(0), last->uint64(1)};
    auto del = db.prepare("DELETE FROM events WHERE stream = ?1 AND (ms, seq) <= (?2, ?3)");
    if (!del) return del.error();
    RR_TRY(del->bind(1, name).bind(2, through.ms).bind(3, through.seq).run());
    s.row.length = s.target_length;
    s.row.trimmed_through = through;
    s.dirty = true;
  }
  return {};
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
               std::function<std::uint64_t()> now_ms, std::size_t max_batch,
               std::chrono::microseconds commit_delay)
    : db_(std::move(db)),
      waiters_(waiters),
      now_ms_(std::move(now_ms)),
      max_batch_(max_batch),
      commit_delay_(commit_delay),
      thread_([this] { run(); }) {}

Writer::~Writer() {
  {
    std::lock_guard lock(mu_);
    stopping_ = true;
  }
  cv_.notify_one();
  thread_.join();
  // Nothing can be queued after stopping_, and run() returned only with an empty queue.
}

void Writer::submit(std::unique_ptr<Op> op) {
  bool wake = false;
  {
    std::lock_guard lock(mu_);
    if (!stopping_) {
      queue_.push_back(std::move(op));
      wake = std::exchange(idle_, false) || (wanted_ != 0 && queue_.size() == wanted_);
    }
  }
  if (op) {
    op->fail(make_error(errc::store_unavailable, "the local store is closing"));
    std::vector<std::unique_ptr<Op>> one;
    one.push_back(std::move(op));
    complete_all(one);
    return;
  }
  // A busy writer takes what queued up when its batch is done; waking it each time would cost a
  // futex call per write.
  if (wake) cv_.notify_one();
}

void Writer::run() {
  std::vector<std::unique_ptr<Op>> batch;
  std::size_t last_batch = 0;
  for (;;) {
    {
      std::unique_lock lock(mu_);
      idle_ = queue_.empty();
      cv_.wait(lock, [this] { return stopping_ || !queue_.empty(); });
      idle_ = false;
      if (queue_.empty()) return;  // stopping, and nothing left to write
      // Commit delay, as PostgreSQL's commit_delay but adaptive: the writers the previous batch
      // completed are likely about to write again. Waiting up to `commit_delay_` for most of
      // them lets one fsync serve them all instead of two. A lone writer never waits.
      std::size_t wanted = last_batch - last_batch / 8;
      if (commit_delay_.count() > 0 && !stopping_ && queue_.size() < wanted) {
        wanted_ = wanted;
        cv_.wait_for(lock, commit_delay_, [this] { return stopping_ || queue_.size() >= wanted_; });
        wanted_ = 0;
      }
      while (!queue_.empty() && batch.size() < max_batch_) {
        batch.push_back(std::move(queue_.front()));
        queue_.pop_front();
      }
    }
    last_batch = batch.size();
    run_batch(batch);
    batch.clear();
  }
}

void Writer::complete_all(std::vector<std::unique_ptr<Op>>& ops) {
  while (!ops.empty()) {
    auto executor = ops.front()->executor();
    std::vector<std::unique_ptr<Op>> group, rest;
    for (auto& op : ops) (op->executor() == executor ? group : rest).push_back(std::move(op));
    ops.swap(rest);
    boost::asio::post(executor, [group = std::move(group)] {
      for (auto& op : group) op->complete();
    });
  }
}

void Writer::run_batch(std::vector<std::unique_ptr<Op>>& batch) {
  WriteContext ctx(*db_, now_ms_());
  auto fail_all = [&](Error e) {
    (void)db_->exec("ROLLBACK");
    for (auto& op : batch) op->fail(e);
    complete_all(batch);
  };
  if (auto begun = db_->exec("BEGIN IMMEDIATE"); !begun) return fail_all(begun.error());
  for (auto& op : batch) {
    if (!op->apply(ctx)) {
      return fail_all(
          make_error(errc::store_unavailable, "a write failed and its batch was rolled back"));
    }
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
  complete_all(batch);
  std::sort(ctx.touched.begin(), ctx.touched.end());
  ctx.touched.erase(std::unique(ctx.touched.begin(), ctx.touched.end()), ctx.touched.end());
  for (const auto& name : ctx.touched) waiters_.notify(name);
}

}  // namespace replayrail::store::local
