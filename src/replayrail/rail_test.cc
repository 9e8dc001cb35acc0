#include "replayrail/rail.h"

#include <gtest/gtest.h>

#include <atomic>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/use_awaitable.hpp>

#include "replayrail/store/memory/memory_store.h"
#include "replayrail/store/testing/run.h"

namespace replayrail {
namespace {

namespace asio = boost::asio;
using std::chrono_literals::operator""ms;

class RailTest : public ::testing::Test {
 protected:
  explicit RailTest(RailConfig config = {})
      : rail_(std::make_shared<store::MemoryStore>(), config) {}

  template <class T>
  T run(asio::awaitable<T> t) {
    return testing::run(io_, std::move(t));
  }

  EventPtr publish(std::string_view channel, std::string_view payload = R"({"n":0})") {
    EventInput in{.channel = channel, .type = "test.event", .payload = payload};
    auto r = run(rail_.publish(in));
    EXPECT_TRUE(r) << r.error().message;
    return r ? r->event : nullptr;
  }

  asio::io_context io_;
  Rail rail_;
};

TEST_F(RailTest, PublishThenReplayAfterACursor) {
  auto a = publish("ch");
  auto b = publish("ch");
  auto c = publish("ch");
  auto missed = run(rail_.replay("ch", Cursor::after(a->id)));
  ASSERT_TRUE(missed);
  ASSERT_EQ(missed->size(), 2u);
  EXPECT_EQ((*missed)[0]->id, b->id);
  EXPECT_EQ((*missed)[1]->id, c->id);
  EXPECT_TRUE(run(rail_.replay("ch", Cursor::latest()))->empty());
}

TEST_F(RailTest, ReplayLimitDefaultsAndIsCapped) {
  for (int i = 0; i < 1100; ++i) publish("ch");
  EXPECT_EQ(run(rail_.replay("ch", Cursor::beginning()))->size(), 100u);
  EXPECT_EQ(run(rail_.replay("ch", Cursor::beginning(), 5))->size(), 5u);
  EXPECT_EQ(run(rail_.replay("ch", Cursor::beginning(), 5000))->size(), 1000u);
}

TEST_F(RailTest, PublishRefusesBadInputAndWritesNothing) {
  EventInput bad{.channel = "ch", .type = "t", .payload = "[1]"};
  EXPECT_EQ(run(rail_.publish(bad)).error().code, errc::invalid_payload);
  std::string big = R"({"x":")" + std::string(2 << 20, 'x') + "\"}";
  EventInput huge{.channel = "ch", .type = "t", .payload = big};
  EXPECT_EQ(run(rail_.publish(huge)).error().code, errc::payload_too_large);
  EXPECT_EQ(run(rail_.store().info("ch")).error().code, errc::stream_not_found);
  EXPECT_EQ(run(rail_.replay("bad#channel", Cursor::beginning())).error().code,
            errc::invalid_channel);
}

TEST_F(RailTest, RetentionIsMaxStreamLength) {
  Rail small(std::make_shared<store::MemoryStore>(), RailConfig{.max_stream_length = 3});
  EventPtr first;
  for (int i = 0; i < 5; ++i) {
    auto r = run(small.publish({.channel = "ch", .type = "t"}));
    if (i == 0) first = r->event;
  }
  EXPECT_EQ(run(small.store().info("ch"))->length, 3u);
  EXPECT_EQ(run(small.replay("ch", Cursor::after(first->id))).error().code,
            errc::replay_window_expired);
}

TEST_F(RailTest, ReadAtLatestWaitsForTheNextEvent) {
  publish("ch");
  EXPECT_TRUE(run(rail_.read("ch", Cursor::latest(), std::nullopt))->empty());
  EXPECT_TRUE(run(rail_.read("ch", Cursor::latest(), 20ms))->empty());
  EXPECT_EQ(run(rail_.read("ch", Cursor::beginning(), std::nullopt))->size(), 1u);
}

TEST_F(RailTest, SubscribeReplaysThenFollowsLive) {
  auto a = publish("ch");
  publish("ch");
  auto sub = run(rail_.subscribe("ch", Cursor::after(a->id)));
  ASSERT_TRUE(sub);
  EXPECT_FALSE(sub->epoch().empty());
  auto replayed = run(sub->next());
  ASSERT_TRUE(replayed);
  ASSERT_EQ(replayed->size(), 1u);
  EXPECT_TRUE(sub->caught_up());
  auto c = publish("ch");
  auto live = run(sub->next());
  ASSERT_TRUE(live);
  ASSERT_EQ(live->size(), 1u);
  EXPECT_EQ(live->front()->id, c->id);
  EXPECT_EQ(sub->position(), c->id);
  EXPECT_TRUE(run(sub->next(10ms))->empty()) << "nothing new: the timeout returns empty";
}

TEST_F(RailTest, DefaultStartPositionDecides) {
  publish("ch");
  auto latest = run(rail_.subscribe("ch"));
  ASSERT_TRUE(latest);
  EXPECT_TRUE(run(latest->next(10ms))->empty());

  Rail earliest_rail(std::make_shared<store::MemoryStore>(),
                     RailConfig{.default_start_position = StartPosition::earliest});
  (void)run(earliest_rail.publish({.channel = "ch", .type = "t"})).value();
  auto earliest = run(earliest_rail.subscribe("ch"));
  ASSERT_TRUE(earliest);
  EXPECT_EQ(run(earliest->next(10ms))->size(), 1u);
}

TEST_F(RailTest, SubscriptionNoticesARecreatedStream) {
  publish("ch");
  auto sub = run(rail_.subscribe("ch", Cursor::beginning()));
  ASSERT_TRUE(sub);
  ASSERT_TRUE(run(rail_.store().delete_stream("ch")));
  publish("ch");
  auto r = run(sub->next(10ms));
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().code, errc::stream_reset);
  // A cursor of another epoch is refused by subscribe itself, before anything is replayed.
  auto stale = run(rail_.subscribe("ch", Cursor::beginning(), "0123456789abcdef"));
  ASSERT_FALSE(stale);
  EXPECT_EQ(stale.error().code, errc::stream_reset);
}

