// The Redis store on a real Redis Cluster (DESIGN §8): the conformance suite, where the keys
// live, a slot moved under load, and the errors of a store pointed at the wrong kind of Redis.
#include "support/redis_cluster.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/this_coro.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <set>
#include <thread>

#include "replayrail/core/random.h"
#include "replayrail/resp/cluster.h"
#include "replayrail/store/redis/redis_store.h"
#include "replayrail/store/testing/conformance.h"
#include "replayrail/store/testing/helpers.h"
#include "support/child_process.h"
#include "support/outage.h"

namespace replayrail::testing {

namespace {

RedisCluster& shared_cluster() {
  static RedisCluster cluster;
  return cluster;
}

std::shared_ptr<store::RedisStore> cluster_store(boost::asio::any_io_executor ex,
                                                 const std::string& prefix) {
  auto url = resp::parse_redis_url(shared_cluster().url()).value();
  return store::RedisStore::connect(ex, {.url = url, .prefix = prefix, .cluster = true});
}

std::shared_ptr<store::Store> make_redis_cluster_store(boost::asio::any_io_executor ex) {
  return cluster_store(ex, "t" + make_epoch());
}

// A cluster whose primaries each have a replica, for publishes that wait for it.
RedisCluster& replicated_cluster() {
  static RedisCluster cluster(3, 1);
  return cluster;
}

std::shared_ptr<store::RedisStore> waited_cluster_store(
    boost::asio::any_io_executor ex, const std::string& prefix,
    std::chrono::milliseconds wait_timeout = std::chrono::milliseconds(2000)) {
  auto url = resp::parse_redis_url(replicated_cluster().url()).value();
  return store::RedisStore::connect(ex, {.url = url,
                                         .prefix = prefix,
                                         .cluster = true,
                                         .wait_replicas = 1,
                                         .wait_timeout = wait_timeout});
}

std::shared_ptr<store::Store> make_waited_cluster_store(boost::asio::any_io_executor ex) {
  return waited_cluster_store(ex, "t" + make_epoch());
}

}  // namespace

INSTANTIATE_TEST_SUITE_P(RedisCluster, StoreConformance,
                         ::testing::Values(StoreFactory{"redis_cluster", make_redis_cluster_store}),
                         StoreConformance::name_of);

// Every write waiting for the replica of the primary it went to (WAIT): the contract holds.
INSTANTIATE_TEST_SUITE_P(RedisClusterWaited, StoreConformance,
                         ::testing::Values(StoreFactory{"redis_cluster_waited",
                                                        make_waited_cluster_store}),
                         StoreConformance::name_of);

namespace {

namespace asio = boost::asio;
using std::chrono_literals::operator""ms;
using std::chrono_literals::operator""s;

class RedisClusterStore : public ::testing::Test {
 protected:
  void SetUp() override {
    store_ = make_store();
    ASSERT_TRUE(run(io_, store_->wait_ready(10s)));
  }
  virtual std::shared_ptr<store::RedisStore> make_store() {
    return cluster_store(io_.get_executor(), prefix_);
  }
  void TearDown() override {
    // As the conformance suite does: let the connections see the stop and end their coroutines
    // (one left suspended when io_ is destroyed may hold the last reference to its connection).
    store_->close();
    store_.reset();
    io_.restart();
    io_.run_for(5s);
  }

  // Where a key of this store lives: the node serving its slot has it.
  bool on_its_node(const std::string& key) {
    auto node = cluster().owner(resp::key_slot(key));
    return cluster().cli(node, {"EXISTS", key}).at(0) == "1";
  }
  virtual RedisCluster& cluster() { return shared_cluster(); }

  // A publisher, a blocked reader and a consumer group while the stream's slot moves.
  void publish_while_the_slot_moves();

