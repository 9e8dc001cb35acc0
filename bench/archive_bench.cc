// The PostgreSQL archive (DESIGN §6), against a real PostgreSQL started here (the tests'
// harness): an archive pass over 100,000 events of 200-byte payloads in 10 streams, against the
// ceiling measured in the same run: COPY of the same rows into a table of the same shape, in
// transactions of the same size (1000 rows), without the hash chain. Then replay from the
// archive (the store trimmed all but the last 1000 events of each stream) through Rail, in
// pages of 1000, against the ceiling of plain SELECTs of the same pages over one connection.
#include <libpq-fe.h>

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/io_context.hpp>
#include <chrono>
#include <cstdio>
#include <string>
#include <vector>

#include "replayrail/archive/archive.h"
#include "replayrail/archive/history.h"
#include "replayrail/archive/loop.h"
#include "replayrail/core/event.h"
#include "replayrail/rail.h"
#include "replayrail/store/memory/memory_store.h"
#include "support/postgres_server.h"

namespace {

using namespace replayrail;
using Clock = std::chrono::steady_clock;

constexpr int kStreams = 10;
constexpr int kPerStream = 10'000;
constexpr std::size_t kBatch = 1000;

double seconds_since(Clock::time_point start) {
  return std::chrono::duration<double>(Clock::now() - start).count();
}

// COPY in text format: tabs and newlines in a value escaped (none here: compact JSON).
double copy_ceiling(const std::string& url, const std::vector<EventPtr>& events) {
  auto db = archive::pg::Connection::open(url).value();
  db.run("CREATE TABLE ceiling (LIKE rr_archive_events INCLUDING ALL)").value();
  PGconn* raw = PQconnectdb(url.c_str());
  const std::string hash(64, 'a');
  const auto start = Clock::now();
  for (std::size_t at = 0; at < events.size(); at += kBatch) {
    PQclear(PQexec(raw, "BEGIN"));
    PQclear(PQexec(raw,
                   "COPY ceiling (stream, ms, seq, event_id, channel, type, payload, actor, "
                   "metadata, created_at, prev_hash, hash) FROM STDIN"));
    std::string rows;
    for (std::size_t i = at; i < std::min(events.size(), at + kBatch); ++i) {
      const Event& e = *events[i];
      rows += e.channel + '\t' + std::to_string(e.id.ms) + '\t' + std::to_string(e.id.seq) + '\t' +
              e.event_id + '\t' + e.channel + '\t' + e.type + '\t' + e.payload + '\t' + e.actor +
              '\t' + e.metadata + '\t' + e.created_at + "\t\\\\x" + hash + "\t\\\\x" + hash + '\n';
    }
    PQputCopyData(raw, rows.data(), static_cast<int>(rows.size()));
    PQputCopyEnd(raw, nullptr);
    PQclear(PQgetResult(raw));
    PQclear(PQexec(raw, "COMMIT"));
  }
  const double s = seconds_since(start);
  auto count = db.exec("SELECT count(*) FROM ceiling").value();
  if (archive::pg::text(count, 0, 0) != std::to_string(events.size())) {
    std::fprintf(stderr, "the ceiling wrote %s rows\n", archive::pg::text(count, 0, 0).c_str());
  }
  PQfinish(raw);
  return static_cast<double>(events.size()) / s;
}

// Plain SELECTs of every archived event, a page of kBatch rows per query, over one connection.
double select_ceiling(const std::string& url, std::uint64_t& rows) {
  PGconn* raw = PQconnectdb(url.c_str());
  const auto start = Clock::now();
  for (int s = 0; s < kStreams; ++s) {
    const std::string stream = "orders-" + std::to_string(s);
    std::string ms = "0", seq = "0";
    for (;;) {
      const char* params[] = {stream.c_str(), ms.c_str(), seq.c_str()};
      PGresult* r = PQexecParams(
          raw,
          "SELECT ms, seq, event_id, channel, type, payload, actor, metadata, created_at FROM "
          "rr_archive_events WHERE stream = $1 AND (ms, seq) > ($2::bigint, $3::bigint) ORDER BY "
          "ms, seq LIMIT 1000",
          3, nullptr, params, nullptr, nullptr, 0);
      const int n = PQntuples(r);
      rows += static_cast<std::uint64_t>(n);
      if (n > 0) {
        ms = PQgetvalue(r, n - 1, 0);
        seq = PQgetvalue(r, n - 1, 1);
      }
      PQclear(r);
      if (n < 1000) break;
    }
  }
  PQfinish(raw);
  return static_cast<double>(rows) / seconds_since(start);
}

// Every event of every stream from the start, a page of kBatch at a time.
boost::asio::awaitable<void> replay_all(Rail& rail, std::uint64_t& events) {
  for (int s = 0; s < kStreams; ++s) {
    const std::string stream = "orders-" + std::to_string(s);
    StreamId after{};
    for (;;) {
      auto page = (co_await rail.replay(stream, Cursor::after(after), kBatch)).value();
      events += page.size();
      if (page.empty()) break;
      after = page.back()->id;
    }
  }
}

boost::asio::awaitable<void> append(store::Store& store, std::string stream,
                                    std::vector<NewEvent> batch, std::vector<EventPtr>& out) {
  for (auto& a : (co_await store.append_batch(stream, std::move(batch), {})).value()) {
    out.push_back(a.event);
  }
}

}  // namespace

