// Server load (issue 5), against the real `replayrail serve` started here on a free port, per
// store: single-event HTTP publishes over 32 keep-alive connections, and fanout of E events to
// S WebSocket subscribers of one channel with end-to-end latency (the payload carries the send
// time) and a count of lost and duplicated deliveries, which must be 0. Fanout runs twice:
// publishers as fast as they can (the most the server delivers), then publishing on a schedule
// at the target rate (the latency at that load, measured from when each event was due).
#include <algorithm>
#include <boost/asio/as_tuple.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/beast/core/buffers_to_string.hpp>
#include <boost/beast/core/flat_buffer.hpp>
#include <boost/beast/core/tcp_stream.hpp>
#include <boost/beast/http.hpp>
#include <boost/beast/websocket.hpp>
#include <boost/json/parse.hpp>
#include <charconv>
#include <chrono>
#include <cstdio>
#include <memory>
#include <string>
#include <vector>

#include "replayrail/common/stream_id.h"
#include "replayrail/store/testing/temp_dir.h"
#include "support/child_process.h"
#include "support/redis_server.h"

namespace {

using namespace replayrail;
namespace asio = boost::asio;
namespace beast = boost::beast;
namespace http = beast::http;
namespace websocket = beast::websocket;
using tcp = asio::ip::tcp;
using Clock = std::chrono::steady_clock;
constexpr auto kToken = asio::as_tuple(asio::use_awaitable);

std::int64_t now_us() {
  return std::chrono::duration_cast<std::chrono::microseconds>(Clock::now().time_since_epoch())
      .count();
}

tcp::endpoint at(std::uint16_t port) { return {asio::ip::make_address("127.0.0.1"), port}; }

// When a publisher sends: as fast as it can (each request after the answer to the previous), or
// on a schedule (`interval` apart, from `start`, whatever the answers' delays: open loop).
struct Pace {
  Clock::time_point start;
  std::chrono::nanoseconds interval{0};  // 0: as fast as it can
};

// `requests` publishes on one keep-alive connection; the payload carries the send time (the
// scheduled one when paced, so a late send counts in the latency rather than hiding it).
asio::awaitable<void> publisher(std::uint16_t port, std::string channel, int requests,
                                std::string padding, Pace pace = {}) {
  beast::tcp_stream stream(co_await asio::this_coro::executor);
  co_await stream.async_connect(at(port), asio::use_awaitable);
  beast::flat_buffer buffer;
  asio::steady_timer timer(co_await asio::this_coro::executor);
  for (int i = 0; i < requests; ++i) {
    std::int64_t sent = now_us();
    if (pace.interval.count() > 0) {
      auto due = pace.start + i * pace.interval;
      timer.expires_at(due);
      co_await timer.async_wait(kToken);
      sent = std::chrono::duration_cast<std::chrono::microseconds>(due.time_since_epoch()).count();
    }
    http::request<http::string_body> req{http::verb::post, "/events/" + channel, 11};
    req.set(http::field::host, "127.0.0.1");
    req.body() = R"({"type":"bench","payload":{"sent_us":)" + std::to_string(sent) + R"(,"pad":")" +
                 padding + "\"}}";
    req.prepare_payload();
    co_await http::async_write(stream, req, asio::use_awaitable);
    http::response<http::string_body> res;
    co_await http::async_read(stream, buffer, res, asio::use_awaitable);
    if (res.result_int() != 201) {
      std::fprintf(stderr, "publish failed: %s\n", res.body().c_str());
      std::exit(1);
    }
  }
}

struct Subscriber {
  std::size_t received = 0, duplicates = 0;
  std::vector<std::int64_t> latencies_us;
};

asio::awaitable<void> subscriber(std::uint16_t port, std::string channel, std::size_t want,
                                 Subscriber& out, int& connected) {
  websocket::stream<beast::tcp_stream> ws(co_await asio::this_coro::executor);
  co_await ws.next_layer().async_connect(at(port), asio::use_awaitable);
  co_await ws.async_handshake("127.0.0.1", "/ws/" + channel + "?last_event_id=0-0",
                              asio::use_awaitable);
  ++connected;
  beast::flat_buffer buffer;
  StreamId last;
  while (out.received + out.duplicates < want) {
    auto [ec, n] = co_await ws.async_read(buffer, kToken);
    if (ec) co_return;
    // The envelope's layout is fixed (`{"id":"<id>",...,"payload":{"sent_us":<us>,...`): a full
    // JSON parse per message would make this load generator, not the server, the bottleneck.
    std::string_view text(static_cast<const char*>(buffer.data().data()), buffer.size());
    auto id_at = text.find(R"("id":")") + 6;
    auto id = StreamId::parse(text.substr(id_at, text.find('"', id_at) - id_at)).value();
    auto sent_at = text.find(R"("sent_us":)") + 10;
    std::int64_t sent = 0;
    std::from_chars(text.data() + sent_at, text.data() + text.size(), sent);
    buffer.clear();
    // Ids of one channel come in increasing order; anything not above the last is a repeat.
    if (out.received > 0 && !(last < id)) {
      ++out.duplicates;
      continue;
    }
    last = id;
    ++out.received;
    out.latencies_us.push_back(now_us() - sent);
  }
  co_await ws.async_close(websocket::close_code::normal, kToken);
}

