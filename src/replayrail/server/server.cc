// The server's one Beast translation unit: HTTP routing, WebSocket and SSE sessions, the
// listener and the event-loop threads. Kept in one file so the heavy headers compile once.
#include "replayrail/server/server.h"

#include <atomic>
#include <boost/asio/as_tuple.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/executor_work_guard.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/signal_set.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/beast/core/flat_buffer.hpp>
#include <boost/beast/core/tcp_stream.hpp>
#include <boost/beast/http.hpp>
#include <boost/beast/websocket.hpp>
#include <boost/json/serialize.hpp>
#include <boost/url/parse.hpp>
#include <charconv>
#include <cstdio>
#include <thread>

#include "replayrail/server/errors.h"

namespace replayrail::server {

namespace asio = boost::asio;
namespace beast = boost::beast;
namespace http = beast::http;
namespace websocket = beast::websocket;
using tcp = asio::ip::tcp;
using Request = http::request<http::string_body>;
using Response = http::response<http::string_body>;

namespace {

constexpr auto kToken = asio::as_tuple(asio::use_awaitable);
// How often a streaming session looks up from waiting for events (shutdown, a closed client).
constexpr Millis kPoll{250};

}  // namespace

bool is_loopback(const std::string& host) {
  if (host == "localhost") return true;
  boost::system::error_code ec;
  auto address = asio::ip::make_address(host, ec);
  return !ec && address.is_loopback();
}

namespace {

// The decoded path segments and query parameters of a request target.
struct Target {
  std::vector<std::string> path;
  std::vector<std::pair<std::string, std::string>> params;

  std::optional<std::string> param(std::string_view key) const {
    for (const auto& [k, v] : params) {
      if (k == key) return v;
    }
    return std::nullopt;
  }
};

}  // namespace

struct Server::Impl {
  ServerOptions options;
  std::vector<std::unique_ptr<asio::io_context>> contexts;
  std::vector<asio::executor_work_guard<asio::io_context::executor_type>> work;
  std::shared_ptr<store::Store> store;
  std::unique_ptr<Rail> rail;
  std::unique_ptr<tcp::acceptor> acceptor;
  std::unique_ptr<asio::signal_set> signals;
  std::atomic<bool> stopping = false;
  std::atomic<std::size_t> connections = 0;
  std::atomic<std::size_t> streaming = 0;  // WebSocket and SSE sessions
  std::size_t next_context = 0;

