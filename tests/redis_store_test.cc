// The conformance suite against a real redis-server (one per test binary, a fresh key prefix per
// store), plus what only Redis can do: Redis-side errors.
#include "replayrail/store/redis/redis_store.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/this_coro.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/json/parse.hpp>
#include <iterator>
#include <thread>

#include "replayrail/core/random.h"
#include "replayrail/store/testing/conformance.h"
#include "support/outage.h"
#include "support/redis_server.h"

namespace replayrail::testing {

namespace {

RedisServer& shared_redis() {
  static RedisServer server;
  return server;
}

}  // namespace

std::shared_ptr<store::Store> make_redis_store(boost::asio::any_io_executor ex) {
  auto url = resp::parse_redis_url(shared_redis().url()).value();
  auto s = store::RedisStore::connect(ex, {.url = url, .prefix = "t" + make_epoch()});
  return s;
}

INSTANTIATE_TEST_SUITE_P(Redis, StoreConformance,
                         ::testing::Values(StoreFactory{"redis", make_redis_store}),
                         StoreConformance::name_of);

}  // namespace replayrail::testing

namespace replayrail::testing {
namespace {

namespace asio = boost::asio;
using std::chrono_literals::operator""ms;
using std::chrono_literals::operator""s;

class RedisStoreFaults : public ::testing::Test {
 protected:
  std::shared_ptr<store::RedisStore> connect(RedisServer& redis) {
    auto url = resp::parse_redis_url(redis.url()).value();
    auto s = store::RedisStore::connect(io_.get_executor(), {.url = url, .prefix = "f"});
    EXPECT_TRUE(run(io_, s->wait_ready(10s)));
    return s;
  }
  NewEvent event(int n) {
    std::string payload = R"({"n":)" + std::to_string(n) + "}";
    return make_event({.channel = "s", .type = "t", .payload = payload}).value();
  }

