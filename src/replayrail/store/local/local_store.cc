#include "replayrail/store/local/local_store.h"

#include <fcntl.h>
#include <sys/file.h>
#include <unistd.h>

#include <boost/asio/this_coro.hpp>
#include <cerrno>
#include <cstring>

#include "replayrail/core/timestamp.h"
#include "replayrail/store/local/local_state.h"

namespace replayrail::store {

namespace asio = boost::asio;
using local::WriteContext;

namespace {

// Holds an exclusive flock on `<dir>/LOCK` for the store's life: a second process (or a second
// store in this one) opening the directory fails cleanly instead of sharing the writer role.
result<int> lock_directory(const std::filesystem::path& dir) {
  auto path = dir / "LOCK";
  int fd = ::open(path.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0644);
  if (fd < 0) {
    return make_error(errc::store_unavailable,
                      "cannot open " + path.string() + ": " + std::strerror(errno));
  }
  if (::flock(fd, LOCK_EX | LOCK_NB) != 0) {
    int err = errno;
    ::close(fd);
    if (err == EWOULDBLOCK) {
      return make_error(errc::store_unavailable, "data directory in use: " + dir.string() +
                                                     " is open in another ReplayRail process");
    }
    return make_error(errc::store_unavailable,
                      "cannot lock " + path.string() + ": " + std::strerror(err));
  }
  return fd;
}

}  // namespace

LocalStore::State::~State() {
  writer.reset();  // fails queued writes and joins the writer thread first
  readers.reset();
  if (lock_fd >= 0) ::close(lock_fd);
}

result<std::shared_ptr<LocalStore>> LocalStore::open(Options options) {
  if (!options.now_ms) options.now_ms = unix_now_ms;
  if (options.max_batch == 0) options.max_batch = 1;
  if (options.trim_chunk == 0) options.trim_chunk = 1;
  if (options.fsync == local::Fsync::batch && options.fsync_interval.count() <= 0) {
    return make_error(errc::invalid_argument, "fsync=batch needs a positive fsync interval");
  }
  std::error_code ec;
  std::filesystem::create_directories(options.dir, ec);
  if (ec) {
    return make_error(errc::store_unavailable,
                      "cannot create data directory " + options.dir.string() + ": " + ec.message());
  }
  auto state = std::make_unique<State>();
  RR_TRY_ASSIGN(state->lock_fd, lock_directory(options.dir));
  state->db_path = options.dir / "replayrail.db";

  std::unique_ptr<sqlite::Connection> db;
  RR_TRY_ASSIGN(db, sqlite::Connection::open(state->db_path, true));
  auto opened = local::configure(*db, options.fsync);
  if (opened) opened = local::prepare_schema(*db);
  // The writer is the connection that restarts the WAL, so the one to which the limit applies.
  if (opened) {
    opened = db->exec("PRAGMA journal_size_limit=" + std::to_string(options.wal_size_limit));
  }
  if (!opened) {
    Error e = opened.error();
    e.message = "cannot open the local store at " + state->db_path.string() + ": " + e.message;
    return e;
  }
  state->readers = std::make_unique<local::ReaderPool>(state->db_path, options.fsync);
  // About one fsync: only worth waiting for when a commit costs one.
  auto commit_delay = options.fsync == local::Fsync::always ? std::chrono::microseconds(200)
                                                            : std::chrono::microseconds(0);
  auto sync_interval =
      options.fsync == local::Fsync::batch ? options.fsync_interval : std::chrono::milliseconds(0);
  state->writer = std::make_unique<local::Writer>(std::move(db), state->waiters, options.now_ms,
                                                  local::Writer::Options{
                                                      .max_batch = options.max_batch,
                                                      .commit_delay = commit_delay,
                                                      .sync_interval = sync_interval,
                                                      .trim_chunk = options.trim_chunk,
                                                  });
  state->options = std::move(options);
  return std::shared_ptr<LocalStore>(new LocalStore(std::move(state)));
}

LocalStore::LocalStore(std::unique_ptr<State> state) : state_(std::move(state)) {}
LocalStore::~LocalStore() = default;

std::filesystem::path LocalStore::database_path() const { return state_->db_path; }

namespace {

// What the idempotency table remembers of a chosen event_id.
struct Remembered {
  StreamId id;
  std::string created_at;
  Fingerprint fingerprint{};
};

// The record of a chosen event_id of `stream`, if any (and not expired).
result<std::optional<Remembered>> remembered(WriteContext& ctx, std::string_view stream,
                                             std::string_view event_id) {
  auto seen = ctx.db.prepare(
      "SELECT ms, seq, created_at, fingerprint FROM idempotency "
      "WHERE stream = ?1 AND event_id = ?2 AND expires_ms > ?3");
  if (!seen) return seen.error();
  seen->bind(1, stream).bind(2, event_id).bind(3, ctx.now_ms);
  bool found;
  RR_TRY_ASSIGN(found, seen->step());
  if (!found) return std::nullopt;
  Remembered r{{seen->uint64(0), seen->uint64(1)}, std::string(seen->text(2))};
  auto blob = seen->blob(3);
  if (blob.size() != r.fingerprint.size()) {
    return make_error(errc::internal, "stored fingerprint has a wrong size");
  }
  std::memcpy(r.fingerprint.data(), blob.data(), blob.size());
  return r;
}

// append() inside the writer's transaction.
result<Appended> append_in(WriteContext& ctx, std::string_view stream, NewEvent& event,
                           const AppendOptions& options) {
  auto& db = ctx.db;
  const Event& e = event.event;
  if (event.chosen_event_id) {
    std::optional<Remembered> seen;
    RR_TRY_ASSIGN(seen, remembered(ctx, stream, e.event_id));
    if (seen) {
      if (seen->fingerprint != event.fingerprint) {
        return duplicate_conflict_error(stream, e.event_id);
      }
      // Same content: the event as first stored (its id and created_at).
      auto original = std::make_shared<Event>(std::move(event.event));
      original->id = seen->id;
      original->created_at = std::move(seen->created_at);
      return Appended{std::move(original), true};
    }
  }
  WriteContext::Stream* s;
  RR_TRY_ASSIGN(s, ctx.stream(stream, true));
  StreamId id;
  RR_TRY_ASSIGN(id, next_stream_id(s->row.last_id, ctx.now_ms));
  auto insert = db.prepare("INSERT INTO events (stream, " RR_EVENT_COLUMNS
                           ") VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10)");
  if (!insert) return insert.error();
  RR_TRY(insert->bind(1, stream)
             .bind(2, id.ms)
             .bind(3, id.seq)
             .bind(4, e.event_id)
             .bind(5, e.channel)
             .bind(6, e.type)
             .bind(7, e.payload)
             .bind(8, e.actor)
             .bind(9, e.metadata)
             .bind(10, e.created_at)
             .run());
  if (event.chosen_event_id && options.idempotency_ttl.count() > 0) {
    auto remember = db.prepare(
        "INSERT OR REPLACE INTO idempotency "
        "(stream, event_id, ms, seq, created_at, fingerprint, expires_ms) "
        "VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)");
    if (!remember) return remember.error();
    auto expires = ctx.now_ms + static_cast<std::uint64_t>(options.idempotency_ttl.count()) * 1000;
    RR_TRY(remember->bind(1, stream)
               .bind(2, e.event_id)
               .bind(3, id.ms)
               .bind(4, id.seq)
               .bind(5, e.created_at)
               .bind_blob(6, event.fingerprint.data(), event.fingerprint.size())
               .bind(7, expires)
               .run());
  }
  s->row.last_id = id;
  s->row.length += 1;
  s->target_length += 1;
  if (options.maxlen && s->target_length > options.maxlen) s->target_length = options.maxlen;
  // MAXLEN ~ promises no exact length: that append need not wait for a trim left unfinished.
  if (options.maxlen && !options.approximate) ctx.wait_for_trim(*s);
  s->dirty = true;
  ctx.touch(stream);
  auto stored = std::make_shared<Event>(std::move(event.event));
  stored->id = id;
  return Appended{std::move(stored), false};
}

}  // namespace

task<result<Appended>> LocalStore::append(std::string_view stream, NewEvent event,
                                          AppendOptions options) {
  auto op = [stream = std::string(stream), event = std::move(event),
             options](WriteContext& ctx) mutable { return append_in(ctx, stream, event, options); };
  co_return co_await state_->writer->call<Appended>(std::move(op));
}

// One write operation, so one transaction: the conflict check sees what the appends will.
task<result<std::vector<Appended>>> LocalStore::append_batch(std::string_view stream,
                                                             std::vector<NewEvent> events,
                                                             AppendOptions options) {
  if (events.empty()) co_return std::vector<Appended>{};
  auto op = [stream = std::string(stream), events = std::move(events),
             options](WriteContext& ctx) mutable -> result<std::vector<Appended>> {
    RR_TRY(check_batch_conflicts(
        stream, events, options,
        [&](const std::string& event_id) -> result<std::optional<Fingerprint>> {
          std::optional<Remembered> seen;
          RR_TRY_ASSIGN(seen, remembered(ctx, stream, event_id));
          return seen ? std::optional(seen->fingerprint) : std::nullopt;
        }));
    std::vector<Appended> out;
    out.reserve(events.size());
    for (auto& e : events) {
      Appended appended;
      RR_TRY_ASSIGN(appended, append_in(ctx, stream, e, options));
      out.push_back(std::move(appended));
    }
    return out;
  };
  co_return co_await state_->writer->call<std::vector<Appended>>(std::move(op));
}

task<result<std::vector<EventPtr>>> LocalStore::range(std::string_view stream, StreamId after,
                                                      std::size_t limit, std::string_view epoch) {
  local::ReaderPool::Lease db;
  RR_CO_TRY_ASSIGN(db, state_->readers->lease());
  std::optional<local::StreamRow> row;
  RR_CO_TRY_ASSIGN(row, local::load_stream(*db, stream));
  RR_CO_TRY(local::check_stored_cursor(*db, stream, row, after, epoch));
  if (!row || limit == 0) co_return std::vector<EventPtr>{};
  co_return local::load_events_after(*db, stream, after, limit);
}

task<result<std::vector<StreamEvents>>> LocalStore::read(std::span<const StreamCursor> cursors,
                                                         ReadOptions options) {
  RR_CO_TRY(check_read_args(cursors.size(), options));
  ReadDeadline deadline(options);
  auto executor = co_await asio::this_coro::executor;
  for (;;) {
    // Registered before looking: a commit after the look wakes us, one before it is seen.
    auto registration = options.block ? state_->register_waiter(executor, cursors) : nullptr;
    std::vector<StreamEvents> out;
    {
      local::ReaderPool::Lease db;
      RR_CO_TRY_ASSIGN(db, state_->readers->lease());
      for (const auto& c : cursors) {
        std::optional<local::StreamRow> row;
        RR_CO_TRY_ASSIGN(row, local::load_stream(*db, c.stream));
        RR_CO_TRY(local::check_stored_cursor(*db, c.stream, row, c.after, c.epoch));
        if (!row || row->last_id <= c.after) continue;
        std::vector<EventPtr> events;
        RR_CO_TRY_ASSIGN(events, local::load_events_after(*db, c.stream, c.after, options.count));
        if (!events.empty()) out.push_back({c.stream, std::move(events)});
      }
    }
    if (!out.empty() || !options.block || deadline.passed()) co_return out;
    if (!co_await registration->waiter().wait(deadline.remaining()) && deadline.passed()) {
      co_return std::vector<StreamEvents>{};
    }
  }
}

task<result<StreamInfo>> LocalStore::info(std::string_view stream) {
  local::ReaderPool::Lease db;
  RR_CO_TRY_ASSIGN(db, state_->readers->lease());
  std::optional<local::StreamRow> row;
  RR_CO_TRY_ASSIGN(row, local::load_stream(*db, stream));
  if (!row) co_return no_stream(stream);
  StreamInfo out;
  out.length = row->length;
  RR_CO_TRY_ASSIGN(out.first_id, local::load_first_id(*db, stream));
  out.last_id = row->last_id;
  out.trimmed_through = row->trimmed_through;
  out.epoch = row->epoch;
  RR_CO_TRY_ASSIGN(out.groups, local::load_groups(*db, stream));
  co_return out;
}

task<result<bool>> LocalStore::delete_stream(std::string_view stream) {
  auto op = [stream = std::string(stream)](WriteContext& ctx) -> result<bool> {
    WriteContext::Stream* s;
    RR_TRY_ASSIGN(s, ctx.stream(stream, false));
    if (!s) return false;
    for (const char* sql :
         {"DELETE FROM events WHERE stream = ?1", "DELETE FROM pending WHERE stream = ?1",
          "DELETE FROM consumers WHERE stream = ?1", "DELETE FROM groups WHERE stream = ?1",
          "DELETE FROM idempotency WHERE stream = ?1", "DELETE FROM streams WHERE name = ?1"}) {
      auto st = ctx.db.prepare(sql);
      if (!st) return st.error();
      RR_TRY(st->bind(1, stream).run());
    }
    ctx.forget(stream);
    return true;
  };
  co_return co_await state_->writer->call<bool>(std::move(op));
}

task<result<std::uint64_t>> LocalStore::trim_before(std::string_view stream, StreamId before) {
  // A write of at most trim_chunk deletions at a time, as a MAXLEN trim: a stream with a long
  // past to expire does not hold every other write up meanwhile.
  const std::uint64_t chunk = state_->options.trim_chunk;
  std::uint64_t removed = 0;
  for (;;) {
    auto op = [stream = std::string(stream), before, chunk](WriteContext& ctx) {
      return ctx.trim_before(stream, before, chunk);
    };
    std::uint64_t n;
    RR_CO_TRY_ASSIGN(n, co_await state_->writer->call<std::uint64_t>(std::move(op)));
    removed += n;
    if (n < chunk) co_return removed;
  }
}

task<result<std::vector<std::string>>> LocalStore::list_streams() {
  local::ReaderPool::Lease db;
  RR_CO_TRY_ASSIGN(db, state_->readers->lease());
  auto st = db->prepare("SELECT name FROM streams ORDER BY name");
  if (!st) co_return st.error();
  std::vector<std::string> out;
  for (;;) {
    bool row;
    RR_CO_TRY_ASSIGN(row, st->step());
    if (!row) co_return out;
    out.emplace_back(st->text(0));
  }
}

task<result<Topic>> LocalStore::create_topic(std::string_view name, std::uint32_t partitions) {
  RR_CO_TRY(check_topic(name, partitions));
  auto op = [name = std::string(name), partitions](WriteContext& ctx) -> result<Topic> {
    auto existing = local::load_topic(ctx.db, name);
    if (!existing) return existing.error();
    if (*existing) {
      if ((*existing)->partitions != partitions) {
        return topic_conflict_error(name, (*existing)->partitions, partitions);
      }
      return **existing;
    }
    Topic t{name, partitions, now_timestamp()};
    auto st =
        ctx.db.prepare("INSERT INTO topics (name, partitions, created_at) VALUES (?1, ?2, ?3)");
    if (!st) return st.error();
    RR_TRY(st->bind(1, t.name).bind(2, std::int64_t{partitions}).bind(3, t.created_at).run());
    return t;
  };
  co_return co_await state_->writer->call<Topic>(std::move(op));
}

task<result<std::optional<Topic>>> LocalStore::get_topic(std::string_view name) {
  local::ReaderPool::Lease db;
  RR_CO_TRY_ASSIGN(db, state_->readers->lease());
  co_return local::load_topic(*db, name);
}

task<result<std::vector<Topic>>> LocalStore::list_topics() {
  local::ReaderPool::Lease db;
  RR_CO_TRY_ASSIGN(db, state_->readers->lease());
  auto st = db->prepare(
      "SELECT name, partitions, created_at, max_length, max_age_ms FROM topics ORDER BY name");
  if (!st) co_return st.error();
  std::vector<Topic> out;
  for (;;) {
    bool row;
    RR_CO_TRY_ASSIGN(row, st->step());
    if (!row) co_return out;
    out.push_back(local::topic_row(*st));
  }
}

task<result<Topic>> LocalStore::set_topic_retention(std::string_view name,
                                                    TopicRetention retention) {
  RR_CO_TRY(check_retention(retention));
  auto op = [name = std::string(name), retention](WriteContext& ctx) -> result<Topic> {
    auto st = ctx.db.prepare("UPDATE topics SET max_length = ?2, max_age_ms = ?3 WHERE name = ?1");
    if (!st) return st.error();
    st->bind(1, name);
    if (retention.max_length) {
      st->bind(2, *retention.max_length);
    } else {
      st->bind_null(2);
    }
    if (retention.max_age) {
      st->bind(3, std::int64_t{retention.max_age->count()});
    } else {
      st->bind_null(3);
    }
    RR_TRY(st->run());
    auto t = local::load_topic(ctx.db, name);
    if (!t) return t.error();
    if (!*t) return no_topic(name);
    return std::move(**t);
  };
  co_return co_await state_->writer->call<Topic>(std::move(op));
}

task<result<bool>> LocalStore::delete_topic(std::string_view name) {
  auto op = [name = std::string(name)](WriteContext& ctx) -> result<bool> {
    auto st = ctx.db.prepare("DELETE FROM topics WHERE name = ?1");
    if (!st) return st.error();
    RR_TRY(st->bind(1, name).run());
    return ctx.db.changes() > 0;
  };
  co_return co_await state_->writer->call<bool>(std::move(op));
}

task<result<bool>> LocalStore::take_lease(std::string_view name, Millis ttl) {
  RR_CO_TRY(check_lease(name, ttl));
  RR_CO_TRY(state_->readers->lease());  // fails once the store is closed, as every call does
  co_return state_->leases.take(name, ttl);
}

task<result<void>> LocalStore::health() {
  local::ReaderPool::Lease db;
  RR_CO_TRY_ASSIGN(db, state_->readers->lease());
  auto st = db->prepare("SELECT 1");
  if (!st) co_return st.error();
  RR_CO_TRY(st->run());
  co_return result<void>{};
}

void LocalStore::close() {
  state_->writer->close();
  state_->readers->close();
  state_->waiters.close();
}

}  // namespace replayrail::store
