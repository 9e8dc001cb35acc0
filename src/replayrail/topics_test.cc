#include "replayrail/topics.h"

#include <gtest/gtest.h>

#include <thread>
#include <vector>

#include "replayrail/store/memory/memory_store.h"
#include "replayrail/store/testing/run.h"

namespace replayrail {
namespace {

class TopicsTest : public ::testing::Test {
 protected:
  std::shared_ptr<store::MemoryStore> store_ = std::make_shared<store::MemoryStore>();
  Topics topics_{store_, TopicsConfig{}};
};

TEST_F(TopicsTest, AKeyKeepsItsPartitionAndKeysSpreadEvenly) {
  store::Topic t{"orders", 8, ""};
  std::vector<int> counts(8);
  for (int i = 0; i < 8000; ++i) {
    auto key = "user-" + std::to_string(i);
    auto p = topics_.partition_for(t, key);
    ASSERT_LT(p, 8u);
    EXPECT_EQ(topics_.partition_for(t, key), p);
    ++counts[p];
  }
  for (int c : counts) {
    EXPECT_GT(c, 850) << "a partition gets far less than its share";
    EXPECT_LT(c, 1150) << "a partition gets far more than its share";
  }
}

TEST_F(TopicsTest, RendezvousMovesOnlyTheKeysTheNewPartitionWins) {
  // With one more partition, a key either stays or moves to the new one: about 1/9 move.
  store::Topic eight{"orders", 8, ""}, nine{"orders", 9, ""};
  int moved = 0;
  for (int i = 0; i < 9000; ++i) {
    auto key = "user-" + std::to_string(i);
    auto before = topics_.partition_for(eight, key), after = topics_.partition_for(nine, key);
    if (before != after) {
      EXPECT_EQ(after, 8u) << key << " moved between old partitions";
      ++moved;
    }
  }
  EXPECT_GT(moved, 800);
  EXPECT_LT(moved, 1200);
}

TEST_F(TopicsTest, WithoutAKeyPartitionsTakeTurns) {
  store::Topic t{"orders", 4, ""};
  std::vector<int> counts(4);
  for (int i = 0; i < 400; ++i) ++counts[topics_.partition_for(t, std::nullopt)];
  for (int c : counts) EXPECT_EQ(c, 100);
  store::Topic single{"plain", 1, ""};
  EXPECT_EQ(topics_.partition_for(single, "any"), 0u);
}

TEST_F(TopicsTest, AnInvalidEventInABatchWritesNothing) {
  boost::asio::io_context io;
  std::vector<PublishBody> batch(3);
  batch[0].type = "ok";
  batch[1].type = "ok";
  batch[2].type = "not a type!";
  auto r = testing::run(io, topics_.ingest("orders", batch, 4));
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().code, errc::invalid_event_type);
  EXPECT_NE(r.error().message.find("events[2]"), std::string::npos) << r.error().message;
  auto topic = testing::run(io, store_->get_topic("orders")).value();
  EXPECT_FALSE(topic) << "not even the topic was created";
}

TEST_F(TopicsTest, LaterIngestsMayLeaveThePartitionCountOut) {
  boost::asio::io_context io;
  std::vector<PublishBody> batch(1);
  batch[0].type = "ok";
  auto first = testing::run(io, topics_.ingest("orders", batch, 4));
  ASSERT_TRUE(first) << first.error().message;
  EXPECT_EQ(first->topic.partitions, 4u);
  EXPECT_TRUE(first->created);
  auto later = testing::run(io, topics_.ingest("orders", batch, std::nullopt));
  ASSERT_TRUE(later) << later.error().message;
  EXPECT_EQ(later->topic.partitions, 4u) << "the topic's count, not the default (1)";
  EXPECT_FALSE(later->created);
  auto other = testing::run(io, topics_.ingest("orders", batch, 2));
  ASSERT_FALSE(other);
  EXPECT_EQ(other.error().code, errc::topic_conflict);

  // A topic another server created (with another count than this one's default) is found too.
  ASSERT_TRUE(testing::run(io, store_->create_topic("made-elsewhere", 3)));
  auto found = testing::run(io, topics_.ingest("made-elsewhere", batch, std::nullopt));
  ASSERT_TRUE(found) << found.error().message;
  EXPECT_EQ(found->topic.partitions, 3u);
  EXPECT_FALSE(found->created);
}

TEST_F(TopicsTest, ClaimsTakeOnlyTheNamedPartitions) {
  boost::asio::io_context io;
  std::vector<PublishBody> batch(40);
  for (auto& e : batch) e.type = "job";  // no key: round-robin over the 4 partitions
  ASSERT_TRUE(testing::run(io, topics_.ingest("jobs", batch, 4)));
  ASSERT_TRUE(testing::run(io, topics_.create_group("jobs", "g", Cursor::beginning())));
  auto read = testing::run(io, topics_.read_group("jobs", "g", "c1", 100, std::nullopt, {}));
  ASSERT_TRUE(read);
  ASSERT_EQ(read->size(), 40u);
  auto claimed = testing::run(
      io, topics_.claim("jobs", "g", "c2", store::Millis(0), 100, StreamId{}, {}, {1, 3}));
  ASSERT_TRUE(claimed) << claimed.error().message;
  EXPECT_EQ(claimed->claimed.size(), 20u);
  for (const auto& m : claimed->claimed) {
    EXPECT_TRUE(m.partition == 1 || m.partition == 3) << m.partition;
  }
  auto bad = testing::run(
      io, topics_.claim("jobs", "g", "c2", store::Millis(0), 100, StreamId{}, {}, {4}));
  ASSERT_FALSE(bad);
  EXPECT_EQ(bad.error().code, errc::invalid_argument);
}

// A channel published to as a plain channel (POST /events/{channel}) is a topic of one
// partition, its own stream: groups work on it, and it cannot become a partitioned topic.
TEST_F(TopicsTest, AChannelWithEventsIsATopicOfOnePartition) {
  boost::asio::io_context io;
  auto e = make_event({.channel = "plain", .type = "t"});
  ASSERT_TRUE(e);
  ASSERT_TRUE(testing::run(io, store_->append("plain", std::move(*e), {})));

  ASSERT_TRUE(testing::run(io, topics_.create_group("plain", "g", Cursor::beginning())));
  auto read = testing::run(io, topics_.read_group("plain", "g", "c", 10, std::nullopt, {}));
  ASSERT_TRUE(read) << read.error().message;
  ASSERT_EQ(read->size(), 1u);
  EXPECT_EQ(read->front().partition, 0u);
  auto registered = testing::run(io, store_->get_topic("plain")).value();
  ASSERT_TRUE(registered);
  EXPECT_EQ(registered->partitions, 1u);

  std::vector<PublishBody> batch(1);
  batch[0].type = "t";
  auto wider = testing::run(io, topics_.ingest("plain", batch, 4));
  ASSERT_FALSE(wider);
  EXPECT_EQ(wider.error().code, errc::topic_conflict);
  EXPECT_NE(wider.error().message.find("1 partition,"), std::string::npos) << wider.error().message;

  // Not yet registered (no group made): an ingest without a count keeps the channel's stream,
  // whatever the default partition count.
  Topics four_by_default{store_, TopicsConfig{.default_partitions = 4}};
  ASSERT_TRUE(testing::run(
      io, store_->append("other", make_event({.channel = "other", .type = "t"}).value(), {})));
  auto ingested = testing::run(io, four_by_default.ingest("other", batch, std::nullopt));
  ASSERT_TRUE(ingested) << ingested.error().message;
  EXPECT_EQ(ingested->topic.partitions, 1u);
  EXPECT_EQ(testing::run(io, store_->info("other")).value().length, 2u);

  // A channel without events is no topic yet.
  auto missing = testing::run(io, topics_.create_group("nothing", "g", Cursor::beginning()));
  ASSERT_FALSE(missing);
  EXPECT_EQ(missing.error().code, errc::stream_not_found);
}

TEST_F(TopicsTest, PublishPutsAnEventInThePartitionItsKeyPicks) {
  boost::asio::io_context io;
  std::vector<PublishBody> batch(1);
  batch[0].type = "t";
  ASSERT_TRUE(testing::run(io, topics_.ingest("orders", batch, 4)));
  PublishBody one;
  one.type = "order.created";
  one.partition_key = "customer-7";
  one.event_id = "evt-1";
  const auto expected = topics_.partition_for({"orders", 4, ""}, "customer-7");
  auto first = testing::run(io, topics_.publish("orders", one));
  ASSERT_TRUE(first) << first.error().message;
  EXPECT_EQ(first->partition, expected);
  EXPECT_FALSE(first->duplicate);
  EXPECT_EQ(first->event->channel, "orders");
  auto stream = store::partition_stream("orders", 4, expected);
  auto page = testing::run(io, store_->range(stream, StreamId{}, 10, "")).value();
  ASSERT_FALSE(page.empty());
  EXPECT_EQ(page.back()->id, first->event->id);

  auto again = testing::run(io, topics_.publish("orders", one));
  ASSERT_TRUE(again);
  EXPECT_TRUE(again->duplicate);
  EXPECT_EQ(again->event->id, first->event->id);

  PublishBody bad;
  bad.type = "not a type!";
  auto refused = testing::run(io, topics_.publish("orders", bad));
  ASSERT_FALSE(refused);
  EXPECT_EQ(refused.error().code, errc::invalid_event_type);
  EXPECT_EQ(refused.error().message.find("events["), std::string::npos)
      << "one event, not a batch: " << refused.error().message;
}

// find() answers from a copy of the registry loaded again at most every registry_refresh, and
// from what this process made since: a topic another node creates is seen, and so is a
// retention another node gives a topic.
TEST_F(TopicsTest, TopicsAndTheirRetentionComeFromTheRegistry) {
  boost::asio::io_context io;
  auto partitions_of = [&](std::string_view channel) {
    auto t = testing::run(io, topics_.find(channel)).value();
    return t ? t->partitions : 1u;
  };
  ASSERT_TRUE(testing::run(io, store_->create_topic("made-before", 3)));
  EXPECT_EQ(partitions_of("made-before"), 3u) << "the first call loads the registry";
  EXPECT_FALSE(testing::run(io, topics_.find("plain")).value());

  std::vector<PublishBody> batch(1);
  batch[0].type = "t";
  ASSERT_TRUE(testing::run(io, topics_.ingest("mine", batch, 5)));
  EXPECT_EQ(partitions_of("mine"), 5u) << "made here: known";

  ASSERT_TRUE(testing::run(io, store_->create_topic("made-elsewhere", 2)));
  const store::TopicRetention elsewhere{.max_length = 7, .max_age = {}};
  ASSERT_TRUE(testing::run(io, store_->set_topic_retention("made-before", elsewhere)));
  std::this_thread::sleep_for(Topics::registry_refresh + std::chrono::milliseconds(100));
  EXPECT_EQ(partitions_of("made-elsewhere"), 2u);
  EXPECT_EQ(testing::run(io, topics_.find("made-before")).value()->retention, elsewhere);

  // The registry cannot be read (the store is down): a topic known before is still that topic,
  // one never seen is an error, never taken for a plain channel.
  store_->close();
  std::this_thread::sleep_for(Topics::registry_refresh + std::chrono::milliseconds(100));
  EXPECT_EQ(partitions_of("mine"), 5u);
  EXPECT_FALSE(testing::run(io, topics_.find("unseen")));
}

// configure() creates a topic or finds it, and gives it a retention of its own, whole; its max
// length applies to every partition's appends, its max age is what own_max_ages() lists.
TEST_F(TopicsTest, ATopicsOwnRetentionAppliesToItsPartitions) {
  boost::asio::io_context io;
  Topics topics{store_, TopicsConfig{.appends = {.maxlen = 100}, .max_age = std::chrono::hours(1)}};
  auto made = testing::run(io, topics.configure("jobs", 2, {.max_length = 3, .max_age = {}}));
  ASSERT_TRUE(made) << made.error().message;
  EXPECT_TRUE(made->second) << "created";
  EXPECT_EQ(made->first.partitions, 2u);
  EXPECT_EQ(topics.effective_retention(made->first),
            (store::TopicRetention{.max_length = 3, .max_age = std::chrono::hours(1)}));
  std::vector<PublishBody> batch(10);
  for (auto& e : batch) e.type = "job";
  ASSERT_TRUE(testing::run(io, topics.ingest("jobs", batch, std::nullopt)));
  EXPECT_EQ(testing::run(io, store_->info("jobs#0")).value().length, 3u);
  EXPECT_EQ(testing::run(io, store_->info("jobs#1")).value().length, 3u);

  // Configured again without a max length: the server's applies.
  auto again = testing::run(io, topics.configure("jobs", std::nullopt, {}));
  ASSERT_TRUE(again) << again.error().message;
  EXPECT_FALSE(again->second);
  EXPECT_EQ(topics.effective_retention(again->first),
            (store::TopicRetention{.max_length = 100, .max_age = std::chrono::hours(1)}));
  ASSERT_TRUE(testing::run(io, topics.ingest("jobs", batch, std::nullopt)));
  EXPECT_EQ(testing::run(io, store_->info("jobs#0")).value().length, 8u);

  // A topic's max length applies to its single partition and to publish() as well.
  ASSERT_TRUE(testing::run(io, topics.configure("one", std::nullopt, {.max_length = 1})));
  for (int i = 0; i < 3; ++i) ASSERT_TRUE(testing::run(io, topics.publish("one", batch[0])));
  EXPECT_EQ(testing::run(io, store_->info("one")).value().length, 1u);

  // Refused: another partition count, or a bad retention; nothing changes, nothing is made.
  auto wider = testing::run(io, topics.configure("jobs", 4, {.max_length = 1}));
  ASSERT_FALSE(wider);
  EXPECT_EQ(wider.error().code, errc::topic_conflict);
  EXPECT_EQ(testing::run(io, store_->get_topic("jobs")).value()->retention,
            store::TopicRetention{});
  auto bad =
      testing::run(io, topics.configure("new", 2, {.max_age = std::chrono::milliseconds(-1)}));
  ASSERT_FALSE(bad);
  EXPECT_EQ(bad.error().code, errc::invalid_argument);
  EXPECT_FALSE(testing::run(io, store_->get_topic("new")).value()) << "not created";
  EXPECT_EQ(testing::run(io, topics.configure("bad#name", 2, {})).error().code,
            errc::invalid_channel);
  EXPECT_EQ(testing::run(io, topics.configure("new", 0, {})).error().code, errc::invalid_argument);

  // A channel with events is found, as a topic of one partition.
  ASSERT_TRUE(testing::run(
      io, store_->append("plain", make_event({.channel = "plain", .type = "t"}).value(), {})));
  auto plain = testing::run(io, topics.configure("plain", std::nullopt, {.max_length = 5}));
  ASSERT_TRUE(plain) << plain.error().message;
  EXPECT_FALSE(plain->second) << "it had events";
  EXPECT_EQ(plain->first.partitions, 1u);

  ASSERT_TRUE(testing::run(io, topics.configure("aged", 3, {.max_age = std::chrono::minutes(1)})));
  auto ages = testing::run(io, topics.own_max_ages());
  ASSERT_TRUE(ages) << ages.error().message;
  EXPECT_EQ(*ages, (StringMap<store::Millis>{{"aged#0", std::chrono::minutes(1)},
                                             {"aged#1", std::chrono::minutes(1)},
                                             {"aged#2", std::chrono::minutes(1)}}));
}

// The dead-letter stream is a channel of its own: a max length given to it applies to the
// dead letters a claim appends.
TEST_F(TopicsTest, DeadLettersKeepToTheirStreamsOwnRetention) {
  boost::asio::io_context io;
  std::vector<PublishBody> batch(3);
  for (auto& e : batch) e.type = "job";
  ASSERT_TRUE(testing::run(io, topics_.ingest("jobs", batch, 1)));
  ASSERT_TRUE(testing::run(io, topics_.create_group("jobs", "g", Cursor::beginning(), {1})));
  ASSERT_TRUE(testing::run(io, topics_.configure(dead_letter_stream("jobs"), std::nullopt,
                                                 {.max_length = 1, .max_age = {}})));
  ASSERT_EQ(testing::run(io, topics_.read_group("jobs", "g", "c1", 10, std::nullopt, {}))->size(),
            3u);
  auto claimed = testing::run(
      io, topics_.claim("jobs", "g", "c2", store::Millis(0), 10, StreamId{}, std::nullopt, {}));
  ASSERT_TRUE(claimed) << claimed.error().message;
  ASSERT_EQ(claimed->dead_lettered.size(), 1u);
  EXPECT_EQ(claimed->dead_lettered[0].ids.size(), 3u)
      << "each delivered once: the second is one too many";
  EXPECT_EQ(testing::run(io, store_->info(dead_letter_stream("jobs"))).value().length, 1u);
}

// remove() deletes a topic's streams and its registry entry, so the name may be made again with
// another count; another node's copy of the registry drops it within registry_refresh.
TEST_F(TopicsTest, ADeletedTopicMayBeMadeAgainAndOtherNodesSeeIt) {
  boost::asio::io_context io;
  Topics other_node{store_, TopicsConfig{}};
  std::vector<PublishBody> batch(4);
  for (auto& e : batch) e.type = "job";
  ASSERT_TRUE(testing::run(io, topics_.ingest("jobs", batch, 4)));
  ASSERT_TRUE(testing::run(io, topics_.create_group("jobs", "g", Cursor::beginning())));
  EXPECT_EQ(testing::run(io, other_node.find("jobs")).value()->partitions, 4u);

  auto removed = testing::run(io, topics_.remove("jobs"));
  ASSERT_TRUE(removed) << removed.error().message;
  EXPECT_EQ(removed->partitions, 4u);
  for (int p = 0; p < 4; ++p) {
    EXPECT_EQ(testing::run(io, store_->info("jobs#" + std::to_string(p))).error().code,
              errc::stream_not_found);
  }
  EXPECT_FALSE(testing::run(io, store_->get_topic("jobs")).value());
  EXPECT_FALSE(testing::run(io, topics_.find("jobs")).value()) << "this node forgot it at once";

  auto again = testing::run(io, topics_.ingest("jobs", batch, 2));
  ASSERT_TRUE(again) << "made again with another count: " << again.error().message;
  std::this_thread::sleep_for(Topics::registry_refresh + std::chrono::milliseconds(100));
  EXPECT_EQ(testing::run(io, other_node.find("jobs")).value()->partitions, 2u);
  ASSERT_TRUE(testing::run(io, topics_.remove("jobs")));
  std::this_thread::sleep_for(Topics::registry_refresh + std::chrono::milliseconds(100));
  EXPECT_FALSE(testing::run(io, other_node.find("jobs")).value()) << "gone from its copy too";

  // A channel with events and no registry entry is a topic of one partition.
  ASSERT_TRUE(testing::run(
      io, store_->append("plain", make_event({.channel = "plain", .type = "t"}).value(), {})));
  auto plain = testing::run(io, topics_.remove("plain"));
  ASSERT_TRUE(plain) << plain.error().message;
  EXPECT_EQ(plain->partitions, 1u);
  EXPECT_FALSE(testing::run(io, store_->info("plain")));
  auto nothing = testing::run(io, topics_.remove("plain"));
  ASSERT_FALSE(nothing);
  EXPECT_EQ(nothing.error().code, errc::stream_not_found);
  EXPECT_EQ(testing::run(io, topics_.remove("bad#name")).error().code, errc::invalid_channel);
}

// A purge removes what each partition holds now (or what is older than an id), only from the
// partitions named, and lets a stream that was at the backpressure cap take events again.
TEST_F(TopicsTest, PurgeEmptiesTheNamedPartitionsAndFreesTheBackpressureCap) {
  boost::asio::io_context io;
  auto backpressure =
      std::make_shared<Backpressure>(*store_, BackpressureConfig{.max_stream_length = 5});
  Topics topics{store_, TopicsConfig{}, backpressure};
  std::vector<PublishBody> batch(10);
  for (auto& e : batch) e.type = "job";  // no key: round-robin, 5 to each partition
  ASSERT_TRUE(testing::run(io, topics.ingest("jobs", batch, 2)));
  auto full = testing::run(io, topics.ingest("jobs", {batch[0]}, std::nullopt));
  ASSERT_FALSE(full);
  EXPECT_EQ(full.error().code, errc::backpressure);

  auto one = testing::run(io, topics.purge("jobs", std::nullopt, {1}));
  ASSERT_TRUE(one) << one.error().message;
  ASSERT_EQ(one->second.size(), 1u);
  EXPECT_EQ(one->second[0].partition, 1u);
  EXPECT_EQ(one->second[0].purged, 5u);
  EXPECT_EQ(testing::run(io, store_->info("jobs#0")).value().length, 5u) << "not named: kept";
  auto partition1 = testing::run(io, store_->info("jobs#1")).value();
  EXPECT_EQ(partition1.length, 0u);
  const StreamId edge = partition1.trimmed_through;
  EXPECT_EQ(edge, partition1.last_id) << "everything up to the last id went";
  // Round-robin's next turn (the refused one took partition 0's) is partition 1.
  auto after = testing::run(io, topics.ingest("jobs", {batch[0]}, std::nullopt));
  ASSERT_TRUE(after) << "partition 1 takes events again: " << after.error().message;
  const Ingested& taken = after->events.at(0);
  ASSERT_FALSE(taken.error) << taken.error->message;
  EXPECT_EQ(taken.partition, 1u);
  EXPECT_GT(taken.event->id, edge) << "ids go on";

  // Before an id: what is older, on every partition.
  const StreamId middle =
      testing::run(io, store_->range("jobs#0", StreamId{}, 10, {})).value().at(3)->id;
  auto older = testing::run(io, topics.purge("jobs", middle, {}));
  ASSERT_TRUE(older) << older.error().message;
  EXPECT_EQ(older->second.at(0).purged, 3u);
  EXPECT_EQ(testing::run(io, store_->info("jobs#0")).value().first_id, middle);

  auto bad = testing::run(io, topics.purge("jobs", std::nullopt, {2}));
  ASSERT_FALSE(bad);
  EXPECT_EQ(bad.error().code, errc::invalid_argument);
  auto missing = testing::run(io, topics.purge("nothing", std::nullopt, {}));
  ASSERT_FALSE(missing);
  EXPECT_EQ(missing.error().code, errc::stream_not_found);
}

}  // namespace
}  // namespace replayrail