  asio::io_context& main() { return *contexts.front(); }
  asio::awaitable<void> accept_loop();
  asio::awaitable<void> http_session(tcp::socket socket);
  // The request target is parsed once, by http_session, and handed on.
  asio::awaitable<Response> handle(const Request& req, const Target& target);
  asio::awaitable<result<Subscription>> subscribe(const Request& req, const Target& target);
  asio::awaitable<void> websocket_session(beast::tcp_stream stream, Request req, Target target);
  asio::awaitable<void> sse_session(beast::tcp_stream stream, Request req, Target target);
  asio::awaitable<void> shutdown();
};

namespace {

// Counts a WebSocket or SSE session while it lives (shutdown waits for them to close).
struct StreamingSession {
  explicit StreamingSession(std::atomic<std::size_t>& n) : n(n) { ++n; }
  ~StreamingSession() { --n; }
  std::atomic<std::size_t>& n;
};

result<Target> parse_target(std::string_view text) {
  auto url = boost::urls::parse_origin_form(text);
  if (!url) return make_error(errc::invalid_argument, "bad request target: " + std::string(text));
  Target t;
  for (auto segment : url->segments()) t.path.push_back(segment);
  for (auto param : url->params()) t.params.emplace_back(param.key, param.value);
  return t;
}

Response json_response(const Request& req, unsigned status, std::string body) {
  Response res{static_cast<http::status>(status), req.version()};
  res.set(http::field::content_type, "application/json");
  res.set(http::field::cache_control, "no-store");
  res.keep_alive(req.keep_alive());
  res.body() = std::move(body);
  res.prepare_payload();
  return res;
}

Response error_response(const Request& req, const Error& e) {
  return json_response(req, http_status(e.code), error_body(e));
}

// `?limit=`: a positive integer.
result<std::optional<std::size_t>> parse_limit(const std::optional<std::string>& text) {
  if (!text) return std::optional<std::size_t>();
  std::size_t value = 0;
  auto [end, ec] = std::from_chars(text->data(), text->data() + text->size(), value);
  if (ec != std::errc{} || end != text->data() + text->size() || value == 0) {
    return make_error(errc::invalid_argument,
                      "limit must be a positive integer, not '" + *text + "'");
  }
  return std::optional<std::size_t>(value);
}

// A subscriber's start: `last_event_id` (query), else the Last-Event-ID header (SSE), else the
// configured default (nullopt).
result<std::optional<Cursor>> start_cursor(const Request& req, const Target& target) {
  auto text = target.param("last_event_id");
  if (!text && req.count("Last-Event-ID")) text = std::string(req["Last-Event-ID"]);
  if (!text || text->empty()) return std::optional<Cursor>();
  auto c = Cursor::parse(*text);
  if (!c) return c.error();
  return std::optional<Cursor>(*c);
}

}  // namespace

asio::awaitable<Response> Server::Impl::handle(const Request& req, const Target& target) {
  const auto& path = target.path;
  auto method_not_allowed = [&](const char* allowed) {
    auto res = error_response(
        req, make_error(errc::method_not_allowed, std::string(allowed) + " only on this path"));
    res.set(http::field::allow, allowed);
    return res;
  };

  if (path.size() == 1 && (path[0] == "healthz" || path[0] == "readyz")) {
    if (req.method() != http::verb::get) co_return method_not_allowed("GET");
    if (path[0] == "readyz") {
      auto healthy = co_await store->health();
      if (!healthy) co_return error_response(req, healthy.error());
    }
    co_return json_response(req, 200, R"({"status":"ok"})");
  }

  if (path.size() == 2 && path[0] == "events") {
    const std::string& channel = path[1];
    if (req.method() == http::verb::post) {
      auto body = parse_publish_body(req.body());
      if (!body) co_return error_response(req, body.error());
      auto stored = co_await rail->publish(body->input(channel));
      if (!stored) co_return error_response(req, stored.error());
      std::string out = R"({"event":)";
      append_envelope(out, *stored->event);
      out += stored->duplicate ? R"(,"duplicate":true})" : "}";
      // A repeat of a remembered event_id is answered like the first publish, but 200.
      co_return json_response(req, stored->duplicate ? 200 : 201, std::move(out));
    }
    if (req.method() == http::verb::get) {
      auto after = Cursor::parse(target.param("after").value_or("0-0"));
      if (!after) co_return error_response(req, after.error());
      auto limit = parse_limit(target.param("limit"));
      if (!limit) co_return error_response(req, limit.error());
      auto page = co_await rail->replay(channel, *after, *limit);
      if (!page) co_return error_response(req, page.error());
      std::string out = R"({"events":[)";
      for (std::size_t i = 0; i < page->size(); ++i) {
        if (i) out += ',';
        append_envelope(out, *(*page)[i]);
      }
      // `next`: where the following page starts (the request's own cursor when nothing came).
      std::string next = page->empty() ? after->to_string() : page->back()->id.to_string();
      out += R"(],"next":")" + next + "\"}";
      co_return json_response(req, 200, std::move(out));
    }
    co_return method_not_allowed("GET, POST");
  }
  co_return error_response(
      req, make_error(errc::not_found, "no endpoint at " + std::string(req.target())));
}

