// Local store throughput (issue 3): durable appends/s with 200-byte payloads from 1 and from 64
// concurrent publishers, with fsync=always, batch (fsynced within a second) and never; range
// reads of a 1M-event stream; and, in the same run, the raw SQLite ceilings: the same rows
// inserted in 1000-row transactions with the same pragmas, and read with the store's query
// without making events of them, so each figure is also printed as a ratio. Also: a MAXLEN
// lowered, and a long past expired (trim_before), each with the latency of other appends
// meanwhile.
//
// Also printed: the same raw loop with 64-row transactions. 64 publishers that each wait for
// their append's commit can never have more than 64 rows in one transaction, so that figure is
// the most any store keeping "acknowledged = committed" can reach for them (with fsync=always
// it is set by what a commit's fsync costs). The shared machines are noisy: the
// 64-publisher and raw figures are medians of three runs, interleaved.
#include <unistd.h>

#include <algorithm>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/this_coro.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <chrono>
#include <cstdio>
#include <filesystem>
#include <memory>
#include <string>
#include <vector>

#include "picked.h"
#include "replayrail/core/random.h"
#include "replayrail/store/local/local_store.h"
#include "replayrail/store/local/rows.h"
#include "replayrail/store/local/schema.h"
#include "replayrail/store/local/sqlite.h"
#include "replayrail/store/testing/temp_dir.h"

namespace {

using namespace replayrail;
namespace asio = boost::asio;
using Clock = std::chrono::steady_clock;
using store::local::Fsync;

const std::string kPayload = [] {
  std::string p = R"({"note":")";
  p.append(200 - p.size() - 2, 'x');
  return p + "\"}";
}();

// "   runs: 112k 110k 114k" and the end of the line: each run of a median's three.
void print_runs(const std::vector<double>& r) {
  std::printf("   runs: %.0fk %.0fk %.0fk\n", r[0] / 1e3, r[1] / 1e3, r[2] / 1e3);
}

double median(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  return v[v.size() / 2];
}

// Writes back what earlier runs left dirty in the page cache, so that the kernel's writeback of
// it does not land in (and slow) the run about to be timed.
void settle_disk() { ::sync(); }

double seconds_since(Clock::time_point t) {
  return std::chrono::duration<double>(Clock::now() - t).count();
}

const char* name(Fsync f) {
  return f == Fsync::always ? "always" : f == Fsync::batch ? "batch" : "never";
}

// Appends `total` events from `publishers` concurrent coroutines; returns events/s.
double store_appends(Fsync fsync, int publishers, int total) {
  testing::TempDir dir("bench");
  auto s = store::LocalStore::open({.dir = dir.path(), .fsync = fsync}).value();
  asio::io_context io;
  NewEvent proto =
      make_event({.channel = "bench", .type = "bench.event", .payload = kPayload}).value();
  settle_disk();
  auto start = Clock::now();
  for (int p = 0; p < publishers; ++p) {
    asio::co_spawn(
        io,
        [](store::Store& s, const NewEvent& proto, int n) -> asio::awaitable<void> {
          for (int i = 0; i < n; ++i) {
            NewEvent e = proto;
            e.event.event_id = make_uuid_v4();
            (void)(co_await s.append("bench", std::move(e), {10'000'000})).value();
          }
        }(*s, proto, total / publishers),
        asio::detached);
  }
  io.run();
  return (total / publishers) * publishers / seconds_since(start);
}

// The same rows straight into SQLite, `per_transaction` per transaction, same schema and pragmas.
// A raw database with the store's schema and pragmas, in `dir`.
std::unique_ptr<store::sqlite::Connection> raw_database(const testing::TempDir& dir, Fsync fsync) {
  auto db = store::sqlite::Connection::open(dir.path() / "raw.db", true).value();
  store::local::configure(*db, fsync).value();
  store::local::prepare_schema(*db).value();
  return db;
}

