// The PostgreSQL archive and its audit (DESIGN §6), against a real PostgreSQL the test starts.
#include "replayrail/archive/archive.h"

#include <gtest/gtest.h>

#include <thread>

#include "replayrail/core/event.h"
#include "replayrail/store/memory/memory_store.h"
#include "replayrail/store/testing/run.h"
#include "support/postgres_server.h"

namespace replayrail::archive {
namespace {

namespace asio = boost::asio;

class ArchiveTest : public ::testing::Test {
 protected:
  // Appends `n` events to `stream`, with `maxlen` retention.
  void append(const std::string& stream, int n, std::uint64_t maxlen = 0) {
    for (int i = 0; i < n; ++i) {
      const std::string payload = R"({"n":)" + std::to_string(i) + R"(,"x":12.5})";
      auto e = make_event({.channel = stream, .type = "t", .payload = payload});
      ASSERT_TRUE(e) << e.error().message;
      ASSERT_TRUE(testing::run(io_, store_->append(stream, std::move(*e), {.maxlen = maxlen})));
    }
  }
  std::unique_ptr<Archiver> archiver() {
    auto a = Archiver::open(store_, {.database_url = pg_.url(), .batch = 100});
    EXPECT_TRUE(a) << a.error().message;
    return a ? std::move(*a) : nullptr;
  }
  Pass pass(Archiver& a) {
    auto p = testing::run(io_, a.pass());
    EXPECT_TRUE(p) << p.error().message;
    return p ? *p : Pass{};
  }
  // One SQL statement's first value, or the server's error message.
  std::string sql(const std::string& statement) {
    auto db = pg::Connection::open(pg_.url());
    if (!db) return db.error().message;
    auto r = db->exec(statement);
    if (!r) return r.error().message;
    return PQntuples(r->get()) > 0 ? pg::text(*r, 0, 0) : "";
  }
  ChainReport chain(const std::string& stream) {
    auto reports = verify(pg_.url(), stream);
    EXPECT_TRUE(reports) << reports.error().message;
    return reports && !reports->empty() ? reports->front() : ChainReport{};
  }

