// The Redis store behind Redis Sentinel (DESIGN §8, "one Redis (primary + replicas/Sentinel)"):
// the conformance suite through the Sentinels, a failover after a crash and one ordered by hand,
// a primary turned replica under a connected store, and a URL the Sentinels cannot answer; and
// publishes that wait for the replicas (WAIT).
#include "support/redis_sentinel.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <boost/asio/io_context.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/this_coro.hpp>
#include <boost/asio/use_awaitable.hpp>

#include "replayrail/core/random.h"
#include "replayrail/store/redis/redis_store.h"
#include "replayrail/store/testing/conformance.h"
#include "replayrail/store/testing/helpers.h"
#include "support/outage.h"

namespace replayrail::testing {

namespace {

namespace asio = boost::asio;
using std::chrono_literals::operator""ms;
using std::chrono_literals::operator""s;

RedisSentinel& shared_sentinel() {
  static RedisSentinel sentinel;
  return sentinel;
}

// The first Sentinel listed is down: each connection skips it for the one that answers.
std::shared_ptr<store::Store> make_redis_sentinel_store(boost::asio::any_io_executor ex) {
  auto url = shared_sentinel().url("127.0.0.1:" + std::to_string(free_port()));
  return store::RedisStore::connect(
      ex, {.url = resp::parse_redis_url(url).value(), .prefix = "t" + make_epoch()});
}

}  // namespace

INSTANTIATE_TEST_SUITE_P(RedisSentinel, StoreConformance,
                         ::testing::Values(StoreFactory{"redis_sentinel",
                                                        make_redis_sentinel_store}),
                         StoreConformance::name_of);

namespace {

std::shared_ptr<store::RedisStore> connect(asio::io_context& io, const std::string& url) {
  return store::RedisStore::connect(io.get_executor(),
                                    {.url = resp::parse_redis_url(url).value(), .prefix = "s"});
}

// As the conformance suite does: the connections see the stop and end their coroutines.
void close(asio::io_context& io, std::shared_ptr<store::RedisStore>& store) {
  store->close();
  store.reset();
  io.restart();
  io.run_for(5s);
}

std::vector<StreamId> publish(asio::io_context& io, store::Store& store, const std::string& s,
                              int from, int to) {
  std::vector<StreamId> ids;
  for (int i = from; i < to; ++i) {
    ids.push_back(run(io, store.append(s, numbered_event(s, i), {})).value().event->id);
  }
  return ids;
}

TEST(RedisSentinelStore, WritesToThePrimaryTheSentinelsName) {
  auto& sentinel = shared_sentinel();
  asio::io_context io;
  auto store = connect(io, sentinel.url());
  ASSERT_TRUE(run(io, store->wait_ready(10s)));
  publish(io, *store, "named", 0, 3);
  const std::size_t primary = sentinel.primary();
  EXPECT_EQ(sentinel.cli(primary, {"XLEN", "s:named"}).at(0), "3");
  EXPECT_TRUE(run(io, store->health()));
  close(io, store);
}

TEST(RedisSentinelStore, ASentinelUrlTheSentinelsCannotAnswerSaysWhy) {
  auto& sentinel = shared_sentinel();
  asio::io_context io;
  // A service they do not monitor.
  auto unknown =
      connect(io, sentinel.url().substr(0, sentinel.url().rfind("/mymaster")) + "/nosuchservice/0");
  EXPECT_FALSE(run(io, unknown->wait_ready(1s)));
  auto refused = run(io, unknown->append("x", numbered_event("x", 1), {}));
  ASSERT_FALSE(refused);
  EXPECT_EQ(refused.error().code, errc::store_unavailable);
  EXPECT_NE(refused.error().message.find("monitors no service named 'nosuchservice'"),
            std::string::npos)
      << refused.error().message;
  auto health = run(io, unknown->health());
  ASSERT_FALSE(health);
  EXPECT_EQ(health.error().code, errc::store_unavailable);
  close(io, unknown);

  // No Sentinel listening at all.
  auto nobody = connect(io, "redis+sentinel://127.0.0.1:" + std::to_string(free_port()) +
                                ",127.0.0.1:" + std::to_string(free_port()) + "/mymaster");
  EXPECT_FALSE(run(io, nobody->wait_ready(1s)));
  auto down = run(io, nobody->append("x", numbered_event("x", 1), {}));
  ASSERT_FALSE(down);
  EXPECT_EQ(down.error().code, errc::store_unavailable);
  close(io, nobody);
}

TEST(RedisSentinelStore, ThePrimaryAndTheSentinelsEachHaveTheirPassword) {
  RedisSentinel sentinel(1, 1, 1000, {.server = "s3cret", .sentinel = "watchword"});
  asio::io_context io;
  auto store = connect(io, sentinel.url());
  ASSERT_TRUE(run(io, store->wait_ready(10s)));
  publish(io, *store, "locked", 0, 2);
  EXPECT_EQ(sentinel.cli(0, {"XLEN", "s:locked"}).at(0), "2");
  close(io, store);

  // The Sentinel's refusal of a wrong password is the reason given.
  std::string wrong = sentinel.url();
  wrong.replace(wrong.find("watchword"), 9, "guess");
  auto refused = connect(io, wrong);
  EXPECT_FALSE(run(io, refused->wait_ready(1s)));
  auto failed = run(io, refused->append("x", numbered_event("x", 1), {}));
  ASSERT_FALSE(failed);
  EXPECT_EQ(failed.error().code, errc::store_unavailable);
  EXPECT_NE(failed.error().message.find("AUTH failed"), std::string::npos)
      << failed.error().message;
  close(io, refused);
}

// How the primary goes: it dies, or the Sentinels are told to replace it while it runs.
enum class Failover { crash, ordered };

// A store on `sentinel`'s primary (server 0) publishes 10 events to a stream, a reader blocks
// after them, the primary goes `how`, and the store publishes until 5 more are acknowledged.
// Publishes fail as store_unavailable (never as success) meanwhile; then the same store, without
// a restart, publishes to the new primary (server 1), its blocked reader gets exactly those 5,
// and the stream reads back whole, there and on whatever is a replica of it.
void publish_through_a_failover(RedisSentinel& sentinel, Failover how) {
  asio::io_context io;
  auto store = connect(io, sentinel.url());
  ASSERT_TRUE(run(io, store->wait_ready(10s)));
  const std::string s = "survivor";
  auto before = publish(io, *store, s, 0, 10);
  wait_for_replicas(sentinel.server(0).port());  // replication is asynchronous

  std::vector<StreamId> seen, acked;
  bool published = false;
  int refused = 0;
  std::vector<asio::awaitable<void>> tasks;
  tasks.push_back(read_through_outage(*store, s, before.back(), seen, 5, published));
  tasks.push_back([](store::Store& st, std::string s, RedisSentinel& sentinel, Failover how,
                     std::vector<StreamId>& acked, int& refused,
                     bool& published) -> asio::awaitable<void> {
    asio::steady_timer pause(co_await asio::this_coro::executor, 300ms);
    co_await pause.async_wait(asio::use_awaitable);  // the reader blocks first
    if (how == Failover::crash) {
      sentinel.kill(0);
    } else {
      sentinel.failover();  // (blocks this thread until the Sentinels name the new primary)
      pause.expires_after(3s);
      co_await pause.async_wait(asio::use_awaitable);
    }
    co_await publish_through_outage(st, s, 100, 5, acked, refused, published);
  }(*store, s, sentinel, how, acked, refused, published));
  run_all(io, std::move(tasks), 1);

  ASSERT_EQ(acked.size(), 5u) << "no publish succeeded after the failover";
  EXPECT_EQ(sentinel.primary(), 1u);
  if (how == Failover::crash) {
    EXPECT_GT(refused, 0) << "the dead primary was never noticed";
  } else {
    // The old primary, a replica now, dropped whatever it took after the switch.
    sentinel.wait_for_role(0, "slave");
    wait_for_replicas(sentinel.server(1).port());
    EXPECT_EQ(sentinel.cli(0, {"XLEN", "s:survivor"}).at(0), "15");
  }
  EXPECT_EQ(seen, acked) << "the blocked reader missed what came after the failover";
  auto expected = before;
  expected.insert(expected.end(), acked.begin(), acked.end());
  EXPECT_EQ(ids_of(run(io, store->range(s, {}, 100, {})).value()), expected);
  EXPECT_EQ(sentinel.cli(1, {"XLEN", "s:survivor"}).at(0), "15");
  close(io, store);
}

TEST(RedisSentinelFailover, AStoreFollowsTheReplicaPromotedAfterThePrimaryDies) {
  // Three Sentinels (a failover needs two of them) watch a primary and one replica.
  RedisSentinel sentinel(1, 3, 1000);
  publish_through_a_failover(sentinel, Failover::crash);
}

TEST(RedisSentinelFailover, AStoreFollowsAFailoverOrderedWhileThePrimaryRuns) {
  // SENTINEL FAILOVER: the old primary keeps running and taking writes until the Sentinels make
  // it a replica of the new one, 10 s or more later; what it took meanwhile is then lost. The
  // store leaves it as soon as the Sentinels name the new primary (it asks them every second),
  // so what it publishes 3 s after the switch is all kept.
  RedisSentinel sentinel(1, 1);
  publish_through_a_failover(sentinel, Failover::ordered);
}

TEST(RedisSentinelFailover, APrimaryTurnedReplicaIsLeftForTheOneTheSentinelsNameNext) {
  // The primary becomes a replica behind the Sentinels' back, its clients left connected (no
  // automatic failover: down-after is a minute). A write there is refused (READONLY) and fails
  // as store_unavailable; the store asks the Sentinels again, and while they still name the
  // replica, the ROLE check refuses it. Once they name the new primary, the store writes there.
  RedisSentinel sentinel(1, 1, 60000);
  asio::io_context io;
  auto store = connect(io, sentinel.url());
  ASSERT_TRUE(run(io, store->wait_ready(10s)));
  const std::string s = "demoted";
  auto before = publish(io, *store, s, 0, 3);
  wait_for_replicas(sentinel.server(0).port());

  sentinel.cli(1, {"REPLICAOF", "NO", "ONE"});
  sentinel.cli(0, {"REPLICAOF", "127.0.0.1", std::to_string(sentinel.server(1).port())});
  auto refused = run(io, store->append(s, numbered_event(s, 3), {}));
  ASSERT_FALSE(refused) << "a write succeeded on a replica";
  EXPECT_EQ(refused.error().code, errc::store_unavailable);
  EXPECT_NE(refused.error().message.find("READONLY"), std::string::npos) << refused.error().message;
  // READONLY dropped the connection: the next ones are refused by the ROLE check, not READONLY
  // again on a connection still open to the replica.
  for (int i = 0; i < 5; ++i) {
    std::this_thread::sleep_for(100ms);
    auto again = run(io, store->append(s, numbered_event(s, 3), {}));
    ASSERT_FALSE(again) << "a write succeeded on the replica the Sentinels still name";
    EXPECT_EQ(again.error().code, errc::store_unavailable);
    EXPECT_NE(again.error().message.find("not a primary"), std::string::npos)
        << again.error().message;
  }

  // The Sentinel is told of the new primary.
  sentinel.sentinel_cli(0, {"SENTINEL", "REMOVE", "mymaster"});
  sentinel.sentinel_cli(0, {"SENTINEL", "MONITOR", "mymaster", "127.0.0.1",
                            std::to_string(sentinel.server(1).port()), "1"});
  std::vector<StreamId> acked;
  int failed = 0;
  bool done = false;
  std::vector<asio::awaitable<void>> tasks;
  tasks.push_back(publish_through_outage(*store, s, 3, 1, acked, failed, done));
  run_all(io, std::move(tasks), 1);
  ASSERT_EQ(acked.size(), 1u) << "the store never moved to the new primary";
  auto expected = before;
  expected.push_back(acked[0]);
  EXPECT_EQ(ids_of(run(io, store->range(s, {}, 100, {})).value()), expected);
  EXPECT_EQ(sentinel.cli(1, {"XLEN", "s:demoted"}).at(0), "4");
  close(io, store);
}

TEST(RedisReplicas, APublishIsAcknowledgedOnlyOnceTheReplicasItWaitsForHaveIt) {
  RedisSentinel redis(1, 1);  // a primary and its replica (the Sentinel is not used)
  asio::io_context io;
  auto store = store::RedisStore::connect(
      io.get_executor(), {.url = resp::parse_redis_url(redis.server(0).url()).value(),
                          .prefix = "w",
                          .wait_replicas = 1,
                          .wait_timeout = 300ms});
  ASSERT_TRUE(run(io, store->wait_ready(10s)));
  // Every way to publish: a server-generated id, a chosen event_id (the script), batches of both.
  ASSERT_TRUE(run(io, store->append("w", numbered_event("w", 0), {})));
  ASSERT_TRUE(run(io, store->append("w", numbered_event("w", 1, true), {})));
  std::vector<NewEvent> generated, chosen;
  for (int i = 2; i < 5; ++i) generated.push_back(numbered_event("w", i));
  for (int i = 5; i < 7; ++i) chosen.push_back(numbered_event("w", i, true));
  ASSERT_TRUE(run(io, store->append_batch("w", std::move(generated), {})));
  ASSERT_TRUE(run(io, store->append_batch("w", std::move(chosen), {})));
  // Acknowledged means on the replica: no waiting for it here.
  EXPECT_EQ(redis.cli(1, {"XLEN", "w:w"}).at(0), "7");

  // Concurrent publishers share WAITs (one pipeline in flight, the next gathering): each gets
  // its own answer, and every acknowledged event is on the replica.
  std::vector<StreamId> concurrent;
  std::vector<asio::awaitable<void>> publishers;
  for (int p = 0; p < 16; ++p) {
    publishers.push_back(
        [](store::Store& st, int p, std::vector<StreamId>& ids) -> asio::awaitable<void> {
          for (int i = 0; i < 20; ++i) {
            const int n = 1000 + p * 100 + i;
            auto r = co_await st.append("c", numbered_event("c", n, i % 4 == 0), {});
            ids.push_back(r.value().event->id);
          }
        }(*store, p, concurrent));
  }
  run_all(io, std::move(publishers), 1);
  ASSERT_EQ(concurrent.size(), 320u);
  EXPECT_EQ(redis.cli(1, {"XLEN", "w:c"}).at(0), "320");
  std::sort(concurrent.begin(), concurrent.end());
  EXPECT_EQ(ids_of(run(io, store->range("c", {}, 1000, {})).value()), concurrent)
      << "an answer went to the wrong publisher";

  // The replica stops answering: a publish fails once the timeout passed, and says why; reads
  // meanwhile are not held up behind its WAIT.
  redis.server(1).freeze();
  std::optional<result<store::Appended>> waited;
  std::optional<std::chrono::steady_clock::duration> read_took;
  const auto started = std::chrono::steady_clock::now();
  std::vector<asio::awaitable<void>> tasks;
  tasks.push_back(
      [](store::Store& st, std::optional<result<store::Appended>>& out) -> asio::awaitable<void> {
        out.emplace(co_await st.append("w", numbered_event("w", 7, true), {}));
      }(*store, waited));
  tasks.push_back(
      [](store::Store& st,
         std::optional<std::chrono::steady_clock::duration>& took) -> asio::awaitable<void> {
        asio::steady_timer pause(co_await asio::this_coro::executor, 50ms);
        co_await pause.async_wait(asio::use_awaitable);  // the publish waits by now
        const auto t = std::chrono::steady_clock::now();
        (void)(co_await st.range("w", {}, 100, {})).value();
        took = std::chrono::steady_clock::now() - t;
      }(*store, read_took));
  run_all(io, std::move(tasks), 1);
  ASSERT_TRUE(waited && !*waited) << "acknowledged without the replica";
  EXPECT_EQ((*waited).error().code, errc::store_unavailable);
  EXPECT_NE((*waited).error().message.find("only 0 of 1 replicas confirmed it within 300 ms"),
            std::string::npos)
      << (*waited).error().message;
  EXPECT_GE(std::chrono::steady_clock::now() - started, 300ms);
  ASSERT_TRUE(read_took);
  EXPECT_LT(*read_took, 200ms) << "a read waited behind the WAIT";
  auto plain = run(io, store->append("w", numbered_event("w", 8), {}));
  ASSERT_FALSE(plain);
  EXPECT_EQ(plain.error().code, errc::store_unavailable);

  // Back: the same event_id is stored once (it was stored on the primary all along).
  redis.server(1).thaw();
  wait_for_replicas(redis.server(0).port());
  auto again = run(io, store->append("w", numbered_event("w", 7, true), {}));
  ASSERT_TRUE(again) << again.error().message;
  EXPECT_TRUE(again->duplicate);
  close(io, store);

  // More replicas asked for than there are: nothing is acknowledged.
  auto greedy = store::RedisStore::connect(
      io.get_executor(), {.url = resp::parse_redis_url(redis.server(0).url()).value(),
                          .prefix = "w",
                          .wait_replicas = 2,
                          .wait_timeout = 100ms});
  auto refused = run(io, greedy->append("w", numbered_event("w", 9), {}));
  ASSERT_FALSE(refused);
  EXPECT_NE(refused.error().message.find("only 1 of 2 replicas"), std::string::npos)
      << refused.error().message;
  close(io, greedy);
}

}  // namespace

}  // namespace replayrail::testing
