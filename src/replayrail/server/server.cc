// The server's one Beast translation unit: HTTP routing, WebSocket and SSE sessions, the
// listener and the event-loop threads. Kept in one file so the heavy headers compile once.
#include "replayrail/server/server.h"

#include <spdlog/spdlog.h>

#include <algorithm>
#include <array>
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
#include <boost/beast/core/buffers_to_string.hpp>
#include <boost/beast/core/detect_ssl.hpp>
#include <boost/beast/core/flat_buffer.hpp>
#include <boost/beast/core/tcp_stream.hpp>
#include <boost/beast/http.hpp>
#include <boost/beast/websocket.hpp>
#include <boost/json/parse.hpp>
#include <boost/json/serialize.hpp>
#include <boost/url/parse.hpp>
#include <charconv>
#include <cstdio>
#include <map>
#include <mutex>
#include <thread>
#include <unordered_set>

#include "replayrail/archive/history.h"
#include "replayrail/archive/loop.h"
#include "replayrail/auth/jwks_refresher.h"
#include "replayrail/core/json_text.h"
#include "replayrail/server/errors.h"
#include "replayrail/server/http_wire.h"
#include "replayrail/server/hub.h"
#include "replayrail/server/metrics.h"
#include "replayrail/server/platform_api.h"
#include "replayrail/server/transport.h"
#include "replayrail/server/ui_assets.h"
#include "replayrail/server/v1_protocol.h"
#include "replayrail/server/write_queue_stream.h"

namespace replayrail::server {

namespace asio = boost::asio;
namespace beast = boost::beast;
namespace http = beast::http;
namespace websocket = beast::websocket;
using tcp = asio::ip::tcp;
using Request = http::request<http::string_body>;
using Response = http::response<http::string_body>;

std::string wire_bytes(const Response& res, bool with_body) {
  std::string out;
  out.reserve(128 + res.body().size());
  out += "HTTP/";
  out += static_cast<char>('0' + res.version() / 10 % 10);
  out += '.';
  out += static_cast<char>('0' + res.version() % 10);
  out += ' ';
  out += std::to_string(res.result_int());
  out += ' ';
  out += res.reason();
  out += "\r\n";
  for (const auto& field : res) {
    out += field.name_string();
    out += ": ";
    out += field.value();
    out += "\r\n";
  }
  out += "\r\n";
  if (with_body) out += res.body();
  return out;
}

namespace {

constexpr auto kToken = asio::as_tuple(asio::use_awaitable);

// Writes `res` (see wire_bytes), under the stream's timeout as Beast's http::async_write would;
// to a HEAD request, without its body.
asio::awaitable<std::tuple<boost::system::error_code, std::size_t>> write_response(
    Transport& stream, const Response& res, http::verb method = http::verb::get) {
  const std::string bytes = wire_bytes(res, method != http::verb::head);
  co_return co_await asio::async_write(stream, asio::buffer(bytes), kToken);
}

constexpr const char* kProtocolV1 = "replayrail.v1";
// After the grace period, how long requests and feeds get to end once the store is closed (they
// fail at once then: this bounds only their last steps).
constexpr Millis kEndAfterClose{1000};
// How long one store read of a group subscription, or of a blocking HTTP group read, waits for
// messages: how soon it notices that the server is stopping (well within the grace period).
Millis group_read_block(const ServerOptions& options) {
  return std::max(Millis(1), std::min(Millis(1000), options.shutdown_grace / 2));
}

}  // namespace

bool is_loopback(const std::string& host) {
  if (host == "localhost") return true;
  boost::system::error_code ec;
  auto address = asio::ip::make_address(host, ec);
  return !ec && address.is_loopback();
}

namespace {

// One event stored, and the partition it went to when its channel is a partitioned topic.
struct Published {
  store::Appended stored;
  std::optional<std::uint32_t> partition;
};

// `"event":{…}` of a publish's answer, then `"partition":n` for a partitioned topic's and
// `"duplicate":true` for a repeat of a remembered event_id (HTTP and v1 alike).
void append_published(std::string& out, const Published& p) {
  out += R"("event":)";
  append_envelope(out, *p.stored.event);
  if (p.partition) out += R"(,"partition":)" + std::to_string(*p.partition);
  if (p.stored.duplicate) out += R"(,"duplicate":true)";
}

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

using WsStream = websocket::stream<WriteQueueStream<Transport>>;

// The server's TLS: 1.2 or later, the certificate (with its chain) and key from PEM files.
result<asio::ssl::context> server_tls_context(const ServerOptions& options) {
  const std::string &cert = options.tls_cert, &key = options.tls_key;
  namespace ssl = asio::ssl;
  ssl::context tls(ssl::context::tls_server);
  tls.set_options(ssl::context::default_workarounds | ssl::context::no_sslv2 |
                  ssl::context::no_sslv3 | ssl::context::no_tlsv1 | ssl::context::no_tlsv1_1 |
                  ssl::context::single_dh_use);
  // An idle connection (most WebSockets are) does not keep OpenSSL's buffers.
  SSL_CTX_set_mode(tls.native_handle(), SSL_MODE_RELEASE_BUFFERS);
  boost::system::error_code ec;
  tls.use_certificate_chain_file(cert, ec);
  if (ec) {
    return make_error(errc::invalid_argument,
                      "cannot load the TLS certificate " + cert + ": " + ec.message());
  }
  // OpenSSL checks here that the key is the certificate's ("key values mismatch").
  tls.use_private_key_file(key, ssl::context::pem, ec);
  if (ec) {
    return make_error(errc::invalid_argument,
                      "cannot load the TLS key " + key + ": " + ec.message());
  }
  if (const std::string& ca = options.tls_client_ca; !ca.empty()) {
    // Mutual TLS: a client shows a certificate one of these authorities signed, or the handshake
    // fails. The list is also sent to clients, so that one holding several certificates picks.
    tls.load_verify_file(ca, ec);
    STACK_OF(X509_NAME)* names = ec ? nullptr : SSL_load_client_CA_file(ca.c_str());
    if (!names) {
      return make_error(errc::invalid_argument,
                        "cannot load the TLS client authorities " + ca +
                            (ec ? ": " + ec.message() : ": no certificate in it"));
    }
    SSL_CTX_set_client_CA_list(tls.native_handle(), names);
    tls.set_verify_mode(ssl::verify_peer | ssl::verify_fail_if_no_peer_cert);
    // Resumed sessions are checked as the first was: OpenSSL refuses to resume without this.
    static constexpr unsigned char kSessionContext[] = "replayrail";
    SSL_CTX_set_session_id_context(tls.native_handle(), kSessionContext,
                                   sizeof kSessionContext - 1);
  }
  return tls;
}

// Ends an HTTP connection: under TLS with a close_notify first (waiting a second at most for the
// client's), so that the client can tell the end from a cut; then TCP's half-close.
asio::awaitable<void> end_connection(Transport& stream) {
  if (stream.is_tls()) {
    stream.tcp().expires_after(Millis(1000));
    co_await tls_shutdown(stream.tls());
  }
  boost::system::error_code ignored;
  stream.tcp().socket().shutdown(tcp::socket::shutdown_send, ignored);
}

}  // namespace

struct Server::Impl {
  ServerOptions options;
  std::vector<std::unique_ptr<asio::io_context>> contexts;
  std::vector<asio::executor_work_guard<asio::io_context::executor_type>> work;
  std::shared_ptr<store::Store> store;
  std::shared_ptr<Backpressure> backpressure;  // shared by rail and topics
  std::unique_ptr<Metrics> metrics = std::make_unique<Metrics>();
  std::unique_ptr<Rail> rail;
  std::unique_ptr<Topics> topics;
  std::unique_ptr<AuditTrail> audit;  // changes made through /v1, and who may use its channel
  std::unique_ptr<PlatformApi> api;   // /v1/…
  std::unique_ptr<Hub> hub;
  std::unique_ptr<archive::ArchiveLoop> archiving;  // with a database URL, while serving
  // Retention by age: a turn every expiry_interval() of the shortest max age in force (the
  // server's, the topics' own), until stopped.
  std::unique_ptr<asio::steady_timer> expiry_timer;
  asio::awaitable<void> expire_loop();
  struct ExpiryTurn {
    Millis shortest{0};                   // the shortest max age in force; 0: none
    std::optional<result<Expired>> pass;  // none: no age anywhere, or another node's turn
  };
  asio::awaitable<ExpiryTurn> expiry_turn(Millis interval);
  // With a database URL: where replays read what the store trimmed (rail and hub use it), and
  // what /v1/archive/… answers from.
  std::shared_ptr<archive::ArchiveHistory> history;
  // Per event-loop thread, touched only there: its streaming sessions' outboxes.
  std::vector<std::unordered_set<Outbox*>> outboxes;
  std::unique_ptr<tcp::acceptor> acceptor;
  // With a certificate every connection is TLS. SIGHUP loads the files again: connections made
  // after it use the new context, those before keep theirs.
  std::shared_ptr<asio::ssl::context> tls;
  std::mutex tls_mu;                          // guards `tls`
  std::unique_ptr<asio::signal_set> reloads;  // SIGHUP, with a certificate
  std::shared_ptr<asio::ssl::context> current_tls() {
    std::lock_guard lock(tls_mu);
    return tls;
  }
  // The token check's configuration: SIGHUP replaces it when it loads the public key files
  // again, the JWK set's refresher when it fetched the set again.
  std::shared_ptr<const auth::JwtConfig> jwt;
  mutable std::mutex jwt_mu;  // guards `jwt` and the keys below
  auth::PublicKeys file_keys, fetched_keys;
  std::shared_ptr<const auth::JwtConfig> current_jwt() const {
    std::lock_guard lock(jwt_mu);
    return jwt;
  }
  // Replaces the keys of the files or those of the JWK set (`which`): the token check takes
  // both.
  void replace_keys(auth::PublicKeys Impl::*which, auth::PublicKeys keys);
  // With a JWK set URL, while serving.
  std::unique_ptr<auth::JwksRefresher> jwks;
  // SIGHUP: the TLS certificate and the JWT public keys are loaded again from their files; what
  // fails to load is kept as it was.
  void reload_on_sighup();
  std::unique_ptr<asio::signal_set> signals;
  std::atomic<bool> stopping = false;
  std::atomic<std::size_t> connections = 0;
  std::atomic<std::size_t> streaming = 0;  // WebSocket and SSE sessions
  std::atomic<std::size_t> handling = 0;   // HTTP requests being handled
  std::size_t next_context = 0;