  testing::PostgresServer pg_;
  asio::io_context io_;
  std::shared_ptr<store::MemoryStore> store_ = std::make_shared<store::MemoryStore>();
};

TEST_F(ArchiveTest, CopiesEveryStreamOnceWithAnIntactChain) {
  append("orders", 250);
  append("payments", 3);
  auto a = archiver();
  ASSERT_TRUE(a);
  auto first = pass(*a);
  EXPECT_EQ(first.events, 253u);
  EXPECT_EQ(first.streams, 2u);
  EXPECT_EQ(pass(*a).events, 0u) << "nothing new: nothing copied again";
  append("orders", 10);
  EXPECT_EQ(pass(*a).events, 10u);
  EXPECT_EQ(sql("SELECT count(*) FROM rr_archive_events WHERE stream = 'orders'"), "260");
  EXPECT_EQ(sql("SELECT events FROM rr_archive_cursors WHERE stream = 'orders'"), "260");

  // The rows hold the events as stored: the exact payload text, the envelope's fields.
  auto stored = testing::run(io_, store_->range("orders", StreamId{}, 1, "")).value();
  EXPECT_EQ(sql("SELECT payload FROM rr_archive_events WHERE stream = 'orders' ORDER BY ms, seq "
                "LIMIT 1"),
            stored.front()->payload);
  EXPECT_EQ(sql("SELECT event_id FROM rr_archive_events WHERE stream = 'orders' ORDER BY ms, seq "
                "LIMIT 1"),
            stored.front()->event_id);

  // A pass asked to stop copies nothing more (a server shutting down).
  append("orders", 5);
  const std::atomic<bool> stop = true;
  auto stopped = testing::run(io_, a->pass(&stop));
  ASSERT_TRUE(stopped);
  EXPECT_EQ(stopped->events, 0u);
  EXPECT_EQ(pass(*a).events, 5u);

  auto orders = chain("orders");
  EXPECT_EQ(orders.events, 265u);
  EXPECT_FALSE(orders.broken) << *orders.broken;
  auto all = verify(pg_.url());
  ASSERT_TRUE(all);
  EXPECT_EQ(all->size(), 2u);
}

// COPY's text format escapes backslash, tab, newline and carriage return; a payload kept as its
// producer wrote it (raw line breaks, tabs, escapes) comes back byte for byte.
TEST_F(ArchiveTest, PayloadsWithLineBreaksTabsAndBackslashesArchiveExactly) {
  const std::string payload = "{\n\t\"path\": \"C:\\\\temp\",\r\n  \"quote\": \"\\\"\"\n}";
  auto e = make_event({.channel = "raw", .type = "t", .payload = payload});
  ASSERT_TRUE(e) << e.error().message;
  ASSERT_TRUE(testing::run(io_, store_->append("raw", std::move(*e), {})));
  auto a = archiver();
  ASSERT_TRUE(a);
  EXPECT_EQ(pass(*a).events, 1u);
  EXPECT_EQ(sql("SELECT payload FROM rr_archive_events WHERE stream = 'raw'"), payload);
  auto report = chain("raw");
  EXPECT_EQ(report.events, 1u);
  EXPECT_FALSE(report.broken) << *report.broken;
}

TEST_F(ArchiveTest, TheArchiveRefusesUpdateDeleteAndTruncate) {
  append("orders", 2);
  auto a = archiver();
  ASSERT_TRUE(a);
  pass(*a);
  for (const auto* statement : {"UPDATE rr_archive_events SET payload = '{}'",
                                "DELETE FROM rr_archive_events", "TRUNCATE rr_archive_events"}) {
    EXPECT_NE(sql(statement).find("append-only"), std::string::npos) << statement;
  }
  EXPECT_EQ(sql("SELECT count(*) FROM rr_archive_events"), "2");
}

// Tampering that gets past the trigger (a superuser disabling it) shows in the chain, at the
// first event it touched.
TEST_F(ArchiveTest, VerifyNamesTheFirstBrokenLink) {
  append("orders", 20);
  auto a = archiver();
  ASSERT_TRUE(a);
  pass(*a);
  auto events = testing::run(io_, store_->range("orders", StreamId{}, 20, "")).value();
  const StreamId seventh = events[6]->id;
  // A multi-statement script runs through Connection::run.
  auto run_script = [&](const std::string& script) {
    auto db = pg::Connection::open(pg_.url());
    ASSERT_TRUE(db);
    auto done = db->run(script);
    ASSERT_TRUE(done) << done.error().message;
  };
  run_script(
      "BEGIN; ALTER TABLE rr_archive_events DISABLE TRIGGER USER; "
      "UPDATE rr_archive_events SET payload = '{\"n\":666}' WHERE ms = " +
      std::to_string(seventh.ms) + " AND seq = " + std::to_string(seventh.seq) +
      "; ALTER TABLE rr_archive_events ENABLE TRIGGER USER; COMMIT;");
  auto report = chain("orders");
  ASSERT_TRUE(report.broken);
  EXPECT_EQ(report.broken->rfind(seventh.to_string() + ":", 0), 0u) << *report.broken;
  EXPECT_NE(report.broken->find("content"), std::string::npos) << *report.broken;
  EXPECT_EQ(report.events, 6u) << "the events before it are intact";

  // Deleting a row breaks the link of the one after it.
  const StreamId third = events[2]->id;
  run_script(
      "BEGIN; ALTER TABLE rr_archive_events DISABLE TRIGGER USER; "
      "DELETE FROM rr_archive_events WHERE ms = " +
      std::to_string(third.ms) + " AND seq = " + std::to_string(third.seq) +
      "; ALTER TABLE rr_archive_events ENABLE TRIGGER USER; COMMIT;");
  report = chain("orders");
  ASSERT_TRUE(report.broken);
  EXPECT_EQ(report.broken->rfind(events[3]->id.to_string() + ":", 0), 0u) << *report.broken;
  EXPECT_NE(report.broken->find("prev_hash"), std::string::npos) << *report.broken;
}

// Events the store trimmed before the archive copied them are noted as a gap; the chain goes on
// across it, and what was left is archived.
TEST_F(ArchiveTest, EventsTrimmedBeforeTheyWereArchivedAreNotedAsAGap) {
  append("short", 5, 5);
  auto a = archiver();
  ASSERT_TRUE(a);
  pass(*a);
  append("short", 12, 5);  // 5 kept: the first 7 of these are gone
  auto p = pass(*a);
  EXPECT_EQ(p.gaps, 1u);
  EXPECT_EQ(p.events, 5u);
  auto report = chain("short");
  EXPECT_FALSE(report.broken) << *report.broken;
  EXPECT_EQ(report.events, 10u);
  EXPECT_EQ(report.gaps, 1u);
  EXPECT_EQ(pass(*a).gaps, 0u) << "noted once";
}

// A stream the store had trimmed before its first pass: that loss is a gap too (a range from
// 0-0 starts at the first event kept, and would not say so).
TEST_F(ArchiveTest, AStreamTrimmedBeforeItsFirstPassNotesTheLoss) {
  append("late", 12, 5);
  auto a = archiver();
  ASSERT_TRUE(a);
  auto p = pass(*a);
  EXPECT_EQ(p.gaps, 1u);
  EXPECT_EQ(p.events, 5u);
  EXPECT_EQ(chain("late").gaps, 1u);
  EXPECT_EQ(pass(*a).gaps, 0u) << "noted once";
}

// Two archivers (two server nodes) at once: a stream is copied by one of them at a time, so
// every event is archived once and the chain holds.
TEST_F(ArchiveTest, TwoArchiversAtOnceArchiveEachEventOnce) {
  for (int s = 0; s < 4; ++s) append("s" + std::to_string(s), 300);
  auto a = archiver();
  auto b = archiver();
  ASSERT_TRUE(a && b);
  std::uint64_t by_b = 0;
  std::thread other([&] {
    asio::io_context io;
    auto p = testing::run(io, b->pass());
    EXPECT_TRUE(p);
    if (p) by_b = p->events;
  });
  const auto by_a = pass(*a).events;
  other.join();
  // One more pass each for what was skipped while the other held it.
  const auto rest = pass(*a).events + testing::run(io_, b->pass()).value().events;
  EXPECT_EQ(by_a + by_b + rest, 1200u);
  EXPECT_EQ(sql("SELECT count(*) FROM rr_archive_events"), "1200");
  auto reports = verify(pg_.url());
  ASSERT_TRUE(reports);
  for (const auto& r : *reports) {
    EXPECT_FALSE(r.broken) << r.stream << ": " << *r.broken;
    EXPECT_EQ(r.events, 300u);
  }
}

TEST(ArchiveOpen, AnUnreachableDatabaseIsAClearError) {
  auto a =
      Archiver::open(std::make_shared<store::MemoryStore>(),
                     {.database_url = "postgresql://rr@127.0.0.1:1/postgres?connect_timeout=2"});
  ASSERT_FALSE(a);
  EXPECT_EQ(a.error().code, errc::store_unavailable);
  EXPECT_NE(a.error().message.find("PostgreSQL"), std::string::npos) << a.error().message;
  EXPECT_EQ(a.error().message.find('\n'), std::string::npos) << "one line, for the log";
}

}  // namespace
}  // namespace replayrail::archive
