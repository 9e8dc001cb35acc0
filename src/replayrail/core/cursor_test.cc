#include "replayrail/core/cursor.h"

#include <gtest/gtest.h>

namespace replayrail {
namespace {

TEST(Cursor, ParsesLatestAndIds) {
  auto latest = Cursor::parse("$");
  ASSERT_TRUE(latest);
  EXPECT_TRUE(latest->is_latest());
  EXPECT_EQ(latest->to_string(), "$");

  auto zero = Cursor::parse("0-0");
  ASSERT_TRUE(zero);
  EXPECT_EQ(*zero, Cursor::beginning());

  auto id = Cursor::parse("12-3");
  ASSERT_TRUE(id);
  EXPECT_FALSE(id->is_latest());
  EXPECT_EQ(id->id(), (StreamId{12, 3}));
  EXPECT_EQ(id->to_string(), "12-3");
}

TEST(Cursor, MalformedCursorIsInvalidCursor) {
  for (const char* bad : {"", "$$", "latest", ">", "12", "12-", "-3", "1-2-3", "abc"}) {
    auto r = Cursor::parse(bad);
    ASSERT_FALSE(r) << bad;
    EXPECT_EQ(r.error().code, errc::invalid_cursor);
    EXPECT_NE(r.error().message.find("<ms>-<seq>"), std::string::npos);
  }
}

}  // namespace
}  // namespace replayrail