  asio::io_context& main() { return *contexts.front(); }
  // Bytes a WebSocket's WriteQueueStream holds before a write waits, within the outbound limit.
  std::size_t write_queue_bytes() const {
    return std::min<std::size_t>(64 * 1024, options.max_outbound_bytes);
  }
  asio::awaitable<void> accept_loop();
  struct Registered;
  struct V1Session;
  // The connection `socket` is, after the TLS handshake when the server has a certificate;
  // nullopt when it ended there (a failed handshake, or plain HTTP, answered with 400).
  asio::awaitable<std::optional<Transport>> open_transport(tcp::socket socket,
                                                           beast::flat_buffer& buffer);
  // `thread`: the index of the event loop the connection lives on.
  asio::awaitable<void> http_session(tcp::socket socket, std::size_t thread);
  // The request target is parsed once, by http_session, and handed on; `remote` is the client's
  // address and port.
  asio::awaitable<Response> handle(const Request& req, const Target& target,
                                   const std::string& remote);
  asio::awaitable<result<Subscription>> subscribe(const Request& req, const Target& target);
  // A publish to `channel` (POST /events/{channel}, a v1 `publish`) by `caller` (null: auth is
  // off), whose request was `bytes` long: refused for the audit trail, the publisher stamped,
  // then stored in the partition its key picks when the channel is a partitioned topic (or a
  // topic with a max length of its own), else in the channel's stream; counted in the metrics.
  asio::awaitable<result<Published>> publish(const std::string& channel, PublishBody body,
                                             const auth::Claims* caller, std::size_t bytes);
  // Replay, /ws/{channel}, /sse/{channel} and v1 subscriptions read one stream: a plain channel
  // (or a topic of one partition). A partitioned topic's events are in its partitions' streams,
  // read through consumer groups; asking for it as one channel is invalid_channel.
  asio::awaitable<result<void>> check_one_stream(std::string_view channel);
  asio::awaitable<result<Subscription>> subscribe(std::string_view channel,
                                                  std::optional<Cursor> from,
                                                  std::string_view epoch);
  // Auth (DESIGN §4): the token from `Authorization: Bearer` or `?token=` must be valid, have
  // `role` (nullopt: any) and allow `channel` (empty: no channel). Passes while auth is off.
  result<std::optional<auth::Claims>> authorize(const Request& req, const Target& target,
                                                std::optional<auth::Role> role,
                                                std::string_view channel) const;
  // forbidden unless `claims` may do `role`'s work (any, when nullopt) on `channel` (none, when
  // empty): its role, its channels claim and, for readers, the audit trail's rule.
  result<void> may_use(const auth::Claims& claims, std::optional<auth::Role> role,
                       std::string_view channel) const;
  std::shared_ptr<WsStream> open_websocket(Transport stream) const;
  asio::awaitable<void> websocket_session(Transport stream, Request req, Target target,
                                          std::size_t thread);
  // `claims`: the connection's token (nullopt while auth is off), checked on every subscribe.
  asio::awaitable<void> v1_session(Transport stream, Request req, std::size_t thread,
                                   std::optional<auth::Claims> claims);
  asio::awaitable<void> handle_v1(std::size_t thread, std::shared_ptr<Outbox> outbox,
                                  std::shared_ptr<V1Session> session, std::string text);
  // A v1 `publish` (`bytes`: its message's size).
  asio::awaitable<void> publish_v1(std::shared_ptr<Outbox> outbox,
                                   std::shared_ptr<V1Session> session, boost::json::object msg,
                                   std::size_t bytes);
  asio::awaitable<void> subscribe_group(std::shared_ptr<Outbox> outbox,
                                        std::shared_ptr<V1Session> session, std::string name,
                                        const boost::json::object& msg);
  asio::awaitable<void> sse_session(Transport stream, Request req, Target target,
                                    std::size_t thread);
  asio::awaitable<void> shutdown();
  // Headers an answer carries by its status and the request: Retry-After on 429 and 503,
  // WWW-Authenticate on 401, and CORS (`options.cors_origins`) when the request has an Origin.
  void finish(const Request& req, unsigned status, http::fields& headers) const;
  // The error answer, counted in the metrics.
  Response error(const Request& req, const Error& e) const;
  // GET /metrics.
  Response metrics_response(const Request& req);
  ServerCounters counters();
  // Rates for the summary: totals and when they were last sampled.
  struct Rates {
    std::mutex mu;
    std::chrono::steady_clock::time_point at = std::chrono::steady_clock::now();
    std::uint64_t published = 0, delivered = 0;
    double published_per_second = 0, delivered_per_second = 0;
  } rates;
  // An OPTIONS request: the CORS preflight answer.
  Response preflight(const Request& req) const;
};

namespace {

// Counts a WebSocket or SSE session, or an HTTP request being handled, while it lives: shutdown
// waits for them (within its grace period) before the topics and the store go.
struct Counted {
  explicit Counted(std::atomic<std::size_t>& n) : n(n) { ++n; }
  ~Counted() { --n; }
  std::atomic<std::size_t>& n;
};

std::int64_t unix_seconds() {
  return std::chrono::duration_cast<std::chrono::seconds>(
             std::chrono::system_clock::now().time_since_epoch())
      .count();
}

// A peer's address as "127.0.0.1:5432" or "[::1]:5432"; empty when the socket has none.
std::string endpoint_text(const tcp::socket& socket) {
  boost::system::error_code ec;
  auto peer = socket.remote_endpoint(ec);
  if (ec) return {};
  const auto address = peer.address().to_string();
  const auto port = std::to_string(peer.port());
  return peer.address().is_v6() ? "[" + address + "]:" + port : address + ":" + port;
}

result<Target> parse_target(std::string_view text) {
  auto url = boost::urls::parse_origin_form(text);
  if (!url) return make_error(errc::invalid_argument, "bad request target: " + std::string(text));
  Target t;
  for (auto segment : url->segments()) t.path.push_back(segment);
  // A channel may hold '/' (DESIGN §2): under /events, /ws and /sse everything after the first
  // segment is the channel, whether its slashes are written as such or as %2F.
  if (t.path.size() > 2 && (t.path[0] == "events" || t.path[0] == "ws" || t.path[0] == "sse")) {
    for (std::size_t i = 2; i < t.path.size(); ++i) t.path[1] += "/" + t.path[i];
    t.path.resize(2);
  }
  for (auto param : url->params()) t.params.emplace_back(param.key, param.value);
  return t;
}

// An answer with a body, as every endpoint but the streams gives one.
Response body_response(const Request& req, unsigned status, std::string_view content_type,
                       std::string_view cache_control, std::string body) {
  Response res{static_cast<http::status>(status), req.version()};
  res.set(http::field::content_type, content_type);
  res.set(http::field::cache_control, cache_control);
  res.keep_alive(req.keep_alive());
  res.body() = std::move(body);
  res.prepare_payload();
  return res;
}

Response json_response(const Request& req, unsigned status, std::string body) {
  return body_response(req, status, "application/json", "no-store", std::move(body));
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

result<std::optional<auth::Claims>> Server::Impl::authorize(const Request& req,
                                                            const Target& target,
                                                            std::optional<auth::Role> role,
                                                            std::string_view channel) const {
  // On or off as started (a reload replaces keys, never all of them): no lock when off.
  if (!options.jwt.enabled()) return std::optional<auth::Claims>();
  auto jwt = current_jwt();
  std::string token;
  std::string_view header = req[http::field::authorization];
  if (header.size() > 7 && beast::iequals(header.substr(0, 7), "Bearer ")) {
    token = std::string(header.substr(7));
  } else if (auto param = target.param("token")) {
    token = *param;  // browsers cannot set headers on WebSocket / EventSource
  }
  if (token.empty()) {
    return make_error(errc::unauthorized,
                      "a token is required (Authorization: Bearer, or ?token=)");
  }
  auto verified = auth::verify(token, *jwt, unix_seconds());
  if (!verified) {
    // The provider may have rotated its keys: a token naming a key the set lacks has it fetched
    // again (the refresher spaces the fetches, whatever the tokens).
    auto kid = auth::key_id(token);
    if (jwks && (jwt->public_keys.empty() || (!kid.empty() && !jwt->knows_key_id(kid)))) {
      jwks->refresh_soon();
    }
    return verified.error();
  }
  RR_TRY(may_use(*verified, role, channel));
  return std::optional<auth::Claims>(std::move(*verified));
}

result<void> Server::Impl::may_use(const auth::Claims& claims, std::optional<auth::Role> role,
                                   std::string_view channel) const {
  // A v1 connection's token is checked again at each subscribe and publish: one that expired
  // since the connection opened is refused, as a request with it would be.
  if (claims.expires > 0 && unix_seconds() >= claims.expires) {
    return make_error(errc::unauthorized, "the token expired: connect again with a new one");
  }
  if (role && !auth::allows(claims, *role)) {
    std::string roles(auth::to_string(claims.role));  // "consumer/producer": all it has
    for (auth::Role r : claims.other_roles) roles += "/" + std::string(auth::to_string(r));
    return make_error(errc::forbidden, "a " + roles + " token may not do this (it needs " +
                                           std::string(auth::to_string(*role)) + ")");
  }
  if (channel.empty()) return {};
  // A reader also keeps to the audit trail's rule (a writer is refused the trail elsewhere).
  return role == auth::Role::consumer ? audit->may_read(claims, channel)
                                      : auth::check_channel(claims, channel);
}

Response Server::Impl::error(const Request& req, const Error& e) const {
  metrics->failed(e.code);
  auto res = error_response(req, e);
  // The client is told about its own mistakes; the server's (store down, a bug) are logged.
  if (res.result_int() >= 500) {
    spdlog::error("{} {} answered {}: {}: {}", std::string_view(req.method_string()),
                  std::string_view(req.target()), res.result_int(), to_string(e.code), e.message);
  }
  return res;
}

void Server::Impl::finish(const Request& req, unsigned status, http::fields& headers) const {
  metrics->answered(status);
  spdlog::debug("{} {} {}", std::string_view(req.method_string()), std::string_view(req.target()),
                status);
  if (status == 429 || status == 503) {
    headers.set(http::field::retry_after, std::to_string(options.backpressure.retry_after.count()));
  }
  if (status == 401) headers.set(http::field::www_authenticate, R"(Bearer realm="replayrail")");
  std::string_view origin = req[http::field::origin];
  if (origin.empty() || options.cors_origins.empty()) return;
  bool any = std::ranges::find(options.cors_origins, "*") != options.cors_origins.end();
  if (!any && std::ranges::find(options.cors_origins, origin) == options.cors_origins.end()) return;
  headers.set(http::field::access_control_allow_origin, any ? "*" : origin);
  if (!any) headers.set(http::field::vary, "Origin");
  headers.set(http::field::access_control_expose_headers, "Retry-After");
}

Response Server::Impl::metrics_response(const Request& req) {
  auto hub_stats = hub->stats();
  MetricsSnapshot snapshot{.connections = connections.load(),
                           .streaming = streaming.load(),
                           .subscriptions = hub_stats.subscribers,
                           .deliveries = hub_stats.deliveries,
                           .catchups = hub_stats.catchups,
                           .feeds = hub->feeds(),
                           .backpressure_rejections = backpressure->rejections()};
  return body_response(req, 200, "text/plain; version=0.0.4; charset=utf-8", "no-store",
                       metrics->scrape(snapshot));
}

ServerCounters Server::Impl::counters() {
  auto hub_stats = hub->stats();
  std::lock_guard lock(rates.mu);
  const auto now = std::chrono::steady_clock::now();
  const double seconds = std::chrono::duration<double>(now - rates.at).count();
  // A rate over at least a second; asked again sooner, the last one stands.
  if (seconds >= 1.0) {
    const std::uint64_t published = metrics->published_total();
    rates.published_per_second = static_cast<double>(published - rates.published) / seconds;
    rates.delivered_per_second =
        static_cast<double>(hub_stats.deliveries - rates.delivered) / seconds;
    rates.published = published;
    rates.delivered = hub_stats.deliveries;
    rates.at = now;
  }
  return {.connections = connections.load(),
          .streaming = streaming.load(),
          .subscriptions = hub_stats.subscribers,
          .published_per_second = rates.published_per_second,
          .delivered_per_second = rates.delivered_per_second,
          .archive = options.database_url.empty() ? std::nullopt
                                                  : std::optional(metrics->archive_status())};
}

Response Server::Impl::preflight(const Request& req) const {
  Response res{http::status::no_content, req.version()};
  res.keep_alive(req.keep_alive());
  // The headers are what makes it a grant; finish() adds Allow-Origin when the origin is allowed.
  res.set(http::field::access_control_allow_methods, "GET, POST, PUT, DELETE, OPTIONS");
  res.set(http::field::access_control_allow_headers,
          "Authorization, Content-Type, Last-Event-ID, traceparent");
  res.set(http::field::access_control_max_age, "600");
  res.prepare_payload();
  return res;
}

asio::awaitable<result<Published>> Server::Impl::publish(const std::string& channel,
                                                         PublishBody body,
                                                         const auth::Claims* caller,
                                                         std::size_t bytes) {
  const auto started = std::chrono::steady_clock::now();
  RR_CO_TRY(audit->may_publish(channel));
  if (caller) RR_CO_TRY(body.stamp_publisher(caller->subject));
  std::optional<store::Topic> topic;
  RR_CO_TRY_ASSIGN(topic, co_await topics->find(channel));
  Published out;
  if (topic && (topic->partitions > 1 || topic->retention.max_length)) {
    Ingested ingested;
    RR_CO_TRY_ASSIGN(ingested, co_await topics->publish(channel, body));
    if (topic->partitions > 1) out.partition = ingested.partition;
    out.stored = {std::move(ingested.event), ingested.duplicate};
  } else {
    RR_CO_TRY_ASSIGN(out.stored, co_await rail->publish(body.input(channel)));
  }
  if (!out.stored.duplicate) {
    metrics->published({}, 1, bytes, std::chrono::steady_clock::now() - started);
  }
  co_return out;
}

asio::awaitable<Response> Server::Impl::handle(const Request& req, const Target& target,
                                               const std::string& remote) {
  const auto& path = target.path;
  auto method_not_allowed = [&](const char* allowed) {
    auto res = error(
        req, make_error(errc::method_not_allowed, std::string(allowed) + " only on this path"));
    res.set(http::field::allow, allowed);
    return res;
  };

  if (path.size() == 1 && (path[0] == "healthz" || path[0] == "readyz")) {
    if (req.method() != http::verb::get) co_return method_not_allowed("GET, HEAD");
    if (path[0] == "readyz") {
      auto healthy = co_await store->health();
      if (!healthy) co_return error(req, healthy.error());
      // Keys from an identity provider that never loaded: its tokens would all be refused, so a
      // load balancer should leave this node out (nodes that loaded them before keep them).
      if (auto jwt = current_jwt(); jwt->awaiting_keys()) {
        co_return error(req, make_error(errc::auth_unavailable,
                                        "the keys of " + jwt->key_source() +
                                            " are not loaded yet: its tokens cannot be checked"));
      }
    }
    co_return json_response(req, 200, R"({"status":"ok"})");
  }

  // Prometheus scrapes without a token, at /metrics or /metrics/ (DESIGN §5).
  if (!path.empty() && path[0] == "metrics" && (path.size() == 1 || path[1].empty())) {
    if (req.method() != http::verb::get) co_return method_not_allowed("GET, HEAD");
    co_return metrics_response(req);
  }

  // The dashboard (DESIGN §7): files built into the binary, served without a token (the calls
  // it makes carry one).
  if (!path.empty() && path[0] == "ui") {
    if (req.method() != http::verb::get) co_return method_not_allowed("GET, HEAD");
    if (path.size() == 1) {  // /ui: relative links need the slash
      Response res{http::status::permanent_redirect, req.version()};
      res.set(http::field::location, "/ui/");
      res.keep_alive(req.keep_alive());
      res.prepare_payload();
      co_return res;
    }
    std::string file = path[1];
    for (std::size_t i = 2; i < path.size(); ++i) file += "/" + path[i];
    auto asset = ui_asset(file);
    if (!asset) co_return error(req, make_error(errc::not_found, "no dashboard file /ui/" + file));
    co_return body_response(req, 200, asset->content_type,
                            asset->immutable ? "public, max-age=31536000, immutable" : "no-cache",
                            std::string(asset->body));
  }

  if (path.size() == 2 && path[0] == "events") {
    const std::string& channel = path[1];
    std::optional<auth::Claims> caller;
    if (req.method() == http::verb::post || req.method() == http::verb::get) {
      auto role = req.method() == http::verb::post ? auth::Role::producer : auth::Role::consumer;
      auto allowed = authorize(req, target, role, channel);
      if (!allowed) co_return error(req, allowed.error());
      caller = std::move(*allowed);
    }
    if (req.method() == http::verb::post) {
      auto body = parse_publish_body(req.body());
      if (!body) co_return error(req, body.error());
      if (auto trace = req["traceparent"]; is_traceparent(trace)) body->keep_traceparent(trace);
      auto published = co_await publish(channel, std::move(*body), caller ? &*caller : nullptr,
                                        req.body().size());
      if (!published) co_return error(req, published.error());
      std::string out = "{";
      append_published(out, *published);
      out += "}";
      // A repeat of a remembered event_id is answered like the first publish, but 200.
      co_return json_response(req, published->stored.duplicate ? 200 : 201, std::move(out));
    }
    if (req.method() == http::verb::get) {
      auto after = Cursor::parse(target.param("after").value_or("0-0"));
      if (!after) co_return error(req, after.error());
      auto limit = parse_limit(target.param("limit"));
      if (!limit) co_return error(req, limit.error());
      auto one = co_await check_one_stream(channel);
      if (!one) co_return error(req, one.error());
      auto page = co_await rail->replay(channel, *after, *limit);
      if (!page) co_return error(req, page.error());
      std::string out = R"({"events":[)";
      for (std::size_t i = 0; i < page->size(); ++i) {
        if (i) out += ',';
        append_envelope(out, *(*page)[i]);
      }
      // `next`: where the following page starts. When nothing came it is the request's own
      // cursor, with `$` resolved to the stream's last id now: polling with `next` then returns
      // what is published after this request (a `next` of "$" would return nothing, ever).
      StreamId next;
      if (page->empty()) {
        auto at = co_await rail->resolve(channel, *after);
        if (!at) co_return error(req, at.error());
        next = *at;
      } else {
        next = page->back()->id;
      }
      out += R"(],"next":")" + next.to_string() + "\"}";
      co_return json_response(req, 200, std::move(out));
    }
    co_return method_not_allowed("GET, HEAD, POST");
  }
  if (!path.empty() && path[0] == "v1") {
    std::vector<std::string> rest(path.begin() + 1, path.end());
    std::optional<auth::Claims> claims;
    if (auto access = PlatformApi::access(req.method_string(), rest)) {
      auto allowed = authorize(req, target, access->role, access->channel);
      if (!allowed) co_return error(req, allowed.error());
      claims = std::move(*allowed);
    }
    Requester who{
        .token = claims ? &*claims : nullptr, .remote = remote, .traceparent = req["traceparent"]};
    auto res = co_await api->handle(req.method_string(), rest, req.body(), target.params, who);
    if (res) {
      if (res->code) metrics->failed(*res->code);
      auto out = json_response(req, res->status, std::move(res->body));
      if (!res->allow.empty()) out.set(http::field::allow, res->allow);
      co_return out;
    }
  }
  co_return error(req, make_error(errc::not_found, "no endpoint at " + std::string(req.target())));
}

asio::awaitable<std::optional<Transport>> Server::Impl::open_transport(tcp::socket socket,
                                                                       beast::flat_buffer& buffer) {
  beast::tcp_stream tcp(std::move(socket));
  auto context = current_tls();
  if (!context) co_return Transport(std::move(tcp));
  tcp.expires_after(options.header_timeout);
  auto [ec, hello] = co_await beast::async_detect_ssl(tcp, buffer, kToken);
  if (ec) co_return std::nullopt;
  if (!hello) {
    // Plain HTTP (http:// for https://): say so, in plain HTTP, rather than drop it unanswered.
    Transport plain(std::move(tcp));
    auto res =
        error(Request{}, make_error(errc::invalid_argument,
                                    "this server speaks HTTPS only: use https:// or wss://"));
    res.keep_alive(false);
    co_await write_response(plain, res);
    co_await end_connection(plain);
    co_return std::nullopt;
  }
  Transport secured(std::move(tcp), std::move(context));
  auto [hec, used] = co_await tls_handshake(secured.tls(), buffer.data());
  buffer.consume(used);
  if (hec) {
    spdlog::debug("TLS handshake failed: {}", hec.message());
    co_return std::nullopt;
  }
  co_return secured;
}

asio::awaitable<void> Server::Impl::http_session(tcp::socket socket, std::size_t thread) {
  beast::flat_buffer buffer;
  auto opened = co_await open_transport(std::move(socket), buffer);
  if (!opened) co_return;
  Transport& stream = *opened;
  const std::string remote = endpoint_text(stream.tcp().socket());
  for (bool first = true;; first = false) {
    http::request_parser<http::string_body> parser;
    parser.body_limit(options.max_body_bytes);
    parser.header_limit(16 * 1024);
    stream.tcp().expires_after(first ? options.header_timeout : options.idle_timeout);
    auto [ec, n] = co_await http::async_read(stream, buffer, parser, kToken);
    if (ec == http::error::body_limit) {
      Request head = parser.release();
      auto res = error(head, make_error(errc::payload_too_large,
                                        "the request body is over " +
                                            std::to_string(options.max_body_bytes) + " bytes"));
      res.keep_alive(false);
      stream.tcp().expires_after(options.header_timeout);
      co_await write_response(stream, res);
      break;
    }
    if (ec == http::error::end_of_stream || ec == beast::error::timeout) break;
    if (ec) {
      // Malformed HTTP: say so once, then close (the stream can no longer be parsed).
      Request none;
      auto res = error(
          none, make_error(errc::invalid_argument, "malformed HTTP request: " + ec.message()));
      res.keep_alive(false);
      co_await write_response(stream, res);
      break;
    }
    Request req = parser.release();
    auto target = parse_target(req.target());
    bool streaming_path =
        target && target->path.size() == 2 && (target->path[0] == "ws" || target->path[0] == "sse");
    bool v1_path = target && target->path.size() == 1 && target->path[0] == "ws";
    bool upgrade = websocket::is_upgrade(req);
    bool v1_offered = false;
    if (v1_path && upgrade) {
      // Sec-WebSocket-Protocol: a comma-separated list; replayrail.v1 must be among it.
      std::string_view offered = req[http::field::sec_websocket_protocol];
      for (std::size_t pos = 0; pos <= offered.size();) {
        auto comma = std::min(offered.find(',', pos), offered.size());
        auto token = offered.substr(pos, comma - pos);
        while (!token.empty() && token.front() == ' ') token.remove_prefix(1);
        while (!token.empty() && token.back() == ' ') token.remove_suffix(1);
        if (token == kProtocolV1) v1_offered = true;
        pos = comma + 1;
      }
    }
    // Streaming sessions need a consumer token for their channel; a v1 connection any valid
    // token, each subscribe and publish then checked for its own role and channel.
    std::optional<auth::Claims> claims;
    if (streaming_path || v1_offered) {
      auto allowed = streaming_path ? authorize(req, *target, auth::Role::consumer, target->path[1])
                                    : authorize(req, *target, std::nullopt, "");
      if (!allowed) {
        auto res = error(req, allowed.error());
        finish(req, res.result_int(), res);
        stream.tcp().expires_after(options.idle_timeout);
        auto [wec, written] = co_await write_response(stream, res, req.method());
        if (wec || !res.keep_alive()) break;
        continue;
      }
      claims = std::move(*allowed);
    }
    if ((streaming_path || v1_offered) && upgrade) {
      // A long-lived session follows: give back the request buffer (idle WebSockets are many).
      // The client waits for our handshake before sending, so nothing is left unread in it.
      if (buffer.size() == 0) buffer.shrink_to_fit();
    }
    if (streaming_path && target->path[0] == "ws" && upgrade) {
      stream.tcp().expires_never();
      co_await websocket_session(std::move(stream), std::move(req), std::move(*target), thread);
      co_return;
    }
    if (v1_offered) {
      stream.tcp().expires_never();
      co_await v1_session(std::move(stream), std::move(req), thread, std::move(claims));
      co_return;
    }
    if (streaming_path && target->path[0] == "sse" && req.method() == http::verb::get) {
      stream.tcp().expires_never();
      co_await sse_session(std::move(stream), std::move(req), std::move(*target), thread);
      co_return;
    }
    Response res;
    if (!target) {
      res = error(req, target.error());
    } else if (streaming_path && target->path[0] == "ws") {
      res = error(
          req, make_error(errc::invalid_argument, "this path takes a WebSocket upgrade request"));
    } else if (v1_path) {
      res = error(req, make_error(errc::invalid_argument,
                                  "this path takes a WebSocket upgrade request with "
                                  "the subprotocol replayrail.v1"));
    } else if (streaming_path && req.method() != http::verb::options) {  // /sse/{channel}
      res = error(req, make_error(errc::method_not_allowed, "GET only on this path"));
      res.set(http::field::allow, "GET");
    } else if (req.method() == http::verb::options) {
      res = preflight(req);
    } else if (req.method() == http::verb::head) {
      // HEAD: the answer to GET, without its body (RFC 9110 §9.3.2).
      Counted counted(handling);
      req.method(http::verb::get);
      res = co_await handle(req, *target, remote);
      req.method(http::verb::head);
    } else {
      Counted counted(handling);
      res = co_await handle(req, *target, remote);
    }
    finish(req, res.result_int(), res);
    if (stopping) res.keep_alive(false);
    stream.tcp().expires_after(options.idle_timeout);
    auto [wec, written] = co_await write_response(stream, res, req.method());
    if (wec || !res.keep_alive()) break;
  }
  co_await end_connection(stream);
}

// The subscription a /ws/{channel} or /sse/{channel} request asks for (`last_event_id`,
// Last-Event-ID, `epoch`): its start position and epoch, resolved now.
asio::awaitable<result<Subscription>> Server::Impl::subscribe(const Request& req,
                                                              const Target& target) {
  auto from = start_cursor(req, target);
  if (!from) co_return from.error();
  co_return co_await subscribe(target.path[1], *from, target.param("epoch").value_or(""));
}

asio::awaitable<result<void>> Server::Impl::check_one_stream(std::string_view channel) {
  auto topic = co_await topics->find(channel);
  if (!topic) co_return topic.error();
  if (*topic && (*topic)->partitions > 1) {
    const std::string name(channel);
    co_return make_error(errc::invalid_channel,
                         name + " is a topic of " + std::to_string((*topic)->partitions) +
                             " partitions; read its events through a consumer group (POST "
                             "/v1/topics/" +
                             name + "/groups), not as one channel");
  }
  co_return result<void>{};
}

asio::awaitable<result<Subscription>> Server::Impl::subscribe(std::string_view channel,
                                                              std::optional<Cursor> from,
                                                              std::string_view epoch) {
  auto one = co_await check_one_stream(channel);
  if (!one) co_return one.error();
  co_return co_await rail->subscribe(channel, from, std::string(epoch));
}

namespace {

// Messages gathered into one write at most.
constexpr std::size_t kGather = 256;

std::string close_reason(const Error& e) {
  std::string reason = std::string(to_string(e.code)) + ": " + e.message;
  if (reason.size() > 120) reason.resize(120);  // a close frame carries at most 123 bytes
  return reason;
}

// The header of a whole (FIN) text frame as a server sends it, unmasked (RFC 6455 §5.2):
// 2, 4 or 10 bytes.
struct FrameHeader {
  std::array<unsigned char, 10> bytes;
  std::size_t size;
};

FrameHeader text_frame_header(std::uint64_t payload) {
  FrameHeader h{{0x81}, 2};  // FIN + opcode 1 (text)
  if (payload < 126) {
    h.bytes[1] = static_cast<unsigned char>(payload);
  } else if (payload <= 0xFFFF) {
    h.bytes[1] = 126;
    h.size = 4;
  } else {
    h.bytes[1] = 127;
    h.size = 10;
  }
  for (std::size_t i = h.size - 1; i >= 2; --i, payload >>= 8) {
    h.bytes[i] = static_cast<unsigned char>(payload & 0xFF);
  }
  return h;
}

// Writes what the outbox holds, one write in flight, until it is closed or finished and
// drained; pings when idle. False: the connection broke.
//
// Messages are framed here rather than by Beast: Beast writes one message per asynchronous
// operation, and for a fanout, where each message is a few hundred bytes already serialised
// once for every subscriber, that operation cost more than the rest of a delivery. Everything
// queued when the writer wakes goes out in one write (one system call) of its frames: the
// shared bytes of each event behind a header of a few bytes. Beast still does the handshake,
// reading, pings, pongs and the close handshake; its control frames reach WriteQueueStream whole,
// so they never land inside one of these frames. No permessage-deflate is offered, so frames
// are never compressed.
asio::awaitable<bool> ws_write_loop(WsStream& ws, Outbox& outbox, Millis heartbeat) {
  std::vector<Outbox::Item> ready;
  std::vector<FrameHeader> headers;
  std::vector<asio::const_buffer> buffers;
  for (;;) {
    auto item = co_await outbox.pop(heartbeat);
    if (!item) co_return true;
    if (outbox.idle(*item)) {
      auto [ec] = co_await ws.async_ping({}, kToken);
      if (ec) co_return false;
      continue;
    }
    // The close handshake has begun (the client's close was answered): no more data frames.
    if (!ws.is_open()) co_return false;
    ready.clear();
    ready.push_back(std::move(*item));
    outbox.pop_ready(ready, kGather);
    headers.clear();
    buffers.clear();
    for (const auto& it : ready) {
      std::size_t size = it.message ? it.message->size() : it.frame().json.size();
      if (it.wrap) size += it.wrap->prefix.size() + it.wrap->suffix.size();
      headers.push_back(text_frame_header(size));
    }
    for (std::size_t i = 0; i < ready.size(); ++i) {
      const auto& it = ready[i];
      buffers.push_back(asio::buffer(headers[i].bytes.data(), headers[i].size));
      if (it.message) {
        buffers.push_back(asio::buffer(*it.message));
        continue;
      }
      // The frame's bytes are shared with every other subscriber; only the wrap is this one's.
      if (it.wrap) buffers.push_back(asio::buffer(it.wrap->prefix));
      buffers.push_back(asio::buffer(it.frame().json));
      if (it.wrap) buffers.push_back(asio::buffer(it.wrap->suffix));
    }
    // One call: WriteQueueStream takes all of a call's bytes at once, so a control frame
    // cannot land between the parts of these frames (asio::async_write would hand them over 64
    // buffers at a time).
    auto [ec, n] = co_await ws.next_layer().async_write_some(buffers, kToken);
    for (const auto& it : ready) outbox.written(it);
    if (ec) co_return false;
  }
}

// Reads client messages until the connection closes, then closes the outbox (ending the
// writer). `on_message` handles each text message (the v1 protocol); null: discarded.
asio::awaitable<void> ws_read_loop(std::shared_ptr<WsStream> ws, std::shared_ptr<Outbox> outbox,
                                   std::function<asio::awaitable<void>(std::string)> on_message) {
  beast::flat_buffer buffer;
  for (;;) {
    auto [ec, n] = co_await ws->async_read(buffer, kToken);
    if (ec) break;
    if (on_message) co_await on_message(beast::buffers_to_string(buffer.data()));
    buffer.clear();
  }
  outbox->close();
}

}  // namespace

// Keeps a streaming session's outbox known to its thread, so shutdown can flush and end it.
struct Server::Impl::Registered {
  Registered(Impl& impl, std::size_t thread, Outbox* outbox)
      : impl(impl), thread(thread), outbox(outbox) {
    impl.outboxes[thread].insert(outbox);
  }
  ~Registered() { impl.outboxes[thread].erase(outbox); }
  Impl& impl;
  std::size_t thread;
  Outbox* outbox;
};

// A server WebSocket on `stream`, with the settings every session shares.
std::shared_ptr<WsStream> Server::Impl::open_websocket(Transport stream) const {
  auto ws = std::make_shared<WsStream>(std::move(stream), write_queue_bytes());
  ws->set_option(websocket::stream_base::timeout::suggested(beast::role_type::server));
  ws->read_message_max(options.max_frame_bytes);
  return ws;
}

// GET /ws/{channel}?last_event_id=&epoch=: replay after the cursor, then live, one text frame
// per event (the envelope). The subscription is in place before the handshake completes.
asio::awaitable<void> Server::Impl::websocket_session(Transport stream, Request req, Target target,
                                                      std::size_t thread) {
  Counted counted(streaming);
  auto ws = open_websocket(std::move(stream));
  auto outbox = std::make_shared<Outbox>(ws->get_executor(), options.max_outbound_bytes);
  Registered registered(*this, thread, outbox.get());
  std::optional<Error> failure;
  std::unique_ptr<Subscriber> subscriber;
  auto sub = co_await subscribe(req, target);
  if (sub) {
    subscriber = std::make_unique<Subscriber>(
        *hub, thread, outbox,
        Subscriber::Options{.stream = sub->channel(),
                            .position = sub->position(),
                            .epoch = sub->epoch(),
                            .page = options.rail.subscribe_batch_size,
                            .on_error = [&failure, outbox](const Error& e) {
                              failure = e;
                              outbox->finish();
                            }});
    subscriber->start();
  } else {
    failure = sub.error();
  }
  auto [aec] = co_await ws->async_accept(req, kToken);
  if (aec) co_return;
  req = {};
  target = {};
  if (!failure) {
    asio::co_spawn(ws->get_executor(), ws_read_loop(ws, outbox, nullptr), asio::detached);
    if (!co_await ws_write_loop(*ws, *outbox, options.heartbeat)) co_return;
  }
  if (outbox->closed()) co_return;  // the client closed
  auto reason =
      failure ? websocket::close_reason(
                    static_cast<websocket::close_code>(ws_close_code(failure->code)),
                    close_reason(*failure))
              : websocket::close_reason(websocket::close_code::going_away, "server shutting down");
  co_await ws->async_close(reason, kToken);
}

namespace {

std::string json_string(std::string_view s) {
  std::string out;
  append_json_string(out, s);
  return out;
}

result<SlowPolicy> parse_policy(std::string_view text) {
  if (text.empty() || text == "catchup") return SlowPolicy::catchup;
  if (text == "disconnect") return SlowPolicy::disconnect;
  if (text == "latest") return SlowPolicy::latest;
  return make_error(errc::invalid_argument, "policy must be catchup, disconnect or latest, not '" +
                                                std::string(text) + "'");
}

}  // namespace

// The replayrail.v1 connection's subscriptions (docs/protocol.md); shared by its reader and
// writer coroutines, touched only on the connection's thread.
struct Server::Impl::V1Session {
  std::map<std::string, std::unique_ptr<Subscriber>> subscriptions;
  std::map<std::string, std::shared_ptr<GroupSubscription>> groups;  // consumer-group ones
  std::optional<auth::Claims> claims;  // the connection's token; nullopt while auth is off