TEST_F(RailTest, SubscribeRefusesACursorOlderThanRetainedHistory) {
  Rail rail(std::make_shared<store::MemoryStore>(), RailConfig{.max_stream_length = 2});
  std::vector<StreamId> ids;
  for (int i = 0; i < 4; ++i) {
    ids.push_back(run(rail.publish({.channel = "ch", .type = "t"}))->event->id);
  }
  auto expired = run(rail.subscribe("ch", Cursor::after(ids[0])));
  ASSERT_FALSE(expired);
  EXPECT_EQ(expired.error().code, errc::replay_window_expired);
  EXPECT_EQ(expired.error().first_available, ids[2]);
  // The last trimmed id is still a valid cursor: nothing after it is missing.
  auto edge = run(rail.subscribe("ch", Cursor::after(ids[1])));
  ASSERT_TRUE(edge);
  EXPECT_EQ(run(edge->next(10ms))->size(), 2u);
}

// Subscribers that join while publishers are running each see one contiguous run of the stream:
// from their cursor to the end, every id once, in order.
TEST_F(RailTest, SubscribeUnderConcurrentPublishingHasNoGapAndNoDuplicate) {
  constexpr int kPublishers = 4;
  constexpr int kPerPublisher = 400;
  Rail rail(std::make_shared<store::MemoryStore>(), RailConfig{.subscribe_batch_size = 16});
  constexpr int kSubscribers = 4;
  std::atomic<int> finished = 0;
  std::atomic<int> published = 0;
  std::atomic<int> subscribed = 0;

  std::vector<asio::awaitable<void>> tasks;
  for (int p = 0; p < kPublishers; ++p) {
    tasks.push_back([](Rail& rail, std::atomic<int>& published, std::atomic<int>& finished,
                       std::atomic<int>& subscribed) -> asio::awaitable<void> {
      for (int i = 0; i < kPerPublisher; ++i) {
        (void)(co_await rail.publish({.channel = "live", .type = "tick"})).value();
        ++published;
      }
      if (++finished == kPublishers) {
        // The closing event only once every subscriber is in: one that joined at `$` after it
        // would wait for it forever.
        asio::steady_timer timer(co_await asio::this_coro::executor);
        while (subscribed < kSubscribers) {
          timer.expires_after(std::chrono::milliseconds(1));
          co_await timer.async_wait(asio::use_awaitable);
        }
        (void)(co_await rail.publish({.channel = "live", .type = "end"})).value();
      }
    }(rail, published, finished, subscribed));
  }
  struct Seen {
    std::optional<Cursor> from;
    int start_after_published;
    std::vector<StreamId> ids;
  };
  std::vector<Seen> subscribers{{Cursor::beginning(), 0, {}},
                                {Cursor::latest(), 100, {}},
                                {Cursor::latest(), 800, {}},
                                {Cursor::beginning(), 1200, {}}};
  ASSERT_EQ(subscribers.size(), std::size_t{kSubscribers});
  for (auto& s : subscribers) {
    tasks.push_back([](Rail& rail, Seen& s, std::atomic<int>& published,
                       std::atomic<int>& subscribed) -> asio::awaitable<void> {
      asio::steady_timer timer(co_await asio::this_coro::executor);
      while (published < s.start_after_published) {
        timer.expires_after(std::chrono::milliseconds(1));
        co_await timer.async_wait(asio::use_awaitable);
      }
      auto sub = (co_await rail.subscribe("live", s.from)).value();
      ++subscribed;
      for (;;) {
        auto batch = (co_await sub.next(std::chrono::seconds(20))).value();
        if (batch.empty()) throw std::runtime_error("subscriber starved");
        for (auto& e : batch) s.ids.push_back(e->id);
        if (s.ids.size() > kPublishers * kPerPublisher + 1) throw std::runtime_error("duplicates");
        if (batch.back()->type == "end") co_return;
      }
    }(rail, s, published, subscribed));
  }
  testing::run_all(io_, std::move(tasks), 4);

  std::vector<StreamId> everything;
  StreamId after;
  for (int pages = 0; pages < 100; ++pages) {
    auto page = testing::run(io_, rail.replay("live", Cursor::after(after), 1000)).value();
    if (page.empty()) break;
    for (auto& e : page) everything.push_back(e->id);
    after = page.back()->id;
  }
  ASSERT_EQ(everything.size(), std::size_t{kPublishers * kPerPublisher + 1});
  for (const auto& s : subscribers) {
    ASSERT_FALSE(s.ids.empty());
    auto start = std::find(everything.begin(), everything.end(), s.ids.front());
    ASSERT_NE(start, everything.end());
    EXPECT_TRUE(std::equal(s.ids.begin(), s.ids.end(), start, everything.end()))
        << "a subscriber saw a gap, a duplicate or a reordering";
    if (s.from == Cursor::beginning()) {
      EXPECT_EQ(s.ids.size(), everything.size());
    }
  }
}

