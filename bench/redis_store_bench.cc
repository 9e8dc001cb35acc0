// Redis store throughput (issue 4): appends/s through the store from 64 concurrent publishers
// (pipelined on one connection) with 200-byte payloads, and in the same run the ceiling:
// redis-benchmark -P 16 -c 32 doing a plain XADD of the same payload against the same server.
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/io_context.hpp>
#include <cstdio>
#include <memory>
#include <regex>
#include <string>

#include "replayrail/store/redis/redis_store.h"
#include "support/redis_server.h"

namespace {

using namespace replayrail;
namespace asio = boost::asio;
using Clock = std::chrono::steady_clock;

const std::string kPayload = [] {
  std::string p = R"({"note":")";
  p.append(200 - p.size() - 2, 'x');
  return p + "\"}";
}();

double store_appends(const std::string& url, int publishers, int total) {
  asio::io_context io;
  auto store =
      store::RedisStore::connect(io.get_executor(), {.url = resp::parse_redis_url(url).value()});
  NewEvent proto =
      make_event({.channel = "bench", .type = "bench.event", .payload = kPayload}).value();
  int running = publishers;
  auto start = Clock::now();
  for (int p = 0; p < publishers; ++p) {
    asio::co_spawn(
        io,
        [](store::RedisStore& s, const NewEvent& proto, int n, int& running,
           asio::io_context& io) -> asio::awaitable<void> {
          co_await s.wait_ready(std::chrono::seconds(10));
          for (int i = 0; i < n; ++i) {
            auto r = co_await s.append("bench", proto, {1'000'000});
            if (!r) {
              std::fprintf(stderr, "append failed: %s\n", r.error().message.c_str());
              std::exit(1);
            }
          }
          // The store's connections keep the io_context busy: stop it when the last is done.
          if (--running == 0) io.stop();
        }(*store, proto, total / publishers, running, io),
        asio::detached);
  }
  io.run();
  double secs = std::chrono::duration<double>(Clock::now() - start).count();
  return (total / publishers) * publishers / secs;
}

// redis-benchmark's requests/s for XADD of the same payload.
double redis_benchmark(std::uint16_t port, int total) {
  std::string cmd = "redis-benchmark -h 127.0.0.1 -p " + std::to_string(port) + " -P 16 -c 32 -n " +
                    std::to_string(total) + " -q XADD bench:raw MAXLEN 1000000 '*' payload '" +
                    kPayload + "' 2>&1";
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

}  // namespace

int main() {
  testing::RedisServer redis;
  std::printf("Redis store benchmark (200-byte payloads, redis-server on 127.0.0.1:%u)\n\n",
              redis.port());
  constexpr int kTotal = 200000;
  double ceiling = redis_benchmark(redis.port(), kTotal);
  double store = store_appends(redis.url(), 64, kTotal);
  std::printf("%-52s %12.0f /s\n", "redis-benchmark -P 16 -c 32 XADD (ceiling)", ceiling);
  std::printf("%-52s %12.0f /s\n", "RedisStore::append, 64 concurrent publishers", store);
  std::printf("%-52s %11.0f%%\n", "ratio", 100 * store / ceiling);
}
