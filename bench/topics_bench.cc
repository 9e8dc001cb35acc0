// Topics and consumer groups through the real server (issue 6), per store: batch ingest
// (100 events per request, 200-byte payloads, 8 partitions, 8 keep-alive connections) and group
// read + ack (4 consumers, each reading up to 100 per partition and acking what it got).
// On redis, the ingest rate is compared with the store-level append rate (64 publishers through
// RedisStore) measured in the same run.
#include <algorithm>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/beast/core/flat_buffer.hpp>
#include <boost/beast/core/tcp_stream.hpp>
#include <boost/beast/http.hpp>
#include <boost/json/parse.hpp>
#include <boost/json/serialize.hpp>
#include <chrono>
#include <cstdio>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "picked.h"
#include "redis_appends.h"
#include "replayrail/store/testing/temp_dir.h"
#include "support/child_process.h"
#include "support/redis_server.h"

namespace {

using namespace replayrail;
namespace asio = boost::asio;
namespace beast = boost::beast;
namespace http = beast::http;
namespace json = boost::json;
using Clock = std::chrono::steady_clock;

constexpr int kPartitions = 8;
constexpr int kBatch = 100;
constexpr int kProducers = 8;
constexpr int kBatchesEach = 250;  // 8 x 250 x 100 = 200,000 events
constexpr int kEvents = kProducers * kBatchesEach * kBatch;
constexpr int kConsumers = 4;

// One keep-alive connection posting JSON; exits the benchmark on any non-2xx answer.
class Client {
 public:
  explicit Client(beast::tcp_stream stream) : stream_(std::move(stream)) {}

  static asio::awaitable<Client> connect(std::uint16_t port) {
    beast::tcp_stream stream(co_await asio::this_coro::executor);
    co_await stream.async_connect({asio::ip::make_address("127.0.0.1"), port}, asio::use_awaitable);
    co_return Client(std::move(stream));
  }

  // The answer's body, parsed when `parse` (a producer that does not look at it skips that: the
  // load generator shares the machine with the server and Redis).
  asio::awaitable<json::value> post(const std::string& target, std::string body,
                                    bool parse = true) {
    http::request<http::string_body> req{http::verb::post, target, 11};
    req.set(http::field::host, "127.0.0.1");
    req.set(http::field::content_type, "application/json");
    req.body() = std::move(body);
    req.prepare_payload();
    co_await http::async_write(stream_, req, asio::use_awaitable);
    http::response<http::string_body> res;
    co_await http::async_read(stream_, buffer_, res, asio::use_awaitable);
    if (res.result_int() / 100 != 2) {
      std::fprintf(stderr, "%s failed: %s\n", target.c_str(), res.body().c_str());
      std::exit(1);
    }
    if (!parse) co_return json::value();
    co_return json::parse(res.body());
  }

 private:
  beast::tcp_stream stream_;
  beast::flat_buffer buffer_;
};

std::string batch_body(int producer, int batch) {
  std::string out = R"({"partitions":)" + std::to_string(kPartitions) + R"(,"events":[)";
  for (int i = 0; i < kBatch; ++i) {
    if (i) out += ',';
    out += R"({"event_type":"bench.event","partition_key":"user-)" +
           std::to_string((producer * 7919 + batch * 131 + i) % 1000) + R"(","payload":)" +
           bench::kPayload + "}";
  }
  return out + "]}";
}

// `bodies`: this producer's requests, built before the clock starts.
asio::awaitable<void> produce(std::uint16_t port, const std::vector<std::string>& bodies) {
  auto client = co_await Client::connect(port);
  for (const auto& body : bodies) co_await client.post("/v1/topics/bench/events", body, false);
}

// The ack body for what a read returned ({"items":[{partition, redis_ids}]}), and how many.
// (A plain function: GCC 12 miscompiles braced initialisers of string literals in coroutines.)
std::pair<std::string, int> ack_body(const json::value& read) {
  std::map<std::int64_t, json::array> ids;
  for (const auto& m : read.at("messages").as_array()) {
    ids[m.at("partition").as_int64()].push_back(m.at("redis_id"));
  }
  json::array items;
  int n = 0;
  for (auto& [p, list] : ids) {
    n += static_cast<int>(list.size());
    items.push_back(json::object{{"partition", p}, {"redis_ids", std::move(list)}});
  }
  return {json::serialize(json::object{{"items", std::move(items)}}), n};
}

