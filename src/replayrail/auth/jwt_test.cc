#include "replayrail/auth/jwt.h"

#include <gtest/gtest.h>

namespace replayrail::auth {
namespace {

constexpr std::int64_t kNow = 1'800'000'000;

class JwtTest : public ::testing::Test {
 protected:
  JwtConfig config_{"s3cret", "replayrail", "events"};
  Claims claims(Role role = Role::producer, std::vector<std::string> channels = {}) {
    return {"me", role, std::move(channels), kNow + 60};
  }
  static std::string replace_part(const std::string& token, int index, const std::string& part) {
    auto a = token.find('.'), b = token.find('.', a + 1);
    std::string parts[3] = {token.substr(0, a), token.substr(a + 1, b - a - 1),
                            token.substr(b + 1)};
    parts[index] = part;
    return parts[0] + "." + parts[1] + "." + parts[2];
  }
  void expect_refused(const std::string& token, const std::string& why) {
    auto r = verify(token, config_, kNow);
    ASSERT_FALSE(r) << why;
    EXPECT_EQ(r.error().code, errc::unauthorized);
    EXPECT_NE(r.error().message.find(why), std::string::npos) << r.error().message;
  }
};

TEST_F(JwtTest, AMintedTokenVerifies) {
  auto token = mint(claims(Role::admin, {"orders*"}), config_, kNow);
  auto r = verify(token, config_, kNow);
  ASSERT_TRUE(r) << r.error().message;
  EXPECT_EQ(r->subject, "me");
  EXPECT_EQ(r->role, Role::admin);
  EXPECT_EQ(r->channels, std::vector<std::string>{"orders*"});
}

TEST_F(JwtTest, RefusesWhatIsWrong) {
  auto good = mint(claims(), config_, kNow);
  ASSERT_TRUE(verify(good, config_, kNow));
  // Expired: exp is past, or now.
  auto expired = claims();
  expired.expires = kNow - 3600;
  expect_refused(mint(expired, config_, kNow - 7200), "expired");
  expired.expires = kNow;
  expect_refused(mint(expired, config_, kNow), "expired");
  // Signed with another secret: a forgery.
  JwtConfig other = config_;
  other.secret = "guess";
  expect_refused(mint(claims(), other, kNow), "signature");
  // Another audience or issuer.
  other = config_;
  other.audience = "elsewhere";
  expect_refused(mint(claims(), other, kNow), "audience");
  other = config_;
  other.issuer = "someone";
  expect_refused(mint(claims(), other, kNow), "issuer");
  // alg none (no signature) and algorithm confusion are refused before the signature check.
  expect_refused(replace_part(replace_part(good, 0, "eyJhbGciOiJub25lIn0"), 2, ""), "HS256");
  expect_refused(replace_part(good, 0, "eyJhbGciOiJSUzI1NiJ9"), "HS256");  // {"alg":"RS256"}
  // A claims part changed after signing (role raised to admin).
  auto raised = replace_part(good, 1, "eyJyb2xlIjoiYWRtaW4iLCJleHAiOjk5OTk5OTk5OTl9");
  expect_refused(raised, "signature");
  // Not a JWT at all.
  expect_refused("abc", "not a JWT");
  expect_refused("a.b.c.d", "not a JWT");
  expect_refused("!!!.e30.", "base64url");
}

TEST_F(JwtTest, RolesAndChannelGlobs) {
  Claims producer = claims(Role::producer, {"orders", "restaurant:*:orders"});
  EXPECT_TRUE(allows(producer, Role::producer));
  EXPECT_FALSE(allows(producer, Role::consumer));
  EXPECT_FALSE(allows(producer, Role::admin));
  EXPECT_TRUE(allows(claims(Role::admin), Role::consumer));
  EXPECT_TRUE(allows_channel(producer, "orders"));
  EXPECT_TRUE(allows_channel(producer, "restaurant:12:orders"));
  EXPECT_FALSE(allows_channel(producer, "restaurant:12:payments"));
  EXPECT_FALSE(allows_channel(producer, "orders2"));
  EXPECT_TRUE(allows_channel(claims(), "anything")) << "no channels claim: every channel";
}

TEST_F(JwtTest, SecretsCompare) {
  EXPECT_TRUE(secrets_equal("dev-admin-secret", "dev-admin-secret"));
  EXPECT_FALSE(secrets_equal("dev-admin-secret", "dev-admin-secreT"));
  EXPECT_FALSE(secrets_equal("dev", "dev-admin-secret"));
}

}  // namespace
}  // namespace replayrail::auth
