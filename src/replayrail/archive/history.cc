#include "replayrail/archive/history.h"

#include <boost/asio/any_io_executor.hpp>
#include <boost/asio/associated_executor.hpp>
#include <boost/asio/async_result.hpp>
#include <boost/asio/execution/outstanding_work.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/prefer.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <cstdint>
#include <limits>

#include "replayrail/archive/rows.h"

namespace replayrail::archive {

namespace asio = boost::asio;

namespace {

// Runs `fn` (blocking) on `pool`, and resumes the awaiting coroutine on its own executor with
// what it returned.
template <class T, class Fn>
store::task<result<T>> on_pool(asio::thread_pool& pool, Fn fn) {
  auto initiate = [&pool](auto handler, Fn fn) {
    // Keeps the awaiting io_context running until the answer is back.
    asio::any_io_executor home = asio::prefer(asio::get_associated_executor(handler),
                                              asio::execution::outstanding_work.tracked);
    asio::post(
        pool, [fn = std::move(fn), handler = std::move(handler), home = std::move(home)]() mutable {
          asio::post(home, [handler = std::move(handler), answer = fn()]() mutable {
            std::move(handler)(std::move(answer));
          });
        });
  };
  return asio::async_initiate<decltype(asio::use_awaitable), void(result<T>)>(
      std::move(initiate), asio::use_awaitable, std::move(fn));
}

// An id as two bigint parameters. The archive's ids fit (it wrote them); a bound past them,
// whose seq does not fit, is replaced by the next id that does, which selects the same rows.
// (Callers keep `ms` below kMaxBigint.)
constexpr auto kMaxBigint = static_cast<std::uint64_t>(std::numeric_limits<std::int64_t>::max());

std::vector<pg::Param> id_params(std::string stream, StreamId id) {
  if (id.seq > kMaxBigint) id = {id.ms + 1, 0};
  return {std::move(stream), std::to_string(id.ms), std::to_string(id.seq)};
}

}  // namespace

ArchiveHistory::ArchiveHistory(std::string database_url, std::size_t threads)
    : url_(std::move(database_url)), pool_(threads) {}

ArchiveHistory::~ArchiveHistory() { pool_.join(); }

template <class T, class Fn>
store::task<result<T>> ArchiveHistory::with_connection(Fn fn) {
  return on_pool<T>(pool_, [this, fn = std::move(fn)]() -> result<T> {
    pg::Connection db;
    {
      std::lock_guard lock(mu_);
      if (!idle_.empty()) {
        db = std::move(idle_.back());
        idle_.pop_back();
      }
    }
    if (!db) RR_TRY_ASSIGN(db, pg::Connection::open(url_));
    result<T> answer = fn(db);
    if (answer) {  // a connection that failed is not used again
      std::lock_guard lock(mu_);
      idle_.push_back(std::move(db));
    }
    return answer;
  });
}

// These are not coroutines: GCC 12 destroys a lambda temporary in a co_await expression twice.
store::task<result<std::optional<std::vector<EventPtr>>>> ArchiveHistory::range(
    std::string_view stream, StreamId after, StreamId through, std::size_t limit) {
  return with_connection<Range>(
      [this, stream = std::string(stream), after, through, limit](pg::Connection& db) {
        if (through <= after || limit == 0) return result<Range>(Range(std::vector<EventPtr>{}));
        return query(db, stream, after, through, limit);
      });
}

store::task<result<std::vector<ArchivedStream>>> ArchiveHistory::streams() {
  return with_connection<std::vector<ArchivedStream>>(
      [this](pg::Connection& db) -> result<std::vector<ArchivedStream>> {
        std::vector<ArchivedStream> out;
        bool any = false;
        RR_TRY_ASSIGN(any, archived(db));
        if (!any) return out;
        pg::Result rows;
        RR_TRY_ASSIGN(rows, db.exec(R"sql(
SELECT c.stream, c.events, c.ms, c.seq, encode(c.hash, 'hex'), c.updated_at,
       (SELECT count(*) FROM rr_archive_gaps g WHERE g.stream = c.stream)
FROM rr_archive_cursors c ORDER BY c.stream)sql"));
        for (int i = 0; i < PQntuples(rows.get()); ++i) {
          out.push_back({.stream = pg::text(rows, i, 0),
                         .events = number(rows, i, 1),
                         .last_id = {number(rows, i, 2), number(rows, i, 3)},
                         .head = pg::text(rows, i, 4),
                         .gaps = number(rows, i, 6),
                         .updated_at = pg::text(rows, i, 5)});
        }
        return out;
      });
}

store::task<result<std::vector<ArchivedEvent>>> ArchiveHistory::search(ArchiveQuery q) {
  return with_connection<std::vector<ArchivedEvent>>(
      [this, q = std::move(q)](pg::Connection& db) -> result<std::vector<ArchivedEvent>> {
        std::vector<ArchivedEvent> out;
        bool any = false;
        RR_TRY_ASSIGN(any, archived(db));
        if (!any) return out;
        // No archived id is that large (they are bigint): nothing is after it.
        if (q.after.ms >= kMaxBigint) return out;
        auto params = id_params(q.stream, q.after.is_zero() ? StreamId{} : q.after.next());
        std::string sql = "SELECT " + std::string(kEventColumns) +
                          ", encode(prev_hash, 'hex'), encode(hash, 'hex') FROM rr_archive_events "
                          "WHERE stream = $1 AND (ms, seq) >= ($2::bigint, $3::bigint)";
        if (!q.type.empty()) {
          params.push_back(q.type);
          sql += " AND type = $" + std::to_string(params.size());
        }
        if (!q.event_id.empty()) {
          params.push_back(q.event_id);
          sql += " AND event_id = $" + std::to_string(params.size());
        }
        if (!q.publisher.empty()) {
          params.push_back(q.publisher);
          sql +=
              " AND metadata::jsonb -> 'publisher' ->> 'sub' = $" + std::to_string(params.size());
        }
        sql += " ORDER BY ms, seq LIMIT " + std::to_string(q.limit);
        pg::Result rows;
        RR_TRY_ASSIGN(rows, db.exec(sql, params));
        for (int i = 0; i < PQntuples(rows.get()); ++i) {
          out.push_back({std::make_shared<const Event>(read_event(rows, i)), pg::text(rows, i, 9),
                         pg::text(rows, i, 10)});
        }
        return out;
      });
}

store::task<result<std::optional<ChainReport>>> ArchiveHistory::verify(std::string stream) {
  return with_connection<std::optional<ChainReport>>(
      [stream = std::move(stream)](pg::Connection& db) -> result<std::optional<ChainReport>> {
        std::vector<ChainReport> reports;
        RR_TRY_ASSIGN(reports, archive::verify(db, stream));
        if (reports.empty() ||
            (reports.front().events == 0 && reports.front().gaps == 0 && !reports.front().broken)) {
          return std::optional<ChainReport>();
        }
        return std::optional<ChainReport>(std::move(reports.front()));
      });
}

result<bool> ArchiveHistory::archived(pg::Connection& db) {
  if (tables_seen_) return true;
  bool exist = false;
  RR_TRY_ASSIGN(exist, tables_exist(db));
  if (exist) tables_seen_ = true;
  return exist;
}

auto ArchiveHistory::query(pg::Connection& db, const std::string& stream, StreamId after,
                           StreamId through, std::size_t limit) -> result<Range> {
  bool any = false;
  RR_TRY_ASSIGN(any, archived(db));
  if (!any) return Range();  // nothing archived yet: no tables

  // The first id the reader lacks. How far the stream is archived; the last gap after that id;
  // whether the archive begins at or before it (an archive begun on a stream trimmed already
  // notes that as a gap, but one written before it did so does not).
  const StreamId lacks = after.is_zero() ? StreamId{} : after.next();
  pg::Result reach;
  RR_TRY_ASSIGN(reach, db.exec(R"sql(
SELECT c.ms, c.seq, g.first_ms, g.first_seq,
       EXISTS (SELECT 1 FROM rr_archive_events e
               WHERE e.stream = c.stream AND (e.ms, e.seq) <= ($2::bigint, $3::bigint))
FROM rr_archive_cursors c
LEFT JOIN LATERAL (
  SELECT first_ms, first_seq FROM rr_archive_gaps
  WHERE stream = c.stream AND (first_ms, first_seq) > ($2::bigint, $3::bigint)
  ORDER BY first_ms DESC, first_seq DESC LIMIT 1) g ON true
WHERE c.stream = $1)sql",
                               id_params(stream, lacks)));
  if (PQntuples(reach.get()) != 1) return Range();  // not archived at all
  if (StreamId{number(reach, 0, 0), number(reach, 0, 1)} < through) return Range();  // not yet
  const bool gap = !PQgetisnull(reach.get(), 0, 2);
  StreamId from = lacks;
  if (!after.is_zero()) {
    // Events after the reader's cursor were lost, or the archive begins after it.
    if (gap || pg::text(reach, 0, 4) != "t") return Range();
  } else if (gap) {
    // From the start: after the last loss.
    from = {number(reach, 0, 2), number(reach, 0, 3)};
  }

  auto params = id_params(stream, from);
  params.push_back(std::to_string(through.ms));
  params.push_back(std::to_string(through.seq));
  pg::Result rows;
  RR_TRY_ASSIGN(rows, db.exec("SELECT " + std::string(kEventColumns) +
                                  " FROM rr_archive_events WHERE stream = $1 "
                                  "AND (ms, seq) >= ($2::bigint, $3::bigint) "
                                  "AND (ms, seq) <= ($4::bigint, $5::bigint) "
                                  "ORDER BY ms, seq LIMIT " +
                                  std::to_string(limit),
                              params));
  std::vector<EventPtr> events;
  events.reserve(static_cast<std::size_t>(PQntuples(rows.get())));
  for (int i = 0; i < PQntuples(rows.get()); ++i) {
    events.push_back(std::make_shared<const Event>(read_event(rows, i)));
  }
  return Range(std::move(events));
}

}  // namespace replayrail::archive