asio::awaitable<void> Server::Impl::http_session(tcp::socket socket) {
  beast::tcp_stream stream(std::move(socket));
  beast::flat_buffer buffer;
  for (bool first = true;; first = false) {
    http::request_parser<http::string_body> parser;
    parser.body_limit(options.max_body_bytes);
    parser.header_limit(16 * 1024);
    stream.expires_after(first ? options.header_timeout : options.idle_timeout);
    auto [ec, n] = co_await http::async_read(stream, buffer, parser, kToken);
    if (ec == http::error::body_limit) {
      Request head = parser.release();
      auto res =
          error_response(head, make_error(errc::payload_too_large,
                                          "the request body is over " +
                                              std::to_string(options.max_body_bytes) + " bytes"));
      res.keep_alive(false);
      stream.expires_after(options.header_timeout);
      co_await http::async_write(stream, res, kToken);
      break;
    }
    if (ec == http::error::end_of_stream || ec == beast::error::timeout) break;
    if (ec) {
      // Malformed HTTP: say so once, then close (the stream can no longer be parsed).
      Request none;
      auto res = error_response(
          none, make_error(errc::invalid_argument, "malformed HTTP request: " + ec.message()));
      res.keep_alive(false);
      co_await http::async_write(stream, res, kToken);
      break;
    }
    Request req = parser.release();
    auto target = parse_target(req.target());
    bool streaming_path =
        target && target->path.size() == 2 && (target->path[0] == "ws" || target->path[0] == "sse");
    if (streaming_path && target->path[0] == "ws" && websocket::is_upgrade(req)) {
      stream.expires_never();
      co_await websocket_session(std::move(stream), std::move(req), std::move(*target));
      co_return;
    }
    if (streaming_path && target->path[0] == "sse" && req.method() == http::verb::get) {
      stream.expires_never();
      co_await sse_session(std::move(stream), std::move(req), std::move(*target));
      co_return;
    }
    Response res;
    if (!target) {
      res = error_response(req, target.error());
    } else if (streaming_path && target->path[0] == "ws") {
      res = error_response(
          req, make_error(errc::invalid_argument, "this path takes a WebSocket upgrade request"));
    } else {
      res = co_await handle(req, *target);
    }
    if (stopping) res.keep_alive(false);
    stream.expires_after(options.idle_timeout);
    auto [wec, written] = co_await http::async_write(stream, res, kToken);
    if (wec || !res.keep_alive()) break;
  }
  boost::system::error_code ignored;
  stream.socket().shutdown(tcp::socket::shutdown_send, ignored);
}

// The subscription a /ws/{channel} or /sse/{channel} request asks for (`last_event_id`,
// Last-Event-ID, `epoch`).
asio::awaitable<result<Subscription>> Server::Impl::subscribe(const Request& req,
                                                              const Target& target) {
  auto from = start_cursor(req, target);
  if (!from) co_return from.error();
  co_return co_await rail->subscribe(target.path[1], *from, target.param("epoch").value_or(""));
}

// GET /ws/{channel}?last_event_id=&epoch=: replay after the cursor, then live, one text frame
// per event (the envelope). The subscription is in place before the handshake completes.
asio::awaitable<void> Server::Impl::websocket_session(beast::tcp_stream stream, Request req,
                                                      Target target) {
  StreamingSession counted(streaming);
  auto ws = std::make_shared<websocket::stream<beast::tcp_stream>>(std::move(stream));
  ws->set_option(websocket::stream_base::timeout::suggested(beast::role_type::server));
  ws->read_message_max(options.max_frame_bytes);
  auto sub = co_await subscribe(req, target);
  auto [aec] = co_await ws->async_accept(req, kToken);
  if (aec) co_return;
  auto close_with = [&](unsigned short code, std::string reason) -> asio::awaitable<void> {
    if (reason.size() > 120) reason.resize(120);  // a close frame carries at most 123 bytes
    co_await ws->async_close(
        websocket::close_reason(static_cast<websocket::close_code>(code), reason), kToken);
  };
  if (!sub) {
    co_await close_with(ws_close_code(sub.error().code),
                        std::string(to_string(sub.error().code)) + ": " + sub.error().message);
    co_return;
  }

  // The client sends nothing in this protocol; reading keeps pings answered and notices a close.
  auto closed = std::make_shared<std::atomic<bool>>(false);
  asio::co_spawn(
      ws->get_executor(),
      [](std::shared_ptr<websocket::stream<beast::tcp_stream>> ws,
         std::shared_ptr<std::atomic<bool>> closed) -> asio::awaitable<void> {
        beast::flat_buffer discard;
        for (;;) {
          auto [ec, n] = co_await ws->async_read(discard, kToken);
          if (ec) break;
          discard.clear();
        }
        *closed = true;
      }(ws, closed),
      asio::detached);

  ws->text(true);
  std::string frame;
  while (!*closed) {
    if (stopping) {
      co_await close_with(websocket::close_code::going_away, "server shutting down");
      co_return;
    }
    auto events = co_await sub->next(kPoll);
    if (!events) {
      co_await close_with(
          ws_close_code(events.error().code),
          std::string(to_string(events.error().code)) + ": " + events.error().message);
      co_return;
    }
    for (const auto& e : *events) {
      frame.clear();
      append_envelope(frame, *e);
      auto [wec, n] = co_await ws->async_write(asio::buffer(frame), kToken);
      if (wec) co_return;
    }
  }
}