  asio::io_context io_;
  std::string prefix_ = "c" + make_epoch();
  std::shared_ptr<store::RedisStore> store_;
};

TEST_F(RedisClusterStore, AStreamsKeysShareItsSlotAndStreamsSpreadOverTheNodes) {
  std::vector<std::string> streams;
  std::set<std::size_t> nodes;
  for (int i = 0; i < 24; ++i) {
    std::string s = "orders." + std::to_string(i);
    streams.push_back(s);
    // A chosen event_id goes through the append script (stream, meta hash, idempotency record).
    ASSERT_TRUE(run(io_, store_->append(s, numbered_event(s, 1, true), {})));
    ASSERT_TRUE(run(io_, store_->group_create(s, "g", Cursor::beginning(), false, {3})));
    const std::string tagged = "{" + s + "}";
    EXPECT_TRUE(on_its_node(prefix_ + ":" + tagged)) << s;
    EXPECT_TRUE(on_its_node(prefix_ + ":@meta:" + tagged)) << s;
    EXPECT_TRUE(on_its_node(prefix_ + ":@idem:" + tagged + ":e1")) << s;
    nodes.insert(cluster().owner(resp::key_slot(s)));
  }
  EXPECT_EQ(nodes.size(), cluster().size()) << "24 streams all on a few nodes";

  // Every node is listed, and a stream's idempotency records go with it.
  std::sort(streams.begin(), streams.end());
  EXPECT_EQ(run(io_, store_->list_streams()).value(), streams);
  ASSERT_TRUE(run(io_, store_->delete_stream("orders.3")).value());
  EXPECT_FALSE(on_its_node(prefix_ + ":@idem:{orders.3}:e1"));
  auto again = run(io_, store_->append("orders.3", numbered_event("orders.3", 1, true), {}));
  ASSERT_TRUE(again);
  EXPECT_FALSE(again->duplicate) << "the deleted stream's idempotency record survived";
  EXPECT_TRUE(run(io_, store_->health()));
}

TEST_F(RedisClusterStore, AGroupReadOverStreamsInDifferentSlotsWakesForAnyOfThem) {
  // Two streams on different nodes: no one XREADGROUP can name both.
  std::string a = "left", b;
  for (int i = 0; b.empty(); ++i) {
    std::string candidate = "right" + std::to_string(i);
    if (cluster().owner(resp::key_slot(candidate)) != cluster().owner(resp::key_slot(a))) {
      b = candidate;
    }
  }
  for (const auto& s : {a, b}) {
    ASSERT_TRUE(run(io_, store_->group_create(s, "g", Cursor::beginning(), true)));
  }
  ASSERT_TRUE(run(io_, store_->append(a, numbered_event(a, 0), {})));
  std::vector<store::GroupCursor> cursors{{a, std::nullopt}, {b, std::nullopt}};
  auto first = run(io_, store_->read_group("g", "c", cursors, {10, 5s})).value();
  ASSERT_EQ(first.size(), 1u);
  EXPECT_EQ(first[0].stream, a);

  // Blocked on both; an event on the second wakes it at once.
  std::optional<result<std::vector<store::GroupStreamMessages>>> woken;
  auto started = std::chrono::steady_clock::now();
  asio::co_spawn(
      io_,
      [](store::Store& s, std::vector<store::GroupCursor> cursors,
         auto& woken) -> asio::awaitable<void> {
        woken.emplace(co_await s.read_group("g", "c", cursors, {10, 10s}));
      }(*store_, cursors, woken),
      asio::detached);
  io_.run_for(300ms);
  ASSERT_FALSE(woken) << "returned with nothing published";
  ASSERT_TRUE(run(io_, store_->append(b, numbered_event(b, 1), {})));
  while (!woken && std::chrono::steady_clock::now() - started < 10s) io_.run_for(10ms);
  ASSERT_TRUE(woken && *woken) << (woken ? woken->error().message : "still blocked");
  EXPECT_LT(std::chrono::steady_clock::now() - started, 3s);
  ASSERT_EQ((*woken)->size(), 1u);
  EXPECT_EQ((**woken)[0].stream, b);
  EXPECT_EQ((**woken)[0].messages.size(), 1u);
  // Each message once: nothing is left for the group.
  EXPECT_TRUE(run(io_, store_->read_group("g", "c", cursors, {10, std::nullopt})).value().empty());
}

// As on one Redis (redis_store_test.cc), where the batch is a MULTI: out of memory, a batch is
// stored whole or not at all, here as a script.
TEST_F(RedisClusterStore, ABatchIsStoredWholeOrNotAtAllWhenItsNodeIsOutOfMemory) {
  ASSERT_TRUE(run(
      io_, store_->append("batches", make_event({.channel = "batches", .type = "t"}).value(), {})));
  for (std::size_t node = 0; node < cluster().size(); ++node) {
    std::int64_t used = -1;
    for (const auto& line : cluster().cli(node, {"INFO", "memory"})) {
      if (line.rfind("used_memory:", 0) == 0) used = std::stoll(line.substr(12));
    }
    ASSERT_GT(used, 0);
    cluster().cli(node, {"CONFIG", "SET", "maxmemory", std::to_string(used + 1024 * 1024)});
  }
  auto refused = batches_until_refused(io_, *store_, "batches", 1);
  for (std::size_t node = 0; node < cluster().size(); ++node) {
    cluster().cli(node, {"CONFIG", "SET", "maxmemory", "0"});
  }
  ASSERT_TRUE(refused) << "maxmemory was never reached, or a batch was stored in part";
  EXPECT_EQ(refused->code, errc::store_unavailable);
  EXPECT_NE(refused->message.find("OOM"), std::string::npos) << refused->message;
}

void RedisClusterStore::publish_while_the_slot_moves() {
  // A publisher (generated ids, and chosen event_ids through the script), a blocked reader and a
  // consumer group run while the stream's slot moves to another node key by key: they meet ASK,
  // TRYAGAIN and MOVED, and still every acknowledged event is read once, in order.
  const std::string s = "moving";
  const std::uint16_t slot = resp::key_slot(prefix_ + ":{" + s + "}");
  const std::size_t from = cluster().owner(slot), to = cluster().other_primary(from);
  ASSERT_TRUE(run(io_, store_->group_create(s, "g", Cursor::beginning(), true)));
  constexpr int kEvents = 600;
  std::vector<StreamId> acked, seen, consumed;
  std::vector<std::string> errors;
  std::atomic<bool> moved = false;
  bool published = false;  // the publisher is done (after the move)

  std::thread mover([&] {
    std::this_thread::sleep_for(150ms);
    cluster().move_slot(slot, to);
    moved = true;
  });
  std::vector<asio::awaitable<void>> tasks;
  tasks.push_back([](store::Store& st, std::string s, std::vector<StreamId>& acked,
                     std::vector<std::string>& errors, std::atomic<bool>& moved,
                     bool& published) -> asio::awaitable<void> {
    asio::steady_timer pause(co_await asio::this_coro::executor);
    for (int i = 0; i < kEvents || !moved; ++i) {
      auto r = co_await st.append(s, numbered_event(s, i, i % 3 == 0), {});
      if (r) {
        acked.push_back(r->event->id);
      } else {
        errors.push_back(r.error().message);
      }
      pause.expires_after(1ms);
      co_await pause.async_wait(asio::use_awaitable);
    }
    published = true;
  }(*store_, s, acked, errors, moved, published));
  auto follow = [](store::Store& st, std::string s, std::vector<StreamId>& seen,
                   const std::vector<StreamId>& acked, const bool& published,
                   bool group) -> asio::awaitable<void> {
    StreamId cursor;
    for (int round = 0; round < 20000; ++round) {
      if (published && !seen.empty() && seen.back() >= acked.back()) co_return;
      std::vector<EventPtr> events;
      if (group) {
        std::vector<store::GroupCursor> c{{s, std::nullopt}};
        auto r = co_await st.read_group("g", "c", c, {50, 200ms});
        if (!r) throw std::runtime_error(r.error().message);
        std::vector<StreamId> ids;
        for (auto& batch : *r) {
          for (auto& m : batch.messages) ids.push_back(m.id);
        }
        if (!ids.empty() && !co_await st.ack(s, "g", ids)) throw std::runtime_error("ack");
        seen.insert(seen.end(), ids.begin(), ids.end());
      } else {
        std::vector<store::StreamCursor> c{{s, cursor, {}}};
        auto r = co_await st.read(c, {50, 200ms});
        if (!r) throw std::runtime_error(r.error().message);
        for (auto& batch : *r) {
          for (auto& e : batch.events) seen.push_back(e->id);
        }
        if (!seen.empty()) cursor = seen.back();
      }
    }
    throw std::runtime_error("the reader never caught up");
  };
  tasks.push_back(follow(*store_, s, seen, acked, published, false));
  tasks.push_back(follow(*store_, s, consumed, acked, published, true));
  std::string failure;
  try {
    run_all(io_, std::move(tasks), 1);
  } catch (const std::exception& e) {
    failure = e.what();
  }
  mover.join();
  ASSERT_EQ(failure, "");

  EXPECT_TRUE(errors.empty()) << errors.size() << " appends failed, the first: " << errors[0];
  EXPECT_GE(acked.size(), static_cast<std::size_t>(kEvents));
  auto differences = [&](const std::vector<StreamId>& got) {
    std::vector<StreamId> lost, extra;
    std::set_difference(acked.begin(), acked.end(), got.begin(), got.end(),
                        std::back_inserter(lost));
    std::set_difference(got.begin(), got.end(), acked.begin(), acked.end(),
                        std::back_inserter(extra));
    return "lost " + ::testing::PrintToString(lost) + ", unacknowledged " +
           ::testing::PrintToString(extra) +
           ", in order: " + (std::is_sorted(got.begin(), got.end()) ? "yes" : "no");
  };
  EXPECT_TRUE(seen == acked) << differences(seen);
  EXPECT_TRUE(consumed == acked) << differences(consumed);
  EXPECT_EQ(run(io_, store_->pending(s, "g")).value().count, 0u);
  EXPECT_EQ(cluster().owner(slot), to);
  EXPECT_EQ(cluster().cli(to, {"EXISTS", prefix_ + ":{" + s + "}"}).at(0), "1");
  // The idempotency records moved too: a retried publish is still a duplicate.
  auto retried = run(io_, store_->append(s, numbered_event(s, 3, true), {}));
  ASSERT_TRUE(retried) << retried.error().message;
  EXPECT_TRUE(retried->duplicate);
}

TEST_F(RedisClusterStore, ASlotMovedUnderLoadLosesAndRepeatsNothing) {
  publish_while_the_slot_moves();
}

// The same store, its writes waiting for the replica of the primary they went to: a write
// redirected while the slot moves waits for the replica where it was sent on to.
class RedisClusterWaitedStore : public RedisClusterStore {
 protected:
  std::shared_ptr<store::RedisStore> make_store() override {
    return waited_cluster_store(io_.get_executor(), prefix_);
  }
  RedisCluster& cluster() override { return replicated_cluster(); }
};

TEST_F(RedisClusterWaitedStore, ASlotMovedUnderLoadLosesAndRepeatsNothing) {
  publish_while_the_slot_moves();
}

TEST_F(RedisClusterWaitedStore, APublishIsAcknowledgedOnlyOnceItsPrimarysReplicaHasIt) {
  store_->close();
  store_ = waited_cluster_store(io_.get_executor(), prefix_, 300ms);
  ASSERT_TRUE(run(io_, store_->wait_ready(10s)));
  // Two streams on different primaries.
  const std::string s = "waited";
  const std::size_t primary = cluster().owner(resp::key_slot(prefix_ + ":{" + s + "}"));
  std::string other;
  for (int i = 0; other.empty(); ++i) {
    const std::string name = "elsewhere" + std::to_string(i);
    if (cluster().owner(resp::key_slot(prefix_ + ":{" + name + "}")) != primary) other = name;
  }
  // Every way to publish: a server-generated id, a chosen event_id (the script), batches.
  ASSERT_TRUE(run(io_, store_->append(s, numbered_event(s, 0), {})));
  ASSERT_TRUE(run(io_, store_->append(s, numbered_event(s, 1, true), {})));
  std::vector<NewEvent> generated, chosen;
  for (int i = 2; i < 5; ++i) generated.push_back(numbered_event(s, i));
  for (int i = 5; i < 7; ++i) chosen.push_back(numbered_event(s, i, true));
  ASSERT_TRUE(run(io_, store_->append_batch(s, std::move(generated), {})));
  ASSERT_TRUE(run(io_, store_->append_batch(s, std::move(chosen), {})));
  // Acknowledged means on the replica: read there at once, without waiting for it.
  const std::size_t replica = cluster().replica_of(primary);
  auto on_replica =
      run_lines({"/bin/sh", "-c",
                 "printf 'READONLY\nXLEN " + prefix_ + ":{" + s + "}\n' | redis-cli -p " +
                     std::to_string(cluster().port(replica))});
  ASSERT_EQ(on_replica.size(), 2u);
  EXPECT_EQ(on_replica[1], "7");

  // Its replica frozen: publishes there fail once the wait is over, and say why; the other
  // primary's, and reads, go on.
  cluster().freeze(replica);
  auto refused = run(io_, store_->append(s, numbered_event(s, 7, true), {}));
  auto elsewhere = run(io_, store_->append(other, numbered_event(other, 0), {}));
  auto read = run(io_, store_->range(s, {}, 100, {}));
  cluster().thaw(replica);
  ASSERT_FALSE(refused) << "acknowledged without the replica";
  EXPECT_EQ(refused.error().code, errc::store_unavailable);
  EXPECT_NE(refused.error().message.find("only 0 of 1 replicas"), std::string::npos)
      << refused.error().message;
  EXPECT_TRUE(elsewhere) << elsewhere.error().message;
  ASSERT_TRUE(read) << read.error().message;
  EXPECT_EQ(read->size(), 8u) << "the refused publish is stored on the primary";
  // Published again with its event_id once the replica is back: stored once.
  auto again = run(io_, store_->append(s, numbered_event(s, 7, true), {}));
  ASSERT_TRUE(again) << again.error().message;
  EXPECT_TRUE(again->duplicate);
}

TEST_F(RedisClusterWaitedStore, AWriteSentOnToAnotherPrimaryWaitsForThatPrimarysReplica) {
  store_->close();
  store_ = waited_cluster_store(io_.get_executor(), prefix_, 300ms);
  ASSERT_TRUE(run(io_, store_->wait_ready(10s)));
  const std::string s = "redirected";
  const std::uint16_t slot = resp::key_slot(s);
  const std::size_t from = cluster().owner(slot), to = cluster().other_primary(from);
  ASSERT_TRUE(run(io_, store_->append(s, numbered_event(s, 0), {})));
  // The slot moves while the new owner's replica is frozen: the store, which still sends to the
  // old owner, is told MOVED, and the write it sends on must wait for the new owner's replica.
  const std::size_t replica = cluster().replica_of(to);
  cluster().freeze(replica);
  cluster().move_slot(slot, to);
  // (A plain XADD: a script's EVALSHA would be sent again as EVAL, unknown to the new owner,
  // and that would go there first.)
  auto refused = run(io_, store_->append(s, numbered_event(s, 1), {}));
  cluster().thaw(replica);
  ASSERT_FALSE(refused) << "acknowledged without the replica of the primary that stored it";
  EXPECT_NE(refused.error().message.find("only 0 of 1 replicas"), std::string::npos)
      << refused.error().message;
  EXPECT_EQ(cluster().cli(to, {"XLEN", prefix_ + ":{" + s + "}"}).at(0), "2")
      << "stored on the new owner";
  EXPECT_TRUE(run(io_, store_->append(s, numbered_event(s, 2), {})));
}

// Three primaries with replicas; the primary of a stream's slot dies. Publishes fail as
// store_unavailable (never as success) until a replica is promoted; then the same store, without
// a restart, publishes there again, and a reader blocked before the crash gets the new events.
// `waited`: every publish waits for a replica (two per primary, so that the promoted one has one).
void follow_a_failover(bool waited) {
  RedisCluster cluster(3, waited ? 2 : 1, 1000);
  asio::io_context io;
  auto store = store::RedisStore::connect(io.get_executor(),
                                          {.url = resp::parse_redis_url(cluster.url()).value(),
                                           .prefix = "f",
                                           .cluster = true,
                                           .wait_replicas = waited ? 1 : 0});
  ASSERT_TRUE(run(io, store->wait_ready(10s)));
  const std::string s = "survivor";
  const std::size_t primary = cluster.owner(resp::key_slot(s));
  std::vector<StreamId> before;
  for (int i = 0; i < 20; ++i) {
    auto stored = run(io, store->append(s, numbered_event(s, i), {}));
    ASSERT_TRUE(stored) << stored.error().message;
    before.push_back(stored->event->id);
  }
  if (!waited) wait_for_replicas(cluster.port(primary));  // replication is asynchronous

  std::vector<StreamId> seen, acked;
  bool published = false;
  int refused = 0;
  std::vector<asio::awaitable<void>> tasks;
  tasks.push_back(read_through_outage(*store, s, before.back(), seen, 5, published));
  tasks.push_back([](store::Store& st, std::string s, RedisCluster& cluster, std::size_t primary,
                     std::vector<StreamId>& acked, int& refused,
                     bool& published) -> asio::awaitable<void> {
    asio::steady_timer pause(co_await asio::this_coro::executor, 300ms);
    co_await pause.async_wait(asio::use_awaitable);  // the reader blocks first
    cluster.kill(primary);
    co_await publish_through_outage(st, s, 100, 5, acked, refused, published);
  }(*store, s, cluster, primary, acked, refused, published));
  run_all(io, std::move(tasks), 1);

  ASSERT_EQ(acked.size(), 5u) << "no publish succeeded after the failover";
  EXPECT_GT(refused, 0) << "the dead primary was never noticed";
  EXPECT_NE(cluster.owner(resp::key_slot(s)), primary);
  EXPECT_EQ(seen, acked) << "the blocked reader missed what came after the failover";
  auto all = run(io, store->range(s, {}, 100, {})).value();
  std::vector<StreamId> expected = before;
  expected.insert(expected.end(), acked.begin(), acked.end());
  EXPECT_EQ(ids_of(all), expected);
  store->close();
  store.reset();
  io.restart();
  io.run_for(5s);
}

TEST(RedisClusterFailover, AStoreFollowsTheReplicaThatTakesOverFromADeadPrimary) {
  follow_a_failover(false);
}

TEST(RedisClusterFailover, PublishesThatWaitForAReplicaGoOnAfterTheirPrimaryDies) {
  follow_a_failover(true);
}

TEST(RedisClusterMode, AStoreOnTheWrongKindOfRedisSaysSo) {
  asio::io_context io;
  // --redis-cluster against a single Redis.
  RedisServer single;
  auto on_single = store::RedisStore::connect(
      io.get_executor(),
      {.url = resp::parse_redis_url(single.url()).value(), .prefix = "w", .cluster = true});
  auto health = run(io, on_single->health());
  ASSERT_FALSE(health);
  EXPECT_EQ(health.error().code, errc::store_unavailable);
  EXPECT_NE(health.error().message.find("cluster support disabled"), std::string::npos)
      << health.error().message;
  on_single->close();

  // A cluster without --redis-cluster: a stream served by another node than the URL's.
  auto plain = store::RedisStore::connect(
      io.get_executor(),
      {.url = resp::parse_redis_url(shared_cluster().url()).value(), .prefix = "w"});
  std::string stream;
  for (int i = 0; stream.empty(); ++i) {
    std::string candidate = "elsewhere" + std::to_string(i);
    if (shared_cluster().owner(resp::key_slot("w:" + candidate)) != 0) stream = candidate;
  }
  auto appended = run(io, plain->append(stream, numbered_event(stream, 1), {}));
  ASSERT_FALSE(appended);
  EXPECT_EQ(appended.error().code, errc::store_unavailable);
  EXPECT_NE(appended.error().message.find("--redis-cluster"), std::string::npos)
      << appended.error().message;
  plain->close();
  on_single.reset();
  plain.reset();
  io.restart();
  io.run_for(5s);
}

TEST(RespCluster, KeySlotsAreTheClusterSpecificationsCrc16) {
  // Values from the Redis Cluster specification and CLUSTER KEYSLOT.
  EXPECT_EQ(resp::key_slot("123456789"), 0x31C3 % 16384);
  EXPECT_EQ(resp::key_slot("foo"), 12182);
  EXPECT_EQ(resp::key_slot("{user1000}.following"), resp::key_slot("{user1000}.followers"));
  EXPECT_EQ(resp::key_slot("{user1000}.following"), resp::key_slot("user1000"));
  // An empty tag is no tag; only the first "{…}" counts.
  EXPECT_EQ(resp::key_slot("foo{}{bar}"), 8363);
  EXPECT_EQ(resp::key_slot("foo{{bar}}zap"), resp::key_slot("{bar"));
  EXPECT_EQ(resp::key_slot("foo{bar}{zap}"), resp::key_slot("bar"));
  for (const char* key : {"rr:{orders.0}", "rr:@meta:{orders.0}", "x", "{a:b}c"}) {
    EXPECT_EQ(std::to_string(resp::key_slot(key)),
              shared_cluster().cli(0, {"CLUSTER", "KEYSLOT", key}).at(0))
        << key;
  }
}

}  // namespace
}  // namespace replayrail::testing