// Reads and acks until the group has delivered `total` events to all consumers together.
asio::awaitable<void> consume(std::uint16_t port, int consumer, int total, int& consumed) {
  auto client = co_await Client::connect(port);
  const std::string read_body =
      R"({"consumer":"c)" + std::to_string(consumer) + R"(","count":100,"block_ms":200})";
  while (consumed < total) {
    auto got = co_await client.post("/v1/topics/bench/groups/g/read", read_body);
    auto [body, n] = ack_body(got);
    if (n == 0) continue;
    co_await client.post("/v1/topics/bench/groups/g/ack", std::move(body));
    consumed += n;
  }
}

double seconds_since(Clock::time_point start) {
  return std::chrono::duration<double>(Clock::now() - start).count();
}

// Ingest, then read + ack, against a fresh server on `store`. Returns the ingest rate.
double run_store(const std::string& store, const std::string& redis_url) {
  testing::TempDir dir("topics-bench");
  std::uint16_t port = testing::free_port();
  std::vector<std::string> argv{RR_SERVER_BINARY,
                                "serve",
                                "--store",
                                store,
                                "--listen",
                                "127.0.0.1:" + std::to_string(port),
                                "--data-dir",
                                (dir.path() / "d").string(),
                                "--max-stream-length",
                                "1000000"};
  if (!redis_url.empty()) {
    argv.push_back("--redis");
    argv.push_back(redis_url);
  }
  testing::ChildProcess server(argv);
  auto line = server.read_line(std::chrono::seconds(20));
  if (!line || line->find("serving") == std::string::npos) {
    std::fprintf(stderr, "server did not start\n");
    std::exit(1);
  }

  // The load generator shares the 2 cores with the server (and Redis): it does as little as it
  // can while the clock runs.
  std::vector<std::vector<std::string>> bodies(kProducers);
  for (int p = 0; p < kProducers; ++p) {
    for (int b = 0; b < kBatchesEach; ++b) bodies[p].push_back(batch_body(p, b));
  }
  asio::io_context io;
  auto start = Clock::now();
  for (int p = 0; p < kProducers; ++p) asio::co_spawn(io, produce(port, bodies[p]), asio::detached);
  io.run();
  double ingest = kEvents / seconds_since(start);

  io.restart();
  asio::co_spawn(
      io,
      [](std::uint16_t port) -> asio::awaitable<void> {
        auto client = co_await Client::connect(port);
        co_await client.post("/v1/topics/bench/groups", R"({"group":"g","start_id":"0-0"})");
      }(port),
      asio::detached);
  io.run();
  io.restart();
  int consumed = 0;
  start = Clock::now();
  for (int c = 0; c < kConsumers; ++c) {
    asio::co_spawn(io, consume(port, c, kEvents, consumed), asio::detached);
  }
  io.run();
  double read_ack = consumed / seconds_since(start);

  std::printf("%-7s batch ingest (%d x %d-event requests, %d partitions): %9.0f events/s\n",
              store.c_str(), kProducers * kBatchesEach, kBatch, kPartitions, ingest);
  std::printf("%-7s group read + ack (%d consumers):                   %9.0f events/s\n",
              store.c_str(), kConsumers, read_ack);
  return ingest;
}

}  // namespace

// With arguments, only the stores named (memory, local, redis): e.g. to profile one of them.
int main(int argc, char** argv) {
  const Picked wanted(argc, argv);
  std::printf("topics benchmark (load generator in this process, server in another)\n\n");
  // The memory store costs next to nothing: its rate is what HTTP, JSON and the topic logic
  // allow, the ceiling of the other two.
  if (wanted("memory")) run_store("memory", "");
  if (wanted("local")) run_store("local", "");
  if (!wanted("redis")) return 0;
  testing::RedisServer redis;
  double store_rate = bench::redis_store_appends(redis.url(), 64, 200000, {.maxlen = 1000000});
  double ingest = run_store("redis", redis.url());
  std::printf("redis   store-level appends (RedisStore, 64 publishers): %9.0f events/s\n",
              store_rate);
  std::printf("redis   batch ingest / store-level appends: %.0f%% (target >= 70%%)\n",
              100 * ingest / store_rate);
}
