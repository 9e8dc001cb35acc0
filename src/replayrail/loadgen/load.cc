#include "replayrail/loadgen/load.h"

#include <algorithm>
#include <atomic>
#include <boost/asio/as_tuple.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/ssl.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/beast/core/buffers_to_string.hpp>
#include <boost/beast/core/flat_buffer.hpp>
#include <boost/beast/core/tcp_stream.hpp>
#include <boost/beast/http.hpp>
#include <boost/beast/ssl.hpp>
#include <boost/beast/websocket.hpp>
#include <boost/beast/websocket/ssl.hpp>
#include <charconv>
#include <deque>
#include <memory>
#include <mutex>
#include <optional>
#include <thread>

#include "replayrail/common/stream_id.h"
#include "replayrail/common/tls_client.h"

namespace replayrail::loadgen {

namespace {

namespace asio = boost::asio;
namespace beast = boost::beast;
namespace http = beast::http;
namespace ssl = asio::ssl;
using tcp = asio::ip::tcp;
using Tls = beast::ssl_stream<beast::tcp_stream>;
using Clock = std::chrono::steady_clock;
constexpr auto kToken = asio::as_tuple(asio::use_awaitable);
// After the last publish: how long subscribers may go without a new event before the rest
// counts as lost.
constexpr auto kDrainIdle = std::chrono::seconds(5);

std::int64_t now_us() {
  return std::chrono::duration_cast<std::chrono::microseconds>(Clock::now().time_since_epoch())
      .count();
}

// State every thread's coroutines share.
struct Shared {
  const LoadOptions& options;
  std::optional<ssl::context> tls;  // with LoadOptions::tls
  std::string padding;
  std::atomic<int> publishers_running{0};
  std::atomic<std::uint64_t> published{0};
  std::atomic<int> subscribers_connected{0};
  std::atomic<int> connect_failures{0};  // publishers that could not connect
  std::mutex mu;
  std::vector<std::string> errors;  // guarded by mu
  Clock::time_point start;