// Streams with an age of their own (their topic's) follow it, whatever the server-wide one, and
// without a server-wide age only they are looked at.
TEST(RailRetention, StreamsWithAnAgeOfTheirOwnFollowIt) {
  std::atomic<std::uint64_t> clock = 1'000'000;
  auto store = std::make_shared<store::MemoryStore>(
      store::MemoryStore::Options{.now_ms = [&clock] { return clock.load(); }});
  asio::io_context io;
  Rail unlimited(store);
  auto publish = [&](std::string_view channel) {
    EventInput in{.channel = channel, .type = "t", .payload = "{}"};
    ASSERT_TRUE(testing::run(io, unlimited.publish(in)));
  };
  for (auto channel : {"short", "kept", "plain"}) publish(channel);
  clock = 1'100'000;
  for (auto channel : {"short", "kept", "plain"}) publish(channel);
  const StringMap<store::Millis> own{{"short", 60'000ms}, {"kept", 0ms}, {"not-yet", 1ms}};

  auto pass = testing::run(io, unlimited.expire_old_events(1'100'000, own));
  ASSERT_TRUE(pass) << pass.error().message;
  EXPECT_EQ(pass->events, 1u) << "only short's first event: no age for the others";
  EXPECT_EQ(testing::run(io, store->info("short")).value().length, 1u);
  EXPECT_EQ(testing::run(io, store->info("plain")).value().length, 2u);
  EXPECT_FALSE(testing::run(io, store->info("not-yet"))) << "a stream is not created";

  RailConfig config;
  config.max_stream_age = 60'000ms;
  Rail aging(store, config);
  pass = testing::run(io, aging.expire_old_events(1'100'000, own));
  ASSERT_TRUE(pass) << pass.error().message;
  EXPECT_EQ(pass->events, 1u) << "plain's first event; kept's own 0 is no age limit";
  EXPECT_EQ(testing::run(io, store->info("plain")).value().length, 1u);
  EXPECT_EQ(testing::run(io, store->info("kept")).value().length, 2u);
}

TEST(RailRetention, ExpireOldEventsRemovesWhatOutlivedTheMaxAgeFromEveryStream) {
  std::atomic<std::uint64_t> clock = 1'000'000;  // the store's clock: the ids' time
  auto store = std::make_shared<store::MemoryStore>(
      store::MemoryStore::Options{.now_ms = [&clock] { return clock.load(); }});
  RailConfig config;
  config.max_stream_age = 60'000ms;
  Rail rail(store, config);
  asio::io_context io;
  auto publish = [&](std::string_view channel) {
    EventInput in{.channel = channel, .type = "t", .payload = "{}"};
    return testing::run(io, rail.publish(in)).value().event;
  };
  auto a0 = publish("a");
  publish("a");
  publish("b");
  clock = 1'030'000;
  auto a2 = publish("a");
  clock = 1'070'000;
  auto b2 = publish("b");

  // 1'070'000 - 60 s: the first two of a and the first of b are older, a2 and b2 are not.
  auto pass = testing::run(io, rail.expire_old_events(1'070'000));
  ASSERT_TRUE(pass) << pass.error().message;
  EXPECT_EQ(pass->streams, 2u);
  EXPECT_EQ(pass->events, 3u);
  auto a = testing::run(io, rail.replay("a", Cursor::beginning())).value();
  ASSERT_EQ(a.size(), 1u);
  EXPECT_EQ(a[0]->id, a2->id);
  auto b = testing::run(io, rail.replay("b", Cursor::beginning())).value();
  ASSERT_EQ(b.size(), 1u);
  EXPECT_EQ(b[0]->id, b2->id);
  auto gone = testing::run(io, rail.replay("a", Cursor::after(a0->id)));
  ASSERT_FALSE(gone);
  EXPECT_EQ(gone.error().code, errc::replay_window_expired);

  // Exactly 60 s old is kept; a millisecond more is not.
  EXPECT_EQ(testing::run(io, rail.expire_old_events(1'090'000)).value().events, 0u);
  EXPECT_EQ(testing::run(io, rail.expire_old_events(1'090'001)).value().events, 1u);
  EXPECT_TRUE(testing::run(io, rail.replay("a", Cursor::beginning())).value().empty());

  // Without a max age nothing goes, however old.
  Rail unlimited(store);
  auto none = testing::run(io, unlimited.expire_old_events(9'000'000));
  ASSERT_TRUE(none);
  EXPECT_EQ(none->streams, 0u);
  EXPECT_EQ(testing::run(io, rail.replay("b", Cursor::beginning())).value().size(), 1u);
}

}  // namespace
}  // namespace replayrail
