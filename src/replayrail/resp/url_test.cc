#include "replayrail/resp/url.h"

#include <gtest/gtest.h>

namespace replayrail::resp {
namespace {

TEST(RedisUrl, ParsesEveryPart) {
  auto u = parse_redis_url("redis://app:s3cret@cache.internal:6380/2");
  ASSERT_TRUE(u) << u.error().message;
  EXPECT_FALSE(u->tls);
  EXPECT_EQ(u->host, "cache.internal");
  EXPECT_EQ(u->port, 6380);
  EXPECT_EQ(u->username, "app");
  EXPECT_EQ(u->password, "s3cret");
  EXPECT_EQ(u->db, 2);
  EXPECT_EQ(u->redacted(), "redis://app:***@cache.internal:6380/2");
}

TEST(RedisUrl, DefaultsAndPasswordOnly) {
  auto plain = parse_redis_url("redis://localhost");
  ASSERT_TRUE(plain);
  EXPECT_EQ(plain->port, 6379);
  EXPECT_EQ(plain->db, 0);
  EXPECT_TRUE(plain->password.empty());

  auto pw = parse_redis_url("rediss://:pw@127.0.0.1:7000/0");
  ASSERT_TRUE(pw);
  EXPECT_TRUE(pw->tls);
  EXPECT_TRUE(pw->username.empty());
  EXPECT_EQ(pw->password, "pw");
}

TEST(RedisUrl, RefusesWhatItCannotUse) {
  for (const char* bad :
       {"", "localhost:6379", "http://localhost", "redis://", "redis://h:0", "redis://h:70000",
        "redis://h:12ab", "redis://h/x", "redis://h/-1", "redis://h/1?timeout=2",
        "redis://h?ssl_cert_reqs=none", "rediss://h?ssl_cert_reqs=maybe", "rediss://h?verify=no",
        "rediss://h?ssl_certfile=c.pem", "rediss://h#frag"}) {
    auto u = parse_redis_url(bad);
    ASSERT_FALSE(u) << bad;
    EXPECT_EQ(u.error().code, errc::invalid_argument);
  }
}

TEST(RedisUrl, TlsParameters) {
  auto u = parse_redis_url(
      "rediss://h:6380?ssl_ca_certs=/etc/ca.pem&ssl_certfile=c.pem&ssl_keyfile=k.pem");
  ASSERT_TRUE(u) << u.error().message;
  EXPECT_TRUE(u->tls);
  EXPECT_TRUE(u->verify_peer);
  EXPECT_EQ(u->ca_file, "/etc/ca.pem");
  EXPECT_EQ(u->cert_file, "c.pem");
  EXPECT_EQ(u->key_file, "k.pem");
  auto unverified = parse_redis_url("rediss://h?ssl_cert_reqs=none");
  ASSERT_TRUE(unverified);
  EXPECT_FALSE(unverified->verify_peer);
}

}  // namespace
}  // namespace replayrail::resp
