#include "replayrail/store/testing/conformance.h"

#include <algorithm>
#include <atomic>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/this_coro.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <map>
#include <set>
#include <thread>

#include "replayrail/store/testing/helpers.h"

namespace replayrail::testing {

using namespace replayrail::store;
using std::chrono_literals::operator""ms;

NewEvent StoreConformance::event(std::string_view channel, std::string_view payload,
                                 std::optional<std::string_view> event_id) {
  EventInput in;
  in.channel = channel;
  in.type = "test.event";
  in.payload = payload;
  in.event_id = event_id;
  return make_event(in).value();
}

EventPtr StoreConformance::append(std::string_view stream, std::string_view payload,
                                  std::uint64_t maxlen) {
  auto r = run(store().append(stream, event(stream, payload), {maxlen}));
  EXPECT_TRUE(r) << r.error().message;
  return r ? r->event : nullptr;
}

std::vector<EventPtr> StoreConformance::append_n(std::string_view stream, int n,
                                                 std::uint64_t maxlen) {
  std::vector<EventPtr> out;
  for (int i = 0; i < n; ++i) {
    out.push_back(append(stream, R"({"n":)" + std::to_string(i) + "}", maxlen));
  }
  return out;
}

// --- append / range ---------------------------------------------------------------------

TEST_P(StoreConformance, AppendAssignsStrictlyIncreasingIds) {
  auto events = append_n("orders", 50);
  for (std::size_t i = 1; i < events.size(); ++i) EXPECT_LT(events[i - 1]->id, events[i]->id);
  EXPECT_GT(events.front()->id.ms, 1'600'000'000'000u) << "ids start at the Unix time in ms";
}

TEST_P(StoreConformance, AppendStoresTheContentAsGiven) {
  EventInput in;
  in.channel = "restaurant:123:orders";
  in.type = "order.created";
  in.payload = R"({"order_id": "ord_123", "items": [1, 2.5]})";
  in.actor = R"({"type":"waiter","id":"usr_123"})";
  in.metadata = R"({"correlation_id":"req_abc123"})";
  in.event_id = "evt-1";
  in.created_at = "2026-06-29T12:00:00.123Z";
  auto appended = run(store().append("restaurant:123:orders", make_event(in).value(), {}));
  ASSERT_TRUE(appended);
  EXPECT_FALSE(appended->duplicate);
  auto page = run(store().range("restaurant:123:orders", {}, 10));
  ASSERT_TRUE(page);
  ASSERT_EQ(page->size(), 1u);
  const Event& e = *page->front();
  EXPECT_EQ(e.id, appended->event->id);
  EXPECT_EQ(e.event_id, "evt-1");
  EXPECT_EQ(e.channel, "restaurant:123:orders");
  EXPECT_EQ(e.type, "order.created");
  EXPECT_EQ(e.payload, in.payload);
  EXPECT_EQ(e.actor, *in.actor);
  EXPECT_EQ(e.metadata, *in.metadata);
  EXPECT_EQ(e.created_at, *in.created_at);
}

TEST_P(StoreConformance, RangeIsExclusiveOrderedAndLimited) {
  auto events = append_n("s", 10);
  auto all = run(store().range("s", {}, 100));
  ASSERT_TRUE(all);
  EXPECT_EQ(ids_of(*all), ids_of(events));

  auto after3 = run(store().range("s", events[3]->id, 4));
  ASSERT_TRUE(after3);
  EXPECT_EQ(ids_of(*after3),
            (std::vector<StreamId>{events[4]->id, events[5]->id, events[6]->id, events[7]->id}));

  auto none = run(store().range("s", events[2]->id, 0));
  ASSERT_TRUE(none);
  EXPECT_TRUE(none->empty());

  auto tail = run(store().range("s", events.back()->id, 10));
  ASSERT_TRUE(tail);
  EXPECT_TRUE(tail->empty());
}

TEST_P(StoreConformance, RangeBetweenIdsStartsAtTheNextId) {
  auto events = append_n("s", 3);
  // A cursor that is not an event id still means "strictly after".
  StreamId between{events[1]->id.ms, events[1]->id.seq};
  auto page = run(store().range("s", {between.ms - 1, UINT64_MAX}, 10));
  ASSERT_TRUE(page);
  ASSERT_FALSE(page->empty());
  EXPECT_GE(page->front()->id.ms, between.ms);
  auto far = run(store().range("s", StreamId::max(), 10));
  ASSERT_TRUE(far);
  EXPECT_TRUE(far->empty());
}

TEST_P(StoreConformance, RangeOfMissingStreamIsEmpty) {
  auto page = run(store().range("nothing-here", {}, 10));
  ASSERT_TRUE(page);
  EXPECT_TRUE(page->empty());
}

TEST_P(StoreConformance, MaxlenKeepsTheNewestEntries) {
  auto events = append_n("s", 7, 3);
  auto page = run(store().range("s", {}, 10));
  ASSERT_TRUE(page);
  EXPECT_EQ(ids_of(*page), (std::vector<StreamId>{events[4]->id, events[5]->id, events[6]->id}));
  auto info = run(store().info("s"));
  ASSERT_TRUE(info);
  EXPECT_EQ(info->length, 3u);
  EXPECT_EQ(info->first_id, events[4]->id);
  EXPECT_EQ(info->last_id, events[6]->id);
  EXPECT_EQ(info->trimmed_through, events[3]->id);
}

TEST_P(StoreConformance, ApproximateMaxlenKeepsAtLeastMaxlenAndStaysExact) {
  // MAXLEN ~: never fewer than maxlen, bounded above, and the trimmed edge still exact.
  std::vector<EventPtr> events;
  for (int i = 0; i < 450; ++i) {
    auto r =
        run(store().append("s", event("s", R"({"n":1})"), {.maxlen = 50, .approximate = true}));
    ASSERT_TRUE(r) << r.error().message;
    events.push_back(r->event);
  }
  // An approximate trim may still be running (the append does not wait for it).
  std::optional<StreamInfo> info;
  for (int tries = 0; tries < 200; ++tries) {
    auto got = run(store().info("s"));
    ASSERT_TRUE(got);
    info = *got;
    if (info->length <= 50 + 2 * 100) break;
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
  }
  EXPECT_GE(info->length, 50u);
  EXPECT_LE(info->length, 50u + 2 * 100) << "one or two stream nodes of slack at most";
  ASSERT_EQ(info->last_id, events.back()->id);
  std::size_t first = events.size() - info->length;
  EXPECT_EQ(info->first_id, events[first]->id);
  ASSERT_GT(first, 0u);
  EXPECT_EQ(info->trimmed_through, events[first - 1]->id);
  EXPECT_TRUE(run(store().range("s", events[first - 1]->id, 1)));
  if (first > 1) {
    auto expired = run(store().range("s", events[first - 2]->id, 1));
    ASSERT_FALSE(expired);
    EXPECT_EQ(expired.error().code, errc::replay_window_expired);
  }
}

TEST_P(StoreConformance, ReplayAfterTrimmedCursorIsExpired) {
  auto events = append_n("s", 6, 3);  // keeps 3, 4, 5
  auto expired = run(store().range("s", events[1]->id, 10));
  ASSERT_FALSE(expired);
  EXPECT_EQ(expired.error().code, errc::replay_window_expired);
  ASSERT_TRUE(expired.error().first_available);
  EXPECT_EQ(*expired.error().first_available, events[3]->id);
  EXPECT_NE(expired.error().message.find(events[3]->id.to_string()), std::string::npos)
      << "the message names the first available id: " << expired.error().message;

  // The last trimmed id itself is fine: nothing after it is missing.
  auto edge = run(store().range("s", events[2]->id, 10));
  ASSERT_TRUE(edge);
  EXPECT_EQ(ids_of(*edge), (std::vector<StreamId>{events[3]->id, events[4]->id, events[5]->id}));

  // 0-0 always means "whatever is retained".
  auto from_start = run(store().range("s", {}, 10));
  ASSERT_TRUE(from_start);
  EXPECT_EQ(from_start->size(), 3u);
}

TEST_P(StoreConformance, IdsKeepIncreasingAfterEverythingWasTrimmed) {
  auto first = append_n("s", 3, 1);
  auto later = append("s", R"({"n":9})", 1);
  EXPECT_GT(later->id, first.back()->id);
  auto info = run(store().info("s"));
  ASSERT_TRUE(info);
  EXPECT_EQ(info->length, 1u);
  EXPECT_EQ(info->last_id, later->id);
}

TEST_P(StoreConformance, TrimBeforeRemovesTheEntriesBelowTheId) {
  auto events = append_n("s", 5);
  auto removed = run(store().trim_before("s", events[2]->id));
  ASSERT_TRUE(removed) << removed.error().message;
  EXPECT_EQ(*removed, 2u);
  auto page = run(store().range("s", {}, 10));
  ASSERT_TRUE(page);
  EXPECT_EQ(ids_of(*page), (std::vector<StreamId>{events[2]->id, events[3]->id, events[4]->id}));
  auto info = run(store().info("s"));
  ASSERT_TRUE(info);
  EXPECT_EQ(info->length, 3u);
  EXPECT_EQ(info->first_id, events[2]->id);
  EXPECT_EQ(info->last_id, events[4]->id);
  EXPECT_EQ(info->trimmed_through, events[1]->id);

  // A cursor in what was removed is expired; the last id removed is not.
  auto expired = run(store().range("s", events[0]->id, 10));
  ASSERT_FALSE(expired);
  EXPECT_EQ(expired.error().code, errc::replay_window_expired);
  ASSERT_TRUE(expired.error().first_available);
  EXPECT_EQ(*expired.error().first_available, events[2]->id);
  auto edge = run(store().range("s", events[1]->id, 10));
  ASSERT_TRUE(edge);
  EXPECT_EQ(edge->size(), 3u);

  // Nothing is left below the id; an id between two entries removes the one below it.
  EXPECT_EQ(run(store().trim_before("s", events[2]->id)).value(), 0u);
  EXPECT_EQ(run(store().trim_before("s", {events[2]->id.ms, events[2]->id.seq + 1})).value(), 1u);
  info = run(store().info("s"));
  ASSERT_TRUE(info);
  EXPECT_EQ(info->length, 2u);
  EXPECT_EQ(info->trimmed_through, events[2]->id);
}

TEST_P(StoreConformance, TrimBeforeEverythingLeavesAnEmptyStreamThatGoesOn) {
  auto events = append_n("s", 3);
  EXPECT_EQ(run(store().trim_before("s", StreamId::max())).value(), 3u);
  auto info = run(store().info("s"));
  ASSERT_TRUE(info) << "the stream stays, empty";
  EXPECT_EQ(info->length, 0u);
  EXPECT_EQ(info->first_id, StreamId{});
  EXPECT_EQ(info->last_id, events[2]->id);
  EXPECT_EQ(info->trimmed_through, events[2]->id);
  EXPECT_EQ(run(store().list_streams()).value(), std::vector<std::string>{"s"});
  auto from_start = run(store().range("s", {}, 10));
  ASSERT_TRUE(from_start);
  EXPECT_TRUE(from_start->empty());
  auto expired = run(store().range("s", events[1]->id, 10));
  ASSERT_FALSE(expired);
  EXPECT_EQ(expired.error().code, errc::replay_window_expired);

  // A client whose cursor is the last event gets what comes next, with a larger id.
  auto later = append("s", R"({"n":9})");
  EXPECT_GT(later->id, events[2]->id);
  auto next = run(store().range("s", events[2]->id, 10));
  ASSERT_TRUE(next);
  EXPECT_EQ(ids_of(*next), std::vector<StreamId>{later->id});
}

TEST_P(StoreConformance, TrimBeforeRemovesNothingBelowTheFirstEntryOrOfAMissingStream) {
  auto events = append_n("s", 2);
  EXPECT_EQ(run(store().trim_before("s", events[0]->id)).value(), 0u);
  EXPECT_EQ(run(store().trim_before("s", StreamId{})).value(), 0u);
  auto info = run(store().info("s"));
  ASSERT_TRUE(info);
  EXPECT_EQ(info->length, 2u);
  EXPECT_EQ(info->trimmed_through, StreamId{});

  EXPECT_EQ(run(store().trim_before("missing", StreamId::max())).value(), 0u);
  auto missing = run(store().info("missing"));
  ASSERT_FALSE(missing) << "trim_before does not create the stream";
  EXPECT_EQ(missing.error().code, errc::stream_not_found);
}

// --- idempotency ------------------------------------------------------------------------

TEST_P(StoreConformance, SameEventIdAndContentIsStoredOnce) {
  auto first = run(store().append("s", event("s", R"({"a":1})", "evt-1"), {}));
  ASSERT_TRUE(first);
  auto again = run(store().append("s", event("s", R"({"a":1})", "evt-1"), {}));
  ASSERT_TRUE(again);
  EXPECT_TRUE(again->duplicate);
  EXPECT_EQ(again->event->id, first->event->id);
  auto info = run(store().info("s"));
  ASSERT_TRUE(info);
  EXPECT_EQ(info->length, 1u);
}

TEST_P(StoreConformance, SameEventIdWithOtherContentIsAConflict) {
  ASSERT_TRUE(run(store().append("s", event("s", R"({"a":1})", "evt-1"), {})));
  auto clash = run(store().append("s", event("s", R"({"a":2})", "evt-1"), {}));
  ASSERT_FALSE(clash);
  EXPECT_EQ(clash.error().code, errc::duplicate_conflict);
  auto info = run(store().info("s"));
  ASSERT_TRUE(info);
  EXPECT_EQ(info->length, 1u) << "a conflict writes nothing";
}

TEST_P(StoreConformance, IdempotencyIsPerStream) {
  ASSERT_TRUE(run(store().append("a", event("a", R"({})", "evt-1"), {})));
  auto other = run(store().append("b", event("b", R"({})", "evt-1"), {}));
  ASSERT_TRUE(other);
  EXPECT_FALSE(other->duplicate);
}

TEST_P(StoreConformance, ZeroIdempotencyTtlRemembersNothing) {
  AppendOptions no_memory{0, std::chrono::seconds(0)};
  ASSERT_TRUE(run(store().append("s", event("s", R"({})", "evt-1"), no_memory)));
  auto again = run(store().append("s", event("s", R"({})", "evt-1"), no_memory));
  ASSERT_TRUE(again);
  EXPECT_FALSE(again->duplicate);
  EXPECT_EQ(run(store().info("s"))->length, 2u);
}

TEST_P(StoreConformance, DuplicateOfATrimmedEventIsStillRecognised) {
  auto first = run(store().append("s", event("s", R"({})", "evt-1"), {1}));
  ASSERT_TRUE(first);
  append_n("s", 3, 1);
  auto again = run(store().append("s", event("s", R"({})", "evt-1"), {1}));
  ASSERT_TRUE(again);
  EXPECT_TRUE(again->duplicate);
  EXPECT_EQ(again->event->id, first->event->id);
}

TEST_P(StoreConformance, ServerGeneratedEventIdsAreNotRemembered) {
  // A retry without an event_id is a new event, so a generated id needs no idempotency record;
  // a publisher that later sends the same id explicitly publishes a new event.
  NewEvent generated = event("s", R"({})");
  ASSERT_FALSE(generated.chosen_event_id);
  auto first = run(store().append("s", generated, {}));
  ASSERT_TRUE(first);
  auto explicit_copy = event("s", R"({})", first->event->event_id);
  ASSERT_TRUE(explicit_copy.chosen_event_id);
  auto second = run(store().append("s", explicit_copy, {}));
  ASSERT_TRUE(second);
  EXPECT_FALSE(second->duplicate);
  EXPECT_EQ(run(store().info("s"))->length, 2u);
}

// --- append_batch -----------------------------------------------------------------------

TEST_P(StoreConformance, AppendBatchStoresEveryEventInOrder) {
  auto before = append("s", R"({"n":-1})");
  std::vector<NewEvent> batch;
  for (int i = 0; i < 20; ++i) batch.push_back(event("s", R"({"n":)" + std::to_string(i) + "}"));
  auto appended = run(store().append_batch("s", std::move(batch), {}));
  ASSERT_TRUE(appended) << appended.error().message;
  ASSERT_EQ(appended->size(), 20u);
  auto all = run(store().range("s", before->id, 100));
  ASSERT_TRUE(all);
  ASSERT_EQ(all->size(), 20u);
  for (int i = 0; i < 20; ++i) {
    const auto& a = (*appended)[static_cast<std::size_t>(i)];
    EXPECT_FALSE(a.duplicate);
    EXPECT_EQ(a.event->id, (*all)[static_cast<std::size_t>(i)]->id);
    EXPECT_EQ(payload_n((*all)[static_cast<std::size_t>(i)]), i);
    EXPECT_EQ(a.event->payload, (*all)[static_cast<std::size_t>(i)]->payload);
  }
  EXPECT_LT(before->id, all->front()->id);
}

TEST_P(StoreConformance, AppendBatchOfOneEventStoresIt) {
  std::vector<NewEvent> one;
  one.push_back(event("s", R"({"n":1})"));
  auto appended = run(store().append_batch("s", std::move(one), {}));
  ASSERT_TRUE(appended) << appended.error().message;
  ASSERT_EQ(appended->size(), 1u);
  auto all = run(store().range("s", {}, 10));
  ASSERT_TRUE(all);
  ASSERT_EQ(all->size(), 1u);
  EXPECT_EQ(all->front()->id, appended->front().event->id);
}

TEST_P(StoreConformance, AppendBatchOfNothingWritesNothing) {
  auto appended = run(store().append_batch("s", {}, {}));
  ASSERT_TRUE(appended);
  EXPECT_TRUE(appended->empty());
  EXPECT_EQ(run(store().info("s")).error().code, errc::stream_not_found);
}

TEST_P(StoreConformance, AppendBatchRecognisesDuplicatesOfStoredAndOfEarlierEvents) {
  auto first = run(store().append("s", event("s", R"({"a":1})", "evt-1"), {}));
  ASSERT_TRUE(first);
  std::vector<NewEvent> batch;
  batch.push_back(event("s", R"({"a":1})", "evt-1"));  // stored before
  batch.push_back(event("s", R"({"a":2})", "evt-2"));  // new
  batch.push_back(event("s", R"({"a":2})", "evt-2"));  // the one before it
  batch.push_back(event("s", R"({"a":3})"));           // generated id: always new
  auto appended = run(store().append_batch("s", std::move(batch), {}));
  ASSERT_TRUE(appended) << appended.error().message;
  ASSERT_EQ(appended->size(), 4u);
  EXPECT_TRUE((*appended)[0].duplicate);
  EXPECT_EQ((*appended)[0].event->id, first->event->id);
  EXPECT_EQ((*appended)[0].event->created_at, first->event->created_at);
  EXPECT_FALSE((*appended)[1].duplicate);
  EXPECT_TRUE((*appended)[2].duplicate);
  EXPECT_EQ((*appended)[2].event->id, (*appended)[1].event->id);
  EXPECT_FALSE((*appended)[3].duplicate);
  EXPECT_EQ(run(store().info("s"))->length, 3u);
  // And a later single append sees what the batch remembered.
  auto again = run(store().append("s", event("s", R"({"a":2})", "evt-2"), {}));
  ASSERT_TRUE(again);
  EXPECT_TRUE(again->duplicate);
  EXPECT_EQ(again->event->id, (*appended)[1].event->id);
}

TEST_P(StoreConformance, AppendBatchWithAConflictAnywhereWritesNothing) {
  ASSERT_TRUE(run(store().append("s", event("s", R"({"a":1})", "evt-1"), {})));
  std::vector<NewEvent> batch;
  batch.push_back(event("s", R"({"a":9})", "evt-9"));
  batch.push_back(event("s", R"({"a":0})"));
  batch.push_back(event("s", R"({"a":2})", "evt-1"));  // other content than stored
  auto clash = run(store().append_batch("s", std::move(batch), {}));
  ASSERT_FALSE(clash);
  EXPECT_EQ(clash.error().code, errc::duplicate_conflict);
  EXPECT_NE(clash.error().message.find("evt-1"), std::string::npos) << clash.error().message;
  EXPECT_EQ(run(store().info("s"))->length, 1u) << "a conflict writes nothing";

  // Two events of one batch with one event_id and other contents: the second conflicts with
  // the first, so neither is written.
  std::vector<NewEvent> twins;
  twins.push_back(event("s", R"({"a":1})", "evt-7"));
  twins.push_back(event("s", R"({"a":2})", "evt-7"));
  auto twin_clash = run(store().append_batch("s", std::move(twins), {}));
  ASSERT_FALSE(twin_clash);
  EXPECT_EQ(twin_clash.error().code, errc::duplicate_conflict);
  EXPECT_EQ(run(store().info("s"))->length, 1u);
  // evt-9 was not remembered either.
  auto nine = run(store().append("s", event("s", R"({"a":10})", "evt-9"), {}));
  ASSERT_TRUE(nine);
  EXPECT_FALSE(nine->duplicate);
}

TEST_P(StoreConformance, AppendBatchWithoutIdempotencyTtlWritesRepeatedIds) {
  AppendOptions no_memory{0, std::chrono::seconds(0)};
  std::vector<NewEvent> twins;
  twins.push_back(event("s", R"({"a":1})", "evt-7"));
  twins.push_back(event("s", R"({"a":2})", "evt-7"));
  auto appended = run(store().append_batch("s", std::move(twins), no_memory));
  ASSERT_TRUE(appended) << appended.error().message;
  EXPECT_FALSE((*appended)[1].duplicate);
  EXPECT_EQ(run(store().info("s"))->length, 2u);
}

TEST_P(StoreConformance, AppendBatchTrimsToMaxlen) {
  append_n("s", 5);
  std::vector<NewEvent> batch;
  for (int i = 5; i < 12; ++i) batch.push_back(event("s", R"({"n":)" + std::to_string(i) + "}"));
  auto appended = run(store().append_batch("s", std::move(batch), {4}));
  ASSERT_TRUE(appended);
  auto all = run(store().range("s", {}, 100));
  ASSERT_TRUE(all);
  ASSERT_EQ(all->size(), 4u);
  EXPECT_EQ(payload_n(all->front()), 8);
  EXPECT_EQ(all->back()->id, appended->back().event->id);
  auto info = run(store().info("s"));
  EXPECT_EQ(info->trimmed_through, (*appended)[2].event->id);
}

// --- info, epochs, delete, list ---------------------------------------------------------

TEST_P(StoreConformance, InfoOfMissingStreamIsNotFound) {
  auto info = run(store().info("missing"));
  ASSERT_FALSE(info);
  EXPECT_EQ(info.error().code, errc::stream_not_found);
}

TEST_P(StoreConformance, EpochIdentifiesOneIncarnationOfAStream) {
  auto events = append_n("s", 2);
  auto info = run(store().info("s"));
  ASSERT_TRUE(info);
  ASSERT_FALSE(info->epoch.empty());
  EXPECT_TRUE(run(store().range("s", {}, 10, info->epoch)));
  auto wrong = run(store().range("s", {}, 10, "0000000000000000"));
  ASSERT_FALSE(wrong);
  EXPECT_EQ(wrong.error().code, errc::stream_reset);

  auto deleted = run(store().delete_stream("s"));
  ASSERT_TRUE(deleted);
  EXPECT_TRUE(*deleted);
  auto gone = run(store().range("s", events[0]->id, 10, info->epoch));
  ASSERT_FALSE(gone);
  EXPECT_EQ(gone.error().code, errc::stream_reset);

  append("s");
  auto again = run(store().info("s"));
  ASSERT_TRUE(again);
  EXPECT_NE(again->epoch, info->epoch);
  auto old_cursor = run(store().range("s", events[0]->id, 10, info->epoch));
  ASSERT_FALSE(old_cursor);
  EXPECT_EQ(old_cursor.error().code, errc::stream_reset);
  ASSERT_TRUE(old_cursor.error().first_available);
}

TEST_P(StoreConformance, DeleteStreamForgetsEverything) {
  ASSERT_TRUE(run(store().append("s", event("s", R"({})", "evt-1"), {})));
  ASSERT_TRUE(run(store().group_create("s", "g", Cursor::beginning(), false)));
  EXPECT_TRUE(*run(store().delete_stream("s")));
  EXPECT_FALSE(*run(store().delete_stream("s")));
  EXPECT_EQ(run(store().info("s")).error().code, errc::stream_not_found);
  auto fresh = run(store().append("s", event("s", R"({})", "evt-1"), {}));
  ASSERT_TRUE(fresh);
  EXPECT_FALSE(fresh->duplicate) << "idempotency records go with the stream";
  EXPECT_TRUE(run(store().info("s"))->groups.empty());
}

TEST_P(StoreConformance, ListStreamsIsSorted) {
  append("b");
  append("a");
  append("c:1");
  auto names = run(store().list_streams());
  ASSERT_TRUE(names);
  EXPECT_EQ(*names, (std::vector<std::string>{"a", "b", "c:1"}));
}

// --- close (a shutdown) ----------------------------------------------------------------

TEST_P(StoreConformance, CloseEndsBlockedReadsAtOnceAndFailsEveryLaterCall) {
  auto last = append("s");
  ASSERT_TRUE(run(store().group_create("s", "g", Cursor::latest(), false)));
  std::vector<StreamCursor> tail{{"s", last->id, {}}};
  std::vector<GroupCursor> fresh{{"s", std::nullopt}};
  result<std::vector<StreamEvents>> read = std::vector<StreamEvents>{};
  result<std::vector<GroupStreamMessages>> group_read = std::vector<GroupStreamMessages>{};
  std::vector<boost::asio::awaitable<void>> tasks;
  tasks.push_back([](Store& s, auto& cursors, auto& out) -> boost::asio::awaitable<void> {
    out = co_await s.read(cursors, {10, 10'000ms});
  }(store(), tail, read));
  tasks.push_back([](Store& s, auto& cursors, auto& out) -> boost::asio::awaitable<void> {
    out = co_await s.read_group("g", "c", cursors, {10, 10'000ms});
  }(store(), fresh, group_read));
  tasks.push_back([](Store& s) -> boost::asio::awaitable<void> {
    boost::asio::steady_timer blocked(co_await boost::asio::this_coro::executor, 300ms);
    co_await blocked.async_wait(boost::asio::use_awaitable);  // both reads wait by now
    s.close();
  }(store()));
  auto started = std::chrono::steady_clock::now();
  run_concurrently(std::move(tasks), 1);
  EXPECT_LT(std::chrono::steady_clock::now() - started, 5'000ms)
      << "the blocked reads waited for their timeout";
  auto closed = [](const auto& r) { return !r && r.error().code == errc::store_unavailable; };
  EXPECT_TRUE(closed(read));
  EXPECT_TRUE(closed(group_read));

  // Every later call fails the same way, at once; a second close() changes nothing.
  store().close();
  started = std::chrono::steady_clock::now();
  EXPECT_TRUE(closed(run(store().append("s", event("s"), {}))));
  EXPECT_TRUE(closed(run(store().range("s", {}, 10, {}))));
  EXPECT_TRUE(closed(run(store().read(tail, {10, 10'000ms}))));
  EXPECT_TRUE(closed(run(store().read_group("g", "c", fresh, {10, 10'000ms}))));
  EXPECT_TRUE(closed(run(store().info("s"))));
  EXPECT_TRUE(closed(run(store().ack("s", "g", std::vector<StreamId>{last->id}))));
  EXPECT_TRUE(closed(run(store().create_topic("t", 2))));
  EXPECT_TRUE(closed(run(store().set_topic_retention("t", {}))));
  EXPECT_TRUE(closed(run(store().delete_topic("t"))));
  EXPECT_TRUE(closed(run(store().take_lease("t", 1000ms))));
  EXPECT_TRUE(closed(run(store().health())));
  EXPECT_LT(std::chrono::steady_clock::now() - started, 1'000ms);
}

}  // namespace replayrail::testing
