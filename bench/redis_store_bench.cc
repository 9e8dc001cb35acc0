// Redis store throughput (issue 4): appends/s through the store from 64 concurrent publishers
// (pipelined on one connection) with 200-byte payloads, and in the same run the ceiling:
// redis-benchmark -P 16 -c 32 doing a plain XADD of the same payload against the same server
// (and, for a stream at its MAXLEN, the XADD MAXLEN that trims as it goes, exact and `~`).
// Then the same on a Redis Cluster of three primaries against redis-benchmark --cluster, and on a
// primary with a replica, and on a cluster whose primaries have a replica each, with and without
// waiting for the replicas (WAIT 1). And the cost of expiring a long past (trim_before) against
// a plain XTRIM MINID.
#include <algorithm>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/io_context.hpp>
#include <cstdio>
#include <memory>
#include <regex>
#include <stdexcept>
#include <string>
#include <vector>

#include "picked.h"
#include "redis_appends.h"
#include "replayrail/resp/connection.h"
#include "replayrail/store/redis/redis_store.h"
#include "support/redis_cluster.h"
#include "support/redis_server.h"

namespace {

using namespace replayrail;
namespace asio = boost::asio;
using Clock = std::chrono::steady_clock;

double store_appends(const std::string& url, int publishers, int total, std::uint64_t maxlen,
                     bool approximate = false) {
  return bench::redis_store_appends(url, publishers, total,
                                    {.maxlen = maxlen, .approximate = approximate});
}

// redis-benchmark's requests/s for the XADD the store sends: the same seven fields and sizes.
// On a cluster (`cluster`: the port is one node's) it spreads the XADDs over a stream per primary.
// `maxlen` is the XADD's MAXLEN argument, as the shell reads it ("10000", "'~' 10000"); the
// stream is `key`.
double redis_benchmark(std::uint16_t port, int total, bool cluster = false,
                       const std::string& maxlen = "1000000",
                       const std::string& key = "bench:raw") {
  std::string cmd = "redis-benchmark -h 127.0.0.1 -p " + std::to_string(port) +
                    (cluster ? " --cluster" : "") + " -P 16 -c 32 -n " + std::to_string(total) +
                    (cluster ? " -q XADD bench:{tag}" : " -q XADD " + key) + " MAXLEN " + maxlen +
                    " '*' event_id "
                    "0192f4c4-7d3e-4b1a-9c55-3f0e6a1b2c3d channel bench type bench.event "
                    "payload '" +
                    bench::kPayload +
                    "' actor null metadata '{}' created_at 2026-11-22T10:00:00.000Z 2>&1";
  std::unique_ptr<FILE, int (*)(FILE*)> pipe(popen(cmd.c_str(), "r"), pclose);
  std::string out;
  char buf[512];
  while (pipe && fgets(buf, sizeof buf, pipe.get())) out += buf;
  std::smatch m;
  // The last figure it prints ("…: 123456.78 requests per second").
  double rps = 0;
  std::regex re(R"(([0-9.]+) requests per second)");
  for (auto it = std::sregex_iterator(out.begin(), out.end(), re); it != std::sregex_iterator();
       ++it) {
    rps = std::stod((*it)[1]);
  }
  if (rps == 0) std::fprintf(stderr, "redis-benchmark said: %s\n", out.c_str());
  return rps;
}

// One figure of the table, and one with its share of the ceiling measured in the same run.
void rate_line(const char* what, double rate) { std::printf("%-58s %10.0f /s\n", what, rate); }
void share_line(const char* what, double rate, double ceiling) {
  std::printf("%-58s %10.0f /s  %3.0f%%\n", what, rate, 100 * rate / ceiling);
}

// Appends `n` entries of the store's layout (200-byte payloads) to `key` inside Redis, by a
// script, 100,000 a run; returns the last one's id.
asio::awaitable<StreamId> fill_in_redis(resp::Connection& redis, std::string key, int n) {
  static const char* kFill = R"lua(
local id
for i = 1, tonumber(ARGV[1]) do
  id = redis.call('XADD', KEYS[1], '*', 'event_id', 'e', 'channel', 'big', 'type', 'bench.event',
    'payload', ARGV[2], 'actor', 'null', 'metadata', '{}', 'created_at', '2026-11-22T10:00:00.000Z')
end
return id
)lua";
  std::string last;
  for (int done = 0; done < n; done += 100'000) {
    auto count = std::to_string(std::min(100'000, n - done));
    // (A named vector: GCC 12 miscompiles string literals in a braced list under co_await.)
    const std::vector<std::string> eval{"EVAL", kFill, "1", key, count, bench::kPayload};
    auto r = co_await redis.command(eval);
    last = r.value().str;
  }
  co_return StreamId::parse(last).value();
}

double millis_since(Clock::time_point start) {
  return std::chrono::duration<double, std::milli>(Clock::now() - start).count();
}

struct ExpiryTimes {
  std::vector<double> store_ms, raw_ms;  // of each round
};

// Rounds of: two streams of 1M events, then the oldest 990,000 of one removed by
// RedisStore::trim_before and of the other by a plain XTRIM MINID.
// Stops `io` at the end (the connections would keep it running).
asio::awaitable<void> expiry_rounds(resp::Connection& redis, store::Store& s, int rounds,
                                    ExpiryTimes& out, asio::io_context& io) {
  if (!co_await redis.wait_ready(std::chrono::seconds(10))) throw std::runtime_error("no Redis");
  const std::vector<std::string> del{"DEL", "rr:big", "rr:@meta:big", "raw:big"};
  for (int round = 0; round < rounds; ++round) {
    (void)co_await redis.command(del);
    const StreamId store_before = (co_await fill_in_redis(redis, "rr:big", 990'000)).next();
    co_await fill_in_redis(redis, "rr:big", 10'000);
    const StreamId raw_before = (co_await fill_in_redis(redis, "raw:big", 990'000)).next();
    co_await fill_in_redis(redis, "raw:big", 10'000);

    auto start = Clock::now();
    auto removed = (co_await s.trim_before("big", store_before)).value();
    out.store_ms.push_back(millis_since(start));
    const std::vector<std::string> xtrim{"XTRIM", "raw:big", "MINID", raw_before.to_string()};
    start = Clock::now();
    auto raw = co_await redis.command(xtrim);
    out.raw_ms.push_back(millis_since(start));
    if (removed != 990'000 || raw.value().integer != 990'000) {
      std::printf("(removed %llu and %lld)\n", static_cast<unsigned long long>(removed),
                  static_cast<long long>(raw.value().integer));
    }
  }
  (void)co_await redis.command(del);
  io.stop();
}

// Retention by age over a long past: what removing 990,000 of a 1M-event stream costs Redis
// (which serves no one else meanwhile), through the store's script (the trimmed edge read and
// recorded around the XTRIM) against a plain XTRIM MINID, measured in the same run.
void expiry(const testing::RedisServer& server) {
  asio::io_context io;
  auto url = resp::parse_redis_url(server.url()).value();
  auto redis = resp::Connection::start(io.get_executor(), {.url = url});
  auto s = store::RedisStore::connect(io.get_executor(), {.url = url});
  ExpiryTimes times;
  asio::co_spawn(io, expiry_rounds(*redis, *s, 3, times, io), [](std::exception_ptr e) {
    if (e) std::rethrow_exception(e);
  });
  io.run();
  const double store_ms = *std::min_element(times.store_ms.begin(), times.store_ms.end());
  const double raw_ms = *std::min_element(times.raw_ms.begin(), times.raw_ms.end());
  std::printf("\nexpiring 990,000 of 1,000,000 events, best of 3 (round trip included)\n\n");
  std::printf("%-58s %7.1f ms  %10.0f /s\n", "XTRIM MINID (ceiling)", raw_ms,
              990'000 / raw_ms * 1e3);
  std::printf("%-58s %7.1f ms  %10.0f /s  %3.0f%%\n", "RedisStore::trim_before", store_ms,
              990'000 / store_ms * 1e3, 100 * raw_ms / store_ms);
}

}  // namespace

// Arguments pick the parts that run (`single`, `capped`, `cluster`, `replica`,
// `cluster-replica`, `expiry`; all by default), e.g. to compare two builds on one of them.
int main(int argc, char** argv) {
  const Picked wanted(argc, argv);
  testing::RedisServer redis;
  std::printf("Redis store benchmark (200-byte payloads, redis-server on 127.0.0.1:%u)\n",
              redis.port());
  std::printf("best of 3 alternating runs of each; 64 concurrent publishers on one stream\n");
  constexpr int kTotal = 200000;
  if (wanted("single")) {
    double ceiling = 0, no_cap = 0, below_cap = 0;
    for (int round = 0; round < 3; ++round) {
      ceiling = std::max(ceiling, redis_benchmark(redis.port(), kTotal));
      // No MAXLEN: a plain XADD.
      no_cap = std::max(no_cap, store_appends(redis.url(), 64, kTotal, 0));
      // MAXLEN far above the stream's length: XADD with XLEN riding along, no trim.
      below_cap = std::max(below_cap, store_appends(redis.url(), 64, kTotal, 10'000'000));
    }
    std::printf("\n");
    rate_line("redis-benchmark -P 16 -c 32 XADD (ceiling)", ceiling);
    share_line("RedisStore::append, no maxlen", no_cap, ceiling);
    share_line("RedisStore::append, stream below its maxlen", below_cap, ceiling);
  }
  if (wanted("capped")) {
    // The ceilings of a stream at its MAXLEN: XADD trimming as it goes (after its first 10,000).
    double capped_ceiling = 0, capped_approximate_ceiling = 0, at_cap = 0, at_cap_approximate = 0;
    for (int round = 0; round < 3; ++round) {
      capped_ceiling = std::max(
          capped_ceiling, redis_benchmark(redis.port(), kTotal, false, "10000", "bench:capped"));
      capped_approximate_ceiling =
          std::max(capped_approximate_ceiling,
                   redis_benchmark(redis.port(), kTotal, false, "'~' 10000", "bench:capped~"));
      // The stream at its MAXLEN: every append is followed by a (shared) trim.
      at_cap = std::max(at_cap, store_appends(redis.url(), 64, kTotal, 10'000));
      at_cap_approximate =
          std::max(at_cap_approximate, store_appends(redis.url(), 64, kTotal, 10'000, true));
    }
    std::printf("\n");
    rate_line("redis-benchmark XADD MAXLEN 10000, at it (ceiling)", capped_ceiling);
    share_line("RedisStore::append, stream at its maxlen (trimming)", at_cap, capped_ceiling);
    rate_line("redis-benchmark XADD MAXLEN ~ 10000, at it (ceiling)", capped_approximate_ceiling);
    share_line("RedisStore::append, at its maxlen ~ (approximate)", at_cap_approximate,
               capped_approximate_ceiling);
  }

  if (wanted("expiry")) expiry(redis);

  // Longer runs: redis-benchmark times in milliseconds, and 200,000 XADDs take half a second.
  constexpr int kClusterTotal = 600000;
  const bench::Spread spread{.cluster = true, .stream_per_publisher = true};

  if (wanted("cluster")) {
    // A Redis Cluster of three primaries (on the same cores): 64 publishers, each on a stream of
    // its own, spread over the slots; the ceiling spreads plain XADDs over a stream per primary.
    testing::RedisCluster cluster(3);
    std::printf("\nRedis Cluster, 3 primaries on 127.0.0.1:%u…; 64 publishers, a stream each\n\n",
                cluster.port(0));
    double cluster_ceiling = 0, cluster_store = 0, single_spread = 0;
    for (int round = 0; round < 3; ++round) {
      cluster_ceiling =
          std::max(cluster_ceiling, redis_benchmark(cluster.port(0), kClusterTotal, true));
      cluster_store = std::max(
          cluster_store, bench::redis_store_appends(cluster.url(), 64, kClusterTotal, {}, spread));
      single_spread =
          std::max(single_spread, bench::redis_store_appends(redis.url(), 64, kClusterTotal, {},
                                                             {.stream_per_publisher = true}));
    }
    rate_line("redis-benchmark --cluster -P 16 -c 32 XADD (ceiling)", cluster_ceiling);
    share_line("RedisStore::append on the cluster, no maxlen", cluster_store, cluster_ceiling);
    rate_line("(the same 64 streams on the single redis-server above)", single_spread);
  }

  if (wanted("replica")) {
    // A primary and its replica (on the same cores): what waiting for the replica costs.
    testing::RedisServer primary({"--repl-diskless-sync", "no"});
    testing::RedisServer replica(
        {"--replicaof", "127.0.0.1", std::to_string(primary.port()), "--repl-diskless-sync", "no"});
    testing::wait_for_replicas(primary.port());
    std::printf("\nA primary on 127.0.0.1:%u with a replica; 64 publishers on one stream\n\n",
                primary.port());
    double replicated_ceiling = 0, unwaited = 0, waited = 0;
    for (int round = 0; round < 3; ++round) {
      replicated_ceiling = std::max(replicated_ceiling, redis_benchmark(primary.port(), kTotal));
      unwaited = std::max(unwaited, store_appends(primary.url(), 64, kTotal, 0));
      waited = std::max(
          waited, bench::redis_store_appends(primary.url(), 64, kTotal, {}, {.wait_replicas = 1}));
    }
    rate_line("redis-benchmark -P 16 -c 32 XADD (ceiling)", replicated_ceiling);
    share_line("RedisStore::append, no maxlen", unwaited, replicated_ceiling);
    share_line("RedisStore::append, waiting for the replica (WAIT 1)", waited, replicated_ceiling);
  }

  if (wanted("cluster-replica")) {
    // A cluster whose 3 primaries have a replica each (6 servers on the same cores), 64 streams.
    testing::RedisCluster replicated(3, 1);
    std::printf(
        "\nRedis Cluster, 3 primaries with a replica each, on 127.0.0.1:%u…; 64 publishers, "
        "a stream each\n\n",
        replicated.port(0));
    const bench::Spread waited_spread{
        .cluster = true, .stream_per_publisher = true, .wait_replicas = 1};
    double replicated_cluster_ceiling = 0, cluster_unwaited = 0, cluster_waited = 0;
    for (int round = 0; round < 3; ++round) {
      replicated_cluster_ceiling = std::max(
          replicated_cluster_ceiling, redis_benchmark(replicated.port(0), kClusterTotal, true));
      cluster_unwaited =
          std::max(cluster_unwaited,
                   bench::redis_store_appends(replicated.url(), 64, kClusterTotal, {}, spread));
      cluster_waited = std::max(
          cluster_waited,
          bench::redis_store_appends(replicated.url(), 64, kClusterTotal / 2, {}, waited_spread));
    }
    rate_line("redis-benchmark --cluster -P 16 -c 32 XADD (ceiling)", replicated_cluster_ceiling);
    share_line("RedisStore::append on the cluster, no maxlen", cluster_unwaited,
               replicated_cluster_ceiling);
    share_line("RedisStore::append, waiting for the replica (WAIT 1)", cluster_waited,
               replicated_cluster_ceiling);
  }
}
