#include "replayrail/auth/jwks_refresher.h"

#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <functional>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "replayrail/auth/testing/jwks_server.h"
#include "replayrail/auth/testing/key_pair.h"
#include "replayrail/common/http_url.h"

namespace replayrail::auth {
namespace {

using namespace std::chrono_literals;

// Waits up to 10 s for `done`.
bool eventually(const std::function<bool()>& done) {
  auto deadline = std::chrono::steady_clock::now() + 10s;
  while (!done() && std::chrono::steady_clock::now() < deadline) {
    std::this_thread::sleep_for(10ms);
  }
  return done();
}

std::string kids(const PublicKeys& keys) {
  std::string out;
  for (const auto& key : keys) out += (out.empty() ? "" : ",") + key->kid();
  return out;
}

void expect_fails(const result<PublicKeys>& got, const std::string& why) {
  ASSERT_FALSE(got) << why;
  EXPECT_NE(got.error().message.find(why), std::string::npos) << got.error().message;
}

// The key ids of every set a refresher delivered, in order.
class Delivered {
 public:
  JwksRefresher::OnKeys sink() {
    return [this](PublicKeys keys) {
      std::lock_guard lock(mu_);
      sets_.push_back(kids(keys));
    };
  }
  std::vector<std::string> sets() const {
    std::lock_guard lock(mu_);
    return sets_;
  }
  std::string last() const {
    std::lock_guard lock(mu_);
    return sets_.empty() ? "" : sets_.back();
  }

