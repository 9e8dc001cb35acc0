#pragma once

// The store-level append rate through RedisStore, shared by the Redis store benchmark and the
// topics benchmark (which compares the server's batch ingest with it, in the same run).

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/io_context.hpp>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <optional>
#include <string>

#include "replayrail/store/redis/redis_store.h"

namespace replayrail::bench {

// A 200-byte JSON payload.
inline const std::string kPayload = [] {
  std::string p = R"({"note":")";
  p.append(200 - p.size() - 2, 'x');
  return p + "\"}";
}();

// Where the appends go: one stream, or a stream per publisher; on one Redis or a cluster. And
// how many replicas confirm each (Options::wait_replicas).
struct Spread {
  bool cluster = false;
  bool stream_per_publisher = false;
  int wait_replicas = 0;
};

// Appends/s of `publishers` concurrent publishers (pipelined on the store's one connection, or
// on its connection to each primary of a cluster), `total` appends of kPayload.
inline double redis_store_appends(const std::string& url, int publishers, int total,
                                  store::AppendOptions options, Spread spread = {}) {
  namespace asio = boost::asio;
  asio::io_context io;
  auto store =
      store::RedisStore::connect(io.get_executor(), {.url = resp::parse_redis_url(url).value(),
                                                     .cluster = spread.cluster,
                                                     .wait_replicas = spread.wait_replicas});
  // Each run on streams of its own: one at a MAXLEN must not begin by trimming what earlier
  // runs left.
  static int runs = 0;
  const std::string streams = "bench" + std::to_string(++runs);
  NewEvent proto =
      make_event({.channel = "bench", .type = "bench.event", .payload = kPayload}).value();
  int running = publishers;
  // Connected first (on a cluster: the slot map and every primary), then timed.
  std::optional<bool> ready;
  asio::co_spawn(
      io,
      [](store::RedisStore& s, std::optional<bool>& ready) -> asio::awaitable<void> {
        ready = co_await s.wait_ready(std::chrono::seconds(10));
      }(*store, ready),
      asio::detached);
  while (!ready) io.run_one();
  if (!*ready) {
    std::fprintf(stderr, "Redis at %s did not answer\n", url.c_str());
    std::exit(1);
  }
  auto start = std::chrono::steady_clock::now();
  for (int p = 0; p < publishers; ++p) {
    asio::co_spawn(
        io,
        [](store::RedisStore& s, const NewEvent& proto, int n, store::AppendOptions options,
           std::string stream, int& running, asio::io_context& io)
            -> asio::awaitable<void> {
          co_await s.wait_ready(std::chrono::seconds(10));
          for (int i = 0; i < n; ++i) {
            auto r = co_await s.append(stream, proto, options);
            if (!r) {
              std::fprintf(stderr, "append failed: %s\n", r.error().message.c_str());
              std::exit(1);
            }
          }
          // The store's connections keep the io_context busy: stop it when the last is done.
          if (--running == 0) io.stop();
        }(*store, proto, total / publishers, options,
            spread.stream_per_publisher ? streams + "." + std::to_string(p) : streams, running, io),
        asio::detached);
  }
  io.run();
  double secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  return (total / publishers) * publishers / secs;
}

}  // namespace replayrail::bench
