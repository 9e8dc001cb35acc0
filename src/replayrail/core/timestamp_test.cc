#include "replayrail/core/timestamp.h"

#include <gtest/gtest.h>

namespace replayrail {
namespace {

TEST(Timestamp, FormatsUtcWithMilliseconds) {
  using namespace std::chrono;
  sys_days day = year{2026} / June / 29;
  auto t = day + hours(12) + minutes(3) + seconds(4) + milliseconds(56);
  EXPECT_EQ(format_timestamp(t), "2026-06-29T12:03:04.056Z");
  EXPECT_TRUE(is_valid_timestamp(now_timestamp()));
}

TEST(Timestamp, AcceptsRfc3339Utc) {
  for (const char* ok : {"2026-06-29T12:00:00Z", "2026-06-29T12:00:00.1Z",
                         "2026-06-29T12:00:00.123456789Z", "2024-02-29T23:59:59.999Z"}) {
    EXPECT_TRUE(is_valid_timestamp(ok)) << ok;
  }
}

TEST(Timestamp, RefusesOtherForms) {
  for (const char* bad :
       {"", "2026-06-29", "2026-06-29T12:00:00", "2026-06-29T12:00:00+02:00",
        "2026-06-29 12:00:00Z", "2026-06-29T12:00:00.Z", "2026-06-29T12:00:00.1234567890Z",
        "2026-13-01T00:00:00Z", "2026-02-30T00:00:00Z", "2025-02-29T00:00:00Z",
        "2026-06-29T24:00:00Z", "2026-06-29T12:60:00Z", "2026-06-29T12:00:60Z",
        "2026-06-29T12:00:00z", "2026-06-29T12:00:00ZZ", "20260-06-29T12:00:00Z"}) {
    EXPECT_FALSE(is_valid_timestamp(bad)) << bad;
  }
}

}  // namespace
}  // namespace replayrail