// GET /sse/{channel}: `id:` is the cursor, so EventSource resumes with Last-Event-ID.
asio::awaitable<void> Server::Impl::sse_session(beast::tcp_stream stream, Request req,
                                                Target target) {
  StreamingSession counted(streaming);
  auto sub = co_await subscribe(req, target);
  if (!sub) {
    auto res = error_response(req, sub.error());
    res.keep_alive(false);
    co_await http::async_write(stream, res, kToken);
    co_return;
  }
  http::response<http::empty_body> res{http::status::ok, req.version()};
  res.set(http::field::content_type, "text/event-stream");
  res.set(http::field::cache_control, "no-store");
  res.keep_alive(false);  // the body ends when the connection does
  http::response_serializer<http::empty_body> head(res);
  auto [hec, hn] = co_await http::async_write_header(stream, head, kToken);
  if (hec) co_return;

  // A closed client is noticed by a read that returns.
  auto closed = std::make_shared<std::atomic<bool>>(false);
  auto socket = std::make_shared<beast::tcp_stream>(std::move(stream));
  asio::co_spawn(
      socket->get_executor(),
      [](std::shared_ptr<beast::tcp_stream> s,
         std::shared_ptr<std::atomic<bool>> closed) -> asio::awaitable<void> {
        char buf[512];
        for (;;) {
          auto [ec, n] = co_await s->async_read_some(asio::buffer(buf), kToken);
          if (ec) break;
        }
        *closed = true;
      }(socket, closed),
      asio::detached);

  std::string out = "retry: 1000\n\n";
  auto last_write = std::chrono::steady_clock::now();
  while (!*closed && !stopping) {
    if (!out.empty()) {
      auto [wec, n] = co_await asio::async_write(*socket, asio::buffer(out), kToken);
      if (wec) break;
      out.clear();
      last_write = std::chrono::steady_clock::now();
    }
    auto events = co_await sub->next(kPoll);
    if (!events) {
      // Headers are gone: the error travels as an `error` event, then the stream ends.
      out = "event: error\ndata: " + error_body(events.error()) + "\n\n";
      co_await asio::async_write(*socket, asio::buffer(out), kToken);
      break;
    }
    for (const auto& e : *events) {
      out += "id: " + e->id.to_string() + "\ndata: ";
      append_envelope(out, *e);
      out += "\n\n";
    }
    if (out.empty() && std::chrono::steady_clock::now() - last_write > options.heartbeat) {
      out = ": heartbeat\n\n";
    }
  }
  boost::system::error_code ignored;
  socket->socket().shutdown(tcp::socket::shutdown_both, ignored);
  socket->close();
}

asio::awaitable<void> Server::Impl::accept_loop() {
  for (;;) {
    // Round-robin over the event loops: a connection stays on the one it is given.
    auto& ctx = *contexts[next_context++ % contexts.size()];
    auto [ec, socket] = co_await acceptor->async_accept(ctx, kToken);
    if (stopping || ec == asio::error::operation_aborted) co_return;
    if (ec) continue;  // e.g. the process ran out of descriptors for a moment
    if (connections >= options.max_connections) {
      boost::system::error_code ignored;
      socket.close(ignored);
      continue;
    }
    ++connections;
    asio::co_spawn(
        ctx,
        [](Impl& impl, tcp::socket socket) -> asio::awaitable<void> {
          socket.set_option(tcp::no_delay(true));
          co_await impl.http_session(std::move(socket));
          --impl.connections;
        }(*this, std::move(socket)),
        asio::detached);
  }
}

