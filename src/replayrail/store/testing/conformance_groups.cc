#include <algorithm>
#include <atomic>
#include <map>
#include <set>
#include <thread>

#include "replayrail/store/testing/conformance.h"
#include "replayrail/store/testing/helpers.h"

namespace replayrail::testing {

using namespace replayrail::store;
using std::chrono_literals::operator""ms;

// --- consumer groups --------------------------------------------------------------------

TEST_P(StoreConformance, GroupCreateNeedsTheStreamUnlessMkstream) {
  auto r = run(store().group_create("s", "g", Cursor::latest(), false));
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().code, errc::stream_not_found);
  ASSERT_TRUE(run(store().group_create("s", "g", Cursor::latest(), true)));
  auto info = run(store().info("s"));
  ASSERT_TRUE(info);
  EXPECT_EQ(info->length, 0u);
  ASSERT_EQ(info->groups.size(), 1u);
  EXPECT_EQ(info->groups[0].name, "g");
  auto twice = run(store().group_create("s", "g", Cursor::latest(), true));
  ASSERT_FALSE(twice);
  EXPECT_EQ(twice.error().code, errc::group_exists);
}

TEST_P(StoreConformance, GroupStartPositionDecidesWhatIsNew) {
  auto events = append_n("s", 3);
  ASSERT_TRUE(run(store().group_create("s", "latest", Cursor::latest(), false)));
  ASSERT_TRUE(run(store().group_create("s", "all", Cursor::beginning(), false)));
  ASSERT_TRUE(run(store().group_create("s", "mid", Cursor::after(events[0]->id), false)));
  std::vector<GroupCursor> cursors{{"s", std::nullopt}};
  auto count = [&](const char* g) {
    auto r = run(store().read_group(g, "c", cursors, {10, std::nullopt}));
    EXPECT_TRUE(r);
    return r && !r->empty() ? r->front().messages.size() : 0u;
  };
  EXPECT_EQ(count("latest"), 0u);
  EXPECT_EQ(count("all"), 3u);
  EXPECT_EQ(count("mid"), 2u);
}

TEST_P(StoreConformance, NewMessagesGoToOneConsumerEach) {
  auto events = append_n("s", 5);
  ASSERT_TRUE(run(store().group_create("s", "g", Cursor::beginning(), false)));
  std::vector<GroupCursor> cursors{{"s", std::nullopt}};
  auto c1 = run(store().read_group("g", "c1", cursors, {3, std::nullopt}));
  auto c2 = run(store().read_group("g", "c2", cursors, {10, std::nullopt}));
  auto c3 = run(store().read_group("g", "c3", cursors, {10, std::nullopt}));
  ASSERT_TRUE(c1 && c2 && c3);
  ASSERT_EQ(c1->size(), 1u);
  ASSERT_EQ(c2->size(), 1u);
  EXPECT_TRUE(c3->empty());
  EXPECT_EQ(ids_of(c1->front().messages),
            (std::vector<StreamId>{events[0]->id, events[1]->id, events[2]->id}));
  EXPECT_EQ(ids_of(c2->front().messages), (std::vector<StreamId>{events[3]->id, events[4]->id}));
  for (const auto& m : c1->front().messages) {
    EXPECT_EQ(m.delivery_count, 1u);
    ASSERT_TRUE(m.event);
    EXPECT_EQ(m.event->id, m.id);
  }
  auto summary = run(store().pending("s", "g"));
  ASSERT_TRUE(summary);
  EXPECT_EQ(summary->count, 5u);
  EXPECT_EQ(summary->min_id, events[0]->id);
  EXPECT_EQ(summary->max_id, events[4]->id);
  EXPECT_EQ(summary->consumers,
            (std::vector<std::pair<std::string, std::uint64_t>>{{"c1", 3}, {"c2", 2}}));
}

