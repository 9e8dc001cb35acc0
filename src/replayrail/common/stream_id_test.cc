#include "replayrail/common/stream_id.h"

#include <gtest/gtest.h>

namespace replayrail {
namespace {

TEST(StreamId, ParsesMsAndSeq) {
  EXPECT_EQ(StreamId::parse("1719367320123-0"), (StreamId{1719367320123, 0}));
  EXPECT_EQ(StreamId::parse("0-0"), StreamId{});
  EXPECT_EQ(StreamId::parse("18446744073709551615-18446744073709551615"), StreamId::max());
  EXPECT_EQ(StreamId::parse("007-01"), (StreamId{7, 1})) << "leading zeros are numbers too";
}

TEST(StreamId, RefusesAnythingElse) {
  for (const char* bad : {"",
                          "-",
                          "1",
                          "1-",
                          "-1",
                          "1--1",
                          "1-2-3",
                          "+1-0",
                          "1-+0",
                          "-1-0",
                          " 1-0",
                          "1-0 ",
                          "1 -0",
                          "a-0",
                          "1-b",
                          "0x1-0",
                          "1.5-0",
                          "$",
                          ">",
                          "18446744073709551616-0",
                          "0-18446744073709551616",
                          "1-0\n"}) {
    EXPECT_FALSE(StreamId::parse(bad)) << '"' << bad << '"';
  }
}

TEST(StreamId, ComparesNumericallyNotAsText) {
  EXPECT_LT(*StreamId::parse("9-0"), *StreamId::parse("10-0"));
  EXPECT_LT(*StreamId::parse("5-9"), *StreamId::parse("5-10"));
  EXPECT_LT(*StreamId::parse("5-18446744073709551615"), *StreamId::parse("6-0"));
  EXPECT_EQ(*StreamId::parse("5-1"), (StreamId{5, 1}));
}

TEST(StreamId, NextIsTheSmallestGreaterId) {
  EXPECT_EQ((StreamId{5, 1}.next()), (StreamId{5, 2}));
  EXPECT_EQ((StreamId{5, UINT64_MAX}.next()), (StreamId{6, 0}));
  EXPECT_EQ(StreamId::max().next(), StreamId::max());
}

TEST(StreamId, PrevIsTheGreatestSmallerId) {
  EXPECT_EQ((StreamId{5, 2}.prev()), (StreamId{5, 1}));
  EXPECT_EQ((StreamId{6, 0}.prev()), (StreamId{5, UINT64_MAX}));
  EXPECT_EQ(StreamId{}.prev(), StreamId{});
  EXPECT_EQ((StreamId{7, 3}.next().prev()), (StreamId{7, 3}));
}

TEST(StreamId, FormatsAndRoundTrips) {
  EXPECT_EQ((StreamId{1719367320123, 42}).to_string(), "1719367320123-42");
  EXPECT_EQ(StreamId::max().to_string(), "18446744073709551615-18446744073709551615");
  EXPECT_EQ(StreamId::max().to_string().size(), StreamId::kMaxTextSize);
  for (StreamId id : {StreamId{}, StreamId{1, 2}, StreamId::max()}) {
    EXPECT_EQ(StreamId::parse(id.to_string()), id);
  }
}

}  // namespace
}  // namespace replayrail