  // Subscriptions that ended with an error are gone; their names may be used again.
  void forget_ended() {
    std::erase_if(subscriptions, [](const auto& kv) { return kv.second->ended(); });
    std::erase_if(groups, [](const auto& kv) { return kv.second->ended(); });
  }
  bool has(const std::string& name) const {
    return subscriptions.count(name) || groups.count(name);
  }
  std::size_t size() const { return subscriptions.size() + groups.size(); }
  void end() {
    subscriptions.clear();
    for (auto& [name, g] : groups) g->stop();
    groups.clear();
  }
};

// GET /ws with subprotocol replayrail.v1: many subscriptions on one connection.
asio::awaitable<void> Server::Impl::v1_session(Transport stream, Request req, std::size_t thread,
                                               std::optional<auth::Claims> claims) {
  Counted counted(streaming);
  auto ws = open_websocket(std::move(stream));
  ws->set_option(websocket::stream_base::decorator([](websocket::response_type& res) {
    res.set(http::field::sec_websocket_protocol, kProtocolV1);
  }));
  auto outbox = std::make_shared<Outbox>(ws->get_executor(), options.max_outbound_bytes);
  Registered registered(*this, thread, outbox.get());
  auto session = std::make_shared<V1Session>();
  session->claims = std::move(claims);
  auto [aec] = co_await ws->async_accept(req, kToken);
  if (aec) co_return;
  req = {};

  auto on_message = [this, thread, outbox, session](std::string text) -> asio::awaitable<void> {
    return handle_v1(thread, outbox, session, std::move(text));
  };
  asio::co_spawn(ws->get_executor(), ws_read_loop(ws, outbox, on_message), asio::detached);
  bool ok = co_await ws_write_loop(*ws, *outbox, options.heartbeat);
  session->end();
  if (!ok || outbox->closed()) co_return;
  co_await ws->async_close(
      websocket::close_reason(websocket::close_code::going_away, "server shutting down"), kToken);
}

asio::awaitable<void> Server::Impl::handle_v1(std::size_t thread, std::shared_ptr<Outbox> outbox,
                                              std::shared_ptr<V1Session> session,
                                              std::string text) {
  auto parsed = parse_json(text);
  if (!parsed || !parsed->is_object()) {
    std::string why = parsed ? "must be a JSON object" : parsed.error().message;
    outbox->push_message(v1_error(nullptr, make_error(errc::invalid_json, "a message " + why)));
    co_return;
  }
  const auto& msg = parsed->as_object();
  auto field = [&](std::string_view key) -> std::optional<std::string> {
    auto it = msg.find(key);
    if (it == msg.end() || !it->value().is_string()) return std::nullopt;
    return std::string(it->value().as_string());
  };
  auto op = field("op").value_or("");
  auto sub = field("sub");
  if (op == "ping") {
    boost::json::object fields;
    if (auto it = msg.find("data"); it != msg.end()) fields["data"] = it->value();
    outbox->push_message(v1_message("pong", nullptr, std::move(fields)));
    co_return;
  }
  if (op == "publish") {
    co_await publish_v1(outbox, session, msg, text.size());
    co_return;
  }
  if (op != "subscribe" && op != "unsubscribe" && op != "ack") {
    outbox->push_message(v1_error(
        sub ? &*sub : nullptr,
        make_error(errc::invalid_argument,
                   "op must be subscribe, unsubscribe, ack, publish or ping, not '" + op + "'")));
    co_return;
  }
  if (!sub || sub->empty() || sub->size() > 128) {
    outbox->push_message(v1_error(
        nullptr, make_error(errc::invalid_argument, "sub: a subscription name of 1-128 chars")));
    co_return;
  }
  auto& subs = session->subscriptions;
  auto& groups = session->groups;
  session->forget_ended();
  if (op == "ack") {
    auto it = groups.find(*sub);
    if (it == groups.end()) {
      outbox->push_message(
          v1_error(&*sub, make_error(errc::not_found, "no group subscription named " + *sub),
                   {{"op", "ack"}}));
      co_return;
    }
    auto body = Body::of(msg, {"op", "sub", "items"});
    auto items = body ? body->ack_items() : result<std::vector<PartitionIds>>(body.error());
    if (!items) {
      outbox->push_message(v1_error(&*sub, items.error(), {{"op", "ack"}}));
      co_return;
    }
    auto group = it->second;  // the subscription may end while the ack is on its way
    co_await group->ack(std::move(*items));
    co_return;
  }
  if (op == "unsubscribe") {
    if (auto g = groups.find(*sub); g != groups.end()) {
      g->second->stop();
      groups.erase(g);
      outbox->push_message(v1_message("unsubscribed", &*sub, {}));
      co_return;
    }
    auto it = subs.find(*sub);
    if (it == subs.end()) {
      outbox->push_message(
          v1_error(&*sub, make_error(errc::not_found, "no subscription named " + *sub)));
      co_return;
    }
    outbox->drop(it->second.get(), false);
    subs.erase(it);
    outbox->push_message(v1_message("unsubscribed", &*sub, {}));
    co_return;
  }
  if (session->has(*sub)) {
    outbox->push_message(v1_error(
        &*sub, make_error(errc::invalid_argument, "a subscription named " + *sub + " exists")));
    co_return;
  }
  if (session->size() >= options.max_subscriptions) {
    outbox->push_message(v1_error(
        &*sub,
        make_error(errc::invalid_argument, "at most " + std::to_string(options.max_subscriptions) +
                                               " subscriptions per connection")));
    co_return;
  }
  if (msg.contains("group")) {
    co_await subscribe_group(outbox, session, *sub, msg);
    co_return;
  }
  // The fields docs/protocol.md lists, each a string: a misspelt "form" or a numeric "from"
  // would otherwise be ignored, and the subscription would start somewhere the client did not ask.
  auto known = Body::of(msg, {"op", "sub", "channel", "from", "epoch", "policy"});
  for (std::string_view key : {"channel", "from", "epoch", "policy"}) {
    if (const auto* v = known ? known->get(key) : nullptr; v && !v->is_string()) {
      known = make_error(errc::invalid_argument, std::string(key) + " must be a string");
    }
  }
  if (!known) {
    outbox->push_message(v1_error(&*sub, known.error()));
    co_return;
  }
  if (session->claims) {
    if (auto allowed =
            may_use(*session->claims, auth::Role::consumer, field("channel").value_or(""));
        !allowed) {
      outbox->push_message(v1_error(&*sub, allowed.error()));
      co_return;
    }
  }
  auto policy = parse_policy(field("policy").value_or(""));
  std::optional<Cursor> from;
  if (auto text = field("from"); text && !text->empty()) {
    auto c = Cursor::parse(*text);
    if (!c) {
      outbox->push_message(v1_error(&*sub, c.error()));
      co_return;
    }
    from = *c;
  }
  if (!policy) {
    outbox->push_message(v1_error(&*sub, policy.error()));
    co_return;
  }
  auto resolved =
      co_await subscribe(field("channel").value_or(""), from, field("epoch").value_or(""));
  if (outbox->closed()) co_return;
  if (!resolved) {
    outbox->push_message(v1_error(&*sub, resolved.error()));
    co_return;
  }
  if (session->has(*sub)) co_return;  // the same name arrived again meanwhile: answered there
  auto wrap = std::make_shared<Wrap>();
  wrap->prefix = R"({"type":"event","sub":)" + json_string(*sub) + R"(,"event":)";
  wrap->suffix = "}";
  std::string name = *sub;
  Subscriber::Options o{
      .stream = resolved->channel(),
      .position = resolved->position(),
      .epoch = resolved->epoch(),
      .policy = *policy,
      .page = options.rail.subscribe_batch_size,
      .wrap = wrap,
      .on_caught_up =
          [outbox, name](StreamId at) {
            outbox->push_message(v1_message("caught_up", &name, {{"position", at.to_string()}}));
          },
      .on_error = [outbox, name](const Error& e) { outbox->push_message(v1_error(&name, e)); },
      .on_skipped =
          [outbox, name](const Outbox::Dropped& d) {
            outbox->push_message(v1_message(
                "skipped", &name,
                {{"from", d.first.to_string()}, {"to", d.last.to_string()}, {"count", d.count}}));
          }};
  outbox->push_message(v1_message("subscribed", &name,
                                  {{"channel", resolved->channel()},
                                   {"epoch", resolved->epoch()},
                                   {"position", resolved->position().to_string()}}));
  auto subscriber = std::make_unique<Subscriber>(*hub, thread, outbox, std::move(o));
  subscriber->start();
  subs.emplace(name, std::move(subscriber));
}

// A v1 `publish`: the event stored as POST /events/{channel} stores it, answered `published`
// with it, or an `error`, each carrying the message's `id` (when it has one) so that a client
// may have many on their way. Messages of a connection are handled in turn: its publishes are
// stored in the order sent.
asio::awaitable<void> Server::Impl::publish_v1(std::shared_ptr<Outbox> outbox,
                                               std::shared_ptr<V1Session> session,
                                               boost::json::object msg, std::size_t bytes) {
  std::optional<std::string> id;
  auto answer_error = [&](const Error& e) {
    boost::json::object fields{{"op", "publish"}};
    if (id) fields["id"] = *id;
    // As HTTP's Retry-After on 429 and 503.
    const unsigned status = http_status(e.code);
    if (status == 429 || status == 503) {
      fields["retry_after"] = options.backpressure.retry_after.count();
    }
    outbox->push_message(v1_error(nullptr, e, std::move(fields)));
  };
  if (const auto* given = msg.if_contains("id")) {
    if (!given->is_string() || given->get_string().empty() || given->get_string().size() > 128) {
      answer_error(make_error(errc::invalid_argument, "id: a string of 1-128 chars"));
      co_return;
    }
    id = std::string(given->get_string());
  }
  const auto* channel_field = msg.if_contains("channel");
  if (!channel_field || !channel_field->is_string()) {
    answer_error(make_error(errc::invalid_channel, "channel: the channel to publish to"));
    co_return;
  }
  const std::string channel(channel_field->get_string());
  if (session->claims) {
    if (auto allowed = may_use(*session->claims, auth::Role::producer, channel); !allowed) {
      answer_error(allowed.error());
      co_return;
    }
  }
  // What is left is the publish body of POST /events/{channel}.
  msg.erase("op");
  msg.erase("id");
  msg.erase("channel");
  auto body = parse_publish_object(msg);
  if (!body) {
    answer_error(body.error());
    co_return;
  }
  auto published = co_await publish(channel, std::move(*body),
                                    session->claims ? &*session->claims : nullptr, bytes);
  if (outbox->closed()) co_return;
  if (!published) {
    answer_error(published.error());
    co_return;
  }
  std::string out = R"({"type":"published",)";
  if (id) out += R"("id":)" + json_string(*id) + ",";
  append_published(out, *published);
  out += "}";
  outbox->push_message(std::move(out));
}

// A v1 `subscribe` with a `group`: the group's new messages for `consumer`, acked by the client.
asio::awaitable<void> Server::Impl::subscribe_group(std::shared_ptr<Outbox> outbox,
                                                    std::shared_ptr<V1Session> session,
                                                    std::string name,
                                                    const boost::json::object& msg) {
  auto o = parse_group_subscribe(msg);
  if (!o) {
    outbox->push_message(v1_error(&name, o.error()));
    co_return;
  }
  if (session->claims) {
    if (auto allowed = may_use(*session->claims, auth::Role::consumer, o->topic); !allowed) {
      outbox->push_message(v1_error(&name, allowed.error()));
      co_return;
    }
  }
  // The topic and the group must exist (the group is on every partition).
  auto described = co_await topics->describe(o->topic);
  if (outbox->closed()) co_return;
  if (!described) {
    outbox->push_message(v1_error(&name, described.error()));
    co_return;
  }
  const auto& partitions = described->partitions;
  const bool has_group =
      !partitions.empty() &&
      std::any_of(partitions.front().info.groups.begin(), partitions.front().info.groups.end(),
                  [&](const store::GroupInfo& g) { return g.name == o->group; });
  if (!has_group) {
    outbox->push_message(v1_error(
        &name, make_error(errc::group_not_found, "no group " + o->group + " on " + o->topic)));
    co_return;
  }
  if (auto checked = Topics::check_partitions(described->topic, o->partitions); !checked) {
    outbox->push_message(v1_error(&name, checked.error()));
    co_return;
  }
  if (session->has(name)) co_return;  // the same name arrived again meanwhile: answered there
  o->block = group_read_block(options);
  outbox->push_message(v1_message("subscribed", &name,
                                  {{"topic", o->topic},
                                   {"group", o->group},
                                   {"consumer", o->consumer},
                                   {"partitions", described->topic.partitions}}));
  auto executor = co_await asio::this_coro::executor;
  auto group = std::make_shared<GroupSubscription>(executor, *topics, outbox, name, std::move(*o),
                                                   described->topic.partitions, stopping);
  session->groups.emplace(name, group);
  // Counted as a streaming session: shutdown waits for it, so it ends before Topics does.
  asio::co_spawn(
      executor,
      [](Impl& impl, std::shared_ptr<GroupSubscription> group) -> asio::awaitable<void> {
        Counted counted(impl.streaming);
        co_await group->run(group);
      }(*this, group),
      asio::detached);
}

// GET /sse/{channel}: `id:` is the cursor, so EventSource resumes with Last-Event-ID.
asio::awaitable<void> Server::Impl::sse_session(Transport stream, Request req, Target target,
                                                std::size_t thread) {
  Counted counted(streaming);
  auto sub = co_await subscribe(req, target);
  if (!sub) {
    auto res = error(req, sub.error());
    finish(req, res.result_int(), res);
    res.keep_alive(false);
    co_await write_response(stream, res);
    co_return;
  }
  auto socket = std::make_shared<Transport>(std::move(stream));
  auto outbox = std::make_shared<Outbox>(socket->get_executor(), options.max_outbound_bytes);
  Registered registered(*this, thread, outbox.get());
  std::optional<Error> failure;
  Subscriber subscriber(*hub, thread, outbox,
                        {.stream = sub->channel(),
                         .position = sub->position(),
                         .epoch = sub->epoch(),
                         .page = options.rail.subscribe_batch_size,
                         .on_error = [&failure, outbox](const Error& e) {
                           failure = e;
                           outbox->finish();
                         }});
  subscriber.start();

  http::response<http::empty_body> res{http::status::ok, req.version()};
  res.set(http::field::content_type, "text/event-stream");
  res.set(http::field::cache_control, "no-store");
  finish(req, 200, res);
  res.keep_alive(false);  // the body ends when the connection does
  http::response_serializer<http::empty_body> head(res);
  auto [hec, hn] = co_await http::async_write_header(*socket, head, kToken);
  if (hec) co_return;

  // A closed client is noticed by a read that returns. `reader_done` is cancelled when it has.
  auto reader_done = std::make_shared<asio::steady_timer>(socket->get_executor(),
                                                          asio::steady_timer::time_point::max());
  asio::co_spawn(
      socket->get_executor(),
      [](std::shared_ptr<Transport> s, std::shared_ptr<Outbox> outbox,
         std::shared_ptr<asio::steady_timer> done) -> asio::awaitable<void> {
        char buf[512];
        for (;;) {
          auto [ec, n] = co_await s->async_read_some(asio::buffer(buf), kToken);
          if (ec) break;
        }
        outbox->close();
        done->expires_at(asio::steady_timer::time_point::min());  // also cancels a wait
      }(socket, outbox, reader_done),
      asio::detached);

  static const std::string kId = "id: ", kData = "\ndata: ", kEnd = "\n\n",
                           kHeartbeat = ": heartbeat\n\n";
  std::string retry = "retry: 1000\n\n";
  auto [rec, rn] = co_await asio::async_write(*socket, asio::buffer(retry), kToken);
  std::vector<Outbox::Item> items;
  std::vector<asio::const_buffer> buffers;
  while (!rec) {
    auto first = co_await outbox->pop(options.heartbeat);
    if (!first) break;
    items.clear();
    buffers.clear();
    if (outbox->idle(*first)) {
      buffers.push_back(asio::buffer(kHeartbeat));
    } else {
      // Everything queued goes out in one write, the frames' bytes shared, not copied.
      items.push_back(std::move(*first));
      outbox->pop_ready(items, 64);
      for (const auto& item : items) {
        const Frame& f = item.frame();
        const std::string& data = f.sse_data.empty() ? f.json : f.sse_data;
        for (const std::string* part : {&kId, &f.id_text, &kData, &data, &kEnd}) {
          buffers.push_back(asio::buffer(*part));
        }
      }
    }
    auto [wec, n] = co_await asio::async_write(*socket, buffers, kToken);
    for (const auto& item : items) outbox->written(item);
    if (wec) break;
  }
  if (failure && !outbox->closed()) {
    // Headers are gone: the error travels as an `error` event, then the stream ends.
    std::string out = "event: error\ndata: " + error_body(*failure) + "\n\n";
    co_await asio::async_write(*socket, asio::buffer(out), kToken);
  }
  if (socket->is_tls()) {
    // TLS ends with close_notify, which needs the stream to itself: the reader leaves first.
    socket->tcp().cancel();
    if (reader_done->expiry() != asio::steady_timer::time_point::min()) {
      co_await reader_done->async_wait(kToken);
    }
    co_await end_connection(*socket);
  }
  boost::system::error_code ignored;
  socket->tcp().socket().shutdown(tcp::socket::shutdown_both, ignored);
  socket->tcp().close();
}

asio::awaitable<void> Server::Impl::accept_loop() {
  for (;;) {
    // Round-robin over the event loops: a connection stays on the one it is given.
    std::size_t thread = next_context++ % contexts.size();
    auto& ctx = *contexts[thread];
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
        [](Impl& impl, tcp::socket socket, std::size_t thread) -> asio::awaitable<void> {
          socket.set_option(tcp::no_delay(true));
          co_await impl.http_session(std::move(socket), thread);
          --impl.connections;
        }(*this, std::move(socket), thread),
        asio::detached);
  }
}

namespace {

// Waits while `busy()` holds, for `at_most`.
asio::awaitable<void> wait_while(std::function<bool()> busy, Millis at_most) {
  auto deadline = std::chrono::steady_clock::now() + at_most;
  asio::steady_timer timer(co_await asio::this_coro::executor);
  while (busy() && std::chrono::steady_clock::now() < deadline) {
    timer.expires_after(Millis(20));
    co_await timer.async_wait(kToken);
  }
}

}  // namespace

// Stop accepting; give WebSocket and SSE sessions and HTTP requests the grace period to end;
// close the store; stop the loops.
asio::awaitable<void> Server::Impl::shutdown() {
  boost::system::error_code ignored;
  acceptor->close(ignored);
  if (signals) signals->cancel(ignored);
  if (reloads) reloads->cancel(ignored);
  spdlog::info("stopping: {} streaming sessions and {} requests get up to {} ms to finish",
               streaming.load(), handling.load(), options.shutdown_grace.count());
  if (archiving) archiving->request_stop();  // the pass in progress ends within the grace
  if (expiry_timer) expiry_timer->cancel();
  // Streaming sessions write what is queued, then close (WebSocket: 1001).
  for (std::size_t t = 0; t < contexts.size(); ++t) {
    asio::post(*contexts[t], [this, t] {
      for (auto* outbox : outboxes[t]) outbox->finish();
    });
  }
  // Feeds end within one blocking read (HubOptions::feed_block) once nobody watches them, and a
  // blocking HTTP group read within one slice (BlockingReads); they must end before the store
  // goes.
  co_await wait_while(
      [this] {
        return streaming > 0 || handling > 0 || hub->feeds() > 0 ||
               (archiving && archiving->in_pass());
      },
      options.shutdown_grace);
  // An archive pass still running waits on PostgreSQL (a hung server): cut its connection, or
  // its thread could not be joined.
  if (archiving && archiving->in_pass()) archiving->cut_off();
  // What is left in the store now waits on something that does not answer (a hung Redis):
  // closing the store ends those waits at once (store_unavailable), so no request or feed is
  // still suspended in it when the topics and the store go.
  store->close();
  // An archive pass waiting on the store gets its answer (store_unavailable) now, while the
  // event loops the store's I/O runs on still run.
  co_await wait_while(
      [this] { return handling > 0 || hub->feeds() > 0 || (archiving && archiving->in_pass()); },
      kEndAfterClose);
  spdlog::info("stopped");
  work.clear();
  for (auto& ctx : contexts) ctx->stop();
}

Server::Server(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}

Server::~Server() {
  // I/O objects go before the event loops they run on; the event loops then destroy the
  // sessions still suspended in them.
  Impl& impl = *impl_;
  impl.archiving.reset();  // waits for a pass the store's closing cut short
  impl.work.clear();
  impl.signals.reset();
  impl.reloads.reset();
  impl.expiry_timer.reset();
  impl.acceptor.reset();
  // Everything holding the store lets go of it here, so it goes while its loops still exist.
  impl.api.reset();
  impl.topics.reset();
  impl.rail.reset();
  impl.backpressure.reset();
  impl.store.reset();
  // Let the store's connections see their stop and fail what they hold (a blocked feed read),
  // so no coroutine is left owning the connection that owns it.
  for (int round = 0; round < 3; ++round) {
    for (auto& ctx : impl.contexts) {
      ctx->restart();
      ctx->poll();
    }
  }
  for (auto& ctx : impl.contexts) ctx.reset();
  impl.hub.reset();      // last: the sessions destroyed above detach from it
  impl.history.reset();  // after the hub, which reads through it
}

result<std::unique_ptr<Server>> Server::create(ServerOptions options, StoreFactory make_store) {
  if (!options.insecure && !options.jwt.enabled() && !is_loopback(options.host)) {
    return make_error(errc::invalid_argument,
                      "refusing to listen on " + options.host +
                          " (not loopback) without auth; pass --insecure to do it anyway");
  }
  auto impl = std::make_unique<Impl>();
  impl->jwt = std::make_shared<const auth::JwtConfig>(options.jwt);
  impl->file_keys = options.jwt.public_keys;
  if (options.tls_cert.empty() != options.tls_key.empty()) {
    return make_error(errc::invalid_argument,
                      "a TLS certificate goes with its key: give both --tls-cert and --tls-key");
  }
  if (!options.audit_channel.empty()) {
    if (auto valid = validate_channel(options.audit_channel); !valid) {
      return make_error(errc::invalid_argument, "--audit-channel: " + valid.error().message);
    }
  }
  if (!options.tls_client_ca.empty() && options.tls_cert.empty()) {
    return make_error(errc::invalid_argument,
                      "client certificates are asked for over TLS: --tls-client-ca needs "
                      "--tls-cert and --tls-key");
  }
  if (!options.tls_cert.empty()) {
    auto tls = server_tls_context(options);
    if (!tls) return tls.error();
    impl->tls = std::make_shared<asio::ssl::context>(std::move(*tls));
  }
  unsigned threads = options.threads ? options.threads : std::thread::hardware_concurrency();
  threads = std::max(1u, threads);
  for (unsigned i = 0; i < threads; ++i) {
    impl->contexts.push_back(std::make_unique<asio::io_context>(1));
    impl->work.push_back(asio::make_work_guard(*impl->contexts.back()));
  }
  RR_TRY_ASSIGN(impl->store, make_store(impl->main().get_executor()));
  impl->backpressure = std::make_shared<Backpressure>(*impl->store, options.backpressure);
  if (!options.database_url.empty()) {
    impl->history = std::make_shared<archive::ArchiveHistory>(options.database_url);
  }
  impl->rail = std::make_unique<Rail>(impl->store, options.rail, impl->backpressure, impl->history);
  impl->topics =
      std::make_unique<Topics>(impl->store,
                               TopicsConfig{.default_partitions = options.default_partitions,
                                            .max_batch = options.max_batch,
                                            .max_payload_bytes = options.rail.max_payload_bytes,
                                            .appends = options.rail.append_options(),
                                            .max_age = options.rail.max_stream_age},
                               impl->backpressure);
  impl->audit =
      std::make_unique<AuditTrail>(*impl->topics, options.audit_channel, impl->metrics.get());
  impl->api = std::make_unique<PlatformApi>(
      *impl->topics, [impl = impl.get()] { return impl->counters(); }, options.jwt,
      options.admin_secret, impl->metrics.get(), *impl->audit,
      BlockingReads{.slice = group_read_block(options), .stopping = &impl->stopping},
      impl->history.get());
  std::vector<asio::any_io_executor> executors;
  for (auto& ctx : impl->contexts) executors.push_back(ctx->get_executor());
  impl->hub = std::make_unique<Hub>(
      *impl->store, std::move(executors),
      HubOptions{.gather_max = options.fanout_gather,
                 .on_feed_batch = [metrics = impl->metrics.get()](
                                      const Batch& batch) { metrics->feed_batch(batch); },
                 .history = impl->history.get()});
  impl->outboxes.resize(threads);

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

std::size_t Server::threads() const { return impl_->contexts.size(); }

std::shared_ptr<store::Store> Server::store() const { return impl_->store; }

void Server::run() {
  Impl& impl = *impl_;
  impl.signals = std::make_unique<asio::signal_set>(impl.main(), SIGINT, SIGTERM);
  impl.signals->async_wait([this](boost::system::error_code ec, int) {
    if (!ec) stop();
  });
  if (impl.tls || !impl.options.jwt_public_key_files.empty()) impl.reload_on_sighup();
  if (impl.options.jwt.fetches_keys()) {
    impl.jwks = std::make_unique<auth::JwksRefresher>(
        auth::JwksRefresher::Options{.url = impl.options.jwt.jwks_url,
                                     .issuer = impl.options.jwt.oidc_issuer,
                                     .refresh = impl.options.jwks_refresh,
                                     .min_gap = std::min<std::chrono::milliseconds>(
                                         std::chrono::seconds(5), impl.options.jwks_refresh)},
        [&impl](auth::PublicKeys keys) {
          impl.metrics->jwks_fetch(true, keys.size());
          impl.replace_keys(&Impl::fetched_keys, std::move(keys));
        },
        [&impl] { impl.metrics->jwks_fetch(false, 0); });
  }
  asio::co_spawn(impl.main(), impl.accept_loop(), asio::detached);
  if (!impl.options.database_url.empty()) {
    impl.archiving = std::make_unique<archive::ArchiveLoop>(
        impl.store, archive::ArchiveOptions{.database_url = impl.options.database_url},
        impl.options.archive_interval, [metrics = impl.metrics.get()](const auto& pass) {
          metrics->archive_pass(pass.has_value(), pass ? pass->events : 0,
                                pass ? pass->lag : std::chrono::milliseconds(0));
        });
  }
  impl.expiry_timer = std::make_unique<asio::steady_timer>(impl.main());
  asio::co_spawn(impl.main(), impl.expire_loop(), asio::detached);
  std::vector<std::thread> threads;
  for (std::size_t i = 1; i < impl.contexts.size(); ++i) {
    threads.emplace_back([&ctx = *impl.contexts[i]] { ctx.run(); });
  }
  impl.main().run();
  for (auto& t : threads) t.join();
  impl.jwks.reset();
}

asio::awaitable<void> Server::Impl::expire_loop() {
  // A turn every tenth of the shortest max age in force; without any, a look every few seconds
  // (topics may be given one at any time).
  constexpr Millis kNoAgeLook{5000};
  const Millis server_age = options.rail.max_stream_age;
  Millis interval = server_age.count() > 0 ? expiry_interval(server_age) : kNoAgeLook;
  bool failing = false;
  for (;;) {
    expiry_timer->expires_after(interval);
    auto [ec] = co_await expiry_timer->async_wait(kToken);
    if (ec || stopping) co_return;
    auto turn = co_await expiry_turn(interval);
    if (stopping) co_return;  // the store closed under the pass
    interval = turn.shortest.count() > 0 ? expiry_interval(turn.shortest) : kNoAgeLook;
    if (!turn.pass) continue;
    const result<Expired>& pass = *turn.pass;
    metrics->expiry_pass(pass.has_value(), pass ? pass->events : 0);
    if (!pass && !failing) {
      spdlog::warn("retention: expiring old events failed: {}; trying again every {} ms",
                   pass.error().message, interval.count());
    } else if (pass && failing) {
      spdlog::info("retention: expiring old events again");
    }
    if (pass && pass->events > 0) {
      spdlog::debug("retention: {} old events removed from {} streams", pass->events,
                    pass->streams);
    }
    failing = !pass;
  }
}

asio::awaitable<Server::Impl::ExpiryTurn> Server::Impl::expiry_turn(Millis interval) {
  ExpiryTurn turn{options.rail.max_stream_age, std::nullopt};
  auto own = co_await topics->own_max_ages();
  if (!own) {
    turn.pass = result<Expired>(own.error());
    co_return turn;
  }
  for (const auto& [stream, age] : *own) {
    if (age.count() > 0 && (turn.shortest.count() == 0 || age < turn.shortest)) turn.shortest = age;
  }
  if (turn.shortest.count() == 0) co_return turn;  // no age anywhere
  // Nodes sharing the store take turns: the one that takes the lease runs the pass, so it is
  // done about once per interval rather than once per node. The lease lapses a little before
  // the interval ends, so that a node's own next turn never finds it still held.
  auto mine = co_await store->take_lease("expiry", std::max(interval * 9 / 10, Millis(1)));
  if (!mine) {
    turn.pass = result<Expired>(mine.error());
  } else if (*mine) {
    turn.pass = co_await rail->expire_old_events(unix_now_ms(), *own);
  }
  co_return turn;
}

void Server::Impl::replace_keys(auth::PublicKeys Impl::*which, auth::PublicKeys keys) {
  std::lock_guard lock(jwt_mu);
  this->*which = std::move(keys);
  auto fresh = std::make_shared<auth::JwtConfig>(*jwt);
  fresh->public_keys = file_keys;
  fresh->public_keys.insert(fresh->public_keys.end(), fetched_keys.begin(), fetched_keys.end());
  jwt = std::move(fresh);
}

void Server::Impl::reload_on_sighup() {
  if (!reloads) reloads = std::make_unique<asio::signal_set>(main(), SIGHUP);
  reloads->async_wait([this](boost::system::error_code ec, int) {
    if (ec) return;  // cancelled: the server is stopping
    if (tls) {
      auto fresh = server_tls_context(options);
      if (fresh) {
        std::lock_guard lock(tls_mu);
        tls = std::make_shared<asio::ssl::context>(std::move(*fresh));
        spdlog::info("SIGHUP: TLS certificate {} loaded again{}", options.tls_cert,
                     options.tls_client_ca.empty() ? "" : ", and the client authorities");
      } else {
        spdlog::error("SIGHUP: {}; keeping the certificate loaded before", fresh.error().message);
      }
    }
    if (!options.jwt_public_key_files.empty()) {
      auto keys = auth::load_public_keys(options.jwt_public_key_files);
      if (keys) {
        spdlog::info("SIGHUP: {} JWT public keys loaded again", keys->size());
        replace_keys(&Impl::file_keys, std::move(*keys));
      } else {
        spdlog::error("SIGHUP: JWT public keys: {}; keeping the keys loaded before",
                      keys.error().message);
      }
    }
    reload_on_sighup();
  });
}

void Server::stop() {
  if (impl_->stopping.exchange(true)) return;
  asio::co_spawn(impl_->main(), impl_->shutdown(), asio::detached);
}

}  // namespace replayrail::server
