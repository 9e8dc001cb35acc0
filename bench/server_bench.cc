// Server load (issue 5), against the real `replayrail serve` started here on a free port, per
// store: single-event HTTP publishes over 32 keep-alive connections, and fanout of E events to
// S WebSocket subscribers of one channel with end-to-end latency (the payload carries the send
// time) and a count of lost and duplicated deliveries, which must be 0. Fanout runs twice:
// publishers as fast as they can (the most the server delivers), then publishing on a schedule
// at the target rate (the latency at that load, measured from when each event was due).
#include <sys/resource.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <boost/asio/as_tuple.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/beast/core/flat_buffer.hpp>
#include <boost/beast/core/tcp_stream.hpp>
#include <boost/beast/http.hpp>
#include <charconv>
#include <chrono>
#include <cstdio>
#include <fstream>
#include <memory>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "picked.h"
#include "replayrail/common/stream_id.h"
#include "replayrail/store/testing/temp_dir.h"
#include "support/child_process.h"
#include "support/redis_server.h"

namespace {

using namespace replayrail;
namespace asio = boost::asio;
namespace beast = boost::beast;
namespace http = beast::http;
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

// The fields of an event frame the benchmark looks at. The envelope's layout is fixed
// (`{"id":"<id>",...,"payload":{"sent_us":<us>,...`): a full JSON parse per message would make
// this load generator, not the server, the bottleneck.
void take(std::string_view text, Subscriber& out, StreamId& last) {
  auto id_at = text.find(R"("id":")") + 6;
  auto id = StreamId::parse(text.substr(id_at, text.find('"', id_at) - id_at)).value();
  auto sent_at = text.find(R"("sent_us":)") + 10;
  std::int64_t sent = 0;
  std::from_chars(text.data() + sent_at, text.data() + text.size(), sent);
  // Ids of one channel come in increasing order; anything not above the last is a repeat.
  if (out.received > 0 && !(last < id)) {
    ++out.duplicates;
    return;
  }
  last = id;
  ++out.received;
  out.latencies_us.push_back(now_us() - sent);
}

[[noreturn]] void bad_frame(const char* why) {
  std::fprintf(stderr, "subscriber: %s\n", why);
  std::exit(1);
}

// One WebSocket subscriber of /ws/{channel}. Beast's HTTP parser reads the handshake's answer;
// the frames are read here, many per read: through Beast's one-message-at-a-time reads, a
// thousand subscribers in this process cost more CPU than the server spends sending to them,
// and the load generator shares the 2 cores with the server. Every frame is checked to be what
// the server must send (RFC 6455 §5.2): whole, unmasked, text.
asio::awaitable<void> subscriber(std::uint16_t port, std::string channel, std::size_t want,
                                 Subscriber& out, std::atomic<int>& connected) {
  beast::tcp_stream stream(co_await asio::this_coro::executor);
  co_await stream.async_connect(at(port), asio::use_awaitable);
  http::request<http::empty_body> req{http::verb::get, "/ws/" + channel + "?last_event_id=0-0", 11};
  req.set(http::field::host, "127.0.0.1");
  req.set(http::field::upgrade, "websocket");
  req.set(http::field::connection, "upgrade");
  req.set(http::field::sec_websocket_key, "dGhlIHNhbXBsZSBub25jZQ==");
  req.set(http::field::sec_websocket_version, "13");
  co_await http::async_write(stream, req, asio::use_awaitable);
  beast::flat_buffer buffer;  // after the answer's head: the first frames, if any came
  http::response<http::empty_body> res;
  co_await http::async_read(stream, buffer, res, asio::use_awaitable);
  if (res.result() != http::status::switching_protocols) bad_frame("handshake refused");
  ++connected;
  auto& socket = stream.socket();
  StreamId last;
  while (out.received + out.duplicates < want) {
    // Every whole frame in the buffer.
    for (;;) {
      const auto* p = static_cast<const unsigned char*>(buffer.data().data());
      const std::size_t size = buffer.size();
      if (size < 2) break;
      if (p[0] != 0x81) bad_frame("not a whole text frame");
      if (p[1] & 0x80) bad_frame("a masked frame from the server");
      std::uint64_t length = p[1] & 0x7F;
      std::size_t header = 2;
      if (length == 126) {
        header = 4;
        if (size < header) break;
        length = (std::uint64_t{p[2]} << 8) | p[3];
      } else if (length == 127) {
        header = 10;
        if (size < header) break;
        length = 0;
        for (int i = 2; i < 10; ++i) length = (length << 8) | p[i];
      }
      if (size < header + length) break;
      take({reinterpret_cast<const char*>(p) + header, length}, out, last);
      buffer.consume(header + length);
    }
    if (out.received + out.duplicates >= want) break;
    auto [ec, n] = co_await socket.async_read_some(buffer.prepare(64 * 1024), kToken);
    if (ec) co_return;
    buffer.commit(n);
  }
  beast::error_code ignored;
  socket.shutdown(tcp::socket::shutdown_both, ignored);
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

// CPU seconds (user + system) a process used so far: this one (pid 0) or a child.
double cpu_seconds(pid_t pid = 0) {
  if (pid == 0) {
    rusage usage{};
    getrusage(RUSAGE_SELF, &usage);
    auto secs = [](timeval t) { return t.tv_sec + t.tv_usec / 1e6; };
    return secs(usage.ru_utime) + secs(usage.ru_stime);
  }
  // /proc/<pid>/stat: fields 14 and 15 are utime and stime in clock ticks.
  std::ifstream stat("/proc/" + std::to_string(pid) + "/stat");
  std::string text((std::istreambuf_iterator<char>(stat)), std::istreambuf_iterator<char>());
  std::istringstream fields(text.substr(text.rfind(')') + 2));
  std::string skip;
  for (int i = 3; i < 14; ++i) fields >> skip;
  double utime = 0, stime = 0;
  fields >> utime >> stime;
  return (utime + stime) / static_cast<double>(sysconf(_SC_CLK_TCK));
}

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
void fanout(const std::string& store, const std::string& redis_url, int events_per_second,
            int kEvents) {
  constexpr int kSubscribers = 1000;
  // A channel of its own: the redis runs share one redis-server.
  const std::string channel = "fan-" + std::to_string(events_per_second);
  // Paced, more connections: a publish answered late must not hold the next one back.
  const int kPublishers = events_per_second > 0 ? 20 : 4;
  Server server(store, redis_url);
  asio::io_context io;
  std::vector<Subscriber> subs(kSubscribers);
  for (auto& s : subs) s.latencies_us.reserve(kEvents);
  std::atomic<int> connected = 0;
  for (auto& s : subs) {
    asio::co_spawn(io, subscriber(server.port, channel, kEvents, s, connected), asio::detached);
  }
  while (connected < kSubscribers) io.run_one();
  const double server_cpu = cpu_seconds(server.process->pid()), own_cpu = cpu_seconds();
  auto start = Clock::now();
  for (int p = 0; p < kPublishers; ++p) {
    Pace pace;
    if (events_per_second > 0) {
      // Publisher p sends events p, p + n, p + 2n, ... of one evenly spaced schedule.
      const std::chrono::nanoseconds every(1'000'000'000LL / events_per_second);
      pace = {start + p * every, kPublishers * every};
    }
    const int share = (kEvents - p + kPublishers - 1) / kPublishers;  // events p, p + n, ...
    asio::co_spawn(io, publisher(server.port, channel, share, kPad, pace), asio::detached);
  }
  // Two threads, as the server has: one thread reading a thousand sockets would be the
  // bottleneck (and its backlog the latency) before the server is. Each subscriber and each
  // publisher is one coroutine, so never on both threads at once.
  std::thread helper([&] { io.run_for(std::chrono::seconds(300)); });
  io.run_for(std::chrono::seconds(300));
  helper.join();
  double secs = std::chrono::duration<double>(Clock::now() - start).count();
  const double server_used = cpu_seconds(server.process->pid()) - server_cpu;
  const double own_used = cpu_seconds() - own_cpu;
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
      "p99 %.1f ms, lost %zu, duplicates %zu; CPU: server %.0f%%, load generator %.0f%% "
      "(of one core)\n",
      store.c_str(), kSubscribers, kEvents, how.c_str(), received / secs, pct(0.5), pct(0.99),
      std::size_t(kSubscribers) * kEvents - received, duplicates, 100 * server_used / secs,
      100 * own_used / secs);
}

void run_store(const std::string& store, const std::string& redis_url) {
  publish_rate(store, redis_url);
  fanout(store, redis_url, 0, 1000);
  // The issue's target: 500,000 deliveries/s (500 events/s to 1,000 subscribers), p99 < 50 ms.
  // Paced 10% above it for 5 s: the rate measured includes the last events' latency.
  fanout(store, redis_url, 550, 2750);
}

}  // namespace

// With arguments, only the stores named (local, memory, redis): e.g. to profile one of them.
int main(int argc, char** argv) {
  const Picked wanted(argc, argv);
  std::printf("server benchmark (load generator in this process, server in another)\n\n");
  if (wanted("local")) run_store("local", "");
  if (wanted("memory")) run_store("memory", "");
  if (!wanted("redis")) return 0;
  testing::RedisServer redis;
  run_store("redis", redis.url());
}
