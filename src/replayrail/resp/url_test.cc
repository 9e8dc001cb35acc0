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

TEST(RedisUrl, SentinelsAndTheirService) {
  auto u = parse_redis_url(
      "redis+sentinel://app:s3cret@10.0.0.1,10.0.0.2:26380,[::1]:5000/orders/3"
      "?sentinel_password=sp&sentinel_username=su");
  ASSERT_TRUE(u) << u.error().message;
  ASSERT_TRUE(u->uses_sentinels());
  using A = RedisUrl::Address;
  EXPECT_EQ(u->sentinels,
            (std::vector<A>{{"10.0.0.1", 26379}, {"10.0.0.2", 26380}, {"::1", 5000}}));
  EXPECT_EQ(u->service, "orders");
  EXPECT_EQ(u->db, 3);
  EXPECT_EQ(u->username, "app");
  EXPECT_EQ(u->password, "s3cret");
  EXPECT_EQ(u->sentinel_username, "su");
  EXPECT_EQ(u->sentinel_password, "sp");
  EXPECT_FALSE(u->tls);
  EXPECT_EQ(u->redacted(),
            "redis+sentinel://app:***@10.0.0.1:26379,10.0.0.2:26380,[::1]:5000/orders/3");

  auto plain = parse_redis_url("redis+sentinel://sentinel");
  ASSERT_TRUE(plain) << plain.error().message;
  EXPECT_EQ(plain->sentinels, (std::vector<A>{{"sentinel", 26379}}));
  EXPECT_EQ(plain->service, "mymaster");
  EXPECT_EQ(plain->db, 0);
  EXPECT_EQ(plain->redacted(), "redis+sentinel://sentinel:26379/mymaster/0");

  auto tls = parse_redis_url("rediss+sentinel://s1,s2/m?ssl_cert_reqs=none");
  ASSERT_TRUE(tls) << tls.error().message;
  EXPECT_TRUE(tls->tls);
  EXPECT_FALSE(tls->verify_peer);
  EXPECT_EQ(tls->sentinels.size(), 2u);
  EXPECT_EQ(tls->service, "m");
}

TEST(RedisUrl, RefusesBadSentinelUrls) {
  for (const char* bad :
       {"redis+sentinel://", "redis+sentinel://h1,,h2/m", "redis+sentinel://h1,/m",
        "redis+sentinel://h:0/m", "redis+sentinel://h1,h2:x/m", "redis+sentinel://h/m/x",
        "redis+sentinel://h/m/0/1", "redis+sentinel://h/m?timeout=1",
        "redis+sentinel://h/m?ssl_cert_reqs=none", "redis+sentinel://h/m#f", "redis-sentinel://h/m",
        "redis://h/0?sentinel_password=x"}) {
    auto u = parse_redis_url(bad);
    ASSERT_FALSE(u) << bad;
    EXPECT_EQ(u.error().code, errc::invalid_argument);
  }
}

}  // namespace
}  // namespace replayrail::resp