  asio::io_context io_;
};

TEST_F(RedisStoreFaults, OutageFailsPublishesAndReadersResumeWithoutLossOrDuplicates) {
  RedisServer redis;
  auto store = connect(redis);
  std::vector<StreamId> acknowledged;
  for (int i = 0; i < 50; ++i) {
    acknowledged.push_back(run(io_, store->append("s", event(i), {})).value().event->id);
  }

  redis.kill();
  // While Redis is down no publish reports success.
  for (int i = 0; i < 5; ++i) {
    auto r = run(io_, store->append("s", event(100 + i), {}));
    ASSERT_FALSE(r);
    EXPECT_EQ(r.error().code, errc::store_unavailable) << r.error().message;
  }
  std::vector<store::StreamCursor> cursor{{"s", acknowledged[19], {}}};
  auto during = run(io_, store->read(cursor, {100, std::nullopt}));
  ASSERT_FALSE(during);
  EXPECT_EQ(during.error().code, errc::store_unavailable);

  // Redis comes back empty (no persistence here): the stream is a new incarnation, and a reader
  // resuming from its cursor with the epoch it saw is told so rather than served another history.
  redis.start();
  ASSERT_TRUE(run(io_, store->wait_ready(10s)));
  auto fresh = run(io_, store->append("s", event(200), {}));
  ASSERT_TRUE(fresh) << fresh.error().message;
  auto info = run(io_, store->info("s")).value();
  EXPECT_EQ(info.length, 1u);
}

TEST_F(RedisStoreFaults, BlockedReadersAndPublishersAcrossARestartWithPersistence) {
  // With persistence (AOF, fsync always) a restart keeps the stream: readers resume from their
  // cursor and see every acknowledged event exactly once.
  RedisServer redis({"--appendonly", "yes", "--appendfsync", "always"});
  auto store = connect(redis);
  std::vector<StreamId> acknowledged;
  std::vector<StreamId> seen;
  bool restarted = false;  // set when the publisher is done, after the restart
  std::vector<asio::awaitable<void>> tasks;
  tasks.push_back([](store::Store& s, std::vector<StreamId>& acked, RedisServer& redis,
                     bool& restarted) -> asio::awaitable<void> {
    asio::steady_timer pause(co_await asio::this_coro::executor);
    for (int i = 0; i < 300; ++i) {
      std::string payload = R"({"n":)" + std::to_string(i) + "}";
      auto r = co_await s.append(
          "s", make_event({.channel = "s", .type = "t", .payload = payload}).value(), {});
      if (r) {
        acked.push_back(r->event->id);
      } else if (r.error().code != errc::store_unavailable) {
        throw std::runtime_error(r.error().message);
      }
      if (i == 100) redis.kill();
      if (i == 110) redis.start();
      if (i >= 100 && i < 110) {
        pause.expires_after(std::chrono::milliseconds(2));
        co_await pause.async_wait(asio::use_awaitable);
      }
    }
    restarted = true;  // and done publishing
  }(*store, acknowledged, redis, restarted));
  tasks.push_back([](store::Store& s, std::vector<StreamId>& seen, std::vector<StreamId>& acked,
                     bool& restarted) -> asio::awaitable<void> {
    asio::steady_timer pause(co_await asio::this_coro::executor);
    StreamId cursor;
    for (int rounds = 0; rounds < 5000; ++rounds) {
      std::vector<store::StreamCursor> c{{"s", cursor, {}}};
      auto r = co_await s.read(c, {50, std::chrono::milliseconds(50)});
      if (!r) {
        if (r.error().code != errc::store_unavailable) throw std::runtime_error(r.error().message);
        pause.expires_after(std::chrono::milliseconds(5));
        co_await pause.async_wait(asio::use_awaitable);
        continue;
      }
      for (auto& batch : *r) {
        for (auto& e : batch.events) seen.push_back(e->id);
      }
      if (!seen.empty()) cursor = seen.back();
      if (restarted && !seen.empty() && seen.back() >= acked.back()) {
        co_return;
      }
    }
    throw std::runtime_error("the reader never caught up");
  }(*store, seen, acknowledged, restarted));
  run_all(io_, std::move(tasks), 1);

  // Every acknowledged event, once, in order. A publish in flight when Redis died may have been
  // applied although its caller was told store_unavailable (the reply was lost, and a
  // non-idempotent command is never retried): such an event may appear, nothing else.
  ASSERT_TRUE(std::is_sorted(seen.begin(), seen.end()));
  EXPECT_EQ(std::adjacent_find(seen.begin(), seen.end()), seen.end()) << "a duplicate";
  std::vector<StreamId> extra;
  std::set_difference(seen.begin(), seen.end(), acknowledged.begin(), acknowledged.end(),
                      std::back_inserter(extra));
  std::vector<StreamId> lost;
  std::set_difference(acknowledged.begin(), acknowledged.end(), seen.begin(), seen.end(),
                      std::back_inserter(lost));
  EXPECT_TRUE(lost.empty()) << "lost " << ::testing::PrintToString(lost);
  EXPECT_LE(extra.size(), 1u) << "unacknowledged " << ::testing::PrintToString(extra);
}

TEST_F(RedisStoreFaults, RedisSideErrorsAreClear) {
  RedisServer redis({"--maxmemory", "2mb", "--maxmemory-policy", "noeviction"});
  auto store = connect(redis);
  auto raw = resp::Connection::start(io_.get_executor(),
                                     {.url = resp::parse_redis_url(redis.url()).value()});
  ASSERT_TRUE(run(io_, raw->wait_ready(10s)));
  ASSERT_TRUE(run(io_, raw->command({"SET", "f:taken", "a string"})));
  auto wrong = run(io_, store->append("taken", event(1), {}));
  ASSERT_FALSE(wrong);
  EXPECT_NE(wrong.error().message.find("WRONGTYPE"), std::string::npos) << wrong.error().message;

  // Fill memory until Redis refuses writes: the publish fails as store_unavailable, saying why.
  std::string big(64 * 1024, 'x');
  std::string payload = R"({"x":")" + big + "\"}";
  result<store::Appended> r = make_error(errc::internal);
  for (int i = 0; i < 200; ++i) {
    r = run(io_, store->append(
                     "full",
                     make_event({.channel = "full", .type = "t", .payload = payload}).value(), {}));
    if (!r) break;
  }
  ASSERT_FALSE(r) << "maxmemory was never reached";
  EXPECT_EQ(r.error().code, errc::store_unavailable);
  EXPECT_NE(r.error().message.find("OOM"), std::string::npos) << r.error().message;
  raw->stop();
}

// The topic registry's layout (hash `{prefix}:@topics`): "<partitions> <created_at>", then the
// topic's own retention. A record without retention (older versions) and one with a field a
// later version may add both read; a damaged one is an error, not a guess.
TEST_F(RedisStoreFaults, TopicRecordsKeepTheirLayoutAndReadOlderAndNewerOnes) {
  RedisServer redis;
  auto store = connect(redis);
  auto raw = resp::Connection::start(io_.get_executor(),
                                     {.url = resp::parse_redis_url(redis.url()).value()});
  ASSERT_TRUE(run(io_, raw->wait_ready(10s)));
  auto made = run(io_, store->create_topic("orders", 4));
  ASSERT_TRUE(made);
  ASSERT_TRUE(run(io_, store->set_topic_retention(
                           "orders", {.max_length = 500, .max_age = store::Millis(3'600'000)})));
  auto record = run(io_, raw->command({"HGET", "f:@topics", "orders"}));
  ASSERT_TRUE(record);
  EXPECT_EQ(record->str, "4 " + made->created_at + " max_length=500 max_age_ms=3600000");

  ASSERT_TRUE(run(io_, raw->command({"HSET", "f:@topics", "old", "2 2025-01-01T00:00:00.000Z",
                                     "newer", "3 2025-01-01T00:00:00.000Z max_age_ms=5 tier=hot",
                                     "broken", "two 2025-01-01T00:00:00.000Z"})));
  auto old = run(io_, store->get_topic("old"));
  ASSERT_TRUE(old && *old);
  EXPECT_EQ((*old)->partitions, 2u);
  EXPECT_EQ((*old)->created_at, "2025-01-01T00:00:00.000Z");
  EXPECT_EQ((*old)->retention, store::TopicRetention{});
  auto newer = run(io_, store->get_topic("newer"));
  ASSERT_TRUE(newer && *newer);
  EXPECT_EQ((*newer)->partitions, 3u);
  EXPECT_EQ((*newer)->retention,
            (store::TopicRetention{.max_length = {}, .max_age = store::Millis(5)}));
  auto broken = run(io_, store->get_topic("broken"));
  ASSERT_FALSE(broken);
  EXPECT_EQ(broken.error().code, errc::internal);
  raw->stop();
}

// Redis out of memory refuses writes, but a batch is stored whole or not at all: a failed batch
// that had been stored in part would be stored twice by its retry.
TEST_F(RedisStoreFaults, ABatchIsStoredWholeOrNotAtAllWhenRedisIsOutOfMemory) {
  RedisServer redis({"--maxmemory-policy", "noeviction"});
  auto store = connect(redis);
  auto raw = resp::Connection::start(io_.get_executor(),
                                     {.url = resp::parse_redis_url(redis.url()).value()});
  ASSERT_TRUE(run(io_, raw->wait_ready(10s)));
  ASSERT_TRUE(run(io_, store->append("batches", event(0), {})));
  auto memory = run(io_, raw->command({"INFO", "memory"})).value().str;
  auto at = memory.find("used_memory:");
  ASSERT_NE(at, std::string::npos);
  const std::int64_t used = std::stoll(memory.substr(at + 12));
  // Room for a few batches of 40 events of 8 KB; then the limit is reached within one.
  ASSERT_TRUE(
      run(io_, raw->command({"CONFIG", "SET", "maxmemory", std::to_string(used + 1024 * 1024)})));
  auto refused = batches_until_refused(io_, *store, "batches", 1);
  ASSERT_TRUE(refused) << "maxmemory was never reached, or a batch was stored in part";
  EXPECT_EQ(refused->code, errc::store_unavailable);
  EXPECT_NE(refused->message.find("OOM"), std::string::npos) << refused->message;
  raw->stop();
}

// How many times Redis ran a script since the last CONFIG RESETSTAT.
std::int64_t script_runs(asio::io_context& io, resp::Connection& c) {
  auto stats = run(io, c.command({"INFO", "commandstats"})).value().str;
  std::int64_t runs = 0;
  for (std::string_view name : {"cmdstat_evalsha:calls=", "cmdstat_eval:calls="}) {
    if (auto at = stats.find(name); at != std::string::npos) {
      runs += std::stoll(stats.substr(at + name.size()));
    }
  }
  return runs;
}

TEST_F(RedisStoreFaults, AStreamFarPastItsMaxlenIsTrimmedInShortRuns) {
  // A stream written without a MAXLEN (or under a larger one), then appended to with one: its
  // whole excess goes, exactly and with the trimmed edge recorded, but over runs of a bounded
  // size, since Redis serves no one else while a script runs.
  RedisServer redis;
  auto store = connect(redis);
  auto raw = resp::Connection::start(io_.get_executor(),
                                     {.url = resp::parse_redis_url(redis.url()).value()});
  ASSERT_TRUE(run(io_, raw->wait_ready(10s)));
  for (bool approximate : {false, true}) {
    SCOPED_TRACE(approximate ? "MAXLEN ~" : "MAXLEN");
    const std::string stream = approximate ? "loose" : "exact";
    std::vector<StreamId> ids;
    for (int batch = 0; batch < 25; ++batch) {
      std::vector<NewEvent> events;
      for (int i = 0; i < 1000; ++i) events.push_back(event(i));
      auto appended = run(io_, store->append_batch(stream, std::move(events), {}));
      ASSERT_TRUE(appended) << appended.error().message;
      for (const auto& a : *appended) ids.push_back(a.event->id);
    }
    ASSERT_TRUE(run(io_, raw->command({"CONFIG", "RESETSTAT"})));
    auto last =
        run(io_, store->append(stream, event(0), {.maxlen = 100, .approximate = approximate}));
    ASSERT_TRUE(last) << last.error().message;
    ids.push_back(last->event->id);

    std::optional<store::StreamInfo> info;
    for (int tries = 0; tries < 400; ++tries) {  // MAXLEN ~: the append does not wait for it
      info = run(io_, store->info(stream)).value();
      if (info->length < 100 + 100) break;
      std::this_thread::sleep_for(10ms);
    }
    if (approximate) {
      EXPECT_GE(info->length, 100u);
      EXPECT_LT(info->length, 100u + 100) << "at most the slack of 100 stays";
    } else {
      EXPECT_EQ(info->length, 100u);
    }
    const std::size_t first = ids.size() - info->length;
    EXPECT_EQ(info->first_id, ids[first]);
    EXPECT_EQ(info->trimmed_through, ids[first - 1]);
    EXPECT_TRUE(run(io_, store->range(stream, ids[first - 1], 1, ""))) << "nothing was missed";
    auto expired = run(io_, store->range(stream, ids[first - 2], 1, ""));
    ASSERT_FALSE(expired);
    EXPECT_EQ(expired.error().code, errc::replay_window_expired);
    // 25,001 entries, 100 kept: 1,000 at most a run.
    EXPECT_GE(script_runs(io_, *raw), 25);
  }
  raw->stop();
}

std::int64_t connected_clients(asio::io_context& io, resp::Connection& c) {
  auto info = run(io, c.command({"INFO", "clients"})).value().str;
  auto at = info.find("connected_clients:");
  return at == std::string::npos ? -1 : std::stoll(info.substr(at + 18));
}

TEST_F(RedisStoreFaults, BlockedReadersShareAFewConnectionsAndLateComersAreWoken) {
  // 200 readers, each blocked on its own stream, arriving one by one while the lanes' XREADs are
  // in flight: they share the store's few blocking connections, each late comer joins an XREAD
  // through CLIENT UNBLOCK and a re-issue, and every one wakes when its stream gets an event.
  RedisServer redis;
  auto store = connect(redis);
  auto probe = resp::Connection::start(io_.get_executor(),
                                       {.url = resp::parse_redis_url(redis.url()).value()});
  ASSERT_TRUE(run(io_, probe->wait_ready(10s)));
  constexpr int kReaders = 200;
  std::vector<std::size_t> received(kReaders, 0);
  int done = 0;
  for (int i = 0; i < kReaders; ++i) {
    asio::co_spawn(
        io_,
        [](store::Store& s, int i, std::size_t& received, int& done) -> asio::awaitable<void> {
          asio::steady_timer pause(co_await asio::this_coro::executor,
                                   std::chrono::milliseconds(i));
          co_await pause.async_wait(asio::use_awaitable);
          std::vector<store::StreamCursor> c{{"b" + std::to_string(i), {}, {}}};
          auto r = co_await s.read(c, {10, std::chrono::seconds(60)});
          if (r && !r->empty()) received = r->front().events.size();
          ++done;
        }(*store, i, received[i], done),
        asio::detached);
  }
  io_.run_for(500ms);
  EXPECT_EQ(done, 0) << "a reader returned before anything was published";
  // The store's command connection, its four blocking connections, and the probe.
  EXPECT_LE(connected_clients(io_, *probe), 6);

  for (int i = kReaders - 1; i >= 0; --i) {
    auto stream = "b" + std::to_string(i);
    ASSERT_TRUE(run(
        io_,
        store->append(stream, make_event({.channel = stream, .type = "t", .payload = "{}"}).value(),
                      {})));
  }
  // Well below the 5 s after which a lane re-issues its XREAD anyway: a late comer that was never
  // added to the XREAD in flight would still be waiting.
  auto until = std::chrono::steady_clock::now() + 3s;
  while (done < kReaders && std::chrono::steady_clock::now() < until) io_.run_for(10ms);
  EXPECT_EQ(done, kReaders);
  EXPECT_EQ(std::count(received.begin(), received.end(), 1u), kReaders);
  probe->stop();
}

}  // namespace
}  // namespace replayrail::testing

