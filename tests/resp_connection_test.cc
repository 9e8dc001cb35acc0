// The RESP connection against a real redis-server: pipelining, AUTH and SELECT, errors as
// values, and what callers see while Redis is down and after it comes back.
#include <gtest/gtest.h>

#include <boost/asio/io_context.hpp>
#include <set>

#include "replayrail/resp/connection.h"
#include "replayrail/store/testing/run.h"
#include "support/redis_server.h"

namespace replayrail::resp {
namespace {

namespace asio = boost::asio;
using std::chrono_literals::operator""ms;
using std::chrono_literals::operator""s;

class RespConnection : public ::testing::Test {
 protected:
  std::shared_ptr<Connection> connect(const std::string& url) {
    auto c = Connection::start(io_.get_executor(), {.url = parse_redis_url(url).value()});
    connections_.push_back(c);
    return c;
  }
  template <class T>
  T run(asio::awaitable<T> t) {
    return testing::run(io_, std::move(t));
  }
  result<Reply> cmd(Connection& c, std::vector<std::string> args) {
    return run(c.command(std::move(args)));
  }
  void TearDown() override {
    for (auto& c : connections_) c->stop();
    io_.restart();
    io_.poll();
  }

  asio::io_context io_;
  std::vector<std::shared_ptr<Connection>> connections_;
};

TEST_F(RespConnection, RoundTripsCommandsAndErrorReplies) {
  testing::RedisServer redis;
  auto c = connect(redis.url());
  ASSERT_TRUE(run(c->wait_ready(10s)));
  EXPECT_EQ(cmd(*c, {"SET", "k", "v"})->str, "OK");
  EXPECT_EQ(cmd(*c, {"GET", "k"})->str, "v");
  EXPECT_TRUE(cmd(*c, {"GET", "missing"})->is_nil());
  auto err = cmd(*c, {"XGROUP", "CREATE", "nokey", "g", "$"});
  ASSERT_TRUE(err) << "an error reply is a value";
  EXPECT_TRUE(err->error_is("ERR")) << err->str;
}

TEST_F(RespConnection, PipelinesConcurrentCommandsInOrder) {
  testing::RedisServer redis;
  auto c = connect(redis.url());
  ASSERT_TRUE(run(c->wait_ready(10s)));
  constexpr int kCommands = 2000;
  std::vector<std::int64_t> got(kCommands, -1);
  std::vector<asio::awaitable<void>> tasks;
  for (int i = 0; i < kCommands; ++i) {
    tasks.push_back([](Connection& c, std::int64_t& out, int i) -> asio::awaitable<void> {
      // RPUSH answers the list length: each command's own reply tells its position.
      // (A named vector: GCC 12 miscompiles a braced list of literals inside a coroutine.)
      std::vector<std::string> args{"RPUSH", "order", std::to_string(i)};
      auto r = co_await c.command(std::move(args));
      out = r.value().integer;
    }(*c, got[i], i));
  }
  testing::run_all(io_, std::move(tasks), 2);
  std::set<std::int64_t> lengths(got.begin(), got.end());
  EXPECT_EQ(lengths.size(), std::size_t{kCommands}) << "every reply went to its own command";
  EXPECT_EQ(*lengths.begin(), 1);
  EXPECT_EQ(*lengths.rbegin(), kCommands);
  auto list = cmd(*c, {"LRANGE", "order", "0", "-1"});
  ASSERT_TRUE(list);
  for (int i = 0; i < kCommands; ++i) {
    // The element pushed by command i sits at position got[i] - 1.
    ASSERT_EQ(list->elements[got[i] - 1].str, std::to_string(i));
  }
}

TEST_F(RespConnection, AuthenticatesAndSelectsTheDatabase) {
  testing::RedisServer redis({"--requirepass", "s3cret"});
  auto db3 = connect(redis.url(":s3cret@", 3));
  auto db0 = connect(redis.url(":s3cret@", 0));
  ASSERT_TRUE(run(db3->wait_ready(10s)));
  ASSERT_TRUE(run(db0->wait_ready(10s)));
  ASSERT_EQ(cmd(*db3, {"SET", "where", "three"})->str, "OK");
  EXPECT_TRUE(cmd(*db0, {"GET", "where"})->is_nil());
  EXPECT_EQ(cmd(*db3, {"GET", "where"})->str, "three");

  auto wrong = connect(redis.url(":wrong@"));
  EXPECT_FALSE(run(wrong->wait_ready(300ms)));
  auto r = cmd(*wrong, {"PING"});
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().code, errc::store_unavailable);
}

TEST_F(RespConnection, FailsFastDuringAnOutageAndReconnects) {
  testing::RedisServer redis;
  auto c = connect(redis.url());
  ASSERT_TRUE(run(c->wait_ready(10s)));

  // A command in flight when Redis dies fails; it is not left hanging or retried.
  std::optional<result<Reply>> blocked;
  std::vector<asio::awaitable<void>> tasks;
  tasks.push_back([](Connection& c, auto& out) -> asio::awaitable<void> {
    std::vector<std::string> args{"BLPOP", "never", "0"};
    out = co_await c.command(std::move(args));
  }(*c, blocked));
  tasks.push_back([](testing::RedisServer& redis) -> asio::awaitable<void> {
    // On this one thread the BLPOP was written first; the kill lands while it is in flight.
    redis.kill();
    co_return;
  }(redis));
  testing::run_all(io_, std::move(tasks), 1);
  ASSERT_TRUE(blocked);
  ASSERT_FALSE(*blocked);
  EXPECT_EQ(blocked->error().code, errc::store_unavailable);

  auto down = cmd(*c, {"PING"});
  ASSERT_FALSE(down);
  EXPECT_EQ(down.error().code, errc::store_unavailable);

  redis.start();
  ASSERT_TRUE(run(c->wait_ready(10s))) << "reconnects on its own";
  EXPECT_EQ(cmd(*c, {"PING"})->str, "PONG");
}

TEST_F(RespConnection, SendsABatchAndAnswersItAsOneArray) {
  testing::RedisServer redis;
  auto c = connect(redis.url());
  ASSERT_TRUE(run(c->wait_ready(10s)));
  std::vector<std::vector<std::string>> batch{
      {"RPUSH", "l", "a", "b"}, {"LLEN", "l"}, {"INCR", "l"}, {"LRANGE", "l", "0", "-1"}};
  auto r = run(c->commands(std::move(batch)));
  ASSERT_TRUE(r);
  ASSERT_EQ(r->elements.size(), 4u);
  EXPECT_EQ(r->elements[0].integer, 2);
  EXPECT_EQ(r->elements[1].integer, 2);
  EXPECT_TRUE(r->elements[2].error_is("WRONGTYPE")) << "an error reply stays in its place";
  ASSERT_EQ(r->elements[3].elements.size(), 2u);
  EXPECT_EQ(cmd(*c, {"PING"})->str, "PONG") << "replies after a batch still match";
}

TEST_F(RespConnection, SpeaksTlsAndVerifiesTheServer) {
  auto redis = testing::RedisServer::with_tls();
  auto c = connect(redis->tls_url());
  ASSERT_TRUE(run(c->wait_ready(10s)));
  EXPECT_EQ(cmd(*c, {"SET", "k", "over tls"})->str, "OK");
  EXPECT_EQ(cmd(*c, {"GET", "k"})->str, "over tls");

  // Without our CA the self-signed certificate is refused, with a TLS error.
  auto untrusted = connect("rediss://127.0.0.1:" +
                           std::to_string(parse_redis_url(redis->tls_url()).value().port) + "/0");
  EXPECT_FALSE(run(untrusted->wait_ready(500ms)));
  auto r = cmd(*untrusted, {"PING"});
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().code, errc::store_unavailable);

  // ssl_cert_reqs=none skips verification (for tests and private networks only).
  auto unverified = connect(
      "rediss://127.0.0.1:" + std::to_string(parse_redis_url(redis->tls_url()).value().port) +
      "/0?ssl_cert_reqs=none");
  ASSERT_TRUE(run(unverified->wait_ready(10s)));
  EXPECT_EQ(cmd(*unverified, {"GET", "k"})->str, "over tls");

  // A plain connection to the TLS port never becomes ready.
  auto plain = connect("redis://127.0.0.1:" +
                       std::to_string(parse_redis_url(redis->tls_url()).value().port));
  EXPECT_FALSE(run(plain->wait_ready(300ms)));
}

}  // namespace
}  // namespace replayrail::resp