int main() {
  testing::PostgresServer pg;
  auto store = std::make_shared<store::MemoryStore>();
  boost::asio::io_context io;
  const std::string payload = R"({"order_id":"ord_123456","pad":")" + std::string(160, 'x') + "\"}";
  std::vector<EventPtr> all;
  for (int s = 0; s < kStreams; ++s) {
    const std::string stream = "orders-" + std::to_string(s);
    std::vector<NewEvent> batch;
    for (int i = 0; i < kPerStream; ++i) {
      batch.push_back(
          make_event({.channel = stream, .type = "order.created", .payload = payload}).value());
    }
    boost::asio::co_spawn(io, append(*store, stream, std::move(batch), all), boost::asio::detached);
    io.run();
    io.restart();
  }
  std::printf(
      "archive benchmark: %d streams x %d events, 200-byte payloads, %zu-row transactions\n",
      kStreams, kPerStream, kBatch);

  auto archiver =
      archive::Archiver::open(store, {.database_url = pg.url(), .batch = kBatch}).value();
  const double ceiling = copy_ceiling(pg.url(), all);
  const auto start = Clock::now();
  auto pass = archive::run_pass(*archiver).value();
  const double rate = static_cast<double>(pass.events) / seconds_since(start);
  std::printf("ceiling: COPY, no hash chain:     %9.0f events/s\n", ceiling);
  std::printf("archive pass (COPY + INSERT, chain):%9.0f events/s = %.0f%% of the ceiling\n", rate,
              100 * rate / ceiling);

  const auto check = Clock::now();
  auto reports = archive::verify(pg.url()).value();
  std::uint64_t verified = 0;
  for (const auto& r : reports) verified += r.broken ? 0 : r.events;
  std::printf("audit verify:                     %9.0f events/s (%llu intact)\n",
              static_cast<double>(verified) / seconds_since(check),
              static_cast<unsigned long long>(verified));

  // The store keeps the last 1000 events of each stream; replays from the start read the rest
  // from the archive.
  for (int s = 0; s < kStreams; ++s) {
    const std::string stream = "orders-" + std::to_string(s);
    std::vector<NewEvent> one;
    one.push_back(make_event({.channel = stream, .type = "t", .payload = payload}).value());
    std::vector<EventPtr> ignored;
    boost::asio::co_spawn(
        io,
        [](store::Store& st, std::string name, std::vector<NewEvent> b,
           std::vector<EventPtr>& out) -> boost::asio::awaitable<void> {
          for (auto& a : (co_await st.append_batch(name, std::move(b), {.maxlen = 1000})).value()) {
            out.push_back(a.event);
          }
        }(*store, stream, std::move(one), ignored),
        boost::asio::detached);
    io.run();
    io.restart();
  }
  archive::run_pass(*archiver).value();  // the ten new events
  std::uint64_t selected = 0;
  select_ceiling(pg.url(), selected);  // warms PostgreSQL's cache for both measurements
  selected = 0;
  const double select = select_ceiling(pg.url(), selected);
  Rail rail(store, RailConfig{}, nullptr, std::make_shared<archive::ArchiveHistory>(pg.url()));
  std::uint64_t replayed = 0;
  const auto replay_start = Clock::now();
  boost::asio::co_spawn(io, replay_all(rail, replayed), boost::asio::detached);
  io.run();
  const double replay = static_cast<double>(replayed) / seconds_since(replay_start);
  std::printf("ceiling: SELECT pages of the archive:%8.0f events/s (%llu)\n", select,
              static_cast<unsigned long long>(selected));
  std::printf(
      "replay from the archive (Rail):   %9.0f events/s = %.0f%% of the ceiling (%llu, "
      "%llu of them from the store)\n",
      replay, 100 * replay / select, static_cast<unsigned long long>(replayed),
      static_cast<unsigned long long>(kStreams * 1000));
}
