#include "replayrail/topics.h"

#include <gtest/gtest.h>

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
  EXPECT_EQ(first->first.partitions, 4u);
  auto later = testing::run(io, topics_.ingest("orders", batch, std::nullopt));
  ASSERT_TRUE(later) << later.error().message;
  EXPECT_EQ(later->first.partitions, 4u) << "the topic's count, not the default (1)";
  auto other = testing::run(io, topics_.ingest("orders", batch, 2));
  ASSERT_FALSE(other);
  EXPECT_EQ(other.error().code, errc::topic_conflict);

  // A topic another server created (with another count than this one's default) is found too.
  ASSERT_TRUE(testing::run(io, store_->create_topic("made-elsewhere", 3)));
  auto found = testing::run(io, topics_.ingest("made-elsewhere", batch, std::nullopt));
  ASSERT_TRUE(found) << found.error().message;
  EXPECT_EQ(found->first.partitions, 3u);
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

}  // namespace
}  // namespace replayrail