  void error(std::string e) {
    std::lock_guard lock(mu);
    if (errors.size() < 20) errors.push_back(std::move(e));
  }
  std::string channel(int publisher) const {
    return options.channels <= 1
               ? options.channel
               : options.channel + "-" + std::to_string(publisher % options.channels);
  }
};

struct Publisher {
  std::vector<std::int64_t> latencies_us;
};

struct Subscriber {
  std::uint64_t received = 0, duplicates = 0;
  std::vector<std::int64_t> latencies_us;
  beast::tcp_stream* stream = nullptr;  // while connected; closed by the drain
};

// `count` publishes on one keep-alive connection: events p, p + n, p + 2n, ... of one schedule
// when paced (the payload then carries the scheduled time, so a late send counts in the latency
// rather than hiding it).
template <class Stream>
asio::awaitable<void> publish_on(Shared& shared, Stream& stream, beast::error_code cec, int index,
                                 int count, Publisher& out) {
  const LoadOptions& o = shared.options;
  asio::steady_timer timer(co_await asio::this_coro::executor);
  beast::flat_buffer buffer;
  const std::string target = "/events/" + shared.channel(index);
  if (cec) {
    shared.error("publisher: cannot connect: " + cec.message());
    ++shared.connect_failures;
    --shared.publishers_running;
    co_return;
  }
  const auto every =
      o.rate > 0 ? std::chrono::nanoseconds(1'000'000'000LL / o.rate) : std::chrono::nanoseconds(0);
  for (int i = 0; i < count; ++i) {
    std::int64_t sent = now_us();
    if (o.rate > 0) {
      const auto due = shared.start + (index + static_cast<std::int64_t>(i) * o.publishers) * every;
      timer.expires_at(due);
      co_await timer.async_wait(kToken);
      sent = std::chrono::duration_cast<std::chrono::microseconds>(due.time_since_epoch()).count();
    }
    http::request<http::string_body> req{http::verb::post, target, 11};
    req.set(http::field::host, o.host);
    req.set(http::field::content_type, "application/json");
    if (!o.token.empty()) req.set(http::field::authorization, "Bearer " + o.token);
    req.body() = R"({"type":"bench","payload":{"sent_us":)" + std::to_string(sent) + R"(,"pad":")" +
                 shared.padding + "\"}}";
    req.prepare_payload();
    const std::int64_t asked = now_us();
    auto [wec, w] = co_await http::async_write(stream, req, kToken);
    http::response<http::string_body> res;
    beast::error_code rec = wec;
    if (!wec) std::tie(rec, std::ignore) = co_await http::async_read(stream, buffer, res, kToken);
    if (rec) {
      shared.error("publisher: connection lost: " + rec.message());
      break;
    }
    if (res.result_int() != 201) {
      shared.error("publish answered " + std::to_string(res.result_int()) + ": " + res.body());
      break;
    }
    out.latencies_us.push_back(now_us() - asked);
    ++shared.published;
  }
  --shared.publishers_running;
}

// `count` publishes over one replayrail.v1 WebSocket (LoadOptions::v1_publish), up to kWindow
// unanswered: the server answers a connection's publishes in the order sent, so each answer is
// the oldest one's. Paced as publish_on is.
template <class Stream>
asio::awaitable<void> publish_v1_on(Shared& shared, Stream& stream, beast::error_code cec,
                                    int index, int count, Publisher& out) {
  constexpr int kWindow = 16;
  const LoadOptions& o = shared.options;
  namespace websocket = beast::websocket;
  websocket::stream<Stream&> ws(stream);
  ws.set_option(websocket::stream_base::decorator([&o](websocket::request_type& req) {
    req.set(http::field::sec_websocket_protocol, "replayrail.v1");
    if (!o.token.empty()) req.set(http::field::authorization, "Bearer " + o.token);
  }));
  if (!cec) std::tie(cec) = co_await ws.async_handshake(o.host, "/ws", kToken);
  if (cec) {
    shared.error("publisher: cannot connect: " + cec.message());
    ++shared.connect_failures;
    --shared.publishers_running;
    co_return;
  }
  const std::string head = R"({"op":"publish","channel":)" + ("\"" + shared.channel(index) + "\"") +
                           R"(,"type":"bench","payload":{"sent_us":)";
  const auto every =
      o.rate > 0 ? std::chrono::nanoseconds(1'000'000'000LL / o.rate) : std::chrono::nanoseconds(0);
  auto due = [&](int i) {
    return shared.start + (index + static_cast<std::int64_t>(i) * o.publishers) * every;
  };
  asio::steady_timer timer(co_await asio::this_coro::executor);
  std::deque<std::int64_t> asked;  // when each unanswered publish was written
  beast::flat_buffer buffer;
  for (int sent = 0, answered = 0; answered < count;) {
    const bool room = sent < count && sent - answered < kWindow;
    if (room && (o.rate == 0 || Clock::now() >= due(sent))) {
      const std::int64_t sent_us =
          o.rate > 0
              ? std::chrono::duration_cast<std::chrono::microseconds>(due(sent).time_since_epoch())
                    .count()
              : now_us();
      const std::string text =
          head + std::to_string(sent_us) + R"(,"pad":")" + shared.padding + "\"}}";
      asked.push_back(now_us());
      auto [wec, w] = co_await ws.async_write(asio::buffer(text), kToken);
      if (wec) {
        shared.error("publisher: connection lost: " + wec.message());
        break;
      }
      ++sent;
      continue;
    }
    if (sent == answered) {  // nothing to wait for but the schedule
      timer.expires_at(due(sent));
      co_await timer.async_wait(kToken);
      continue;
    }
    buffer.clear();
    auto [rec, r] = co_await ws.async_read(buffer, kToken);
    if (rec) {
      shared.error("publisher: connection lost: " + rec.message());
      break;
    }
    const std::string answer = beast::buffers_to_string(buffer.data());
    if (answer.rfind(R"({"type":"published")", 0) != 0) {
      shared.error("publish answered " + answer);
      break;
    }
    out.latencies_us.push_back(now_us() - asked.front());
    asked.pop_front();
    ++answered;
    ++shared.published;
  }
  --shared.publishers_running;
  beast::error_code ignored;
  std::tie(ignored) = co_await ws.async_close(websocket::close_code::normal, kToken);
}

// TCP connected to `at`, then the TLS handshake with `host`.
asio::awaitable<beast::error_code> connect(Tls& stream, const tcp::resolver::results_type& at,
                                           const std::string& host) {
  auto [ec, endpoint] = co_await beast::get_lowest_layer(stream).async_connect(at, kToken);
  if (!ec) ec = tls_client::name_server(stream, host);
  if (ec) co_return ec;
  std::tie(ec) = co_await stream.async_handshake(ssl::stream_base::client, kToken);
  co_return ec;
}

// Runs `session(stream, error)` over a new connection to `at`: TCP, or TLS with
// LoadOptions::tls; `error` says why the connection failed, if it did.
template <class Session>
asio::awaitable<void> on_connection(Shared& shared, tcp::resolver::results_type at,
                                    Session session) {
  auto executor = co_await asio::this_coro::executor;
  if (!shared.tls) {
    beast::tcp_stream stream(executor);
    auto [ec, endpoint] = co_await stream.async_connect(at, kToken);
    co_await session(stream, ec);
  } else {
    Tls stream(executor, *shared.tls);
    auto ec = co_await connect(stream, at, shared.options.host);
    co_await session(stream, ec);
  }
}

asio::awaitable<void> publish(Shared& shared, tcp::resolver::results_type at, int index, int count,
                              Publisher& out) {
  return on_connection(
      shared, std::move(at), [&shared, index, count, &out](auto& stream, beast::error_code ec) {
        return shared.options.v1_publish ? publish_v1_on(shared, stream, ec, index, count, out)
                                         : publish_on(shared, stream, ec, index, count, out);
      });
}

// The fields of an event frame the load generator looks at. The envelope's layout is fixed
// (`{"id":"<id>",...,"payload":{"sent_us":<us>,...`): a full JSON parse per message would make
// the load generator, not the server, the bottleneck.
void take(std::string_view text, Subscriber& out, StreamId& last) {
  const auto id_at = text.find(R"("id":")") + 6;
  const auto id = StreamId::parse(text.substr(id_at, text.find('"', id_at) - id_at));
  const auto sent_at = text.find(R"("sent_us":)");
  std::int64_t sent = 0;
  if (sent_at != std::string_view::npos) {
    std::from_chars(text.data() + sent_at + 10, text.data() + text.size(), sent);
  }
  // Ids of one channel come in increasing order; anything not above the last is a repeat.
  if (!id || (out.received > 0 && !(last < *id))) {
    ++out.duplicates;
    return;
  }
  last = *id;
  ++out.received;
  if (sent > 0) out.latencies_us.push_back(now_us() - sent);
}

// One WebSocket subscriber of /ws/{channel} from the channel's end now. Beast's HTTP parser
// reads the handshake's answer; the frames are read here, many per read: through Beast's
// one-message-at-a-time reads, a thousand subscribers in this process cost more CPU than the
// server spends sending to them. Every frame is checked to be what a server must send
// (RFC 6455 §5.2): whole, unmasked, text.
// Where a subscriber reads frames: the socket itself under plain TCP (past the TCP stream's
// timer bookkeeping), the TLS stream under TLS.
tcp::socket& frames(beast::tcp_stream& stream) { return stream.socket(); }
Tls& frames(Tls& stream) { return stream; }

template <class Stream>
asio::awaitable<void> subscribe_on(Shared& shared, Stream& stream, beast::error_code cec,
                                   std::string cursor, Subscriber& out) {
  const LoadOptions& o = shared.options;
  std::string target = "/ws/" + o.channel + "?last_event_id=" + cursor;
  if (!o.token.empty()) target += "&token=" + o.token;
  http::request<http::empty_body> req{http::verb::get, target, 11};
  req.set(http::field::host, o.host);
  req.set(http::field::upgrade, "websocket");
  req.set(http::field::connection, "upgrade");
  req.set(http::field::sec_websocket_key, "dGhlIHNhbXBsZSBub25jZQ==");
  req.set(http::field::sec_websocket_version, "13");
  beast::flat_buffer buffer;  // after the answer's head: the first frames, if any came
  http::response<http::string_body> res;
  beast::error_code ec = cec;
  if (!ec) std::tie(ec, std::ignore) = co_await http::async_write(stream, req, kToken);
  if (!ec) {
    http::response_parser<http::string_body> parser;
    std::tie(ec, std::ignore) = co_await http::async_read_header(stream, buffer, parser, kToken);
    res = parser.release();
  }
  if (ec || res.result() != http::status::switching_protocols) {
    shared.error(ec ? "subscriber: " + ec.message()
                    : "subscribe answered " + std::to_string(res.result_int()));
    ++shared.subscribers_connected;  // counted, so publishing starts anyway
    co_return;
  }
  out.stream = &beast::get_lowest_layer(stream);
  ++shared.subscribers_connected;
  auto& socket = frames(stream);
  StreamId last;
  const auto want = static_cast<std::uint64_t>(o.events);
  while (out.received < want) {
    for (;;) {  // every whole frame in the buffer
      const auto* p = static_cast<const unsigned char*>(buffer.data().data());
      const std::size_t size = buffer.size();
      if (size < 2) break;
      if (p[0] != 0x81 || (p[1] & 0x80)) {
        shared.error("subscriber: a frame that is not a whole unmasked text frame");
        out.stream = nullptr;
        co_return;
      }
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
    if (out.received >= want) break;
    auto [rec, n] = co_await socket.async_read_some(buffer.prepare(64 * 1024), kToken);
    if (rec) break;  // closed by the drain, or by the server
    buffer.commit(n);
  }
  out.stream = nullptr;
  beast::error_code ignored;
  beast::get_lowest_layer(stream).socket().shutdown(tcp::socket::shutdown_both, ignored);
}

asio::awaitable<void> subscribe(Shared& shared, tcp::resolver::results_type at, std::string cursor,
                                Subscriber& out) {
  return on_connection(
      shared, std::move(at),
      [&shared, cursor = std::move(cursor), &out](auto& stream, beast::error_code ec) {
        return subscribe_on(shared, stream, ec, cursor, out);
      });
}

// On each thread, once every publisher is done: waits until this thread's subscribers have what
// was published, or made no progress for kDrainIdle, then closes those still waiting.
asio::awaitable<void> drain(Shared& shared, std::vector<Subscriber*> mine) {
  asio::steady_timer timer(co_await asio::this_coro::executor);
  constexpr auto kTick = std::chrono::milliseconds(5);
  while (shared.publishers_running > 0) {
    timer.expires_after(kTick);
    co_await timer.async_wait(kToken);
  }
  std::uint64_t seen = 0;
  auto idle_since = Clock::now();
  for (;;) {
    std::uint64_t total = 0;
    bool all = true;
    for (auto* s : mine) {
      total += s->received;
      all = all && (s->stream == nullptr || s->received >= shared.published);
    }
    if (all) break;
    if (total != seen) {
      seen = total;
      idle_since = Clock::now();
    }
    if (Clock::now() - idle_since > kDrainIdle) break;
    timer.expires_after(kTick);
    co_await timer.async_wait(kToken);
  }
  for (auto* s : mine) {
    if (s->stream) s->stream->socket().close();
  }
}

Latencies percentiles(std::vector<std::int64_t> us) {
  if (us.empty()) return {};
  std::sort(us.begin(), us.end());
  auto at = [&](double q) {
    return static_cast<double>(us[std::min(
               us.size() - 1, static_cast<std::size_t>(static_cast<double>(us.size()) * q))]) /
           1000.0;
  };
  return {at(0.5), at(0.99), static_cast<double>(us.back()) / 1000.0};
}

// The channel's last id now (GET /events/{channel}?after=$): where subscribers start, so they
// receive exactly what this run publishes.
template <class Stream>
asio::awaitable<void> channel_end_on(Shared& shared, Stream& stream, beast::error_code ec,
                                     LoadReport& report, std::string& end) {
  const LoadOptions& o = shared.options;
  http::request<http::empty_body> req{http::verb::get, "/events/" + o.channel + "?after=$&limit=1",
                                      11};
  req.set(http::field::host, o.host);
  if (!o.token.empty()) req.set(http::field::authorization, "Bearer " + o.token);
  http::response<http::string_body> res;
  beast::flat_buffer buffer;
  if (!ec) std::tie(ec, std::ignore) = co_await http::async_write(stream, req, kToken);
  if (!ec) std::tie(ec, std::ignore) = co_await http::async_read(stream, buffer, res, kToken);
  if (ec || res.result_int() != 200) {
    report.unreachable = ec.failed();
    report.errors.push_back(ec ? "cannot reach the server: " + ec.message()
                               : "GET /events answered " + std::to_string(res.result_int()) + ": " +
                                     res.body());
    co_return;
  }
  const auto at_next = res.body().find(R"("next":")");
  if (at_next == std::string::npos) {
    end = "0-0";
    co_return;
  }
  const auto from = at_next + 8;
  end = res.body().substr(from, res.body().find('"', from) - from);
}

std::string channel_end(Shared& shared, const tcp::resolver::results_type& at, LoadReport& report) {
  asio::io_context io;
  std::string end;
  asio::co_spawn(io,
                 on_connection(shared, at,
                               [&](auto& stream, beast::error_code ec) {
                                 return channel_end_on(shared, stream, ec, report, end);
                               }),
                 asio::detached);
  io.run();
  return end;
}

}  // namespace

LoadReport run_load(const LoadOptions& options) {
  LoadReport report;
  Shared shared{.options = options};
  if (options.tls) {
    shared.tls.emplace(tls_client::trusting_the_system());
    if (auto wrong = tls_client::use_client_certificate(*shared.tls)) {
      report.errors.push_back(*wrong);
      report.unreachable = true;
      return report;
    }
  }
  const std::size_t overhead = 40;  // {"sent_us":…,"pad":""} around the padding
  shared.padding.assign(options.payload_bytes > overhead ? options.payload_bytes - overhead : 1,
                        'x');

  asio::io_context resolver_io;
  tcp::resolver resolver(resolver_io);
  beast::error_code ec;
  const auto at = resolver.resolve(options.host, options.port, ec);
  if (ec) {
    report.errors.push_back("cannot resolve " + options.host + ": " + ec.message());
    report.unreachable = true;
    return report;
  }
  std::string cursor;
  if (options.subscribers > 0) {
    cursor = channel_end(shared, at, report);
    if (!report.errors.empty()) return report;
  }

  const int threads = std::max(1, options.threads);
  std::vector<std::unique_ptr<asio::io_context>> contexts;
  for (int t = 0; t < threads; ++t) contexts.push_back(std::make_unique<asio::io_context>(1));
  std::vector<Subscriber> subscribers(static_cast<std::size_t>(options.subscribers));
  std::vector<std::vector<Subscriber*>> by_thread(static_cast<std::size_t>(threads));
  for (std::size_t i = 0; i < subscribers.size(); ++i) {
    auto& io = *contexts[i % contexts.size()];
    by_thread[i % contexts.size()].push_back(&subscribers[i]);
    asio::co_spawn(io, subscribe(shared, at, cursor, subscribers[i]), asio::detached);
  }
  // Every subscriber in place (or refused) before the first publish; a server that accepts
  // connections and never answers the handshake ends the run at the timeout.
  const auto connect_deadline = Clock::now() + options.timeout;
  while (shared.subscribers_connected < options.subscribers) {
    if (Clock::now() > connect_deadline) {
      report.errors.push_back("subscribers: no answer to the WebSocket handshake in time");
      return report;
    }
    bool ran = false;
    for (auto& io : contexts) ran = io->poll() > 0 || ran;
    if (!ran) std::this_thread::sleep_for(std::chrono::microseconds(200));
  }
  for (auto& io : contexts) io->restart();
  if (options.on_start) options.on_start();

  std::vector<Publisher> publishers(static_cast<std::size_t>(options.publishers));
  shared.publishers_running = options.publishers;
  shared.start = Clock::now();
  for (int p = 0; p < options.publishers; ++p) {
    const int share = (options.events - p + options.publishers - 1) / options.publishers;
    asio::co_spawn(*contexts[static_cast<std::size_t>(p) % contexts.size()],
                   publish(shared, at, p, share, publishers[static_cast<std::size_t>(p)]),
                   asio::detached);
  }
  for (std::size_t t = 0; t < contexts.size(); ++t) {
    asio::co_spawn(*contexts[t], drain(shared, by_thread[t]), asio::detached);
  }
  std::vector<std::thread> running;
  for (std::size_t t = 1; t < contexts.size(); ++t) {
    running.emplace_back([&io = *contexts[t], &options] { io.run_for(options.timeout); });
  }
  contexts[0]->run_for(options.timeout);
  for (auto& t : running) t.join();
  report.seconds = std::chrono::duration<double>(Clock::now() - shared.start).count();

  report.published = shared.published;
  std::vector<std::int64_t> publish_us, delivery_us;
  for (auto& p : publishers)
    publish_us.insert(publish_us.end(), p.latencies_us.begin(), p.latencies_us.end());
  for (auto& s : subscribers) {
    report.delivered += s.received;
    report.duplicates += s.duplicates;
    delivery_us.insert(delivery_us.end(), s.latencies_us.begin(), s.latencies_us.end());
  }
  const std::uint64_t expected = report.published * static_cast<std::uint64_t>(options.subscribers);
  report.lost = expected > report.delivered ? expected - report.delivered : 0;
  report.publish = percentiles(std::move(publish_us));
  report.end_to_end = percentiles(std::move(delivery_us));
  report.errors = std::move(shared.errors);
  report.unreachable = shared.connect_failures == options.publishers;
  return report;
}

}  // namespace replayrail::loadgen