namespace replayrail::testing {
namespace {

// Data written by the Python ReplayRail library (same layout) reads back here, and the reverse.
class RedisInterop : public ::testing::Test {
 protected:
  std::vector<std::string> python(const std::string& action, const std::string& channel) {
    ChildProcess p({"/usr/bin/python3", RR_REDIS_INTEROP_SCRIPT, action,
                    std::to_string(redis_.port()), "rr", channel});
    std::vector<std::string> lines;
    while (auto line = p.read_line(std::chrono::seconds(30))) lines.push_back(*line);
    EXPECT_EQ(p.wait(), 0) << "the Python script failed";
    return lines;
  }

  RedisServer redis_;
  boost::asio::io_context io_;
  std::shared_ptr<store::RedisStore> store_ = [this] {
    auto s = store::RedisStore::connect(
        io_.get_executor(), {.url = resp::parse_redis_url(redis_.url()).value(), .prefix = "rr"});
    EXPECT_TRUE(run(io_, s->wait_ready(std::chrono::seconds(10))));
    return s;
  }();
};

TEST_F(RedisInterop, EventsWrittenByThePythonLibraryReadBack) {
  auto ids = python("write", "restaurant:123:orders");
  ASSERT_EQ(ids.size(), 3u);
  auto events = run(io_, store_->range("restaurant:123:orders", {}, 10, {})).value();
  ASSERT_EQ(events.size(), 3u);
  for (std::size_t i = 0; i < 3; ++i) {
    EXPECT_EQ(events[i]->id.to_string(), ids[i]);
    EXPECT_EQ(events[i]->channel, "restaurant:123:orders");
    EXPECT_EQ(events[i]->type, "order.created");
    auto payload = boost::json::parse(events[i]->payload);
    EXPECT_EQ(payload.at("order_id").as_string(), "ord_" + std::to_string(i));
    EXPECT_EQ(payload.at("note").as_string(), "caf\u00e9");
  }
  EXPECT_EQ(events[0]->actor, "null");
  EXPECT_EQ(boost::json::parse(events[1]->actor).at("id").as_string(), "usr_123");
  // And they render as valid wire envelopes.
  for (const auto& e : events) EXPECT_NO_THROW(boost::json::parse(render_envelope(*e)));
  // Appending after them continues the same stream.
  auto next =
      run(io_,
          store_->append(
              "restaurant:123:orders",
              make_event({.channel = "restaurant:123:orders", .type = "order.ready"}).value(), {}));
  ASSERT_TRUE(next) << next.error().message;
  EXPECT_GT(next->event->id, events.back()->id);
}

TEST_F(RedisInterop, EventsWrittenHereReadBackInPython) {
  EventInput in{.channel = "user:9:notifications",
                .type = "payment.failed",
                .payload = R"({"amount":12.5,"currency":"EUR"})",
                .actor = R"({"type":"system","id":"billing"})",
                .metadata = R"({"correlation_id":"req_7"})",
                .event_id = "evt-42"};
  auto stored = run(io_, store_->append("user:9:notifications", make_event(in).value(), {}));
  ASSERT_TRUE(stored) << stored.error().message;
  auto lines = python("read", "user:9:notifications");
  ASSERT_EQ(lines.size(), 1u);
  auto got = boost::json::parse(lines[0]).as_object();
  EXPECT_EQ(got.at("id").as_string(), stored->event->id.to_string());
  EXPECT_EQ(got.at("event_id").as_string(), "evt-42");
  EXPECT_EQ(got.at("channel").as_string(), "user:9:notifications");
  EXPECT_EQ(got.at("type").as_string(), "payment.failed");
  EXPECT_EQ(got.at("payload").at("currency").as_string(), "EUR");
  EXPECT_EQ(got.at("actor").at("id").as_string(), "billing");
  EXPECT_EQ(got.at("metadata").at("correlation_id").as_string(), "req_7");
  EXPECT_EQ(got.at("created_at").as_string(), stored->event->created_at);
}

}  // namespace
}  // namespace replayrail::testing