TEST_P(StoreConformance, HistoryReadRedeliversOwnPendingAndCountsIt) {
  auto events = append_n("s", 3);
  ASSERT_TRUE(run(store().group_create("s", "g", Cursor::beginning(), false)));
  std::vector<GroupCursor> fresh{{"s", std::nullopt}};
  ASSERT_TRUE(run(store().read_group("g", "c1", fresh, {2, std::nullopt})));
  ASSERT_TRUE(run(store().read_group("g", "c2", fresh, {1, std::nullopt})));

  std::vector<GroupCursor> history{{"s", StreamId{}}};
  auto mine = run(store().read_group("g", "c1", history, {10, 10'000ms}));
  ASSERT_TRUE(mine);
  ASSERT_EQ(mine->size(), 1u);
  EXPECT_EQ(ids_of(mine->front().messages), (std::vector<StreamId>{events[0]->id, events[1]->id}));
  for (const auto& m : mine->front().messages) EXPECT_EQ(m.delivery_count, 2u);

  std::vector<GroupCursor> after_first{{"s", events[0]->id}};
  auto rest = run(store().read_group("g", "c1", after_first, {10, std::nullopt}));
  ASSERT_TRUE(rest);
  EXPECT_EQ(ids_of(rest->front().messages), (std::vector<StreamId>{events[1]->id}));

  ASSERT_TRUE(run(store().ack("s", "g", std::vector<StreamId>{events[0]->id, events[1]->id})));
  auto empty = run(store().read_group("g", "c1", history, {10, 10'000ms}));
  ASSERT_TRUE(empty);
  ASSERT_EQ(empty->size(), 1u) << "a history read answers for its stream even when empty";
  EXPECT_TRUE(empty->front().messages.empty());
}

TEST_P(StoreConformance, AckRemovesFromPendingOnce) {
  auto events = append_n("s", 3);
  ASSERT_TRUE(run(store().group_create("s", "g", Cursor::beginning(), false)));
  std::vector<GroupCursor> fresh{{"s", std::nullopt}};
  ASSERT_TRUE(run(store().read_group("g", "c", fresh, {10, std::nullopt})));
  std::vector<StreamId> two{events[0]->id, events[2]->id, StreamId{1, 1}};
  EXPECT_EQ(*run(store().ack("s", "g", two)), 2u);
  EXPECT_EQ(*run(store().ack("s", "g", two)), 0u);
  EXPECT_EQ(*run(store().ack("s", "nogroup", two)), 0u);
  EXPECT_EQ(*run(store().ack("nostream", "g", two)), 0u);
  auto summary = run(store().pending("s", "g"));
  ASSERT_TRUE(summary);
  EXPECT_EQ(summary->count, 1u);
  EXPECT_EQ(summary->min_id, events[1]->id);
}

TEST_P(StoreConformance, AutoclaimMovesIdleMessagesAndCountsDeliveries) {
  auto events = append_n("s", 4);
  ASSERT_TRUE(run(store().group_create("s", "g", Cursor::beginning(), false)));
  std::vector<GroupCursor> fresh{{"s", std::nullopt}};
  ASSERT_TRUE(run(store().read_group("g", "crashed", fresh, {10, std::nullopt})));

  auto none = run(store().autoclaim("s", "g", "rescuer", 3'600'000ms, {}, 10));
  ASSERT_TRUE(none);
  EXPECT_TRUE(none->claimed.empty()) << "nothing has been idle an hour";
  EXPECT_EQ(none->next, StreamId{});

  auto first = run(store().autoclaim("s", "g", "rescuer", 0ms, {}, 3));
  ASSERT_TRUE(first);
  EXPECT_EQ(ids_of(first->claimed),
            (std::vector<StreamId>{events[0]->id, events[1]->id, events[2]->id}));
  EXPECT_EQ(first->next, events[3]->id) << "the scan continues where it stopped";
  for (const auto& m : first->claimed) {
    EXPECT_EQ(m.delivery_count, 2u);
    ASSERT_TRUE(m.event);
  }
  auto second = run(store().autoclaim("s", "g", "rescuer", 0ms, first->next, 3));
  ASSERT_TRUE(second);
  EXPECT_EQ(ids_of(second->claimed), (std::vector<StreamId>{events[3]->id}));
  EXPECT_EQ(second->next, StreamId{});

  auto summary = run(store().pending("s", "g"));
  ASSERT_TRUE(summary);
  EXPECT_EQ(summary->consumers,
            (std::vector<std::pair<std::string, std::uint64_t>>{{"rescuer", 4}}));
  PendingQuery q;
  q.consumer = "rescuer";
  auto entries = run(store().pending_entries("s", "g", q));
  ASSERT_TRUE(entries);
  ASSERT_EQ(entries->size(), 4u);
  EXPECT_EQ((*entries)[0].delivery_count, 2u);
}

TEST_P(StoreConformance, TrimmedPendingMessagesAreReportedAsDeleted) {
  auto events = append_n("s", 3);
  ASSERT_TRUE(run(store().group_create("s", "g", Cursor::beginning(), false)));
  std::vector<GroupCursor> fresh{{"s", std::nullopt}};
  ASSERT_TRUE(run(store().read_group("g", "c", fresh, {10, std::nullopt})));
  auto newest = append("s", R"({"n":3})", 2);  // trims events 0 and 1
  ASSERT_TRUE(newest);

  std::vector<GroupCursor> history{{"s", StreamId{}}};
  auto h = run(store().read_group("g", "c", history, {10, std::nullopt}));
  ASSERT_TRUE(h);
  ASSERT_EQ(h->front().messages.size(), 3u);
  EXPECT_FALSE(h->front().messages[0].event);
  EXPECT_FALSE(h->front().messages[1].event);
  ASSERT_TRUE(h->front().messages[2].event);
  EXPECT_EQ(h->front().messages[2].event->id, events[2]->id);

  auto claim = run(store().autoclaim("s", "g", "other", 0ms, {}, 10));
  ASSERT_TRUE(claim);
  EXPECT_EQ(claim->deleted, (std::vector<StreamId>{events[0]->id, events[1]->id}));
  EXPECT_EQ(ids_of(claim->claimed), (std::vector<StreamId>{events[2]->id}));
  EXPECT_EQ(run(store().pending("s", "g"))->count, 1u);
}

TEST_P(StoreConformance, TrimBeforeTakesUnreadEntriesFromAGroupAndLeavesPendingOnes) {
  auto events = append_n("s", 4);
  ASSERT_TRUE(run(store().group_create("s", "g", Cursor::beginning(), false)));
  std::vector<GroupCursor> fresh{{"s", std::nullopt}};
  ASSERT_TRUE(run(store().read_group("g", "c", fresh, {2, std::nullopt})));  // 0 and 1
  ASSERT_EQ(run(store().trim_before("s", events[3]->id)).value(), 3u);
  auto info = run(store().info("s"));
  ASSERT_TRUE(info);
  ASSERT_EQ(info->groups.size(), 1u);
  EXPECT_EQ(info->groups[0].lag, 1u) << "event 3 is what the group has still to read";
  EXPECT_EQ(info->groups[0].pending, 2u);

  // Pending without their events; the unread event 2 is gone; event 3 is what is new.
  std::vector<GroupCursor> history{{"s", StreamId{}}};
  auto h = run(store().read_group("g", "c", history, {10, std::nullopt}));
  ASSERT_TRUE(h);
  ASSERT_EQ(h->front().messages.size(), 2u);
  EXPECT_FALSE(h->front().messages[0].event);
  EXPECT_FALSE(h->front().messages[1].event);
  EXPECT_EQ(run(store().pending("s", "g"))->count, 2u);
  auto next = run(store().read_group("g", "c", fresh, {10, std::nullopt}));
  ASSERT_TRUE(next);
  ASSERT_EQ(next->size(), 1u);
  EXPECT_EQ(ids_of(next->front().messages), std::vector<StreamId>{events[3]->id});
}

TEST_P(StoreConformance, PendingEntriesFilterByRangeConsumerAndCount) {
  auto events = append_n("s", 6);
  ASSERT_TRUE(run(store().group_create("s", "g", Cursor::beginning(), false)));
  std::vector<GroupCursor> fresh{{"s", std::nullopt}};
  ASSERT_TRUE(run(store().read_group("g", "a", fresh, {3, std::nullopt})));
  ASSERT_TRUE(run(store().read_group("g", "b", fresh, {3, std::nullopt})));

  PendingQuery all;
  auto e = run(store().pending_entries("s", "g", all));
  ASSERT_TRUE(e);
  ASSERT_EQ(e->size(), 6u);
  EXPECT_EQ((*e)[0].consumer, "a");
  EXPECT_EQ((*e)[5].consumer, "b");

  PendingQuery window;
  window.start = events[1]->id;
  window.end = events[4]->id;
  window.count = 2;
  auto w = run(store().pending_entries("s", "g", window));
  ASSERT_TRUE(w);
  ASSERT_EQ(w->size(), 2u);
  EXPECT_EQ((*w)[0].id, events[1]->id);
  EXPECT_EQ((*w)[1].id, events[2]->id);

  PendingQuery only_b;
  only_b.consumer = "b";
  auto b = run(store().pending_entries("s", "g", only_b));
  ASSERT_TRUE(b);
  ASSERT_EQ(b->size(), 3u);
  EXPECT_EQ((*b)[0].id, events[3]->id);

  PendingQuery idle;
  idle.min_idle_ms = 3'600'000;
  EXPECT_TRUE(run(store().pending_entries("s", "g", idle))->empty());

  auto consumers = run(store().consumers("s", "g"));
  ASSERT_TRUE(consumers);
  ASSERT_EQ(consumers->size(), 2u);
  EXPECT_EQ((*consumers)[0].name, "a");
  EXPECT_EQ((*consumers)[0].pending, 3u);
}

TEST_P(StoreConformance, SetidRewindsOrSkips) {
  auto events = append_n("s", 3);
  ASSERT_TRUE(run(store().group_create("s", "g", Cursor::latest(), false)));
  std::vector<GroupCursor> fresh{{"s", std::nullopt}};
  ASSERT_TRUE(run(store().group_setid("s", "g", Cursor::beginning())));
  auto all = run(store().read_group("g", "c", fresh, {10, std::nullopt}));
  ASSERT_TRUE(all);
  EXPECT_EQ(all->front().messages.size(), 3u);

  // Rewound again: already-pending messages are delivered afresh (ownership and count reset).
  ASSERT_TRUE(run(store().group_setid("s", "g", Cursor::after(events[1]->id))));
  auto again = run(store().read_group("g", "other", fresh, {10, std::nullopt}));
  ASSERT_TRUE(again);
  ASSERT_EQ(again->front().messages.size(), 1u);
  EXPECT_EQ(again->front().messages[0].id, events[2]->id);
  EXPECT_EQ(again->front().messages[0].delivery_count, 1u);
  auto summary = run(store().pending("s", "g"));
  EXPECT_EQ(summary->consumers,
            (std::vector<std::pair<std::string, std::uint64_t>>{{"c", 2}, {"other", 1}}));

  ASSERT_TRUE(run(store().group_setid("s", "g", Cursor::latest())));
  append("s");
  auto one = run(store().read_group("g", "c", fresh, {10, std::nullopt}));
  ASSERT_TRUE(one);
  EXPECT_EQ(one->front().messages.size(), 1u);

  EXPECT_EQ(run(store().group_setid("s", "nope", Cursor::latest())).error().code,
            errc::group_not_found);
  EXPECT_EQ(run(store().group_setid("nostream", "g", Cursor::latest())).error().code,
            errc::stream_not_found);
}

TEST_P(StoreConformance, GroupDestroy) {
  append("s");
  ASSERT_TRUE(run(store().group_create("s", "g", Cursor::beginning(), false)));
  EXPECT_TRUE(*run(store().group_destroy("s", "g")));
  EXPECT_FALSE(*run(store().group_destroy("s", "g")));
  EXPECT_EQ(run(store().group_destroy("nostream", "g")).error().code, errc::stream_not_found);
  std::vector<GroupCursor> fresh{{"s", std::nullopt}};
  auto r = run(store().read_group("g", "c", fresh, {10, std::nullopt}));
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().code, errc::group_not_found);
}

TEST_P(StoreConformance, ReadGroupWithOneMissingGroupChangesNothing) {
  append_n("a", 2);
  append_n("b", 2);
  ASSERT_TRUE(run(store().group_create("a", "g", Cursor::beginning(), false)));
  std::vector<GroupCursor> both{{"a", std::nullopt}, {"b", std::nullopt}};
  auto r = run(store().read_group("g", "c", both, {10, std::nullopt}));
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().code, errc::group_not_found);
  EXPECT_EQ(run(store().pending("a", "g"))->count, 0u);
  EXPECT_EQ(run(store().pending("missing", "g")).error().code, errc::group_not_found);
  EXPECT_EQ(run(store().autoclaim("b", "g", "c", 0ms, {}, 1)).error().code, errc::group_not_found);
}

TEST_P(StoreConformance, BlockedGroupReadWakesOnAppend) {
  ASSERT_TRUE(run(store().group_create("s", "g", Cursor::latest(), true)));
  std::vector<GroupCursor> fresh{{"s", std::nullopt}};
  result<std::vector<GroupStreamMessages>> got = std::vector<GroupStreamMessages>{};
  std::vector<boost::asio::awaitable<void>> tasks;
  tasks.push_back([](Store& s, auto& cursors, auto& got) -> boost::asio::awaitable<void> {
    got = co_await s.read_group("g", "c", cursors, {10, 10'000ms});
  }(store(), fresh, got));
  tasks.push_back([](Store& s) -> boost::asio::awaitable<void> {
    (void)(co_await s.append("s", StoreConformance::event("s"), {})).value();
  }(store()));
  run_concurrently(std::move(tasks), 1);
  ASSERT_TRUE(got);
  ASSERT_EQ(got->size(), 1u);
  EXPECT_EQ(got->front().messages.size(), 1u);
}

TEST_P(StoreConformance, GroupInfoReportsLagPendingAndConsumers) {
  auto events = append_n("s", 5);
  ASSERT_TRUE(run(store().group_create("s", "g", Cursor::beginning(), false)));
  std::vector<GroupCursor> fresh{{"s", std::nullopt}};
  ASSERT_TRUE(run(store().read_group("g", "c1", fresh, {2, std::nullopt})));
  ASSERT_TRUE(run(store().ack("s", "g", std::vector<StreamId>{events[0]->id})));
  auto info = run(store().info("s"));
  ASSERT_TRUE(info);
  ASSERT_EQ(info->groups.size(), 1u);
  const auto& g = info->groups[0];
  EXPECT_EQ(g.name, "g");
  EXPECT_EQ(g.consumers, 1u);
  EXPECT_EQ(g.pending, 1u);
  EXPECT_EQ(g.last_delivered, events[1]->id);
  EXPECT_EQ(g.lag, 3u);
}

TEST_P(StoreConformance, GroupOptionsAreStoredWithTheGroup) {
  append_n("s", 2);
  ASSERT_TRUE(run(store().group_create("s", "limited", Cursor::beginning(), false, {3})));
  ASSERT_TRUE(run(store().group_create("s", "plain", Cursor::beginning(), false)));
  auto max_of = [&](const std::string& group) -> std::int64_t {
    auto info = run(store().info("s"));
    EXPECT_TRUE(info);
    for (const auto& g : info->groups) {
      if (g.name == group) return static_cast<std::int64_t>(g.max_deliveries);
    }
    return -1;
  };
  EXPECT_EQ(max_of("limited"), 3);
  EXPECT_EQ(max_of("plain"), 0);
  ASSERT_TRUE(run(store().group_setid("s", "limited", Cursor::latest())));
  EXPECT_EQ(max_of("limited"), 3) << "a new position keeps the options";
  // A group created again after DESTROY starts from its own options.
  ASSERT_TRUE(run(store().group_destroy("s", "limited")));
  ASSERT_TRUE(run(store().group_create("s", "limited", Cursor::beginning(), false)));
  EXPECT_EQ(max_of("limited"), 0);
  // A failed create (the group exists) changes nothing.
  ASSERT_TRUE(run(store().group_destroy("s", "limited")));
  ASSERT_TRUE(run(store().group_create("s", "limited", Cursor::beginning(), false, {5})));
  auto again = run(store().group_create("s", "limited", Cursor::beginning(), false, {9}));
  ASSERT_FALSE(again);
  EXPECT_EQ(again.error().code, errc::group_exists);
  EXPECT_EQ(max_of("limited"), 5);
}

TEST_P(StoreConformance, GroupAndConsumerNamesAreValidated) {
  append("s");
  EXPECT_EQ(run(store().group_create("s", "", Cursor::latest(), false)).error().code,
            errc::invalid_argument);
  ASSERT_TRUE(run(store().group_create("s", "g", Cursor::latest(), false)));
  std::vector<GroupCursor> fresh{{"s", std::nullopt}};
  EXPECT_EQ(run(store().read_group("g", "", fresh, {1, std::nullopt})).error().code,
            errc::invalid_argument);
  EXPECT_EQ(run(store().autoclaim("s", "g", "c", 0ms, {}, 0)).error().code, errc::invalid_argument);
}

// --- topics and health ------------------------------------------------------------------

TEST_P(StoreConformance, TopicsHaveAFixedPartitionCount) {
  auto t = run(store().create_topic("orders", 4));
  ASSERT_TRUE(t);
  EXPECT_EQ(t->name, "orders");
  EXPECT_EQ(t->partitions, 4u);
  EXPECT_FALSE(t->created_at.empty());
  auto same = run(store().create_topic("orders", 4));
  ASSERT_TRUE(same);
  EXPECT_EQ(same->created_at, t->created_at);
  auto other = run(store().create_topic("orders", 8));
  ASSERT_FALSE(other);
  EXPECT_EQ(other.error().code, errc::topic_conflict);
  ASSERT_TRUE(run(store().create_topic("alerts", 1)));

  auto got = run(store().get_topic("orders"));
  ASSERT_TRUE(got);
  ASSERT_TRUE(got->has_value());
  EXPECT_EQ((*got)->partitions, 4u);
  EXPECT_FALSE(run(store().get_topic("nope"))->has_value());
  auto all = run(store().list_topics());
  ASSERT_TRUE(all);
  ASSERT_EQ(all->size(), 2u);
  EXPECT_EQ((*all)[0].name, "alerts");
  EXPECT_EQ((*all)[1].name, "orders");
}

TEST_P(StoreConformance, TopicsRefuseBadNamesAndCounts) {
  EXPECT_EQ(run(store().create_topic("bad#name", 2)).error().code, errc::invalid_channel);
  EXPECT_EQ(run(store().create_topic("t", 0)).error().code, errc::invalid_argument);
  EXPECT_EQ(run(store().create_topic("t", kMaxPartitions + 1)).error().code,
            errc::invalid_argument);
  EXPECT_TRUE(run(store().list_topics())->empty());
}

TEST_P(StoreConformance, ATopicKeepsItsOwnRetention) {
  auto t = run(store().create_topic("orders", 4));
  ASSERT_TRUE(t);
  EXPECT_EQ(t->retention, TopicRetention{}) << "the server's, until set";
  const TopicRetention own{.max_length = 500, .max_age = Millis(3'600'000)};
  auto set = run(store().set_topic_retention("orders", own));
  ASSERT_TRUE(set) << set.error().message;
  EXPECT_EQ(set->retention, own);
  EXPECT_EQ(set->partitions, 4u);
  EXPECT_EQ(set->created_at, t->created_at);
  EXPECT_EQ(run(store().get_topic("orders"))->value().retention, own);
  EXPECT_EQ(run(store().list_topics())->at(0).retention, own);
  EXPECT_EQ(run(store().create_topic("orders", 4))->retention, own) << "creating again keeps it";

  // Zero is a setting of its own (no limit), not the server's; a field left unset is.
  const TopicRetention unlimited{.max_length = 0, .max_age = std::nullopt};
  ASSERT_TRUE(run(store().set_topic_retention("orders", unlimited)));
  EXPECT_EQ(run(store().get_topic("orders"))->value().retention, unlimited);
  ASSERT_TRUE(run(store().set_topic_retention("orders", {})));
  EXPECT_EQ(run(store().get_topic("orders"))->value().retention, TopicRetention{});

  auto missing = run(store().set_topic_retention("nope", own));
  ASSERT_FALSE(missing);
  EXPECT_EQ(missing.error().code, errc::stream_not_found);
  EXPECT_FALSE(run(store().get_topic("nope"))->has_value()) << "not created";
  for (const TopicRetention& bad :
       {TopicRetention{.max_length = {}, .max_age = Millis(-1)},
        TopicRetention{.max_length = {}, .max_age = kMaxRetentionAge + Millis(1)},
        TopicRetention{.max_length = std::uint64_t{1} << 63, .max_age = {}}}) {
    auto refused = run(store().set_topic_retention("orders", bad));
    ASSERT_FALSE(refused);
    EXPECT_EQ(refused.error().code, errc::invalid_argument);
  }
  EXPECT_EQ(run(store().get_topic("orders"))->value().retention, TopicRetention{});
  const TopicRetention longest{.max_length = (std::uint64_t{1} << 63) - 1,
                               .max_age = kMaxRetentionAge};
  ASSERT_TRUE(run(store().set_topic_retention("orders", longest)));
  EXPECT_EQ(run(store().get_topic("orders"))->value().retention, longest);
}

TEST_P(StoreConformance, ATopicLeavesTheRegistryWhenDeleted) {
  ASSERT_TRUE(run(store().create_topic("orders", 4)));
  ASSERT_TRUE(run(store().create_topic("alerts", 1)));
  ASSERT_TRUE(run(store().append("orders#0", event("orders"), {})));
  EXPECT_TRUE(run(store().delete_topic("orders")).value());
  EXPECT_FALSE(run(store().get_topic("orders"))->has_value());
  ASSERT_EQ(run(store().list_topics())->size(), 1u);
  EXPECT_EQ(run(store().info("orders#0"))->length, 1u) << "its streams are delete_stream's";
  EXPECT_FALSE(run(store().delete_topic("orders")).value()) << "already gone";
  EXPECT_FALSE(run(store().delete_topic("never")).value());
  auto again = run(store().create_topic("orders", 8));
  ASSERT_TRUE(again) << "made again, with another count";
  EXPECT_EQ(again->partitions, 8u);
  EXPECT_EQ(again->retention, TopicRetention{});
}

// A lease (SET NX PX): one taker until it lapses, whoever asks.
TEST_P(StoreConformance, ALeaseHasOneTakerUntilItLapses) {
  EXPECT_TRUE(run(store().take_lease("expiry", 300ms)).value());
  EXPECT_FALSE(run(store().take_lease("expiry", 300ms)).value()) << "held";
  EXPECT_TRUE(run(store().take_lease("archive", 300ms)).value()) << "another lease";
  std::this_thread::sleep_for(400ms);
  EXPECT_TRUE(run(store().take_lease("expiry", 10'000ms)).value()) << "lapsed";
  EXPECT_FALSE(run(store().take_lease("expiry", 300ms)).value());
  EXPECT_EQ(run(store().take_lease("expiry", 0ms)).error().code, errc::invalid_argument);
  EXPECT_EQ(run(store().take_lease("bad#name", 300ms)).error().code, errc::invalid_channel);
}

TEST_P(StoreConformance, HealthIsOk) { EXPECT_TRUE(run(store().health())); }

}  // namespace replayrail::testing
