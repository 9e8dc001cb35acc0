#include "replayrail/backpressure.h"

#include <gtest/gtest.h>

#include "replayrail/core/event.h"
#include "replayrail/store/memory/memory_store.h"
#include "replayrail/store/testing/run.h"

namespace replayrail {
namespace {

using Ticket = Backpressure::Ticket;

class BackpressureTest : public ::testing::Test {
 protected:
  result<Ticket> admit(Backpressure& b, std::string_view stream, std::uint64_t n) {
    return testing::run(io_, b.admit(stream, n));
  }
  void append(std::string_view stream, int n) {
    for (int i = 0; i < n; ++i) {
      EventInput input;
      input.channel = stream;
      input.type = "t";
      auto made = make_event(input).value();
      ASSERT_TRUE(testing::run(io_, store_.append(stream, std::move(made), {})));
    }
  }

  boost::asio::io_context io_;
  store::MemoryStore store_;
};

TEST_F(BackpressureTest, TheStoreQueueIsFullWhileAdmittedEventsAreOnTheirWay) {
  Backpressure b(store_, {.max_inflight = 10});
  auto first = admit(b, "s", 8);
  ASSERT_TRUE(first);
  auto second = admit(b, "s", 3);
  ASSERT_FALSE(second) << "8 + 3 events on their way, at most 10";
  EXPECT_EQ(second.error().code, errc::backpressure);
  EXPECT_TRUE(admit(b, "s", 2)) << "8 + 2 fit";
  { Ticket done = std::move(*first); }  // the appends ended
  EXPECT_TRUE(admit(b, "s", 10));
  EXPECT_TRUE(admit(b, "s", 50)) << "a batch over the budget goes when nothing else is queued";
  EXPECT_EQ(b.rejections()["store_queue"], 1u);
}

TEST_F(BackpressureTest, AStreamAtItsCapRefusesAndCountsWhatThisProcessAppended) {
  Backpressure b(store_, {.max_stream_length = 4, .refresh = std::chrono::hours(1)});
  append("s", 2);
  ASSERT_TRUE(admit(b, "s", 2));  // reads the length: 2
  append("s", 2);
  b.appended("s", 2);  // the figures are an hour old at most; the appends are counted on top
  auto full = admit(b, "s", 1);
  ASSERT_FALSE(full);
  EXPECT_EQ(full.error().code, errc::backpressure);
  EXPECT_NE(full.error().message.find("holds 4 events"), std::string::npos) << full.error().message;
  EXPECT_TRUE(admit(b, "other", 4)) << "caps are per stream";
  EXPECT_FALSE(admit(b, "other", 5));
}

TEST_F(BackpressureTest, GroupsHoldPublishesBackUntilTheyReadAndAck) {
  Backpressure b(store_, {.max_group_lag = 3, .max_group_pending = 2});
  append("s", 3);
  ASSERT_TRUE(
      testing::run(io_, store_.group_create("s", "g", Cursor::parse("0-0").value(), false)));
  EXPECT_FALSE(admit(b, "s", 1)) << "three behind, at most three";
  std::vector<store::GroupCursor> cursors{{"s", std::nullopt}};
  auto read = testing::run(io_, store_.read_group("g", "c", cursors, {2, std::nullopt})).value();
  ASSERT_EQ(read.front().messages.size(), 2u);
  b.forget("s");
  auto pending = admit(b, "s", 1);
  EXPECT_FALSE(pending) << "two unacknowledged, at most two";
  EXPECT_EQ(b.rejections()["group_pending"], 1u);
  EXPECT_EQ(b.rejections()["group_lag"], 1u);
  ASSERT_TRUE(testing::run(io_, store_.ack("s", "g", std::vector{read.front().messages[0].id})));
  b.forget("s");
  EXPECT_TRUE(admit(b, "s", 1));
}

}  // namespace
}  // namespace replayrail