 private:
  mutable std::mutex mu_;
  std::vector<std::string> sets_;
};

TEST(FetchJwks, GetsTheKeysOfTheSet) {
  testing::JwksServer idp;
  idp.publish({testing::KeyPair::rsa().jwk("r1"), testing::KeyPair::ec().jwk("e1")});
  auto keys = fetch_jwks(idp.url(), 5s);
  ASSERT_TRUE(keys) << keys.error().message;
  EXPECT_EQ(kids(*keys), "r1,e1");
  EXPECT_EQ((*keys)[1]->algorithm(), "ES256");
  EXPECT_EQ(idp.requests(), 1u);
}

TEST(FetchJwks, SaysWhatFailed) {
  testing::JwksServer idp;
  idp.answer(404, "{}");
  expect_fails(fetch_jwks(idp.url(), 5s), idp.url() + ": answered HTTP 404");
  idp.answer(301, "", "https://idp.test/certs");
  expect_fails(fetch_jwks(idp.url(), 5s), "answered HTTP 301 (Location: https://idp.test/certs)");
  idp.answer(200, "<html>sign in</html>");
  expect_fails(fetch_jwks(idp.url(), 5s), "not a JWK set");
  idp.answer(200, std::string(2 << 20, ' '));
  expect_fails(fetch_jwks(idp.url(), 5s), "body limit");
  // TLS to a server that speaks plain HTTP: the handshake fails.
  auto https = "https" + idp.url().substr(4);
  EXPECT_FALSE(fetch_jwks(https, 5s));

  {  // Nobody listens on a port just freed.
    boost::asio::io_context io;
    boost::asio::ip::tcp::acceptor gone(io, {boost::asio::ip::make_address("127.0.0.1"), 0});
    auto port = gone.local_endpoint().port();
    gone.close();
    expect_fails(fetch_jwks("http://127.0.0.1:" + std::to_string(port) + "/jwks", 5s), "refused");
  }
  idp.hang();
  expect_fails(fetch_jwks(idp.url(), 200ms), "no answer within 200 ms");

  for (std::string bad : {"idp.test/jwks", "ftp://idp.test/jwks", "https:///jwks"}) {
    auto checked = parse_http_url(bad);
    EXPECT_FALSE(checked) << bad;
    expect_fails(fetch_jwks(bad, 5s), bad);
  }
  EXPECT_TRUE(parse_http_url("https://idp.test:8443/realms/x/protocol/openid-connect/certs"));
}

// Fetched before the constructor returns, then again every `refresh`.
// OpenID Connect Discovery: the provider's configuration names its JWK set, and names the
// provider itself as the issuer asked; anything else is not trusted.
TEST(DiscoverJwksUri, ReadsTheProvidersConfiguration) {
  testing::JwksServer idp;
  idp.discovery();
  auto found = discover_jwks_uri(idp.url(""), 5s);
  ASSERT_TRUE(found) << found.error().message;
  EXPECT_EQ(*found, idp.url());
  auto slashed = discover_jwks_uri(idp.url("/"), 5s);
  ASSERT_FALSE(slashed) << "the document names the issuer without the slash";
  EXPECT_NE(slashed.error().message.find("it names the issuer " + idp.url("")), std::string::npos)
      << slashed.error().message;

  idp.discovery("https://idp.example");
  auto other = discover_jwks_uri(idp.url(""), 5s);
  ASSERT_FALSE(other);
  EXPECT_NE(other.error().message.find(idp.url("/.well-known/openid-configuration") +
                                       ": not the OpenID configuration of " + idp.url("") +
                                       ": it names the issuer https://idp.example"),
            std::string::npos)
      << other.error().message;

  testing::JwksServer none;
  none.answer(404, "{}");
  auto missing = discover_jwks_uri(none.url(""), 5s);
  ASSERT_FALSE(missing);
  EXPECT_NE(missing.error().message.find("answered HTTP 404"), std::string::npos);
  testing::JwksServer garbage;
  garbage.answer(200, R"({"issuer":")" + garbage.url("") + R"("})");
  auto no_set = discover_jwks_uri(garbage.url(""), 5s);
  ASSERT_FALSE(no_set);
  EXPECT_NE(no_set.error().message.find("no jwks_uri"), std::string::npos);
}

// Given the issuer, a refresher discovers the set's URL, then fetches and refreshes the keys
// there; discovery that fails is tried again as a failed fetch is.
TEST(JwksRefresher, DiscoversTheSetOfAnOpenIdProvider) {
  testing::JwksServer idp;
  auto key = testing::KeyPair::rsa();
  idp.publish({key.jwk("k1")});
  Delivered delivered;
  std::atomic<int> failures = 0;
  JwksRefresher refresher({.issuer = idp.url(""), .refresh = 200ms, .min_gap = 200ms},
                          delivered.sink(), [&] { ++failures; });
  EXPECT_EQ(failures, 1) << "no discovery document yet";
  EXPECT_TRUE(delivered.sets().empty());
  idp.discovery();
  EXPECT_TRUE(eventually([&] { return delivered.last() == "k1"; }));
  idp.publish({key.jwk("k1"), testing::KeyPair::ec().jwk("k2")});
  EXPECT_TRUE(eventually([&] { return delivered.last() == "k1,k2"; }));
}

TEST(JwksRefresher, FetchesAtStartThenEveryRefresh) {
  testing::JwksServer idp;
  auto first = testing::KeyPair::ed25519(), second = testing::KeyPair::ed25519();
  idp.publish({first.jwk("a")});
  Delivered delivered;
  JwksRefresher refresher({.url = idp.url(), .refresh = 200ms, .min_gap = 200ms}, delivered.sink());
  EXPECT_EQ(delivered.sets(), std::vector<std::string>{"a"});
  idp.publish({first.jwk("a"), second.jwk("b")});
  EXPECT_TRUE(eventually([&] { return delivered.last() == "a,b"; }));
  EXPECT_TRUE(eventually([&] { return idp.requests() >= 4; }));
}

// Asked to fetch sooner (a token with an unknown kid): once, after `min_gap` since the last fetch,
// however often it is asked.
TEST(JwksRefresher, RefreshSoonIsSpacedByTheMinimumGap) {
  testing::JwksServer idp;
  auto key = testing::KeyPair::ec();
  idp.publish({key.jwk("old")});
  Delivered delivered;
  JwksRefresher refresher({.url = idp.url(), .refresh = 1h, .min_gap = 300ms}, delivered.sink());
  idp.publish({key.jwk("new")});
  for (int i = 0; i < 50; ++i) refresher.refresh_soon();
  EXPECT_TRUE(eventually([&] { return delivered.last() == "new"; }));
  EXPECT_EQ(idp.requests(), 2u);
  std::this_thread::sleep_for(500ms);  // nothing asked: the next is an hour away
  EXPECT_EQ(idp.requests(), 2u);
  refresher.refresh_soon();
  EXPECT_TRUE(eventually([&] { return idp.requests() == 3; }));
}

// A fetch that fails keeps the keys delivered before (nothing is delivered) and is tried again
// after 1 s, not only at the next refresh.
TEST(JwksRefresher, AFailedFetchIsTriedAgainSoon) {
  testing::JwksServer idp;
  idp.answer(503, "{}");
  Delivered delivered;
  std::atomic<int> failures = 0;
  JwksRefresher refresher({.url = idp.url(), .refresh = 1h, .min_gap = 1h}, delivered.sink(),
                          [&failures] { ++failures; });
  EXPECT_EQ(idp.requests(), 1u);
  EXPECT_EQ(failures, 1);
  EXPECT_TRUE(delivered.sets().empty());
  idp.publish({testing::KeyPair::rsa().jwk("back")});
  EXPECT_TRUE(eventually([&] { return delivered.last() == "back"; }));
  EXPECT_EQ(idp.requests(), 2u);
  EXPECT_EQ(failures, 1);
}

// Destroying the refresher cuts a fetch under way off instead of waiting for its timeout.
TEST(JwksRefresher, StoppingCutsAHangingFetchOff) {
  testing::JwksServer idp;
  idp.publish({testing::KeyPair::ed25519().jwk("k")});
  auto refresher = std::make_unique<JwksRefresher>(
      JwksRefresher::Options{.url = idp.url(), .refresh = 1h, .min_gap = 0ms, .timeout = 1h},
      [](PublicKeys) {});
  idp.hang();
  refresher->refresh_soon();
  ASSERT_TRUE(eventually([&] { return idp.requests() == 2; }));
  auto started = std::chrono::steady_clock::now();
  refresher.reset();
  EXPECT_LT(std::chrono::steady_clock::now() - started, 5s);  // against an hour
}

}  // namespace
}  // namespace replayrail::auth
