#include "replayrail/common/errc.h"

#include <gtest/gtest.h>

#include <boost/system/system_error.hpp>

namespace replayrail {
namespace {

TEST(Errc, WireCodesAreTheEnumNames) {
  EXPECT_EQ(to_string(errc::invalid_cursor), "invalid_cursor");
  EXPECT_EQ(to_string(errc::replay_window_expired), "replay_window_expired");
  EXPECT_EQ(to_string(errc::store_unavailable), "store_unavailable");
  EXPECT_EQ(to_string(errc::auth_unavailable), "auth_unavailable");
  boost::system::error_code ec = errc::group_not_found;
  EXPECT_EQ(ec.category().name(), std::string("replayrail"));
  EXPECT_EQ(ec.message(), "group_not_found");
}

TEST(Errc, ResultCarriesTheError) {
  result<int> bad = make_error(errc::backpressure, "slow down");
  ASSERT_FALSE(bad);
  EXPECT_EQ(bad.error().code, errc::backpressure);
  EXPECT_EQ(bad.error().message, "slow down");
  EXPECT_THROW((void)bad.value(), boost::system::system_error);
  EXPECT_EQ(make_error(errc::internal).message, "internal");
}

}  // namespace
}  // namespace replayrail
