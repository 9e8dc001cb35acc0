// Crash safety of the local store: a child process appends and consumes and reports every
// acknowledged step; the test SIGKILLs it at random moments and checks, after each reopen, that
// everything acknowledged is there, intact and consistent. Every fsync policy survives a process
// crash (only `always` also survives a power cut, which a test cannot cause).
#include <gtest/gtest.h>
#include <signal.h>

#include <map>
#include <random>
#include <set>
#include <sstream>

#include "replayrail/store/local/local_store.h"
#include "replayrail/store/local/sqlite.h"
#include "replayrail/store/testing/run.h"
#include "replayrail/store/testing/temp_dir.h"
#include "support/child_process.h"

namespace replayrail::testing {
namespace {

using std::chrono_literals::operator""s;

struct Acknowledged {
  std::map<StreamId, std::string> appended;  // id → payload
  std::set<StreamId> delivered;
  std::set<StreamId> acked;
};

// Reads the child's reports until `lines` were read; fails the test on an error report.
void read_reports(ChildProcess& child, int lines, Acknowledged& ack) {
  for (int i = 0; i < lines; ++i) {
    auto line = child.read_line(60s);
    ASSERT_TRUE(line) << "the child stopped reporting";
    ASSERT_FALSE(line->starts_with("E ")) << *line;
    std::istringstream in(*line);
    std::string kind, id_text;
    in >> kind >> id_text;
    auto id = StreamId::parse(id_text);
    ASSERT_TRUE(id) << *line;
    if (kind == "A") {
      std::string payload;
      std::getline(in >> std::ws, payload);
      ack.appended[*id] = payload;
    } else if (kind == "D") {
      ack.delivered.insert(*id);
    } else if (kind == "K") {
      ack.acked.insert(*id);
    }
  }
}

void expect_integrity(const std::filesystem::path& db_path) {
  auto db = store::sqlite::Connection::open(db_path, false).value();
  auto st = db->prepare("PRAGMA integrity_check").value();
  ASSERT_TRUE(st.step().value());
  EXPECT_EQ(st.text(0), "ok");
}

class LocalStoreCrash : public ::testing::TestWithParam<std::string> {};

TEST_P(LocalStoreCrash, AcknowledgedWritesSurviveSigkill) {
  TempDir dir("crash");
  Acknowledged ack;
  std::mt19937 rng(std::random_device{}());
  boost::asio::io_context io;

  for (int round = 0; round < 20; ++round) {
    {
      ChildProcess child({RR_LOCAL_CRASH_CHILD, dir.path().string(), GetParam()});
      auto ready = child.read_line(60s);
      ASSERT_TRUE(ready);
      ASSERT_EQ(*ready, "R") << *ready;
      // Kill at a random moment: after a random number of acknowledged steps.
      read_reports(child, std::uniform_int_distribution<int>(1, 1500)(rng), ack);
      if (::testing::Test::HasFatalFailure()) return;
      child.kill(SIGKILL);
      child.wait();
    }
    expect_integrity(dir.path() / "replayrail.db");

    auto store = store::LocalStore::open({.dir = dir.path()}).value();
    // Every acknowledged append is present and intact, ids strictly increasing.
    std::vector<EventPtr> all;
    for (StreamId after;;) {
      auto page = run(io, store->range("crash", after, 10000, {})).value();
      if (page.empty()) break;
      all.insert(all.end(), page.begin(), page.end());
      after = page.back()->id;
    }
    std::map<StreamId, std::string> stored;
    for (std::size_t i = 0; i < all.size(); ++i) {
      if (i) {
        ASSERT_LT(all[i - 1]->id, all[i]->id);
      }
      stored[all[i]->id] = all[i]->payload;
    }
    for (const auto& [id, payload] : ack.appended) {
      auto it = stored.find(id);
      ASSERT_NE(it, stored.end()) << "acknowledged event " << id.to_string() << " lost";
      EXPECT_EQ(it->second, payload);
    }
    auto info = run(io, store->info("crash")).value();
    EXPECT_EQ(info.length, all.size());
    ASSERT_EQ(info.groups.size(), 1u);

    // Group state agrees with what was acknowledged.
    StreamId last_delivered = info.groups[0].last_delivered;
    if (!ack.delivered.empty()) {
      EXPECT_GE(last_delivered, *ack.delivered.rbegin());
    }
    store::PendingQuery everything;
    everything.count = 1'000'000;
    auto pending = run(io, store->pending_entries("crash", "g", everything)).value();
    for (const auto& p : pending) {
      EXPECT_FALSE(ack.acked.contains(p.id)) << "acked " << p.id.to_string() << " is pending";
      EXPECT_LE(p.id, last_delivered);
      EXPECT_TRUE(stored.contains(p.id));
    }
    EXPECT_EQ(pending.size(), info.groups[0].pending);
  }
  EXPECT_GT(ack.appended.size(), 20u);
  EXPECT_FALSE(ack.acked.empty());
}

INSTANTIATE_TEST_SUITE_P(Fsync, LocalStoreCrash, ::testing::Values("always", "batch", "never"),
                         [](const auto& info) { return info.param; });

TEST(LocalStoreLock, SecondProcessOnTheSameDirectoryIsRefused) {
  TempDir dir("in-use");
  ChildProcess child({RR_LOCAL_CRASH_CHILD, dir.path().string()});
  auto ready = child.read_line(60s);
  ASSERT_TRUE(ready);
  ASSERT_EQ(*ready, "R");
  auto second = store::LocalStore::open({.dir = dir.path()});
  ASSERT_FALSE(second);
  EXPECT_EQ(second.error().code, errc::store_unavailable);
  EXPECT_NE(second.error().message.find("data directory in use"), std::string::npos)
      << second.error().message;
  child.kill(SIGKILL);
  child.wait();
  EXPECT_TRUE(store::LocalStore::open({.dir = dir.path()})) << "the lock dies with its process";
}

}  // namespace
}  // namespace replayrail::testing