struct Server {
  testing::TempDir dir{"server-bench"};
  std::uint16_t port = testing::free_port();
  std::unique_ptr<testing::ChildProcess> process;

  Server(const std::string& store, const std::string& redis_url) {
    std::vector<std::string> argv{RR_SERVER_BINARY, "serve",
                                  "--store",        store,
                                  "--data-dir",     (dir.path() / "d").string(),
                                  "--listen",       "127.0.0.1:" + std::to_string(port)};
    if (!redis_url.empty()) {
      argv.push_back("--redis");
      argv.push_back(redis_url);
    }
    process = std::make_unique<testing::ChildProcess>(argv);
    auto line = process->read_line(std::chrono::seconds(20));
    if (!line || line->find("serving") == std::string::npos) {
      std::fprintf(stderr, "server did not start\n");
      std::exit(1);
    }
  }
};

const std::string kPad(150, 'x');  // ~200-byte payloads

void publish_rate(const std::string& store, const std::string& redis_url) {
  Server server(store, redis_url);
  constexpr int kConnections = 32, kEach = 1500;
  asio::io_context io;
  for (int c = 0; c < kConnections; ++c) {
    asio::co_spawn(io, publisher(server.port, "pub" + std::to_string(c % 8), kEach, kPad),
                   asio::detached);
  }
  auto start = Clock::now();
  io.run();
  double secs = std::chrono::duration<double>(Clock::now() - start).count();
  std::printf("%-7s HTTP publish, 32 keep-alive connections: %9.0f req/s\n", store.c_str(),
              kConnections * kEach / secs);
}

// kEvents events published by kPublishers to kSubscribers WebSocket subscribers of one channel.
// `events_per_second` 0: the publishers go as fast as they can, which measures the most the
// server delivers; its latencies are mostly the backlog the publishers build. Otherwise they
// publish on that schedule (open loop) and the latencies are the server's at that load.
void fanout(const std::string& store, const std::string& redis_url, int events_per_second) {
  constexpr int kSubscribers = 1000, kEvents = 1000, kPublishers = 4;
  Server server(store, redis_url);
  asio::io_context io;
  std::vector<Subscriber> subs(kSubscribers);
  int connected = 0;
  for (auto& s : subs) {
    asio::co_spawn(io, subscriber(server.port, "fan", kEvents, s, connected), asio::detached);
  }
  while (connected < kSubscribers) io.run_one();
  auto start = Clock::now();
  for (int p = 0; p < kPublishers; ++p) {
    Pace pace;
    if (events_per_second > 0) {
      // Publisher p sends events p, p + 4, p + 8, ... of one evenly spaced schedule.
      const std::chrono::nanoseconds every(1'000'000'000LL / events_per_second);
      pace = {start + p * every, kPublishers * every};
    }
    asio::co_spawn(io, publisher(server.port, "fan", kEvents / kPublishers, kPad, pace),
                   asio::detached);
  }
  io.run_for(std::chrono::seconds(300));
  double secs = std::chrono::duration<double>(Clock::now() - start).count();
  std::vector<std::int64_t> all;
  std::size_t received = 0, duplicates = 0;
  for (auto& s : subs) {
    received += s.received;
    duplicates += s.duplicates;
    all.insert(all.end(), s.latencies_us.begin(), s.latencies_us.end());
  }
  std::sort(all.begin(), all.end());
  auto pct = [&](double q) { return all.empty() ? 0.0 : all[all.size() * q] / 1000.0; };
  std::string how = events_per_second > 0
                        ? "publishing " + std::to_string(events_per_second) + " events/s"
                        : "publishing as fast as they can";
  std::printf(
      "%-7s fanout %d subscribers x %d events, %s: %9.0f deliveries/s, p50 %.1f ms, "
      "p99 %.1f ms, lost %zu, duplicates %zu\n",
      store.c_str(), kSubscribers, kEvents, how.c_str(), received / secs, pct(0.5), pct(0.99),
      std::size_t(kSubscribers) * kEvents - received, duplicates);
}

void run_store(const std::string& store, const std::string& redis_url) {
  publish_rate(store, redis_url);
  fanout(store, redis_url, 0);
  // The issue's target: 500,000 deliveries/s (500 events/s to 1,000 subscribers), p99 < 50 ms.
  fanout(store, redis_url, 500);
}

}  // namespace

// With arguments, only the stores named (local, memory, redis): e.g. to profile one of them.
int main(int argc, char** argv) {
  const std::vector<std::string> only(argv + 1, argv + argc);
  auto wanted = [&](const std::string& store) {
    return only.empty() || std::find(only.begin(), only.end(), store) != only.end();
  };
  std::printf("server benchmark (load generator in this process, server in another)\n\n");
  if (wanted("local")) run_store("local", "");
  if (wanted("memory")) run_store("memory", "");
  if (!wanted("redis")) return 0;
  testing::RedisServer redis;
  run_store("redis", redis.url());
}