// Inserts `total` rows of stream "bench" (ids 1700000000000-0, -1, …) in transactions of
// `per_transaction`.
void raw_insert(store::sqlite::Connection& db, int total, int per_transaction) {
  NewEvent e = make_event({.channel = "bench", .type = "bench.event", .payload = kPayload}).value();
  std::uint64_t ms = 1'700'000'000'000;
  for (int done = 0; done < total;) {
    db.exec("BEGIN IMMEDIATE").value();
    for (int i = 0; i < per_transaction && done < total; ++i, ++done) {
      auto st =
          db.prepare(
                "INSERT INTO events (stream, ms, seq, event_id, channel, type, payload, "
                "actor, metadata, created_at) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10)")
              .value();
      std::string id = make_uuid_v4();
      st.bind(1, "bench").bind(2, ms).bind(3, std::uint64_t(done)).bind(4, id);
      st.bind(5, e.event.channel).bind(6, e.event.type).bind(7, e.event.payload);
      st.bind(8, e.event.actor).bind(9, e.event.metadata).bind(10, e.event.created_at);
      st.run().value();
    }
    db.exec("COMMIT").value();
  }
}

double raw_sqlite_inserts(Fsync fsync, int total, int per_transaction) {
  testing::TempDir dir("bench-raw");
  auto db = raw_database(dir, fsync);
  settle_disk();
  auto start = Clock::now();
  raw_insert(*db, total, per_transaction);
  return total / seconds_since(start);
}

// The ceiling of a range read: the store's query over the same rows, page by page, each row's
// columns looked at in place (no event made of them). Returns events/s.
double raw_sqlite_range(const std::filesystem::path& db_path, std::size_t page) {
  auto db = store::sqlite::Connection::open(db_path, false).value();
  store::local::configure(*db, Fsync::never).value();
  auto start = Clock::now();
  std::size_t read = 0, bytes = 0;
  for (StreamId after;;) {
    auto st = db->prepare(store::local::kEventsAfterSql).value();
    st.bind(1, std::string_view("big")).bind(2, after.ms).bind(3, after.seq).bind(4, page);
    std::size_t rows = 0;
    while (st.step().value()) {
      after = {st.uint64(0), st.uint64(1)};
      for (int c = 2; c < 9; ++c) bytes += st.text(c).size();
      ++rows;
    }
    if (rows == 0) break;
    read += rows;
  }
  double rate = read / seconds_since(start);
  if (bytes == 0) std::printf("(nothing read)\n");  // keeps the column reads
  return rate;
}

struct RangeReads {
  std::vector<double> store, raw;  // events/s of each run, interleaved
};

// Range reads over a stream of `total` events, 1000 per page: the store's, and the raw ceiling,
// three of each, interleaved.
RangeReads range_reads(int total) {
  testing::TempDir dir("bench-range");
  auto s = store::LocalStore::open({.dir = dir.path(), .fsync = Fsync::never}).value();
  asio::io_context io;
  RangeReads out;
  asio::co_spawn(
      io,
      [](store::Store& s, int total, std::filesystem::path db_path,
         RangeReads& out) -> asio::awaitable<void> {
        NewEvent proto =
            make_event({.channel = "big", .type = "bench.event", .payload = kPayload}).value();
        // Filled by 64 concurrent publishers so the writer batches.
        int per = total / 64;
        auto ex = co_await asio::this_coro::executor;
        int finished = 0;
        for (int p = 0; p < 64; ++p) {
          asio::co_spawn(
              ex,
              [](store::Store& s, const NewEvent& proto, int n,
                 int& finished) -> asio::awaitable<void> {
                for (int i = 0; i < n; ++i) {
                  NewEvent e = proto;
                  e.event.event_id = make_uuid_v4();
                  (void)(co_await s.append("big", std::move(e), {0, std::chrono::seconds(0)}))
                      .value();
                }
                ++finished;
              }(s, proto, per, finished),
              asio::detached);
        }
        asio::steady_timer t(ex);
        while (finished < 64) {
          t.expires_after(std::chrono::milliseconds(5));
          co_await t.async_wait(asio::use_awaitable);
        }
        for (int run = 0; run < 3; ++run) {
          auto start = Clock::now();
          std::size_t read = 0;
          for (StreamId after;;) {
            auto page = (co_await s.range("big", after, 1000, {})).value();
            if (page.empty()) break;
            read += page.size();
            after = page.back()->id;
          }
          out.store.push_back(read / seconds_since(start));
          out.raw.push_back(raw_sqlite_range(db_path, 1000));
        }
      }(*s, total, dir.path() / "replayrail.db", out),
      asio::detached);
  io.run();
  return out;
}

