// The PostgreSQL archive and its audit (DESIGN §6), against a real PostgreSQL the test starts.
#include "replayrail/archive/archive.h"

#include <gtest/gtest.h>

#include <thread>

#include "replayrail/archive/history.h"
#include "replayrail/core/event.h"
#include "replayrail/rail.h"
#include "replayrail/store/memory/memory_store.h"
#include "replayrail/store/testing/run.h"
#include "support/postgres_server.h"

namespace replayrail::archive {
namespace {

namespace asio = boost::asio;

class ArchiveTest : public ::testing::Test {
 protected:
  // Appends `n` events to `stream`, with `maxlen` retention; their ids go to `ids`.
  void append(const std::string& stream, int n, std::uint64_t maxlen = 0,
              std::vector<StreamId>* ids = nullptr) {
    for (int i = 0; i < n; ++i) {
      const std::string payload = R"({"n":)" + std::to_string(i) + R"(,"x":12.5})";
      auto e = make_event({.channel = stream, .type = "t", .payload = payload});
      ASSERT_TRUE(e) << e.error().message;
      auto added = testing::run(io_, store_->append(stream, std::move(*e), {.maxlen = maxlen}));
      ASSERT_TRUE(added);
      if (ids) ids->push_back(added->event->id);
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

// A pass reports the archive's lag: how long the oldest event it found waiting had been stored.
TEST_F(ArchiveTest, APassReportsHowLongTheOldestEventWaited) {
  using namespace std::chrono_literals;
  auto a = archiver();
  ASSERT_TRUE(a);
  EXPECT_EQ(pass(*a).lag, 0ms) << "nothing stored, nothing waiting";
  append("early", 1);
  std::this_thread::sleep_for(300ms);
  append("late", 1);
  append("early", 1);
  const auto first = pass(*a);
  EXPECT_EQ(first.events, 3u);
  // The oldest waiting is early's first event (300 ms), not the stream's newest nor late's.
  EXPECT_GE(first.lag, 300ms);
  EXPECT_LT(first.lag, 30s);
  EXPECT_EQ(pass(*a).lag, 0ms) << "all archived: nothing waiting";
  append("late", 1);
  EXPECT_LT(pass(*a).lag, 300ms) << "only the new event waited";
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

// Least privilege: a role that may only write rows (PostgreSQL 15 gives no one but the owner
// CREATE on the public schema) archives once the tables' owner created them, with the grants
// docs/archive.md lists; before that, opening the archive says why it cannot.
TEST_F(ArchiveTest, ARoleThatMayOnlyWriteRowsArchivesOnceTheOwnerCreatedTheTables) {
  ASSERT_EQ(sql("CREATE ROLE rr_writer LOGIN"), "");
  std::string writer_url = pg_.url();
  writer_url.replace(writer_url.find("rr@"), 3, "rr_writer@");

  auto refused = Archiver::open(store_, {.database_url = writer_url});
  ASSERT_FALSE(refused) << "created tables without the right to";
  EXPECT_NE(refused.error().message.find("permission denied"), std::string::npos)
      << refused.error().message;
  EXPECT_NE(refused.error().message.find("docs/archive.md"), std::string::npos)
      << refused.error().message;

  ASSERT_TRUE(archiver());  // the owner (the superuser) creates them
  for (const char* grant :
       {"GRANT SELECT, INSERT ON rr_archive_events, rr_archive_gaps TO rr_writer",
        "GRANT SELECT, INSERT, UPDATE ON rr_archive_cursors TO rr_writer"}) {
    ASSERT_EQ(sql(grant), "") << grant;
  }
  append("orders", 3);
  append("short", 12, 5);  // trimmed before its first pass: a gap row too
  auto opened = Archiver::open(store_, {.database_url = writer_url});
  ASSERT_TRUE(opened) << opened.error().message;
  auto first = pass(**opened);
  EXPECT_EQ(first.events, 8u);
  EXPECT_EQ(first.gaps, 1u);
  append("orders", 2);
  EXPECT_EQ(pass(**opened).events, 2u) << "the cursor moved on";

  auto reports = verify(writer_url, std::nullopt);  // verifying needs only SELECT
  ASSERT_TRUE(reports) << reports.error().message;
  ASSERT_EQ(reports->size(), 2u);
  for (const auto& r : *reports) EXPECT_FALSE(r.broken) << r.stream << ": " << *r.broken;
  EXPECT_EQ(reports->front().events, 5u);
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

// --- Replay across tiers: what the store trimmed is read from the archive ------------------

class TieredReplayTest : public ArchiveTest {
 protected:
  // A Rail over the store that reads what it trimmed from the archive.
  Rail rail(std::string url = {}) {
    return Rail(store_, RailConfig{.max_replay_limit = 100000}, nullptr,
                std::make_shared<ArchiveHistory>(url.empty() ? pg_.url() : url));
  }
  // Every id a replay after `after` yields, paging `limit` at a time until a page is empty.
  result<std::vector<StreamId>> replay_all(Rail& r, const std::string& stream, StreamId after,
                                           std::size_t limit) {
    std::vector<StreamId> ids;
    for (;;) {
      auto page = testing::run(io_, r.replay(stream, Cursor::after(after), limit));
      if (!page) return page.error();
      if (page->empty()) return ids;
      for (const auto& e : *page) ids.push_back(e->id);
      after = page->back()->id;
    }
  }
  // Archives `stream` as far as the store has it.
  void archive_now() {
    auto a = archiver();
    ASSERT_TRUE(a);
    pass(*a);
  }
  static std::vector<StreamId> after(const std::vector<StreamId>& ids, std::size_t n) {
    return {ids.begin() + static_cast<std::ptrdiff_t>(n), ids.end()};
  }
};

// 250 events with 100 kept: the first 150 are read from the archive, the rest from the store,
// one ordered sequence with no gap and no duplicate, whatever the page size.
TEST_F(TieredReplayTest, ReplayReadsTheArchiveThenTheStore) {
  std::vector<StreamId> ids;
  append("orders", 100, 100, &ids);
  archive_now();
  append("orders", 50, 100, &ids);  // trims the first 50, archived already
  archive_now();
  append("orders", 100, 100, &ids);  // trims the next 100
  ASSERT_EQ(testing::run(io_, store_->info("orders"))->trimmed_through, ids[149]);

  // Without the archive the cursor is too old.
  Rail hot_only(store_);
  auto expired = testing::run(io_, hot_only.replay("orders", Cursor::after(ids[9]), 10));
  ASSERT_FALSE(expired);
  EXPECT_EQ(expired.error().code, errc::replay_window_expired);

  auto tiered = rail();
  for (std::size_t limit : {1000u, 100u, 7u, 1u}) {
    auto got = replay_all(tiered, "orders", ids[9], limit);
    ASSERT_TRUE(got) << got.error().message;
    EXPECT_EQ(*got, after(ids, 10)) << "page size " << limit;
  }
  // From the start: the whole history.
  auto all = replay_all(tiered, "orders", StreamId{}, 64);
  ASSERT_TRUE(all) << all.error().message;
  EXPECT_EQ(*all, ids);
  // The events come back as stored.
  auto first = testing::run(io_, tiered.replay("orders", Cursor::beginning(), 1));
  ASSERT_TRUE(first);
  ASSERT_EQ(first->size(), 1u);
  EXPECT_EQ(first->front()->id, ids[0]);
  EXPECT_EQ(first->front()->payload, R"({"n":0,"x":12.5})");
  EXPECT_EQ(first->front()->channel, "orders");
  // A cursor the store still has is read from the store alone.
  auto recent = replay_all(tiered, "orders", ids[200], 1000);
  ASSERT_TRUE(recent);
  EXPECT_EQ(*recent, after(ids, 201));
}

// A subscription from an old cursor replays across both tiers, then follows live.
TEST_F(TieredReplayTest, ASubscriptionFromAnOldCursorReplaysBothTiersThenFollowsLive) {
  std::vector<StreamId> ids;
  append("feed", 30, 30, &ids);
  archive_now();
  append("feed", 20, 30, &ids);
  archive_now();
  append("feed", 30, 30, &ids);  // the store keeps the last 30 of 80, the archive the first 50

  Rail hot_only(store_);
  auto refused = testing::run(io_, hot_only.subscribe("feed", Cursor::after(ids[4])));
  ASSERT_FALSE(refused);
  EXPECT_EQ(refused.error().code, errc::replay_window_expired);

  auto tiered = rail();
  auto sub = testing::run(io_, tiered.subscribe("feed", Cursor::after(ids[4])));
  ASSERT_TRUE(sub) << sub.error().message;
  std::vector<StreamId> got;
  while (!sub->caught_up()) {
    auto batch = testing::run(io_, sub->next(store::Millis(1000)));
    ASSERT_TRUE(batch) << batch.error().message;
    for (const auto& e : *batch) got.push_back(e->id);
  }
  EXPECT_EQ(got, after(ids, 5));
  append("feed", 1, 30, &ids);
  auto live = testing::run(io_, sub->next(store::Millis(5000)));
  ASSERT_TRUE(live);
  ASSERT_EQ(live->size(), 1u);
  EXPECT_EQ(live->front()->id, ids.back());
}

// The archive answers only for what it holds in full: not for events trimmed before it copied
// them (a gap after the cursor), nor before it has copied them at all.
TEST_F(TieredReplayTest, ACursorTheArchiveCannotServeWithoutAGapStaysExpired) {
  std::vector<StreamId> ids;
  append("gappy", 20, 20, &ids);
  auto tiered = rail();
  // Nothing archived yet (no tables even): the store's answer stands.
  append("gappy", 10, 20, &ids);
  auto early = testing::run(io_, tiered.replay("gappy", Cursor::after(ids[2]), 100));
  ASSERT_FALSE(early);
  EXPECT_EQ(early.error().code, errc::replay_window_expired);
  EXPECT_EQ(early.error().first_available, ids[10]);

  {
    auto a = archiver();
    ASSERT_TRUE(a);
    auto first = pass(*a);  // ids[0..9] were trimmed before the archive began: a gap
    EXPECT_EQ(first.gaps, 1u);
    EXPECT_EQ(first.events, 20u);
  }
  append("gappy", 20, 20, &ids);  // trims ids[10..29], which the archive has
  // Behind the gap: still expired.
  auto behind = testing::run(io_, tiered.replay("gappy", Cursor::after(ids[2]), 100));
  ASSERT_FALSE(behind);
  EXPECT_EQ(behind.error().code, errc::replay_window_expired);
  auto refused = testing::run(io_, tiered.subscribe("gappy", Cursor::after(ids[2])));
  ASSERT_FALSE(refused);
  EXPECT_EQ(refused.error().code, errc::replay_window_expired);
  // After the gap: served.
  auto past = replay_all(tiered, "gappy", ids[12], 9);
  ASSERT_TRUE(past) << past.error().message;
  EXPECT_EQ(*past, after(ids, 13));
  // From the start: what follows the gap.
  auto from_start = replay_all(tiered, "gappy", StreamId{}, 1000);
  ASSERT_TRUE(from_start);
  EXPECT_EQ(*from_start, after(ids, 10));

  // The store trims what the archive has not copied yet: expired until the next pass.
  append("gappy", 25, 20, &ids);  // trims ids[30..54]; the archive stopped at ids[29]
  auto unarchived = testing::run(io_, tiered.replay("gappy", Cursor::after(ids[15]), 100));
  ASSERT_FALSE(unarchived);
  EXPECT_EQ(unarchived.error().code, errc::replay_window_expired);
}

// An archive begun on a trimmed stream by a version that did not note that as a gap: a cursor
// before its first event is not served from it.
TEST_F(TieredReplayTest, ACursorBeforeTheArchivesFirstEventStaysExpired) {
  std::vector<StreamId> ids;
  append("late", 20, 10, &ids);
  archive_now();
  append("late", 10, 10, &ids);
  EXPECT_EQ(sql("ALTER TABLE rr_archive_gaps DISABLE TRIGGER USER"), "");
  EXPECT_EQ(sql("DELETE FROM rr_archive_gaps"), "");
  EXPECT_EQ(sql("SELECT count(*) FROM rr_archive_gaps"), "0");
  auto tiered = rail();
  auto before = testing::run(io_, tiered.replay("late", Cursor::after(ids[3]), 100));
  ASSERT_FALSE(before);
  EXPECT_EQ(before.error().code, errc::replay_window_expired);
  auto inside = replay_all(tiered, "late", ids[12], 100);
  ASSERT_TRUE(inside) << inside.error().message;
  EXPECT_EQ(*inside, after(ids, 13));
}

// An archive that cannot be asked is an error the client may retry (store_unavailable), not a
// replay_window_expired that would make it skip what the archive holds.
TEST_F(TieredReplayTest, AnUnreachableArchiveIsStoreUnavailable) {
  std::vector<StreamId> ids;
  append("down", 10, 5, &ids);
  auto tiered = rail("postgresql://rr@127.0.0.1:1/postgres?connect_timeout=2");
  auto page = testing::run(io_, tiered.replay("down", Cursor::after(ids[1]), 100));
  ASSERT_FALSE(page);
  EXPECT_EQ(page.error().code, errc::store_unavailable);
  // What the store has is read as before.
  auto recent = testing::run(io_, tiered.replay("down", Cursor::after(ids[6]), 100));
  ASSERT_TRUE(recent);
  EXPECT_EQ(recent->size(), 3u);
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
