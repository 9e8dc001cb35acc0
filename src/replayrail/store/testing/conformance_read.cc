#include <algorithm>
#include <atomic>
#include <map>
#include <set>

#include "replayrail/store/testing/conformance.h"
#include "replayrail/store/testing/helpers.h"

namespace replayrail::testing {

using namespace replayrail::store;
using std::chrono_literals::operator""ms;

// --- read (XREAD) -----------------------------------------------------------------------

TEST_P(StoreConformance, ReadReturnsOnlyStreamsWithNewEvents) {
  auto a = append_n("a", 3);
  auto b = append_n("b", 2);
  std::vector<StreamCursor> cursors{{"a", a[0]->id, {}}, {"b", b[1]->id, {}}, {"c", {}, {}}};
  auto r = run(store().read(cursors, {10, std::nullopt}));
  ASSERT_TRUE(r);
  ASSERT_EQ(r->size(), 1u);
  EXPECT_EQ(r->front().stream, "a");
  EXPECT_EQ(ids_of(r->front().events), (std::vector<StreamId>{a[1]->id, a[2]->id}));
}

TEST_P(StoreConformance, ReadCountIsPerStream) {
  append_n("a", 5);
  append_n("b", 5);
  std::vector<StreamCursor> cursors{{"a", {}, {}}, {"b", {}, {}}};
  auto r = run(store().read(cursors, {2, std::nullopt}));
  ASSERT_TRUE(r);
  ASSERT_EQ(r->size(), 2u);
  EXPECT_EQ((*r)[0].events.size(), 2u);
  EXPECT_EQ((*r)[1].events.size(), 2u);
}

TEST_P(StoreConformance, ReadWithoutBlockReturnsEmptyAtOnce) {
  auto events = append_n("a", 1);
  std::vector<StreamCursor> cursors{{"a", events[0]->id, {}}};
  auto r = run(store().read(cursors, {10, std::nullopt}));
  ASSERT_TRUE(r);
  EXPECT_TRUE(r->empty());
}

TEST_P(StoreConformance, BlockedReadTimesOutEmpty) {
  std::vector<StreamCursor> cursors{{"quiet", {}, {}}};
  auto r = run(store().read(cursors, {10, 30ms}));
  ASSERT_TRUE(r);
  EXPECT_TRUE(r->empty());
}

TEST_P(StoreConformance, BlockedReadWakesOnAppend) {
  auto last = append("a");
  std::vector<StreamCursor> cursors{{"b", {}, {}}, {"a", last->id, {}}};
  result<std::vector<StreamEvents>> got = std::vector<StreamEvents>{};
  EventPtr published;
  std::vector<boost::asio::awaitable<void>> tasks;
  // On one thread the reader runs first and blocks; the publisher then appends to "a".
  tasks.push_back([](Store& s, auto& cursors, auto& got) -> boost::asio::awaitable<void> {
    got = co_await s.read(cursors, {10, 10'000ms});
  }(store(), cursors, got));
  tasks.push_back([](Store& s, EventPtr& out) -> boost::asio::awaitable<void> {
    auto r = co_await s.append("a", StoreConformance::event("a"), {});
    out = r.value().event;
  }(store(), published));
  run_concurrently(std::move(tasks), 1);
  ASSERT_TRUE(got);
  ASSERT_EQ(got->size(), 1u);
  EXPECT_EQ(got->front().stream, "a");
  ASSERT_EQ(got->front().events.size(), 1u);
  EXPECT_EQ(got->front().events[0]->id, published->id);
}

TEST_P(StoreConformance, ReadChecksCursorsLikeRange) {
  auto events = append_n("a", 5, 2);
  std::vector<StreamCursor> expired{{"a", events[0]->id, {}}};
  auto r = run(store().read(expired, {10, std::nullopt}));
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().code, errc::replay_window_expired);

  std::vector<StreamCursor> reset{{"a", {}, "ffffffffffffffff"}};
  auto r2 = run(store().read(reset, {10, 10ms}));
  ASSERT_FALSE(r2);
  EXPECT_EQ(r2.error().code, errc::stream_reset);
}

TEST_P(StoreConformance, ReadRefusesBadArguments) {
  auto none = run(store().read({}, {10, std::nullopt}));
  ASSERT_FALSE(none);
  EXPECT_EQ(none.error().code, errc::invalid_argument);
  std::vector<StreamCursor> cursors{{"a", {}, {}}};
  auto zero = run(store().read(cursors, {0, std::nullopt}));
  ASSERT_FALSE(zero);
  EXPECT_EQ(zero.error().code, errc::invalid_argument);
}

// --- concurrency ------------------------------------------------------------------------

TEST_P(StoreConformance, ConcurrentPublishersAndTailersLoseAndReorderNothing) {
  constexpr int kPublishers = 8;
  constexpr int kPerPublisher = 250;
  constexpr int kTailers = 3;
  constexpr std::size_t kTotal = kPublishers * kPerPublisher;

  std::vector<boost::asio::awaitable<void>> tasks;
  std::vector<std::vector<EventPtr>> seen(kTailers);
  for (int t = 0; t < kTailers; ++t) {
    tasks.push_back([](Store& s, std::vector<EventPtr>& out) -> boost::asio::awaitable<void> {
      StreamCursor cursor{"busy", {}, {}};
      while (out.size() < kTotal) {
        auto r = co_await s.read({&cursor, 1}, {64, 20'000ms});
        if (!r || r->empty()) throw std::runtime_error("tail read failed or timed out");
        for (auto& e : r->front().events) out.push_back(e);
        cursor.after = out.back()->id;
      }
    }(store(), seen[t]));
  }
  for (int p = 0; p < kPublishers; ++p) {
    tasks.push_back([](Store& s, int p) -> boost::asio::awaitable<void> {
      for (int i = 0; i < kPerPublisher; ++i) {
        auto payload = R"({"n":)" + std::to_string(p * 100000 + i) + "}";
        (void)(co_await s.append("busy", StoreConformance::event("busy", payload), {})).value();
      }
    }(store(), p));
  }
  run_concurrently(std::move(tasks), 4);

  for (const auto& events : seen) {
    ASSERT_EQ(events.size(), kTotal);
    std::map<std::int64_t, std::int64_t> last_of_publisher;
    for (std::size_t i = 0; i < events.size(); ++i) {
      if (i) {
        ASSERT_LT(events[i - 1]->id, events[i]->id);
      }
      auto n = payload_n(events[i]);
      auto [it, fresh] = last_of_publisher.try_emplace(n / 100000, n % 100000);
      if (!fresh) {
        ASSERT_EQ(n % 100000, it->second + 1) << "a publisher's events keep their order";
        it->second = n % 100000;
      }
    }
  }
  EXPECT_EQ(ids_of(seen[0]), ids_of(seen[1]));
  EXPECT_EQ(ids_of(seen[0]), ids_of(seen[2]));
}

TEST_P(StoreConformance, ConcurrentGroupConsumersShareWithoutDuplicates) {
  constexpr int kEvents = 600;
  constexpr int kConsumers = 4;
  ASSERT_TRUE(run(store().group_create("work", "g", Cursor::beginning(), true)));
  std::vector<boost::asio::awaitable<void>> tasks;
  std::atomic<int> consumed = 0;
  std::vector<std::vector<StreamId>> got(kConsumers);
  for (int c = 0; c < kConsumers; ++c) {
    tasks.push_back([](Store& s, int c, std::vector<StreamId>& out,
                       std::atomic<int>& consumed) -> boost::asio::awaitable<void> {
      std::vector<GroupCursor> fresh{{"work", std::nullopt}};
      std::string name = "c" + std::to_string(c);
      while (consumed < kEvents) {
        auto r = co_await s.read_group("g", name, fresh, {16, 50ms});
        if (!r) throw std::runtime_error(r.error().message);
        if (r->empty()) continue;
        std::vector<StreamId> ids;
        for (auto& m : r->front().messages) ids.push_back(m.id);
        if ((co_await s.ack("work", "g", ids)).value() != ids.size()) {
          throw std::runtime_error("ack lost a message");
        }
        out.insert(out.end(), ids.begin(), ids.end());
        consumed += static_cast<int>(ids.size());
      }
    }(store(), c, got[c], consumed));
  }
  tasks.push_back([](Store& s) -> boost::asio::awaitable<void> {
    for (int i = 0; i < kEvents; ++i) {
      (void)(co_await s.append("work", StoreConformance::event("work"), {})).value();
    }
  }(store()));
  run_concurrently(std::move(tasks), 4);

  std::set<StreamId> all;
  std::size_t total = 0;
  for (const auto& ids : got) {
    total += ids.size();
    all.insert(ids.begin(), ids.end());
    EXPECT_TRUE(std::is_sorted(ids.begin(), ids.end()));
  }
  EXPECT_EQ(total, static_cast<std::size_t>(kEvents));
  EXPECT_EQ(all.size(), static_cast<std::size_t>(kEvents));
  EXPECT_EQ(run(store().pending("work", "g"))->count, 0u);
}

}  // namespace replayrail::testing