// Fills stream "big" of `s` with `events` events, in batches of 5000; returns the last one's id.
StreamId fill_big(store::Store& s, asio::io_context& io, int events) {
  StreamId last;
  asio::co_spawn(
      io,
      [](store::Store& s, int events, StreamId& last) -> asio::awaitable<void> {
        NewEvent proto =
            make_event({.channel = "big", .type = "bench.event", .payload = kPayload}).value();
        for (int done = 0; done < events; done += 5000) {
          std::vector<NewEvent> batch(std::min(5000, events - done), proto);
          for (auto& e : batch) e.event.event_id = make_uuid_v4();
          last = (co_await s.append_batch("big", std::move(batch), {})).value().back().event->id;
        }
      }(s, events, last),
      asio::detached);
  io.run();
  io.restart();
  return last;
}

// Runs `work` (which sets `done` at its end) with appends to another stream, one at a time,
// meanwhile; returns how long `work` took and prints the appends' latencies.
double with_appends_meanwhile(store::Store& s, asio::io_context& io, asio::awaitable<void> work,
                              const bool& done) {
  settle_disk();
  std::vector<double> waits;  // ms
  auto start = Clock::now();
  asio::co_spawn(io, std::move(work), asio::detached);
  asio::co_spawn(
      io,
      [](store::Store& s, const bool& done, std::vector<double>& waits) -> asio::awaitable<void> {
        NewEvent proto =
            make_event({.channel = "other", .type = "bench.event", .payload = kPayload}).value();
        while (!done) {
          auto start = Clock::now();
          (void)(co_await s.append("other", proto, {10'000})).value();
          waits.push_back(1e3 * seconds_since(start));
        }
      }(s, done, waits),
      asio::detached);
  io.run();
  io.restart();
  const double took = seconds_since(start);
  std::sort(waits.begin(), waits.end());
  std::printf("  meanwhile %zu appends to another stream: p50 %.2f ms, p99 %.2f ms, max %.2f ms\n",
              waits.size(), waits[waits.size() / 2], waits[waits.size() * 99 / 100], waits.back());
  return took;
}

// Lowering a stream's limit far below its length: a 1M-event stream appended to with a MAXLEN
// of 10,000 (fsync=always). Prints how long that append took (the trim of 990,000 events runs
// over many transactions) and the latencies of appends to another stream, one at a time,
// meanwhile: the most any of them waited is about one transaction's share of the trim.
void lowered_limit() {
  testing::TempDir dir("bench-trim");
  auto s = store::LocalStore::open({.dir = dir.path(), .fsync = Fsync::always}).value();
  asio::io_context io;
  fill_big(*s, io, 1'000'000);
  std::printf("\nMAXLEN lowered from 1,000,000 to 10,000 (fsync=always):\n");
  bool done = false;
  const double took = with_appends_meanwhile(
      *s, io,
      [](store::Store& s, bool& done) -> asio::awaitable<void> {
        NewEvent e =
            make_event({.channel = "big", .type = "bench.event", .payload = kPayload}).value();
        (void)(co_await s.append("big", std::move(e), {10'000})).value();
        done = true;
      }(*s, done),
      done);
  std::printf("  the append that trims returned after %.2f s\n", took);
}

// Retention by age over a long past: trim_before removing the oldest 990,000 events of a
// 1M-event stream (fsync=always), 2000 a transaction, with appends to another stream meanwhile;
// and, in the same run, the ceiling: raw SQLite deleting as many rows in one statement.
void expired_past() {
  testing::TempDir dir("bench-expire");
  auto s = store::LocalStore::open({.dir = dir.path(), .fsync = Fsync::always}).value();
  asio::io_context io;
  const StreamId before = fill_big(*s, io, 990'000).next();
  fill_big(*s, io, 10'000);
  std::printf("\nexpiring 990,000 of 1,000,000 events (fsync=always)       events/s   of raw\n");
  bool done = false;
  const double took = with_appends_meanwhile(
      *s, io,
      [](store::Store& s, StreamId before, bool& done) -> asio::awaitable<void> {
        auto removed = (co_await s.trim_before("big", before)).value();
        if (removed != 990'000)
          std::printf("(removed %llu)\n", static_cast<unsigned long long>(removed));
        done = true;
      }(*s, before, done),
      done);

  testing::TempDir raw_dir("bench-expire-raw");
  auto db = raw_database(raw_dir, Fsync::always);
  raw_insert(*db, 1'000'000, 1000);
  settle_disk();
  auto start = Clock::now();
  db->exec("BEGIN IMMEDIATE").value();
  auto del =
      db->prepare("DELETE FROM events WHERE stream = 'bench' AND (ms, seq) < (?1, ?2)").value();
  del.bind(1, std::uint64_t{1'700'000'000'000}).bind(2, std::uint64_t{990'000}).run().value();
  db->exec("COMMIT").value();
  const double raw = 990'000 / seconds_since(start);
  std::printf("  raw SQLite, one DELETE (the ceiling)           %12.0f %8.0f%%\n", raw, 100.0);
  std::printf("  store, trim_before                             %12.0f %8.0f%%  (%.2f s)\n",
              990'000 / took, 100 * (990'000 / took) / raw, took);
}

}  // namespace

// Arguments pick what runs (`always`, `batch`, `never`, `trim`, `expire`, `read`; all by
// default), e.g. to profile one.
int main(int argc, char** argv) {
  const Picked wanted(argc, argv);
  std::printf("local store benchmark (200-byte payloads, server-generated event ids)\n\n");
  std::printf("%-8s %-38s %12s %9s\n", "fsync", "writers", "events/s", "of raw");
  for (Fsync f : {Fsync::always, Fsync::batch, Fsync::never}) {
    if (!wanted(name(f))) continue;
    std::vector<double> raw, raw64, many;
    for (int run = 0; run < 3; ++run) {
      raw.push_back(raw_sqlite_inserts(f, 200'000, 1000));
      raw64.push_back(raw_sqlite_inserts(f, f == Fsync::always ? 64'000 : 200'000, 64));
      many.push_back(store_appends(f, 64, 256'000));
    }
    double one = store_appends(f, 1, f == Fsync::always ? 3'000 : 50'000);
    double ceiling = median(raw);
    auto line = [&](const char* what, double rate, const std::vector<double>& runs) {
      std::printf("%-8s %-38s %12.0f %8.0f%%", name(f), what, rate, 100 * rate / ceiling);
      if (runs.empty()) {
        std::printf("\n");
      } else {
        print_runs(runs);
      }
    };
    line("raw SQLite, 1000-row transactions", ceiling, raw);
    line("raw SQLite, 64-row transactions", median(raw64), raw64);
    line("store, 1 publisher", one, {});
    line("store, 64 concurrent publishers", median(many), many);
  }
  if (wanted("trim")) lowered_limit();
  if (wanted("expire")) expired_past();
  if (!wanted("read")) return 0;
  auto reads = range_reads(1'000'000);
  std::printf("\nrange read of a 1M-event stream, 1000-event pages      events/s   of raw\n");
  std::printf("  raw SQLite, the same query (the ceiling)       %12.0f %8.0f%%", median(reads.raw),
              100.0);
  print_runs(reads.raw);
  std::printf("  store                                          %12.0f %8.0f%%",
              median(reads.store), 100 * median(reads.store) / median(reads.raw));
  print_runs(reads.store);
}