// Stop accepting; give WebSocket and SSE sessions the grace period to close; stop the loops.
asio::awaitable<void> Server::Impl::shutdown() {
  boost::system::error_code ignored;
  acceptor->close(ignored);
  if (signals) signals->cancel(ignored);
  asio::steady_timer timer(main());
  auto deadline = std::chrono::steady_clock::now() + options.shutdown_grace;
  while (streaming > 0 && std::chrono::steady_clock::now() < deadline) {
    timer.expires_after(Millis(20));
    co_await timer.async_wait(kToken);
  }
  work.clear();
  for (auto& ctx : contexts) ctx->stop();
}

Server::Server(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}

Server::~Server() {
  // I/O objects go before the event loops they run on; the event loops then destroy the
  // sessions still suspended in them.
  Impl& impl = *impl_;
  impl.work.clear();
  impl.signals.reset();
  impl.acceptor.reset();
  impl.rail.reset();
  impl.store.reset();
  for (auto& ctx : impl.contexts) ctx.reset();
}

result<std::unique_ptr<Server>> Server::create(ServerOptions options, StoreFactory make_store) {
  if (!options.insecure && !is_loopback(options.host)) {
    return make_error(errc::invalid_argument,
                      "refusing to listen on " + options.host +
                          " (not loopback) without auth; pass --insecure to do it anyway");
  }
  auto impl = std::make_unique<Impl>();
  unsigned threads = options.threads ? options.threads : std::thread::hardware_concurrency();
  threads = std::max(1u, threads);
  for (unsigned i = 0; i < threads; ++i) {
    impl->contexts.push_back(std::make_unique<asio::io_context>(1));
    impl->work.push_back(asio::make_work_guard(*impl->contexts.back()));
  }
  RR_TRY_ASSIGN(impl->store, make_store(impl->main().get_executor()));
  impl->rail = std::make_unique<Rail>(impl->store, options.rail);

  boost::system::error_code ec;
  auto address =
      asio::ip::make_address(options.host == "localhost" ? "127.0.0.1" : options.host, ec);
  if (ec) return make_error(errc::invalid_argument, "bad listen address '" + options.host + "'");
  tcp::endpoint endpoint(address, options.port);
  impl->acceptor = std::make_unique<tcp::acceptor>(impl->main());
  impl->acceptor->open(endpoint.protocol(), ec);
  if (!ec) impl->acceptor->set_option(tcp::acceptor::reuse_address(true), ec);
  if (!ec) impl->acceptor->bind(endpoint, ec);
  if (!ec) impl->acceptor->listen(asio::socket_base::max_listen_connections, ec);
  if (ec) {
    return make_error(errc::invalid_argument, "cannot listen on " + options.host + ":" +
                                                  std::to_string(options.port) + ": " +
                                                  ec.message());
  }
  impl->options = std::move(options);
  return std::unique_ptr<Server>(new Server(std::move(impl)));
}

std::uint16_t Server::port() const { return impl_->acceptor->local_endpoint().port(); }

void Server::run() {
  Impl& impl = *impl_;
  impl.signals = std::make_unique<asio::signal_set>(impl.main(), SIGINT, SIGTERM);
  impl.signals->async_wait([this](boost::system::error_code ec, int) {
    if (!ec) stop();
  });
  asio::co_spawn(impl.main(), impl.accept_loop(), asio::detached);
  std::vector<std::thread> threads;
  for (std::size_t i = 1; i < impl.contexts.size(); ++i) {
    threads.emplace_back([&ctx = *impl.contexts[i]] { ctx.run(); });
  }
  impl.main().run();
  for (auto& t : threads) t.join();
}

void Server::stop() {
  if (impl_->stopping.exchange(true)) return;
  asio::co_spawn(impl_->main(), impl_->shutdown(), asio::detached);
}

}  // namespace replayrail::server
