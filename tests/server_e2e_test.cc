// End-to-end tests of the real `replayrail serve` binary, started on a free loopback port, once
// per store (memory, local, and redis against a real redis-server).
#include <gtest/gtest.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/wait.h>

#include <algorithm>
#include <boost/asio/as_tuple.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/connect.hpp>
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
#include <boost/json/serialize.hpp>
#include <fstream>
#include <functional>
#include <iostream>
#include <map>
#include <memory>
#include <set>
#include <thread>

#include "replayrail/archive/pg.h"
#include "replayrail/auth/jwt.h"
#include "replayrail/auth/testing/jwks_server.h"
#include "replayrail/auth/testing/key_pair.h"
#include "replayrail/common/stream_id.h"
#include "replayrail/store/testing/temp_dir.h"
#include "support/child_process.h"
#include "support/http_exchange.h"
#include "support/postgres_server.h"
#include "support/redis_cluster.h"
#include "support/redis_sentinel.h"
#include "support/redis_server.h"

namespace replayrail {
namespace {

namespace asio = boost::asio;
namespace beast = boost::beast;
namespace http = beast::http;
namespace websocket = beast::websocket;
namespace json = boost::json;
using tcp = asio::ip::tcp;
using std::chrono_literals::operator""s;

// Seconds since the epoch, as a token's `exp` counts them.
std::int64_t unix_now() {
  return std::chrono::duration_cast<std::chrono::seconds>(
             std::chrono::system_clock::now().time_since_epoch())
      .count();
}

using Headers = std::vector<std::pair<std::string, std::string>>;

// The header that presents `token`.
Headers bearer(const std::string& token) { return {{"Authorization", "Bearer " + token}}; }

// The header of an HS256 token of `sub` with `role`, signed with `jwt`, good for 10 minutes.
Headers bearer(const auth::JwtConfig& jwt, const std::string& sub, auth::Role role) {
  const auto now = unix_now();
  return bearer(auth::mint({sub, role, {}, now + 600}, jwt, now));
}

constexpr auto kToken = asio::as_tuple(asio::use_awaitable);

struct HttpResult {
  unsigned status = 0;
  std::string body;
  std::map<std::string, std::string> headers;  // by lower-case name
  std::string header(const std::string& lower_name) const {
    auto it = headers.find(lower_name);
    return it == headers.end() ? "" : it->second;
  }
  json::value json() const { return json::parse(body); }
  std::string error_code() const { return json().at("error").at("code").as_string().c_str(); }
};

class ServerE2E : public ::testing::TestWithParam<std::string> {
 protected:
  void SetUp() override { start_server(); }

  // `extra`: flags with their values; one the tests set by default takes the value given here.
  // A server that exits at once is started again on another port, twice at most: a test running
  // alongside may have bound the free port picked meanwhile ("Address already in use").
  void start_server(std::vector<std::string> extra = {}) {
    for (int attempt = 1;; ++attempt) {
      auto line = start_server_once(extra);
      if (line && line->find("serving on") != std::string::npos) return;
      if (attempt < 3 && !line && server_->wait_for(std::chrono::seconds(5))) continue;
      FAIL() << "the server did not start: " << line.value_or("(no output)");
    }
  }

  // Starts the server; returns its first line (nullopt: it said nothing within 20 s, or ended).
  std::optional<std::string> start_server_once(const std::vector<std::string>& extra) {
    port_ = testing::free_port();
    std::vector<std::pair<std::string, std::string>> flags{
        {"--listen", "127.0.0.1:" + std::to_string(port_)},
        {"--store", GetParam()},
        {"--data-dir", (dir_.path() / "data").string()},
        {"--threads", "2"},
        {"--max-body-bytes", "8192"},
        {"--max-stream-length", "100000"}};
    std::vector<std::string> argv{RR_SERVER_BINARY, "serve"};
    for (auto& [flag, value] : flags) {
      auto given = std::find(extra.begin(), extra.end(), flag);
      if (given != extra.end() && given + 1 != extra.end()) continue;  // in `extra`
      argv.push_back(flag);
      argv.push_back(value);
    }
    if (GetParam() == "redis" && std::find(extra.begin(), extra.end(), "--redis") == extra.end()) {
      if (!redis_) redis_ = std::make_unique<testing::RedisServer>();
      argv.push_back("--redis");
      argv.push_back(redis_->url());
    }
    argv.insert(argv.end(), extra.begin(), extra.end());
    server_ = std::make_unique<testing::ChildProcess>(argv);
    return server_->read_line(std::chrono::seconds(20));
  }

  // Stops the server and starts it again with `extra` (as start_server).
  void restart_server(std::vector<std::string> extra) {
    server_->kill(SIGTERM);
    server_->wait();
    start_server(std::move(extra));
  }

  // SIGTERM: the server must exit with status 0 within `bound`.
  void expect_sigterm_exits_cleanly(std::chrono::seconds bound) {
    auto started = std::chrono::steady_clock::now();
    server_->kill(SIGTERM);
    auto status = server_->wait_for(bound);
    ASSERT_TRUE(status) << "still running " << bound.count() << " s after SIGTERM";
    EXPECT_LT(std::chrono::steady_clock::now() - started, bound);
    ASSERT_TRUE(WIFEXITED(*status));
    EXPECT_EQ(WEXITSTATUS(*status), 0);
  }

  HttpResult call(http::verb verb, const std::string& target, std::string body = {},
                  std::vector<std::pair<std::string, std::string>> headers = {}) {
    asio::io_context io;
    beast::tcp_stream stream(io);
    stream.connect(tcp::endpoint(asio::ip::make_address("127.0.0.1"), port_));
    auto res = testing::exchange(stream, verb, target, std::move(body), headers);
    HttpResult out{res.result_int(), res.body(), {}};
    for (const auto& field : res) {
      std::string name(field.name_string());
      std::transform(name.begin(), name.end(), name.begin(), ::tolower);
      out.headers[name] = std::string(field.value());
    }
    return out;
  }

  // The events a topic (or channel) retains, by its describe.
  std::int64_t topic_length(const std::string& topic) {
    auto r = call(http::verb::get, "/v1/topics/" + topic + "/describe");
    EXPECT_EQ(r.status, 200u) << r.body;
    return r.json().at("length").as_int64();
  }

  HttpResult publish(const std::string& channel, const std::string& body) {
    return call(http::verb::post, "/events/" + channel, body);
  }

  // Opens the SSE stream at `target` (a 200 text/event-stream) and reads it until `done` holds
  // for what came, for at most 10 s; returns what came.
  std::string read_sse(const std::string& target,
                       const std::function<bool(const std::string&)>& done,
                       std::vector<std::pair<std::string, std::string>> headers = {}) {
    asio::io_context io;
    beast::tcp_stream stream(io);
    stream.connect(tcp::endpoint(asio::ip::make_address("127.0.0.1"), port_));
    http::request<http::empty_body> req{http::verb::get, target, 11};
    for (auto& [k, v] : headers) req.set(k, v);
    http::write(stream, req);
    beast::flat_buffer buffer;
    http::response_parser<http::empty_body> head;
    http::read_header(stream, buffer, head);
    EXPECT_EQ(head.get().result_int(), 200u);
    EXPECT_EQ(head.get()[http::field::content_type], "text/event-stream");
    std::string text = beast::buffers_to_string(buffer.data());
    stream.expires_after(std::chrono::seconds(10));
    while (!done(text)) {
      char chunk[4096];
      text.append(chunk, stream.socket().read_some(asio::buffer(chunk)));
    }
    return text;
  }

  std::uint16_t port_ = 0;
  testing::TempDir dir_{"server-e2e"};
  std::unique_ptr<testing::RedisServer> redis_;
  std::unique_ptr<testing::ChildProcess> server_;
};

TEST_P(ServerE2E, PublishAndReplay) {
  auto first = publish("orders", R"({"type":"order.created","payload":{"n":1}})");
  ASSERT_EQ(first.status, 201u) << first.body;
  auto event = first.json().at("event");
  EXPECT_EQ(event.at("channel").as_string(), "orders");
  EXPECT_EQ(event.at("payload").at("n").as_int64(), 1);
  std::string id1 = event.at("id").as_string().c_str();
  ASSERT_EQ(publish("orders", R"({"type":"order.paid","payload":{"n":2},"event_id":"k-2"})").status,
            201u);
  auto again = publish("orders", R"({"type":"order.paid","payload":{"n":2},"event_id":"k-2"})");
  EXPECT_EQ(again.status, 200u) << "a retry with the same event_id is not stored twice";
  EXPECT_TRUE(again.json().at("duplicate").as_bool());
  auto conflict = publish("orders", R"({"type":"order.paid","payload":{"n":3},"event_id":"k-2"})");
  EXPECT_EQ(conflict.status, 409u);
  EXPECT_EQ(conflict.error_code(), "duplicate_conflict");

  auto page = call(http::verb::get, "/events/orders");
  ASSERT_EQ(page.status, 200u) << page.body;
  auto events = page.json().at("events").as_array();
  ASSERT_EQ(events.size(), 2u);
  EXPECT_EQ(events[0].at("id").as_string(), id1);
  EXPECT_EQ(page.json().at("next").as_string(), events[1].at("id").as_string());

  auto after = call(http::verb::get, "/events/orders?after=" + id1 + "&limit=5");
  ASSERT_EQ(after.status, 200u);
  EXPECT_EQ(after.json().at("events").as_array().size(), 1u);
  auto limited = call(http::verb::get, "/events/orders?limit=1");
  EXPECT_EQ(limited.json().at("events").as_array().size(), 1u);
  auto empty = call(http::verb::get, "/events/never-written");
  ASSERT_EQ(empty.status, 200u);
  EXPECT_TRUE(empty.json().at("events").as_array().empty());
  EXPECT_EQ(empty.json().at("next").as_string(), "0-0");

  // `$` replays nothing, and its `next` is the last id now: polling with it gets what follows.
  auto latest = call(http::verb::get, "/events/orders?after=$");
  ASSERT_EQ(latest.status, 200u) << latest.body;
  EXPECT_TRUE(latest.json().at("events").as_array().empty());
  EXPECT_EQ(latest.json().at("next").as_string(), events[1].at("id").as_string());
  auto third = publish("orders", R"({"type":"order.shipped","payload":{"n":3}})");
  ASSERT_EQ(third.status, 201u);
  auto polled = call(http::verb::get,
                     "/events/orders?after=" + std::string(latest.json().at("next").as_string()));
  auto news = polled.json().at("events").as_array();
  ASSERT_EQ(news.size(), 1u) << polled.body;
  EXPECT_EQ(news[0].at("id"), third.json().at("event").at("id"));
  EXPECT_EQ(call(http::verb::get, "/events/never-written?after=$").json().at("next").as_string(),
            "0-0");

  EXPECT_EQ(call(http::verb::get, "/healthz").status, 200u);
  EXPECT_EQ(call(http::verb::get, "/readyz").status, 200u);
}

// HEAD answers as GET would, without the body (RFC 9110), and the connection goes on: a body
// sent after the answer would be read as the start of the next one.
TEST_P(ServerE2E, HeadAnswersAsGetWithoutTheBody) {
  ASSERT_EQ(publish("orders", R"({"type":"order.created","payload":{"n":1}})").status, 201u);
  asio::io_context io;
  beast::tcp_stream stream(io);
  stream.connect(tcp::endpoint(asio::ip::make_address("127.0.0.1"), port_));
  beast::flat_buffer buffer;  // one for the connection: what follows an answer stays in it
  auto ask = [&](http::verb verb, const std::string& target) {
    http::request<http::empty_body> req{verb, target, 11};
    req.set(http::field::host, "127.0.0.1");
    http::write(stream, req);
    http::response_parser<http::string_body> parser;
    parser.skip(verb == http::verb::head);
    http::read(stream, buffer, parser);
    return parser.release();
  };
  for (const char* target : {"/healthz", "/events/orders?after=0-0", "/ui/"}) {
    auto head = ask(http::verb::head, target);
    auto get = ask(http::verb::get, target);
    EXPECT_EQ(head.result_int(), 200u) << target;
    EXPECT_EQ(get.result_int(), 200u) << target;
    EXPECT_EQ(head[http::field::content_length], std::to_string(get.body().size())) << target;
    EXPECT_EQ(head[http::field::content_type], get[http::field::content_type]) << target;
    EXPECT_TRUE(head.body().empty()) << target;
  }
  auto sse = ask(http::verb::head, "/sse/orders");
  EXPECT_EQ(sse.result_int(), 405u);
  EXPECT_EQ(sse[http::field::allow], "GET");
  auto post = call(http::verb::post, "/healthz");
  EXPECT_EQ(post.status, 405u);
  EXPECT_EQ(post.headers["allow"], "GET, HEAD");
  EXPECT_EQ(call(http::verb::post, "/sse/orders").status, 405u);
}

TEST_P(ServerE2E, BadInputGetsAClearErrorAndStoresNothing) {
  struct Case {
    http::verb verb;
    std::string target, body;
    unsigned status;
    std::string code;
  };
  std::vector<Case> cases{
      {http::verb::post, "/events/c", "{not json", 400, "invalid_json"},
      {http::verb::post, "/events/c", R"({"payload":{}})", 400, "invalid_event_type"},
      {http::verb::post, "/events/c", R"({"type":"t","payload":[1]})", 400, "invalid_payload"},
      {http::verb::post, "/events/c", R"({"type":"t","colour":"red"})", 400, "invalid_argument"},
      // Readers would get infinity; Boost.JSON alone stored it as `Infinity`, which is not JSON.
      {http::verb::post, "/events/c", R"({"type":"t","payload":{"e":1e400}})", 400, "invalid_json"},
      {http::verb::post, "/v1/topics/c/events",
       R"({"events":[{"type":"t","payload":{"e":-2e308}}]})", 400, "invalid_json"},
      {http::verb::post, "/events/bad%20channel", R"({"type":"t"})", 400, "invalid_channel"},
      {http::verb::post, "/events/c",
       R"({"type":"t","payload":{"x":")" + std::string(9000, 'x') + "\"}}", 413,
       "payload_too_large"},
      {http::verb::get, "/events/c?after=yesterday", "", 400, "invalid_cursor"},
      {http::verb::get, "/events/c?after=1-2-3", "", 400, "invalid_cursor"},
      {http::verb::get, "/events/c?limit=0", "", 400, "invalid_argument"},
      {http::verb::get, "/events/c?limit=lots", "", 400, "invalid_argument"},
      {http::verb::get, "/nowhere", "", 404, "not_found"},
      {http::verb::delete_, "/events/c", "", 405, "method_not_allowed"},
      {http::verb::get, "/ws/c", "", 400, "invalid_argument"},  // no upgrade
      {http::verb::get, "/sse/c?last_event_id=nope", "", 400, "invalid_cursor"},
  };
  for (const auto& c : cases) {
    auto r = call(c.verb, c.target, c.body);
    EXPECT_EQ(r.status, c.status) << c.target << " " << c.body.substr(0, 40) << ": " << r.body;
    EXPECT_EQ(r.error_code(), c.code) << c.target << ": " << r.body;
  }
  auto page = call(http::verb::get, "/events/c");
  EXPECT_TRUE(page.json().at("events").as_array().empty()) << "nothing was half-written";

  // Malformed HTTP itself.
  asio::io_context io;
  tcp::socket s(io);
  s.connect(tcp::endpoint(asio::ip::make_address("127.0.0.1"), port_));
  asio::write(s, asio::buffer(std::string("NONSENSE\r\n\r\n")));
  std::string reply(256, '\0');
  boost::system::error_code ec;
  reply.resize(s.read_some(asio::buffer(reply), ec));
  EXPECT_TRUE(reply.starts_with("HTTP/1.1 400")) << reply;
}

// A WebSocket subscriber as a coroutine: collects envelopes until `want` arrived.
struct Received {
  std::vector<json::value> events;
  unsigned short close_code = 0;
};

asio::awaitable<void> subscribe(std::uint16_t port, std::string target, std::size_t want,
                                Received& out) {
  auto ex = co_await asio::this_coro::executor;
  websocket::stream<beast::tcp_stream> ws(ex);
  co_await ws.next_layer().async_connect(tcp::endpoint(asio::ip::make_address("127.0.0.1"), port),
                                         asio::use_awaitable);
  co_await ws.async_handshake("127.0.0.1", target, asio::use_awaitable);
  beast::flat_buffer buffer;
  while (out.events.size() < want) {
    auto [ec, n] = co_await ws.async_read(buffer, kToken);
    if (ec) {
      out.close_code = ws.reason().code;
      co_return;
    }
    out.events.push_back(json::parse(beast::buffers_to_string(buffer.data())));
    buffer.clear();
  }
  co_await ws.async_close(websocket::close_code::normal, kToken);
}

std::vector<std::string> ids(const Received& r) {
  std::vector<std::string> out;
  for (const auto& e : r.events) out.push_back(e.at("id").as_string().c_str());
  return out;
}

TEST_P(ServerE2E, WebSocketReplaysFromACursorThenFollowsLive) {
  std::vector<std::string> published;
  for (int i = 0; i < 5; ++i) {
    auto r = publish("feed", R"({"type":"t","payload":{"n":)" + std::to_string(i) + "}}");
    published.push_back(r.json().at("event").at("id").as_string().c_str());
  }
  asio::io_context io;
  Received all, mid, latest, bad;
  asio::co_spawn(io, subscribe(port_, "/ws/feed?last_event_id=0-0", 7, all), asio::detached);
  asio::co_spawn(io, subscribe(port_, "/ws/feed?last_event_id=" + published[2], 4, mid),
                 asio::detached);
  asio::co_spawn(io, subscribe(port_, "/ws/feed", 2, latest), asio::detached);
  asio::co_spawn(io, subscribe(port_, "/ws/feed?last_event_id=garbage", 1, bad), asio::detached);
  std::thread runner([&] { io.run(); });
  std::this_thread::sleep_for(std::chrono::milliseconds(500));  // subscribers are in place
  for (int i = 5; i < 7; ++i) {
    auto r = publish("feed", R"({"type":"t","payload":{"n":)" + std::to_string(i) + "}}");
    published.push_back(r.json().at("event").at("id").as_string().c_str());
  }
  runner.join();
  EXPECT_EQ(ids(all), published) << "replay from 0-0, then live, no gap, no duplicate";
  EXPECT_EQ(ids(mid), std::vector<std::string>(published.begin() + 3, published.end()));
  EXPECT_EQ(ids(latest), std::vector<std::string>(published.begin() + 5, published.end()))
      << "no cursor: the default start position is latest";
  EXPECT_TRUE(bad.events.empty());
  EXPECT_EQ(bad.close_code, 4400);
}

// A channel may hold '/': under /events, /ws and /sse its slashes may be written as such or
// as %2F.
TEST_P(ServerE2E, ChannelsWithSlashesWorkWithOrWithoutEncoding) {
  auto plain = publish("tenant/1/orders", R"({"type":"t"})");
  ASSERT_EQ(plain.status, 201u) << plain.body;
  EXPECT_EQ(plain.json().at("event").at("channel").as_string(), "tenant/1/orders");
  ASSERT_EQ(publish("tenant%2F1%2Forders", R"({"type":"t"})").status, 201u);
  for (const auto* target : {"/events/tenant/1/orders", "/events/tenant%2F1%2Forders"}) {
    auto page = call(http::verb::get, target);
    ASSERT_EQ(page.status, 200u) << page.body;
    EXPECT_EQ(page.json().at("events").as_array().size(), 2u) << target;
  }
  asio::io_context io;
  Received ws;
  asio::co_spawn(io, subscribe(port_, "/ws/tenant/1/orders?last_event_id=0-0", 2, ws),
                 asio::detached);
  io.run();
  EXPECT_EQ(ws.events.size(), 2u);
  auto ids_in = [](const std::string& t) {
    std::size_t n = 0;
    for (auto at = t.find("id: "); at != std::string::npos; at = t.find("id: ", at + 1)) ++n;
    return n;
  };
  std::string text = read_sse("/sse/tenant/1/orders?last_event_id=0-0",
                              [&](const std::string& t) { return ids_in(t) >= 2; });
  EXPECT_NE(text.find(plain.json().at("event").at("id").as_string().c_str()), std::string::npos);
}

TEST_P(ServerE2E, SseResumesFromLastEventId) {
  std::vector<std::string> published;
  for (int i = 0; i < 3; ++i) {
    auto r = publish("news", R"({"type":"t","payload":{"n":)" + std::to_string(i) + "}}");
    published.push_back(r.json().at("event").at("id").as_string().c_str());
  }
  std::string text = read_sse(
      "/sse/news",
      [&](const std::string& t) { return t.find("id: " + published[2]) != std::string::npos; },
      {{"Last-Event-ID", published[0]}});
  EXPECT_EQ(text.find("id: " + published[0]), std::string::npos) << "strictly after the cursor";
  EXPECT_LT(text.find("id: " + published[1]), text.find("id: " + published[2]));
}

// A cursor older than retained history is refused before the stream starts: SSE answers 410,
// after which a browser's EventSource stops (a 200 with an error event in the stream would have
// it reconnect with the same cursor every second); the WebSocket closes with 4410.
TEST_P(ServerE2E, AnExpiredCursorIsRefusedBeforeTheStreamStarts) {
  restart_server({"--max-stream-length", "2"});
  std::vector<std::string> ids;
  for (int i = 0; i < 4; ++i) {
    ids.push_back(
        publish("short", R"({"type":"t"})").json().at("event").at("id").as_string().c_str());
  }
  auto sse = call(http::verb::get, "/sse/short?last_event_id=" + ids[0]);
  EXPECT_EQ(sse.status, 410u) << sse.body;
  EXPECT_EQ(sse.error_code(), "replay_window_expired");
  EXPECT_EQ(sse.json().at("error").at("first_available").as_string(), ids[2]);
  asio::io_context io;
  Received ws;
  asio::co_spawn(io, subscribe(port_, "/ws/short?last_event_id=" + ids[0], 1, ws), asio::detached);
  io.run();
  EXPECT_TRUE(ws.events.empty());
  EXPECT_EQ(ws.close_code, 4410);
}

// --approximate-trim is Redis' MAXLEN ~: on Redis a stream is trimmed only once 100 are in
// excess; the local and memory stores trim exactly either way. Publishes and topic ingests both
// follow it, and the trimmed edge stays exact.
TEST_P(ServerE2E, ApproximateTrimLeavesUpTo100MoreOnRedis) {
  restart_server({"--max-stream-length", "50", "--approximate-trim"});
  const bool redis = GetParam() == "redis";
  std::string batch = R"({"events":[)";
  for (int i = 0; i < 60; ++i) batch += std::string(i ? "," : "") + R"({"type":"t"})";
  batch += "]}";
  std::vector<std::string> ids;
  for (int i = 0; i < 60; ++i) {
    auto r = publish("loose", R"({"type":"t"})");
    ASSERT_EQ(r.status, 201u) << r.body;
    ids.push_back(r.json().at("event").at("id").as_string().c_str());
  }
  ASSERT_EQ(call(http::verb::post, "/v1/topics/ingested/events", batch).status, 201u);
  EXPECT_EQ(topic_length("loose"), redis ? 60 : 50) << "10 in excess: less than the slack";
  EXPECT_EQ(topic_length("ingested"), redis ? 60 : 50);

  for (int i = 0; i < 200; ++i) {
    auto r = publish("loose", R"({"type":"t"})");
    ASSERT_EQ(r.status, 201u) << r.body;
    ids.push_back(r.json().at("event").at("id").as_string().c_str());
  }
  // A trim of MAXLEN ~ is not waited for.
  std::int64_t kept = 0;
  for (int tries = 0; tries < 200 && (kept = topic_length("loose")) >= 150; ++tries) {
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  EXPECT_GE(kept, 50);
  EXPECT_LT(kept, redis ? 150 : 51);
  const auto first = ids.size() - static_cast<std::size_t>(kept);
  auto from_edge = call(http::verb::get, "/events/loose?after=" + ids[first - 1] + "&limit=1");
  ASSERT_EQ(from_edge.status, 200u) << from_edge.body;
  EXPECT_EQ(from_edge.json().at("events").at(0).at("id").as_string(), ids[first]);
  auto expired = call(http::verb::get, "/events/loose?after=" + ids[first - 2] + "&limit=1");
  EXPECT_EQ(expired.status, 410u) << expired.body;
}

// --max-stream-age: what is older goes, from every stream, also from those nobody publishes to
// any more (a pass in the background, as JetStream's MaxAge); a cursor into it is then 410, as
// one into what --max-stream-length trimmed, and the stream goes on.
TEST_P(ServerE2E, MaxStreamAgeRemovesOldEventsAlsoFromIdleStreams) {
  restart_server({"--max-stream-age", "1s"});
  auto first = publish("aging", R"({"type":"t"})");
  ASSERT_EQ(first.status, 201u) << first.body;
  const std::string first_id = first.json().at("event").at("id").as_string().c_str();
  auto second = publish("aging", R"({"type":"t"})");
  ASSERT_EQ(second.status, 201u) << second.body;
  ASSERT_EQ(call(http::verb::post, "/v1/topics/aged/events",
                 R"({"partitions":2,"events":[{"type":"a"},{"type":"b"},{"type":"c"}]})")
                .status,
            201u);
  // A second of age, then a pass (one a second): gone within a few seconds, and so is the audit
  // trail's record of the ingest that made "aged".
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(15);
  while ((topic_length("aging") > 0 || topic_length("aged") > 0 ||
          topic_length("replayrail.audit") > 0) &&
         std::chrono::steady_clock::now() < deadline) {
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
  }
  EXPECT_EQ(topic_length("aging"), 0);
  EXPECT_EQ(topic_length("aged"), 0);
  EXPECT_EQ(topic_length("replayrail.audit"), 0);
  auto described = call(http::verb::get, "/v1/topics/aging/describe").json();
  EXPECT_EQ(described.at("streams").at(0).at("trimmed_through"), second.json().at("event").at("id"))
      << "the last event removed: a cursor there resumes";

  auto expired = call(http::verb::get, "/events/aging?after=" + first_id);
  EXPECT_EQ(expired.status, 410u) << expired.body;
  EXPECT_EQ(expired.error_code(), "replay_window_expired");
  const std::string second_id = second.json().at("event").at("id").as_string().c_str();
  EXPECT_EQ(call(http::verb::get, "/events/aging?after=" + second_id).status, 200u);
  auto later = publish("aging", R"({"type":"t"})");
  ASSERT_EQ(later.status, 201u) << later.body;
  auto page = call(http::verb::get, "/events/aging?after=0-0");
  ASSERT_EQ(page.status, 200u) << page.body;
  const auto events = page.json().at("events").as_array();
  ASSERT_EQ(events.size(), 1u) << "a new event is kept";
  EXPECT_EQ(events[0].at("id"), later.json().at("event").at("id"));

  const auto metrics = call(http::verb::get, "/metrics").body;
  EXPECT_NE(metrics.find("replayrail_expired_events_total 6\n"), std::string::npos) << metrics;
  EXPECT_NE(metrics.find("replayrail_expiry_failures_total 0\n"), std::string::npos);
}

// Nodes sharing a Redis take turns at the retention pass (a lease held for one interval): one
// pass a second between two nodes with a 1 s age, where each would run one a second alone.
TEST_P(ServerE2E, NodesOnOneRedisTakeTurnsAtTheRetentionPass) {
  if (GetParam() != "redis") GTEST_SKIP() << "the memory and local stores belong to one process";
  restart_server({"--max-stream-age", "1s"});
  const auto other_port = testing::free_port();
  testing::ChildProcess other({RR_SERVER_BINARY, "serve", "--store", "redis", "--redis",
                               redis_->url(), "--listen", "127.0.0.1:" + std::to_string(other_port),
                               "--max-stream-age", "1s"});
  auto line = other.read_line(std::chrono::seconds(20));
  ASSERT_TRUE(line && line->find("serving on") != std::string::npos) << line.value_or("");
  auto passes = [&] {
    double sum = 0;
    for (auto port : {port_, other_port}) {
      asio::io_context io;
      beast::tcp_stream stream(io);
      stream.connect(tcp::endpoint(asio::ip::make_address("127.0.0.1"), port));
      const std::string text =
          testing::exchange(stream, http::verb::get, "/metrics", {}, {}).body();
      const std::string name = "replayrail_expiry_passes_total ";
      auto at = text.find("\n" + name);
      EXPECT_NE(at, std::string::npos) << text;
      if (at != std::string::npos) sum += std::stod(text.substr(at + 1 + name.size()));
    }
    return sum;
  };
  const double before = passes();
  std::this_thread::sleep_for(std::chrono::seconds(4));
  const double during = passes() - before;
  EXPECT_GE(during, 2) << "the pass still runs";
  EXPECT_LE(during, 6) << "about one a second between the two nodes, not one each";
  other.kill(SIGTERM);
  other.wait();
}

// PUT /v1/topics/{t}: a topic's own retention (Kafka's per-topic retention.ms, JetStream's
// per-stream MaxMsgs and MaxAge), by length and by age, with no server-wide age set.
TEST_P(ServerE2E, ATopicKeepsARetentionOfItsOwn) {
  auto made = call(http::verb::put, "/v1/topics/orders", R"({"partitions":2,"max_length":3})");
  ASSERT_EQ(made.status, 201u) << made.body;
  auto answer = made.json();
  EXPECT_EQ(answer.at("partitions").as_int64(), 2);
  const auto& retention = answer.at("retention");
  EXPECT_EQ(retention.at("max_length").at("value").as_int64(), 3);
  EXPECT_EQ(retention.at("max_length").at("source"), "topic");
  EXPECT_EQ(retention.at("max_age_ms").at("value").as_int64(), 0);
  EXPECT_EQ(retention.at("max_age_ms").at("source"), "server");
  std::string ten = R"({"events":[)";
  for (int i = 0; i < 10; ++i) ten += std::string(i ? "," : "") + R"({"type":"t"})";
  ten += "]}";
  ASSERT_EQ(call(http::verb::post, "/v1/topics/orders/events", ten).status, 201u);
  EXPECT_EQ(topic_length("orders"), 6) << "3 in each partition";
  for (int i = 0; i < 4; ++i) {
    ASSERT_EQ(publish("orders", R"({"type":"t","partition_key":"k"})").status, 201u);
  }
  EXPECT_EQ(topic_length("orders"), 6) << "POST /events keeps to it too";

  // PUT again: the whole retention is replaced (an absent field is the server's again).
  auto again = call(http::verb::put, "/v1/topics/orders", R"({"max_length":5})");
  ASSERT_EQ(again.status, 200u) << again.body;
  ASSERT_EQ(call(http::verb::post, "/v1/topics/orders/events", ten).status, 201u);
  EXPECT_EQ(topic_length("orders"), 10);
  auto described = call(http::verb::get, "/v1/topics/orders/describe").json();
  EXPECT_EQ(described.at("retention").at("max_length").at("value").as_int64(), 5);

  // A channel is a topic of one partition: its publishes keep to its own limit.
  for (int i = 0; i < 4; ++i) ASSERT_EQ(publish("feed", R"({"type":"t"})").status, 201u);
  ASSERT_EQ(call(http::verb::put, "/v1/topics/feed", R"({"max_length":2})").status, 200u);
  ASSERT_EQ(publish("feed", R"({"type":"t"})").status, 201u);
  EXPECT_EQ(topic_length("feed"), 2);

  // By age, with no --max-stream-age: the server finds topics given one and expires them.
  ASSERT_EQ(
      call(http::verb::put, "/v1/topics/aged", R"({"partitions":2,"max_age_ms":1000})").status,
      201u);
  ASSERT_EQ(call(http::verb::post, "/v1/topics/aged/events", ten).status, 201u);
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(20);
  while (topic_length("aged") > 0 && std::chrono::steady_clock::now() < deadline) {
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
  }
  EXPECT_EQ(topic_length("aged"), 0);
  EXPECT_EQ(topic_length("orders"), 10) << "no age of its own, none on the server";
  const auto metrics = call(http::verb::get, "/metrics").body;
  EXPECT_NE(metrics.find("replayrail_expired_events_total 10\n"), std::string::npos) << metrics;

  // Listed with the others, each with its retention.
  auto listed = call(http::verb::get, "/v1/topics");
  ASSERT_EQ(listed.status, 200u) << listed.body;
  std::map<std::string, json::value> by_name;
  const auto listed_doc = listed.json();
  for (const auto& t : listed_doc.at("topics").as_array()) {
    by_name[std::string(t.at("topic").as_string())] = t;
  }
  // orders, feed, aged, and the audit trail their configuration was recorded in
  ASSERT_EQ(by_name.size(), 4u) << listed.body;
  EXPECT_EQ(by_name["replayrail.audit"].at("partitions").as_int64(), 1);
  EXPECT_EQ(by_name["orders"].at("partitions").as_int64(), 2);
  EXPECT_EQ(by_name["feed"].at("retention").at("max_length").at("value").as_int64(), 2);
  EXPECT_EQ(by_name["aged"].at("retention").at("max_age_ms").at("source"), "topic");
  EXPECT_EQ(call(http::verb::post, "/v1/topics").status, 405u);

  // Bad requests change nothing.
  auto refused = [&](std::string target, std::string body, unsigned status, std::string code) {
    auto r = call(http::verb::put, target, std::move(body));
    EXPECT_EQ(r.status, status) << target << " " << r.body;
    EXPECT_EQ(r.error_code(), code) << r.body;
  };
  refused("/v1/topics/orders", R"({"partitions":4})", 409, "topic_conflict");
  refused("/v1/topics/orders", R"({"max_length":-1})", 400, "invalid_argument");
  refused("/v1/topics/orders", R"({"max_age_ms":"7d"})", 400, "invalid_argument");
  refused("/v1/topics/orders", R"({"max_age_ms":1e30})", 400, "invalid_argument");
  refused("/v1/topics/orders", R"({"retention_ms":1})", 400, "invalid_argument");
  refused("/v1/topics/fresh", R"({"partitions":0})", 400, "invalid_argument");
  refused("/v1/topics/fresh", "{", 400, "invalid_json");
  EXPECT_EQ(call(http::verb::get, "/v1/topics/orders").status, 405u);
  EXPECT_EQ(call(http::verb::get, "/v1/topics/fresh/describe").status, 404u) << "not created";
  described = call(http::verb::get, "/v1/topics/orders/describe").json();
  EXPECT_EQ(described.at("partitions").as_int64(), 2);
  EXPECT_EQ(described.at("retention").at("max_length").at("value").as_int64(), 5);
}

// POST /v1/topics/{t}/purge (JetStream's purge, Kafka's DeleteRecords): events go as retention
// removes them; the topic, its partitions, groups and ids stay.
TEST_P(ServerE2E, PurgeRemovesEventsAndKeepsTheTopicItsGroupsAndItsIds) {
  ASSERT_EQ(
      call(http::verb::post, "/v1/topics/orders/events",
           R"({"partitions":2,"events":[{"type":"a"},{"type":"b"},{"type":"c"},{"type":"d"}]})")
          .status,
      201u);
  ASSERT_EQ(call(http::verb::post, "/v1/topics/orders/groups", R"({"group":"g","start_id":"0-0"})")
                .status,
            201u);
  auto read =
      call(http::verb::post, "/v1/topics/orders/groups/g/read", R"({"consumer":"c","count":1})");
  ASSERT_EQ(read.json().at("messages").as_array().size(), 2u) << read.body;  // one a partition

  auto purged = call(http::verb::post, "/v1/topics/orders/purge");
  ASSERT_EQ(purged.status, 200u) << purged.body;
  auto answer = purged.json();
  EXPECT_EQ(answer.at("topic"), "orders");
  EXPECT_EQ(answer.at("purged").as_int64(), 4);
  ASSERT_EQ(answer.at("results").as_array().size(), 2u);
  EXPECT_EQ(answer.at("results").at(0).at("purged").as_int64(), 2);
  EXPECT_EQ(answer.at("results").at(1).at("purged").as_int64(), 2);
  EXPECT_EQ(topic_length("orders"), 0);
  auto described = call(http::verb::get, "/v1/topics/orders/describe").json();
  EXPECT_EQ(described.at("partitions").as_int64(), 2);
  ASSERT_EQ(described.at("groups").as_array().size(), 1u) << "the group stays";
  EXPECT_EQ(described.at("groups").at(0).at("lag").as_int64(), 0);
  const auto edge = described.at("streams").at(0).at("trimmed_through");
  EXPECT_NE(edge, "0-0");

  // Ids go on past the purged ones; the group reads what comes next.
  ASSERT_EQ(
      call(http::verb::post, "/v1/topics/orders/events", R"({"events":[{"type":"e"}]})").status,
      201u);
  read = call(http::verb::post, "/v1/topics/orders/groups/g/read", R"({"consumer":"c"})");
  ASSERT_EQ(read.json().at("messages").as_array().size(), 1u) << read.body;
  EXPECT_EQ(read.json().at("messages").at(0).at("event").at("type"), "e");

  // A channel, up to an id: what is older goes, a cursor into it is 410, a later one resumes.
  std::vector<std::string> ids;
  for (int i = 0; i < 3; ++i) {
    auto r = publish("feed", R"({"type":"t"})");
    ASSERT_EQ(r.status, 201u) << r.body;
    ids.emplace_back(r.json().at("event").at("id").as_string().c_str());
  }
  purged = call(http::verb::post, "/v1/topics/feed/purge", R"({"before":")" + ids[2] + "\"}");
  ASSERT_EQ(purged.status, 200u) << purged.body;
  EXPECT_EQ(purged.json().at("purged").as_int64(), 2);
  EXPECT_EQ(purged.json().at("before").as_string(), ids[2]);
  auto page = call(http::verb::get, "/events/feed?after=0-0");
  ASSERT_EQ(page.json().at("events").as_array().size(), 1u) << page.body;
  EXPECT_EQ(page.json().at("events").at(0).at("id").as_string(), ids[2]);
  EXPECT_EQ(call(http::verb::get, "/events/feed?after=" + ids[0]).status, 410u);
  EXPECT_EQ(call(http::verb::get, "/events/feed?after=" + ids[1]).status, 200u);
  EXPECT_EQ(call(http::verb::post, "/v1/topics/feed/purge", R"({"before":")" + ids[2] + "\"}")
                .json()
                .at("purged")
                .as_int64(),
            0)
      << "purging again removes nothing";

  // Bad requests change nothing.
  auto refused = [&](std::string target, std::string body, unsigned status, std::string code) {
    auto r = call(http::verb::post, target, std::move(body));
    EXPECT_EQ(r.status, status) << target << " " << r.body;
    EXPECT_EQ(r.error_code(), code) << r.body;
  };
  refused("/v1/topics/feed/purge", R"({"before":"yesterday"})", 400, "invalid_cursor");
  refused("/v1/topics/feed/purge", R"({"before":5})", 400, "invalid_cursor");
  refused("/v1/topics/orders/purge", R"({"partitions":[2]})", 400, "invalid_argument");
  refused("/v1/topics/feed/purge", R"({"keep":10})", 400, "invalid_argument");
  refused("/v1/topics/feed/purge", "[", 400, "invalid_json");
  refused("/v1/topics/nothing/purge", "", 404, "stream_not_found");
  EXPECT_EQ(call(http::verb::get, "/v1/topics/feed/purge").status, 405u);
  EXPECT_EQ(topic_length("feed"), 1);
  EXPECT_EQ(topic_length("orders"), 1);
}

// DESIGN §2: a publish to a partitioned topic goes to the partition its partition_key picks;
// a plain channel is a topic of one partition, so consumer groups work on it too.
TEST_P(ServerE2E, PublishToAPartitionedTopicGoesToThePartitionItsKeyPicks) {
  ASSERT_EQ(call(http::verb::post, "/v1/topics/orders/events",
                 R"({"partitions":4,"events":[{"type":"first"}]})")
                .status,
            201u);
  std::set<std::int64_t> partitions;
  for (int i = 0; i < 3; ++i) {
    auto r = publish("orders", R"({"type":"o","payload":{"n":1},"partition_key":"cust-7"})");
    ASSERT_EQ(r.status, 201u) << r.body;
    EXPECT_EQ(r.json().at("event").at("channel").as_string(), "orders");
    partitions.insert(r.json().at("partition").as_int64());
  }
  ASSERT_EQ(partitions.size(), 1u) << "one key, one partition";
  auto ingested = call(http::verb::post, "/v1/topics/orders/events",
                       R"({"events":[{"type":"o","partition_key":"cust-7"}]})");
  EXPECT_EQ(ingested.json().at("results").at(0).at("partition").as_int64(), *partitions.begin())
      << "the same partition as an ingest with that key";

  ASSERT_EQ(call(http::verb::post, "/v1/topics/orders/groups", R"({"group":"g","start_id":"0-0"})")
                .status,
            201u);
  auto read =
      call(http::verb::post, "/v1/topics/orders/groups/g/read", R"({"consumer":"c","count":100})");
  ASSERT_EQ(read.status, 200u) << read.body;
  int published = 0;
  const auto answer = read.json();
  for (const auto& m : answer.at("messages").as_array()) {
    if (m.at("event").at("type").as_string() != "o") continue;
    ++published;
    EXPECT_EQ(m.at("partition").as_int64(), *partitions.begin());
  }
  EXPECT_EQ(published, 4) << "every publish reached the topic's consumer group";

  // A partitioned topic is not one stream: reading it as a channel says so.
  auto page = call(http::verb::get, "/events/orders?after=0-0");
  EXPECT_EQ(page.status, 400u) << page.body;
  EXPECT_EQ(page.error_code(), "invalid_channel");
  EXPECT_NE(page.body.find("consumer group"), std::string::npos) << page.body;
  auto sse = call(http::verb::get, "/sse/orders");
  EXPECT_EQ(sse.status, 400u) << sse.body;

  // A plain channel: groups on it read what was published to it.
  ASSERT_EQ(publish("plain", R"({"type":"p"})").status, 201u);
  ASSERT_EQ(
      call(http::verb::post, "/v1/topics/plain/groups", R"({"group":"g","start_id":"0-0"})").status,
      201u);
  auto plain = call(http::verb::post, "/v1/topics/plain/groups/g/read", R"({"consumer":"c"})");
  ASSERT_EQ(plain.json().at("messages").as_array().size(), 1u) << plain.body;
  auto wider = call(http::verb::post, "/v1/topics/plain/events",
                    R"({"partitions":4,"events":[{"type":"p"}]})");
  EXPECT_EQ(wider.status, 409u) << wider.body;
  EXPECT_EQ(call(http::verb::get, "/events/plain?after=0-0").json().at("events").as_array().size(),
            1u)
      << "the refused ingest wrote nothing";
}

// An event another producer wrote into the shared Redis with line breaks in its payload (as
// Python's json.dumps(..., indent=2) writes it) reaches an SSE reader whole, one `data:` line
// per line; a raw line break inside `data:` would cut the event short.
TEST_P(ServerE2E, SseCarriesAnEventWrittenWithLineBreaks) {
  if (GetParam() != "redis") GTEST_SKIP() << "only a shared Redis holds what others wrote";
  testing::ChildProcess cli({"/usr/bin/redis-cli",
                             "-p",
                             std::to_string(redis_->port()),
                             "XADD",
                             "rr:lines",
                             "*",
                             "event_id",
                             "e-1",
                             "channel",
                             "lines",
                             "type",
                             "t",
                             "payload",
                             "{\n  \"a\": 1,\r\n  \"b\": [2]\n}",
                             "actor",
                             "null",
                             "metadata",
                             "{}",
                             "created_at",
                             "2026-06-29T12:00:00Z"});
  auto id = cli.read_line(10s);
  ASSERT_TRUE(id && StreamId::parse(*id)) << id.value_or("(redis-cli said nothing)");
  cli.wait();

  std::string text = read_sse("/sse/lines?last_event_id=0-0", [&](const std::string& t) {
    auto at = t.find("id: " + *id + "\n");
    return at != t.npos && t.find("\n\n", at) != t.npos;
  });
  auto start = text.find("id: " + *id + "\n");
  // The event's fields, as EventSource reads them: data lines joined with "\n".
  std::string block = text.substr(start, text.find("\n\n", start) - start), data;
  for (std::size_t at = 0; at < block.size();) {
    auto end = std::min(block.find('\n', at), block.size());
    std::string line = block.substr(at, end - at);
    ASSERT_TRUE(line.starts_with("id: ") || line.starts_with("data: ")) << block;
    if (line.starts_with("data: ")) data += (data.empty() ? "" : "\n") + line.substr(6);
    at = end + 1;
  }
  auto event = json::parse(data).as_object();
  EXPECT_EQ(event.at("id").as_string(), *id);
  EXPECT_EQ(event.at("payload").at("a").as_int64(), 1);
  EXPECT_EQ(event.at("payload").at("b").at(0).as_int64(), 2);
}

// 200 subscribers while 4 publishers publish 5,000 events: each subscriber gets every event
// once, in order; a fifth of them disconnect midway and resume from their last cursor.
TEST_P(ServerE2E, ManySubscribersGetEveryEventExactlyOnceInOrder) {
  constexpr int kSubscribers = 200, kPublishers = 4, kPerPublisher = 1250;
  constexpr std::size_t kTotal = kPublishers * kPerPublisher;
  asio::io_context io;
  std::vector<Received> got(kSubscribers);
  for (int i = 0; i < kSubscribers; ++i) {
    asio::co_spawn(
        io,
        [](std::uint16_t port, Received& out, bool reconnects) -> asio::awaitable<void> {
          std::size_t first_part = reconnects ? kTotal / 3 : kTotal;
          co_await subscribe(port, "/ws/fan?last_event_id=0-0", first_part, out);
          if (reconnects) {
            std::string cursor = out.events.back().at("id").as_string().c_str();
            Received rest;
            co_await subscribe(port, "/ws/fan?last_event_id=" + cursor, kTotal - first_part, rest);
            for (auto& e : rest.events) out.events.push_back(std::move(e));
          }
        }(port_, got[i], i % 5 == 0),
        asio::detached);
  }
  for (int p = 0; p < kPublishers; ++p) {
    asio::co_spawn(
        io,
        [](std::uint16_t port, int p) -> asio::awaitable<void> {
          auto ex = co_await asio::this_coro::executor;
          beast::tcp_stream stream(ex);
          co_await stream.async_connect(tcp::endpoint(asio::ip::make_address("127.0.0.1"), port),
                                        asio::use_awaitable);
          beast::flat_buffer buffer;
          for (int i = 0; i < kPerPublisher; ++i) {
            http::request<http::string_body> req{http::verb::post, "/events/fan", 11};
            req.set(http::field::host, "127.0.0.1");
            req.body() = R"({"type":"t","payload":{"p":)" + std::to_string(p) + R"(,"i":)" +
                         std::to_string(i) + "}}";
            req.prepare_payload();
            co_await http::async_write(stream, req, asio::use_awaitable);
            http::response<http::string_body> res;
            co_await http::async_read(stream, buffer, res, asio::use_awaitable);
            if (res.result_int() != 201) throw std::runtime_error(res.body());
          }
        }(port_, p),
        asio::detached);
  }
  io.run_for(std::chrono::seconds(120));
  for (int i = 0; i < kSubscribers; ++i) {
    ASSERT_EQ(got[i].events.size(), kTotal) << "subscriber " << i;
    std::set<std::pair<std::int64_t, std::int64_t>> seen;
    std::vector<std::int64_t> next(kPublishers, 0);
    for (const auto& e : got[i].events) {
      auto p = e.at("payload").at("p").as_int64(), n = e.at("payload").at("i").as_int64();
      ASSERT_TRUE(seen.insert({p, n}).second) << "duplicate at subscriber " << i;
      ASSERT_EQ(n, next[p]++) << "publisher " << p << "'s events out of order at subscriber " << i;
    }
    auto order = ids(got[i]);
    ASSERT_TRUE(std::is_sorted(order.begin(), order.end(), [](auto& a, auto& b) {
      return StreamId::parse(a).value() < StreamId::parse(b).value();
    }));
  }
}

TEST_P(ServerE2E, SigtermClosesWebSocketsWith1001AndExitsZero) {
  asio::io_context io;
  Received r;
  asio::co_spawn(io, subscribe(port_, "/ws/quiet?last_event_id=0-0", 1, r), asio::detached);
  std::thread runner([&] { io.run(); });
  std::this_thread::sleep_for(std::chrono::milliseconds(300));
  expect_sigterm_exits_cleanly(10s);
  runner.join();
  EXPECT_EQ(r.close_code, 1001);
}

// A blocking replayrail.v1 client; every read gives up after 10 s rather than hang the test.
class V1Client {
 public:
  explicit V1Client(std::uint16_t port, const std::string& target = "/ws") : ws_(io_) {
    ws_.next_layer().connect(tcp::endpoint(asio::ip::make_address("127.0.0.1"), port));
    timeval tv{10, 0};
    ::setsockopt(ws_.next_layer().socket().native_handle(), SOL_SOCKET, SO_RCVTIMEO, &tv,
                 sizeof tv);
    ws_.set_option(websocket::stream_base::decorator([](websocket::request_type& req) {
      req.set(http::field::sec_websocket_protocol, "replayrail.v1");
    }));
    websocket::response_type res;
    ws_.handshake(res, "127.0.0.1", target);
    protocol = std::string(res[http::field::sec_websocket_protocol]);
  }
  void send(const std::string& text) { ws_.write(asio::buffer(text)); }
  std::string next_text() {
    beast::flat_buffer buffer;
    ws_.read(buffer);
    return beast::buffers_to_string(buffer.data());
  }
  json::object next() { return json::parse(next_text()).as_object(); }
  // Messages up to and including the first of `type` (for `sub`, when given).
  std::vector<json::object> until(const std::string& type, const std::string& sub = "") {
    std::vector<json::object> out;
    // The server's keepalive pings keep each read alive: the whole wait has a limit too.
    const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(20);
    for (;;) {
      if (std::chrono::steady_clock::now() > deadline) {
        throw std::runtime_error("no " + type + " for \"" + sub + "\" within 20 s; last: " +
                                 (out.empty() ? "nothing" : json::serialize(out.back())));
      }
      out.push_back(next());
      const auto& m = out.back();
      if (m.at("type").as_string() == type &&
          (sub.empty() || (m.contains("sub") && m.at("sub").as_string() == sub))) {
        return out;
      }
    }
  }
  // The first message for `sub`.
  json::object until_sub(const std::string& sub) {
    for (;;) {
      auto m = next();
      if (m.contains("sub") && m.at("sub").as_string() == sub) return m;
    }
  }
  std::string protocol;

 private:
  asio::io_context io_;
  websocket::stream<beast::tcp_stream> ws_;
};

std::vector<std::string> event_ids(const std::vector<json::object>& messages,
                                   const std::string& sub) {
  std::vector<std::string> out;
  for (const auto& m : messages) {
    if (m.at("type").as_string() == "event" && m.at("sub").as_string() == sub) {
      out.push_back(m.at("event").at("id").as_string().c_str());
    }
  }
  return out;
}

TEST_P(ServerE2E, V1MultiplexesSubscriptionsEachWithItsCursor) {
  auto publish_n = [&](const std::string& channel, int n) {
    std::vector<std::string> ids;
    for (int i = 0; i < n; ++i) {
      auto event = publish(channel, R"({"type":"t","payload":{}})").json().at("event");
      ids.push_back(event.at("id").as_string().c_str());
    }
    return ids;
  };
  auto a = publish_n("v1a", 3), b = publish_n("v1b", 2);
  V1Client c(port_);
  EXPECT_EQ(c.protocol, "replayrail.v1");
  c.send(R"({"op":"subscribe","sub":"s1","channel":"v1a","from":"0-0"})");
  auto s1 = c.until("caught_up", "s1");
  EXPECT_EQ(s1.front().at("type").as_string(), "subscribed");
  EXPECT_EQ(s1.front().at("channel").as_string(), "v1a");
  EXPECT_FALSE(s1.front().at("epoch").as_string().empty());
  EXPECT_EQ(event_ids(s1, "s1"), a);
  EXPECT_EQ(s1.back().at("position").as_string(), a.back());
  // A second subscription from a mid cursor, on the same connection.
  c.send(R"({"op":"subscribe","sub":"s2","channel":"v1b","from":")" + b[0] + R"("})");
  auto s2 = c.until("caught_up", "s2");
  EXPECT_EQ(event_ids(s2, "s2"), std::vector<std::string>{b[1]});
  // Live, to the right subscription.
  auto live = publish("v1a", R"({"type":"t","payload":{"live":true}})");
  auto got = c.until("event", "s1");
  EXPECT_EQ(got.back().at("event").at("id").as_string(),
            live.json().at("event").at("id").as_string());
  // ping / pong carries the client's data back.
  c.send(R"({"op":"ping","data":7})");
  EXPECT_EQ(c.until("pong").back().at("data").as_int64(), 7);
  // After unsubscribe, nothing more for s1.
  c.send(R"({"op":"unsubscribe","sub":"s1"})");
  c.until("unsubscribed", "s1");
  publish("v1a", R"({"type":"t","payload":{}})");
  c.send(R"({"op":"ping"})");
  auto after = c.until("pong");
  EXPECT_TRUE(event_ids(after, "s1").empty());
}

// A v1 `publish`: stored as POST /events stores it, answered by its id with the event (or an
// error), in the order sent, and delivered to the connection's own subscriptions like any other.
TEST_P(ServerE2E, V1PublishStoresEventsInOrderAndAnswersEachById) {
  // The answer to the publish `id`, skipping the subscription's events.
  auto answer = [](V1Client& c, const std::string& id) {
    for (;;) {
      auto m = c.next();
      if (m.contains("id") && m.at("id").as_string() == id) return m;
    }
  };
  {  // the connections close before the restart below
    V1Client watcher(port_);
    watcher.send(R"({"op":"subscribe","sub":"s","channel":"chat","from":"$"})");
    watcher.until("caught_up", "s");
    V1Client c(port_);
    for (int i = 1; i <= 3; ++i) {
      c.send(R"({"op":"publish","id":"p)" + std::to_string(i) +
             R"(","channel":"chat","type":"said","payload":{"n":)" + std::to_string(i) + "}}");
    }
    std::vector<std::string> answered;
    for (int i = 1; i <= 3; ++i) {
      auto m = answer(c, "p" + std::to_string(i));
      ASSERT_EQ(m.at("type").as_string(), "published") << json::serialize(m);
      EXPECT_EQ(m.at("event").at("payload").at("n").as_int64(), i);
      EXPECT_FALSE(m.contains("duplicate"));
      answered.push_back(std::string(m.at("event").at("id").as_string()));
    }
    EXPECT_TRUE(std::is_sorted(answered.begin(), answered.end(), [](const auto& a, const auto& b) {
      return StreamId::parse(a).value() < StreamId::parse(b).value();
    }));
    const auto stored = call(http::verb::get, "/events/chat").json();
    std::vector<std::string> ids;
    for (const auto& e : stored.at("events").as_array()) {
      ids.push_back(std::string(e.at("id").as_string()));
    }
    EXPECT_EQ(ids, answered) << "stored in the order sent";
    // An event_id sent again is stored once; a partitioned topic's answer names the partition.
    const std::string once =
        R"({"op":"publish","id":"o","channel":"chat","type":"t","event_id":"e-1"})";
    c.send(once);
    const auto first = answer(c, "o");
    c.send(once);
    const auto again = answer(c, "o");
    EXPECT_EQ(again.at("duplicate"), true);
    EXPECT_EQ(again.at("event").at("id"), first.at("event").at("id"));
    ASSERT_EQ(call(http::verb::put, "/v1/topics/parts", R"({"partitions":4})").status, 201u);
    c.send(R"({"op":"publish","id":"k","channel":"parts","type":"t","partition_key":"a"})");
    const auto keyed = answer(c, "k");
    ASSERT_EQ(keyed.at("type").as_string(), "published") << json::serialize(keyed);
    EXPECT_LT(keyed.at("partition").as_int64(), 4);

    // Bad input: an error naming the op and id, the connection stays, nothing is stored.
    const std::vector<std::pair<std::string, std::string>> bad{
        {R"({"op":"publish","id":"b","type":"t"})", "invalid_channel"},
        {R"({"op":"publish","id":"b","channel":"chat"})", "invalid_event_type"},
        {R"({"op":"publish","id":"b","channel":"chat","type":"t","paylod":{}})",
         "invalid_argument"},
        {R"({"op":"publish","id":"b","channel":"chat","type":"t","payload":[]})",
         "invalid_payload"},
        {R"({"op":"publish","id":"b","channel":"bad channel","type":"t"})", "invalid_channel"},
        {R"({"op":"publish","id":"b","channel":"replayrail.audit","type":"t"})", "forbidden"},
    };
    for (const auto& [message, code] : bad) {
      c.send(message);
      const auto m = answer(c, "b");
      EXPECT_EQ(m.at("type").as_string(), "error") << message;
      EXPECT_EQ(m.at("op").as_string(), "publish");
      EXPECT_EQ(m.at("error").at("code").as_string(), code)
          << message << ": " << json::serialize(m);
    }
    c.send(R"({"op":"publish","id":")" + std::string(129, 'x') +
           R"(","channel":"chat","type":"t"})");
    EXPECT_EQ(c.until("error").back().at("error").at("code").as_string(), "invalid_argument");
    EXPECT_EQ(call(http::verb::get, "/events/chat").json().at("events").as_array().size(), 4u);
    // A subscriber got them live, once each, in order.
    std::vector<std::string> expected = answered;
    expected.push_back(std::string(first.at("event").at("id").as_string()));
    std::vector<std::string> delivered;
    while (delivered.size() < expected.size()) {
      delivered.push_back(
          std::string(watcher.until("event", "s").back().at("event").at("id").as_string()));
    }
    EXPECT_EQ(delivered, expected);
  }

  // Auth: any valid token connects; a publish takes a producer's token for its channel, a
  // subscribe a consumer's; the publisher is recorded as on POST /events.
  const auth::JwtConfig jwt{"test-secret", "", ""};
  restart_server({"--auth-jwt-secret", jwt.secret, "--backpressure-max-stream-len", "6"});
  const auto now = unix_now();
  const std::string producer =
      auth::mint({"svc-chat", auth::Role::producer, {"chat*"}, now + 600}, jwt, now);
  const std::string consumer =
      auth::mint({"reader", auth::Role::consumer, {}, now + 600}, jwt, now);
  V1Client p(port_, "/ws?token=" + producer);
  p.send(R"({"op":"publish","id":"a","channel":"chat","type":"t"})");
  const auto stamped = answer(p, "a");
  ASSERT_EQ(stamped.at("type").as_string(), "published") << json::serialize(stamped);
  EXPECT_EQ(stamped.at("event").at("metadata"), json::parse(R"({"publisher":{"sub":"svc-chat"}})"));
  p.send(R"({"op":"publish","id":"a","channel":"other","type":"t"})");
  EXPECT_EQ(answer(p, "a").at("error").at("code").as_string(), "forbidden");
  p.send(R"({"op":"subscribe","sub":"x","channel":"chat","from":"0-0"})");
  EXPECT_EQ(p.until("error", "x").back().at("error").at("code").as_string(), "forbidden");
  V1Client r(port_, "/ws?token=" + consumer);
  r.send(R"({"op":"publish","id":"a","channel":"chat","type":"t"})");
  EXPECT_EQ(answer(r, "a").at("error").at("code").as_string(), "forbidden");
  // A token that expires while its connection is open publishes no more.
  const auto expires = unix_now() + 2;  // at least a second to connect in
  const std::string brief =
      auth::mint({"svc-chat", auth::Role::producer, {}, expires}, jwt, unix_now());
  V1Client b(port_, "/ws?token=" + brief);
  std::this_thread::sleep_until(std::chrono::system_clock::from_time_t(expires) +
                                std::chrono::milliseconds(100));
  b.send(R"({"op":"publish","id":"late","channel":"chat","type":"t"})");
  const auto late = answer(b, "late");
  EXPECT_EQ(late.at("error").at("code").as_string(), "unauthorized") << json::serialize(late);
  // Backpressure: the error says when to try again, as Retry-After does.
  json::object full;
  for (int i = 0; i < 10; ++i) {
    p.send(R"({"op":"publish","id":"f","channel":"chat","type":"t"})");
    full = answer(p, "f");
    if (full.at("type").as_string() == "error") break;
  }
  ASSERT_EQ(full.at("type").as_string(), "error") << json::serialize(full);
  EXPECT_EQ(full.at("error").at("code").as_string(), "backpressure");
  EXPECT_EQ(full.at("retry_after").as_int64(), 1);
}

TEST_P(ServerE2E, WebSocketFramesOfEverySizeArriveIntact) {
  // The server frames its messages itself: Beast's client checks every header. Events are
  // 16-bit-length frames up to 65,535 bytes and 64-bit-length ones above; v1 control messages
  // are short (7-bit) frames.
  restart_server({"--max-body-bytes", "400000"});
  auto publish_pad = [&](std::size_t pad) {
    auto r =
        publish("frames", R"({"type":"t","payload":{"pad":")" + std::string(pad, 'x') + "\"}}");
    EXPECT_EQ(r.status, 201u) << r.body.substr(0, 200);
    // The answer is {"event":<the envelope>}: the envelope's size is what is framed.
    return std::make_pair(std::string(r.json().at("event").at("id").as_string()),
                          r.body.size() - std::string_view(R"({"event":})").size());
  };
  std::vector<std::size_t> pads{10};
  std::vector<std::string> published;
  auto [first_id, first_size] = publish_pad(pads[0]);
  published.push_back(first_id);
  const std::size_t overhead = first_size - pads[0];
  // Frames of 65,535 and 65,536 bytes (if the ids keep their length), then a larger one.
  for (std::size_t size : {std::size_t{65'535}, std::size_t{65'536}, std::size_t{300'000}}) {
    pads.push_back(size - overhead);
    published.push_back(publish_pad(pads.back()).first);
  }
  auto check_pads = [&](const std::vector<json::value>& events) {
    ASSERT_EQ(events.size(), pads.size());
    for (std::size_t i = 0; i < pads.size(); ++i) {
      EXPECT_EQ(events[i].at("payload").at("pad").as_string().size(), pads[i]) << i;
    }
  };

  asio::io_context io;
  Received got;
  asio::co_spawn(io, subscribe(port_, "/ws/frames?last_event_id=0-0", pads.size(), got),
                 asio::detached);
  io.run();
  EXPECT_EQ(ids(got), published);
  check_pads(got.events);

  V1Client c(port_);
  c.send(R"({"op":"subscribe","sub":"s1","channel":"frames","from":"0-0"})");
  auto messages = c.until("caught_up", "s1");
  EXPECT_EQ(event_ids(messages, "s1"), published);
  std::vector<json::value> events;
  for (const auto& m : messages) {
    if (m.at("type").as_string() == "event") events.push_back(m.at("event"));
  }
  check_pads(events);
  c.send(R"({"op":"ping","data":1})");
  EXPECT_EQ(c.until("pong").back().at("data").as_int64(), 1);
}

TEST_P(ServerE2E, ControlFramesNeverLandInsideTheEventFrames) {
  // Replay sends events many per write; the client's WebSocket pings arrive meanwhile and Beast
  // answers each with a pong on the same socket. Every frame must still arrive whole.
  constexpr int kEvents = 400;
  for (int i = 0; i < kEvents; ++i) {
    ASSERT_EQ(publish("pings", R"({"type":"t","payload":{"n":)" + std::to_string(i) + "}}").status,
              201u);
  }
  asio::io_context io;
  websocket::stream<beast::tcp_stream> ws(io);
  ws.next_layer().connect(tcp::endpoint(asio::ip::make_address("127.0.0.1"), port_));
  ws.handshake("127.0.0.1", "/ws/pings?last_event_id=0-0");
  beast::flat_buffer buffer;
  for (int i = 0; i < kEvents; ++i) {
    if (i % 4 == 0) ws.ping({});  // throughout the replay
    ws.read(buffer);
    auto event = json::parse(beast::buffers_to_string(buffer.data()));
    buffer.clear();
    ASSERT_EQ(event.at("payload").at("n").as_int64(), i);
  }
}

TEST_P(ServerE2E, V1BadInputIsAnErrorMessageAndTheConnectionStays) {
  publish("v1e", R"({"type":"t","payload":{}})");
  V1Client c(port_);
  auto code = [](const json::object& m) {
    return std::string(m.at("error").at("code").as_string());
  };
  c.send("not json");
  EXPECT_EQ(code(c.until("error").back()), "invalid_json");
  c.send(R"({"op":"ping","data":1e400})");
  auto too_large = c.until("error").back();
  EXPECT_EQ(code(too_large), "invalid_json");
  EXPECT_NE(std::string(too_large.at("error").at("message").as_string()).find("1e400"),
            std::string::npos);
  c.send("[]");
  EXPECT_EQ(code(c.until("error").back()), "invalid_json");
  c.send(R"({"op":"dance"})");
  EXPECT_EQ(code(c.until("error").back()), "invalid_argument");
  c.send(R"({"op":"subscribe","sub":"x","channel":"v1e","from":"12-abc"})");
  EXPECT_EQ(code(c.until("error", "x").back()), "invalid_cursor");
  c.send(R"({"op":"subscribe","sub":"x","channel":"bad channel!"})");
  EXPECT_EQ(code(c.until("error", "x").back()), "invalid_channel");
  c.send(R"({"op":"subscribe","sub":"x","channel":"v1e","policy":"sometimes"})");
  EXPECT_EQ(code(c.until("error", "x").back()), "invalid_argument");
  // A misspelt or mistyped field is refused, not ignored (the subscription would start at the
  // default instead): the answer is an error, not `subscribed`.
  for (const char* bad : {R"({"op":"subscribe","sub":"x","channel":"v1e","form":"0-0"})",
                          R"({"op":"subscribe","sub":"x","channel":"v1e","from":0})"}) {
    c.send(bad);
    auto answer = c.until_sub("x");
    ASSERT_EQ(std::string(answer.at("type").as_string()), "error") << bad;
    EXPECT_EQ(code(answer), "invalid_argument") << bad;
  }
  c.send(R"({"op":"subscribe","sub":"x","channel":"v1e","from":"0-0","epoch":"not-the-epoch"})");
  EXPECT_EQ(code(c.until("error", "x").back()), "stream_reset");
  c.send(R"({"op":"unsubscribe","sub":"nobody"})");
  EXPECT_EQ(code(c.until("error", "nobody").back()), "not_found");
  c.send(R"({"op":"subscribe","sub":"ok","channel":"v1e","from":"0-0"})");
  c.until("caught_up", "ok");
  c.send(R"({"op":"subscribe","sub":"ok","channel":"v1e","from":"0-0"})");
  EXPECT_EQ(code(c.until("error", "ok").back()), "invalid_argument") << "a name in use";
  // Without the subprotocol, /ws is not a WebSocket endpoint.
  EXPECT_EQ(call(http::verb::get, "/ws").status, 400u);
}

TEST_P(ServerE2E, NoCursorStartsAtTheConfiguredDefault) {
  publish("start", R"({"type":"t","payload":{"n":1}})");
  publish("start", R"({"type":"t","payload":{"n":2}})");
  {
    // latest (the default): only what is published after subscribing.
    V1Client c(port_);
    c.send(R"({"op":"subscribe","sub":"l","channel":"start"})");
    auto first = c.until("caught_up", "l");
    EXPECT_TRUE(event_ids(first, "l").empty());
    auto live = publish("start", R"({"type":"t","payload":{"n":3}})");
    EXPECT_EQ(c.until("event", "l").back().at("event").at("id").as_string(),
              live.json().at("event").at("id").as_string());
  }
  server_->kill(SIGTERM);
  server_->wait();
  if (GetParam() == "memory") return;  // the memory store forgets on restart
  start_server({"--default-start-position", "earliest"});
  asio::io_context io;
  Received r;
  asio::co_spawn(io, subscribe(port_, "/ws/start", 3, r), asio::detached);
  io.run_for(10s);
  ASSERT_EQ(r.events.size(), 3u) << "earliest: from the start";
  EXPECT_EQ(r.events[0].at("payload").at("n").as_int64(), 1);
}

// --- topics and consumer groups: the OpenStream walkthrough (issue 6), without auth ---------

json::array messages_of(const HttpResult& r) {
  EXPECT_EQ(r.status, 200u) << r.body;
  return r.json().at("messages").as_array();
}

std::string event_batch(int from, int to) {
  std::string out = R"({"events":[)";
  for (int i = from; i < to; ++i) {
    if (i > from) out += ',';
    out += R"({"event_type":"order.created","partition_key":"user-)" + std::to_string(i % 5) +
           R"(","payload":{"n":)" + std::to_string(i) + "}}";
  }
  return out + R"(],"partitions":8})";
}

TEST_P(ServerE2E, TopicsAndConsumerGroupsWalkthrough) {
  // Produce: every event gets a partition and an id; a key keeps its partition.
  auto produced = call(http::verb::post, "/v1/topics/orders/events", event_batch(0, 20));
  ASSERT_EQ(produced.status, 201u) << produced.body;
  EXPECT_EQ(produced.json().at("partitions").as_int64(), 8);
  auto results = produced.json().at("results").as_array();
  ASSERT_EQ(results.size(), 20u);
  std::map<int, std::int64_t> partition_of_key;
  std::set<std::int64_t> used;
  for (int i = 0; i < 20; ++i) {
    auto p = results[i].at("partition").as_int64();
    ASSERT_TRUE(StreamId::parse(results[i].at("redis_id").as_string()));
    auto [it, added] = partition_of_key.try_emplace(i % 5, p);
    EXPECT_EQ(it->second, p) << "key user-" << i % 5 << " moved partition";
    used.insert(p);
  }
  EXPECT_GT(used.size(), 1u) << "five keys all hashed to one partition of eight";

  // Groups at `$` (only new events) and at `0-0` (everything retained).
  auto group = [&](const std::string& name, const std::string& start) {
    return call(http::verb::post, "/v1/topics/orders/groups",
                R"({"group":")" + name + R"(","start_id":")" + start + "\"}");
  };
  ASSERT_EQ(group("workers", "$").status, 201u);
  ASSERT_EQ(group("replay", "0-0").status, 201u);
  auto again = group("replay", "0-0");
  EXPECT_EQ(again.status, 409u);
  EXPECT_EQ(again.error_code(), "group_exists");

  auto read = [&](const std::string& g, const std::string& consumer) {
    return messages_of(call(http::verb::post, "/v1/topics/orders/groups/" + g + "/read",
                            R"({"consumer":")" + consumer + R"(","count":100,"block_ms":100})"));
  };
  auto everything = read("replay", "c1");
  ASSERT_EQ(everything.size(), 20u);
  std::map<std::int64_t, StreamId> last_in_partition;
  for (const auto& m : everything) {
    auto p = m.at("partition").as_int64();
    auto id = StreamId::parse(m.at("redis_id").as_string()).value();
    EXPECT_TRUE(last_in_partition[p] < id) << "order within a partition";
    last_in_partition[p] = id;
    EXPECT_EQ(m.at("event").at("channel").as_string(), "orders");
    EXPECT_EQ(m.at("delivery_count").as_int64(), 1);
  }
  EXPECT_TRUE(read("workers", "w1").empty()) << "a group at $ sees only what comes after";
  ASSERT_EQ(call(http::verb::post, "/v1/topics/orders/events", event_batch(20, 23)).status, 201u);
  EXPECT_EQ(read("workers", "w1").size(), 3u);

  // Ack the first ten; c1 then "crashes" with ten pending, which c2 claims.
  std::map<std::int64_t, json::array> to_ack;
  for (std::size_t i = 0; i < 10; ++i) {
    to_ack[everything[i].at("partition").as_int64()].push_back(everything[i].at("redis_id"));
  }
  json::array items;
  for (auto& [p, ids] : to_ack) items.push_back(json::object{{"partition", p}, {"redis_ids", ids}});
  auto acked = call(http::verb::post, "/v1/topics/orders/groups/replay/ack",
                    json::serialize(json::object{{"items", items}}));
  ASSERT_EQ(acked.status, 200u) << acked.body;
  EXPECT_EQ(acked.json().at("acked").as_int64(), 10);
  auto claimed = messages_of(call(http::verb::post, "/v1/topics/orders/groups/replay/claim",
                                  R"({"consumer":"c2","min_idle_ms":0,"count":100})"));
  ASSERT_EQ(claimed.size(), 10u);
  for (const auto& m : claimed) EXPECT_EQ(m.at("delivery_count").as_int64(), 2);
  auto not_idle = messages_of(call(http::verb::post, "/v1/topics/orders/groups/replay/claim",
                                   R"({"consumer":"c3","min_idle_ms":600000})"));
  EXPECT_TRUE(not_idle.empty()) << "nothing has been idle for ten minutes";

  // Reset: the group reads everything again.
  auto reset =
      call(http::verb::post, "/v1/topics/orders/groups/replay/reset", R"({"start_id":"0-0"})");
  ASSERT_EQ(reset.status, 200u) << reset.body;
  EXPECT_EQ(read("replay", "c4").size(), 23u);

  // Describe and summary: lengths, groups with pending and lag.
  auto described = call(http::verb::get, "/v1/topics/orders/describe");
  ASSERT_EQ(described.status, 200u) << described.body;
  EXPECT_EQ(described.json().at("length").as_int64(), 23);
  EXPECT_EQ(described.json().at("streams").as_array().size(), 8u);
  auto summary = call(http::verb::get, "/v1/metrics/summary");
  ASSERT_EQ(summary.status, 200u) << summary.body;
  const json::value summary_json = summary.json();
  const auto& topic = summary_json.at("topics").as_array().at(0);
  EXPECT_EQ(topic.at("topic").as_string(), "orders");
  std::map<std::string, std::int64_t> pending;
  for (const auto& g : topic.at("groups").as_array()) {
    pending[std::string(g.at("group").as_string())] = g.at("pending").as_int64();
  }
  EXPECT_EQ(pending["replay"], 23) << "read again after the reset, none acked yet";
  EXPECT_EQ(pending["workers"], 3);
  EXPECT_TRUE(summary_json.at("archive").is_null()) << "no --database-url: no archive";

  auto destroyed = call(http::verb::delete_, "/v1/topics/orders/groups/workers");
  EXPECT_EQ(destroyed.status, 200u) << destroyed.body;
  EXPECT_EQ(call(http::verb::delete_, "/v1/topics/orders/groups/workers").status, 404u);
}

// The summary lists the channels that are no topic's partition (published to with POST
// /events/{channel} only, dead-letter streams), the first 100 by name, and counts them all.
TEST_P(ServerE2E, TheSummaryListsTheChannelsThatAreNoTopic) {
  auto channels_of = [&] {
    auto summary = call(http::verb::get, "/v1/metrics/summary");
    EXPECT_EQ(summary.status, 200u) << summary.body;
    return summary.json();
  };
  EXPECT_TRUE(channels_of().at("channels").as_array().empty());
  EXPECT_EQ(channels_of().at("channels_total").as_int64(), 0);

  // Topics of 1 and of 3 partitions (their streams are `solo`, `jobs#0` …): not channels.
  ASSERT_EQ(call(http::verb::post, "/v1/topics/solo/events", R"({"events":[{"type":"a"}]})").status,
            201u);
  ASSERT_EQ(call(http::verb::post, "/v1/topics/jobs/events",
                 R"({"partitions":3,"events":[{"type":"a","partition_key":"k"}]})")
                .status,
            201u);
  ASSERT_EQ(publish("orders", R"({"type":"order.created"})").status, 201u);
  auto first = publish("audit", R"({"type":"user.login","payload":{}})");
  auto last = publish("audit", R"({"type":"user.logout","payload":{}})");
  ASSERT_EQ(last.status, 201u) << last.body;

  auto summary = channels_of();
  const auto& channels = summary.at("channels").as_array();
  ASSERT_EQ(channels.size(), 2u) << summary;
  EXPECT_EQ(summary.at("channels_total").as_int64(), 2);
  const auto& audit = channels[0];  // by name
  EXPECT_EQ(audit.at("channel").as_string(), "audit");
  EXPECT_EQ(audit.at("length").as_int64(), 2);
  EXPECT_EQ(audit.at("first_id"), first.json().at("event").at("id"));
  EXPECT_EQ(audit.at("last_id"), last.json().at("event").at("id"));
  EXPECT_TRUE(audit.at("groups").as_array().empty());
  EXPECT_EQ(channels[1].at("channel").as_string(), "orders");

  // A consumer group makes a channel a topic (of one partition): it moves to the topics.
  ASSERT_EQ(
      call(http::verb::post, "/v1/topics/audit/groups", R"({"group":"g","start_id":"0-0"})").status,
      201u);
  summary = channels_of();
  ASSERT_EQ(summary.at("channels").as_array().size(), 1u) << summary;
  EXPECT_EQ(summary.at("channels").as_array()[0].at("channel").as_string(), "orders");
  // jobs, solo, audit, and the audit trail that recorded the group
  EXPECT_EQ(summary.at("topics").as_array().size(), 4u) << summary;

  // 120 more: the first 100 by name are described, all are counted.
  for (int i = 0; i < 120; ++i) {
    char name[16];
    std::snprintf(name, sizeof name, "c%03d", i);
    ASSERT_EQ(publish(name, R"({"type":"t"})").status, 201u) << name;
  }
  auto many = channels_of();
  const auto& listed = many.at("channels").as_array();
  ASSERT_EQ(listed.size(), 100u);
  EXPECT_EQ(many.at("channels_total").as_int64(), 121);
  EXPECT_EQ(listed.front().at("channel").as_string(), "c000");
  EXPECT_EQ(listed.back().at("channel").as_string(), "c099");

  // With auth on, a token limited to some channels sees only those topics and channels.
  const auth::JwtConfig jwt{"summary-secret", "", ""};
  restart_server({"--auth-jwt-secret", jwt.secret});
  const auto now = unix_now();
  auto as = [&](std::vector<std::string> channels) {
    auto token = auth::mint({"t", auth::Role::consumer, std::move(channels), now + 600}, jwt, now);
    auto r = call(http::verb::get, "/v1/metrics/summary", "", bearer(token));
    EXPECT_EQ(r.status, 200u) << r.body;
    return r.json();
  };
  // (The memory store starts empty again: what the view is made of is published again.)
  const Headers producer = bearer(jwt, "p", auth::Role::admin);
  for (std::string name :
       {"c010", "c011", "c012", "c013", "c014", "c015", "c016", "c017", "c018", "c019", "zz"}) {
    ASSERT_EQ(call(http::verb::post, "/events/" + name, R"({"type":"t"})", producer).status, 201u);
  }
  ASSERT_EQ(call(http::verb::post, "/v1/topics/jobs/events",
                 R"({"partitions":3,"events":[{"type":"a","partition_key":"k"}]})", producer)
                .status,
            201u);
  auto limited = as({"c01*", "jobs"});
  const auto& seen = limited.at("channels").as_array();
  ASSERT_EQ(seen.size(), 10u) << limited;  // c010 … c019
  EXPECT_EQ(seen.front().at("channel").as_string(), "c010");
  EXPECT_EQ(limited.at("channels_total").as_int64(), 10);
  ASSERT_EQ(limited.at("topics").as_array().size(), 1u) << limited;
  EXPECT_EQ(limited.at("topics").as_array()[0].at("topic").as_string(), "jobs");
  auto everything = as({});
  EXPECT_EQ(everything.at("channels_total").as_int64(), GetParam() == "memory" ? 11 : 122)
      << "no channels claim: all";
  EXPECT_EQ(everything.at("topics").as_array().size(), GetParam() == "memory" ? 1u : 3u);
}

// Every reader gets the numbers the publisher sent, digit for digit: Boost.JSON's own parser and
// writer would turn 474.59380568556355 into 474.5938056855635 and 12.34 into 1.234E1.
TEST_P(ServerE2E, NumbersArriveExactlyAsPublished) {
  const std::string payload =
      R"({"amount":12.34,"reading":474.59380568556355,"ratio":1.0,"big":18446744073709551615,)"
      R"("tiny":5e-324})";
  const std::string as_sent = R"("payload":)" + payload;
  auto published = publish("nums", R"({"type":"t","payload":)" + payload + "}");
  ASSERT_EQ(published.status, 201u) << published.body;
  EXPECT_NE(published.body.find(as_sent), std::string::npos) << published.body;
  auto page = call(http::verb::get, "/events/nums?after=0-0");
  EXPECT_NE(page.body.find(as_sent), std::string::npos) << page.body;

  V1Client c(port_);
  c.send(R"({"op":"subscribe","sub":"s","channel":"nums","from":"0-0"})");
  std::string frames;
  while (frames.find("caught_up") == std::string::npos) frames += c.next_text();
  EXPECT_NE(frames.find(as_sent), std::string::npos) << frames;
  c.send(R"({"op":"ping","data":{"x":474.59380568556355}})");
  std::string pong;
  while (pong.find("pong") == std::string::npos) pong = c.next_text();
  EXPECT_NE(pong.find(R"("data":{"x":474.59380568556355})"), std::string::npos) << pong;

  auto ingested = call(http::verb::post, "/v1/topics/nums-topic/events",
                       R"({"events":[{"type":"t","payload":)" + payload + "}]}");
  ASSERT_EQ(ingested.status, 201u) << ingested.body;
  ASSERT_EQ(
      call(http::verb::post, "/v1/topics/nums-topic/groups", R"({"group":"g","start_id":"0-0"})")
          .status,
      201u);
  auto read = call(http::verb::post, "/v1/topics/nums-topic/groups/g/read",
                   R"({"consumer":"c1","count":10})");
  ASSERT_EQ(read.status, 200u) << read.body;
  EXPECT_NE(read.body.find(as_sent), std::string::npos) << read.body;
}

// DESIGN §5: a publish's W3C traceparent header is kept in the event's metadata and delivered.
TEST_P(ServerE2E, TraceparentIsKeptInMetadataAndDelivered) {
  const std::string trace = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";
  auto traced = [&](const std::string& target, const std::string& body, const std::string& tp) {
    return call(http::verb::post, target, body, {{"traceparent", tp}});
  };
  auto metadata_of = [](const HttpResult& r) { return r.json().at("event").at("metadata"); };
  auto plain = traced("/events/traced", R"({"type":"t"})", trace);
  ASSERT_EQ(plain.status, 201u) << plain.body;
  EXPECT_EQ(metadata_of(plain), (json::object{{"traceparent", trace}}));
  auto merged = traced("/events/traced", R"({"type":"t","metadata":{"a":1}})", trace);
  EXPECT_EQ(metadata_of(merged), (json::object{{"traceparent", trace}, {"a", 1}}));
  // The body's own traceparent is what it means; a malformed header is ignored (as the W3C
  // specification asks), not refused.
  auto own = traced("/events/traced", R"({"type":"t","metadata":{"traceparent":"mine"}})", trace);
  EXPECT_EQ(metadata_of(own), (json::object{{"traceparent", "mine"}}));
  for (const std::string bad : {"00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7",
                                "00-00000000000000000000000000000000-00f067aa0ba902b7-01",
                                "00-4BF92F3577B34DA6A3CE929D0E0E4736-00f067aa0ba902b7-01"}) {
    auto r = traced("/events/traced", R"({"type":"t"})", bad);
    ASSERT_EQ(r.status, 201u) << r.body;
    EXPECT_EQ(metadata_of(r), json::object{}) << bad;
  }
  // A retry is another span: with another traceparent it is still the same event.
  auto first = traced("/events/traced", R"({"type":"t","event_id":"once"})", trace);
  ASSERT_EQ(first.status, 201u);
  auto retry = traced("/events/traced", R"({"type":"t","event_id":"once"})",
                      "00-4bf92f3577b34da6a3ce929d0e0e4736-b7ad6b7169203331-01");
  EXPECT_EQ(retry.status, 200u) << retry.body;
  EXPECT_EQ(retry.json().at("event").at("id"), first.json().at("event").at("id"));

  // Delivered as stored: replay, and every event of an ingest.
  auto page = call(http::verb::get, "/events/traced?after=0-0");
  EXPECT_EQ(page.json().at("events").at(0).at("metadata").at("traceparent").as_string(), trace);
  auto ingested = traced("/v1/topics/traced-topic/events",
                         R"({"events":[{"type":"t"},{"type":"t","metadata":{"b":2}}]})", trace);
  ASSERT_EQ(ingested.status, 201u) << ingested.body;
  ASSERT_EQ(
      call(http::verb::post, "/v1/topics/traced-topic/groups", R"({"group":"g","start_id":"0-0"})")
          .status,
      201u);
  auto read = messages_of(call(http::verb::post, "/v1/topics/traced-topic/groups/g/read",
                               R"({"consumer":"c","count":10})"));
  ASSERT_EQ(read.size(), 2u);
  for (const auto& m : read) {
    EXPECT_EQ(m.at("event").at("metadata").at("traceparent").as_string(), trace);
  }
}

TEST_P(ServerE2E, TopicBadInputIsAClearErrorAndWritesNothing) {
  ASSERT_EQ(call(http::verb::post, "/v1/topics/t/events", event_batch(0, 2)).status, 201u);
  struct Case {
    std::string target, body;
    unsigned status;
    std::string code;
  };
  std::vector<Case> cases{
      // One bad event in a batch: none of the batch is written.
      {"/v1/topics/t/events", R"({"events":[{"event_type":"ok","payload":{}},{"payload":{}}]})",
       400, "invalid_event_type"},
      {"/v1/topics/t/events", R"({"events":[{"type":"ok","payload":[1]}]})", 400,
       "invalid_payload"},
      {"/v1/topics/t/events", R"({"events":[]})", 400, "invalid_argument"},
      {"/v1/topics/t/events", R"({"evnts":[]})", 400, "invalid_argument"},
      {"/v1/topics/t/events", R"({"events":[{"type":"x"}],"partitions":3})", 409, "topic_conflict"},
      {"/v1/topics/t/events", R"({"events":[{"type":"x"}],"partitions":0})", 400,
       "invalid_argument"},
      {"/v1/topics/bad%20name/events", R"({"events":[{"type":"x"}]})", 400, "invalid_channel"},
      {"/v1/topics/t/events", "not json", 400, "invalid_json"},
      {"/v1/topics/t/groups", R"({"group":"g"})", 400, "invalid_argument"},
      {"/v1/topics/t/groups", R"({"group":"g","start_id":"yesterday"})", 400, "invalid_cursor"},
      {"/v1/topics/missing/groups", R"({"group":"g","start_id":"$"})", 404, "stream_not_found"},
      {"/v1/topics/t/groups/none/read", R"({"consumer":"c"})", 404, "group_not_found"},
      {"/v1/topics/t/groups/none/read", R"({"consumer":"c","count":0})", 400, "invalid_argument"},
      {"/v1/topics/t/groups/none/read", R"({"consumer":"c","partitions":[8]})", 400,
       "invalid_argument"},
      {"/v1/topics/t/groups/none/ack", R"({"items":[{"partition":0,"redis_ids":["x"]}]})", 400,
       "invalid_cursor"},
      // 2^32 + 1: not partition 1.
      {"/v1/topics/t/groups/none/ack",
       R"({"items":[{"partition":4294967297,"redis_ids":["1-0"]}]})", 400, "invalid_argument"},
      {"/v1/topics/t/groups/none/claim", R"({"min_idle_ms":5})", 400, "invalid_argument"},
  };
  for (const auto& c : cases) {
    auto r = call(http::verb::post, c.target, c.body);
    EXPECT_EQ(r.status, c.status) << c.target << " " << c.body << " -> " << r.body;
    if (r.status == c.status) {
      EXPECT_EQ(r.error_code(), c.code) << c.body;
    }
  }
  // A 405 names what the path does take.
  for (auto [method, target, allow] : {
           std::tuple{http::verb::get, "/v1/topics/t/events", "POST"},
           std::tuple{http::verb::post, "/v1/topics/t/describe", "GET, HEAD"},
           std::tuple{http::verb::put, "/v1/topics/t/groups", "POST"},
           std::tuple{http::verb::post, "/v1/topics/t/groups/g", "DELETE"},
           std::tuple{http::verb::get, "/v1/topics/t/groups/g/ack", "POST"},
           std::tuple{http::verb::delete_, "/v1/metrics/summary", "GET, HEAD"},
       }) {
    auto r = call(method, target);
    EXPECT_EQ(r.status, 405u) << target;
    EXPECT_EQ(r.header("allow"), allow) << target;
    EXPECT_EQ(r.error_code(), "method_not_allowed") << target;
  }
  auto head = call(http::verb::head, "/v1/topics/t/describe");
  EXPECT_EQ(head.status, 200u);
  EXPECT_EQ(head.body, "");
  auto described = call(http::verb::get, "/v1/topics/t/describe");
  ASSERT_EQ(described.status, 200u);
  EXPECT_EQ(described.json().at("length").as_int64(), 2) << "nothing was half-written";
  EXPECT_EQ(described.json().at("partitions").as_int64(), 8);
}

// DELETE /v1/topics/{t}: the topic's streams, groups and registry entry go; the name may be made
// again with another partition count; a subscriber of the old stream is told (stream_reset) at
// the first event of the new one, never handed it as if it followed the old history.
TEST_P(ServerE2E, ADeletedTopicMayBeMadeAgainAndItsSubscribersAreTold) {
  ASSERT_EQ(call(http::verb::post, "/v1/topics/orders/events",
                 R"({"partitions":4,"events":[{"type":"a"},{"type":"b"}]})")
                .status,
            201u);
  ASSERT_EQ(call(http::verb::post, "/v1/topics/orders/groups", R"({"group":"g","start_id":"0-0"})")
                .status,
            201u);
  auto deleted = call(http::verb::delete_, "/v1/topics/orders");
  ASSERT_EQ(deleted.status, 200u) << deleted.body;
  EXPECT_EQ(deleted.json().at("partitions").as_int64(), 4);
  EXPECT_EQ(call(http::verb::get, "/v1/topics/orders/describe").status, 404u);
  EXPECT_EQ(call(http::verb::post, "/v1/topics/orders/groups/g/read", R"({"consumer":"c"})").status,
            404u);
  auto again = call(http::verb::put, "/v1/topics/orders", R"({"partitions":2})");
  ASSERT_EQ(again.status, 201u) << "made again, with another count: " << again.body;
  ASSERT_EQ(publish("orders", R"({"type":"c","partition_key":"k"})").status, 201u);
  EXPECT_EQ(topic_length("orders"), 1);

  // A channel: its live subscriber learns of the deletion when the channel is made again.
  ASSERT_EQ(publish("feed", R"({"type":"old"})").status, 201u);
  V1Client c(port_);
  c.send(R"({"op":"subscribe","sub":"f","channel":"feed","from":"0-0"})");
  c.until("caught_up", "f");
  ASSERT_EQ(call(http::verb::delete_, "/v1/topics/feed").status, 200u);
  EXPECT_EQ(call(http::verb::get, "/events/feed?after=0-0").json().at("events").as_array().size(),
            0u);
  ASSERT_EQ(publish("feed", R"({"type":"new"})").status, 201u);
  auto told = c.until("error", "f");
  EXPECT_EQ(told.back().at("error").at("code").as_string(), "stream_reset") << told.back();
  for (const auto& m : told) {
    if (m.at("type").as_string() != "event") continue;
    EXPECT_NE(m.at("event").at("type").as_string(), "new") << "not as if it followed the old";
  }

  auto missing = call(http::verb::delete_, "/v1/topics/nothing");
  EXPECT_EQ(missing.status, 404u) << missing.body;
  EXPECT_EQ(missing.error_code(), "stream_not_found");
  auto get = call(http::verb::get, "/v1/topics/orders");
  EXPECT_EQ(get.status, 405u);
  EXPECT_EQ(get.header("allow"), "PUT, DELETE");
}

// --- auth ---------------------------------------------------------------------------------

TEST_P(ServerE2E, EveryEndpointChecksTheTokenRoleAndChannels) {
  const auth::JwtConfig jwt{"test-secret", "replayrail-test", "events"};
  restart_server({"--auth-jwt-secret", jwt.secret, "--auth-jwt-issuer", jwt.issuer,
                  "--auth-jwt-audience", jwt.audience, "--auth-admin-secret", "dev-admin-secret"});
  const auto now = unix_now();
  auto token = [&](auth::Role role, std::vector<std::string> channels = {},
                   const auth::JwtConfig& config = {}) {
    const auth::JwtConfig& c = config.secret.empty() ? jwt : config;
    return auth::mint({"tester", role, std::move(channels), now + 600}, c, now);
  };

  // Minting dev tokens: only with the admin secret.
  auto minted = call(http::verb::post, "/v1/auth/token",
                     R"({"sub":"me","role":"admin","admin_secret":"dev-admin-secret"})");
  ASSERT_EQ(minted.status, 200u) << minted.body;
  const std::string admin = std::string(minted.json().at("token").as_string());
  auto refused = call(http::verb::post, "/v1/auth/token",
                      R"({"sub":"me","role":"admin","admin_secret":"dev-admin-secreT"})");
  EXPECT_EQ(refused.status, 403u);

  ASSERT_EQ(
      call(http::verb::post, "/v1/topics/orders/events", event_batch(0, 2), bearer(admin)).status,
      201u);
  ASSERT_EQ(call(http::verb::post, "/v1/topics/orders/groups", R"({"group":"g","start_id":"0-0"})",
                 bearer(admin))
                .status,
            201u);

  const std::string producer = token(auth::Role::producer, {"orders*"});
  const std::string consumer = token(auth::Role::consumer, {"orders*"});
  const std::string other_channel = token(auth::Role::admin, {"payments"});
  auth::Claims expired_claims{"tester", auth::Role::admin, {}, now - 10};
  const std::string expired = auth::mint(expired_claims, jwt, now - 700);
  const std::string wrong_audience =
      token(auth::Role::admin, {}, {jwt.secret, jwt.issuer, "elsewhere"});
  const std::string forged = token(auth::Role::admin, {}, {"guessed", jwt.issuer, jwt.audience});
  std::string alg_none = token(auth::Role::admin);
  alg_none = "eyJhbGciOiJub25lIn0" + alg_none.substr(alg_none.find('.'));
  alg_none.resize(alg_none.rfind('.') + 1);

  struct Endpoint {
    http::verb verb;
    std::string target, body;
    std::string allowed;   // a token that may call it
    std::string too_weak;  // a valid token whose role is too low ("" when any role may)
  };
  const std::vector<Endpoint> endpoints{
      {http::verb::post, "/events/orders", R"({"type":"t"})", producer, consumer},
      // "orders" is a topic of 8 partitions: read as one channel it is invalid_channel (400),
      // so the channel reads use a plain channel the same tokens cover.
      {http::verb::get, "/events/orders-feed", "", consumer, producer},
      {http::verb::post, "/v1/topics/orders/events", event_batch(0, 1), producer, consumer},
      {http::verb::get, "/v1/topics/orders/describe", "", consumer, producer},
      {http::verb::post, "/v1/topics/orders/groups", R"({"group":"h","start_id":"$"})", admin,
       consumer},
      {http::verb::post, "/v1/topics/orders/groups/g/read", R"({"consumer":"c"})", consumer,
       producer},
      {http::verb::post, "/v1/topics/orders/groups/g/ack", R"({"items":[]})", consumer, producer},
      {http::verb::post, "/v1/topics/orders/groups/g/claim", R"({"consumer":"c"})", consumer,
       producer},
      {http::verb::post, "/v1/topics/orders/groups/g/reset", R"({"start_id":"0-0"})", admin,
       consumer},
      {http::verb::delete_, "/v1/topics/orders/groups/h", "", admin, consumer},
      {http::verb::post, "/v1/topics/orders/purge", R"({"before":"0-1"})", admin, producer},
      {http::verb::put, "/v1/topics/orders", R"({"partitions":8})", admin, consumer},
      {http::verb::delete_, "/v1/topics/gone", "", "", producer},
      {http::verb::get, "/v1/metrics/summary", "", consumer, ""},
      {http::verb::get, "/v1/topics", "", consumer, ""},
      {http::verb::get, "/sse/orders-feed", "", "", producer},
      {http::verb::get, "/ws/orders-feed", "", "", producer},
  };
  for (const auto& e : endpoints) {
    auto status = [&](std::vector<std::pair<std::string, std::string>> headers) {
      return call(e.verb, e.target, e.body, std::move(headers));
    };
    SCOPED_TRACE(e.target);
    EXPECT_EQ(status({}).status, 401u) << "no token";
    for (const auto& bad : {expired, wrong_audience, forged, alg_none}) {
      auto r = status(bearer(bad));
      EXPECT_EQ(r.status, 401u) << r.body;
      if (r.status == 401u) {
        EXPECT_EQ(r.error_code(), "unauthorized");
        EXPECT_EQ(r.header("www-authenticate"), R"(Bearer realm="replayrail")");
      }
    }
    if (!e.too_weak.empty()) {
      EXPECT_EQ(status(bearer(e.too_weak)).status, 403u) << "role";
    }
    if (e.target.find("summary") == std::string::npos && e.target != "/v1/topics") {
      EXPECT_EQ(status(bearer(other_channel)).status, 403u) << "a channel outside the ACL";
    }
    if (!e.allowed.empty()) {
      auto r = status(bearer(e.allowed));
      EXPECT_LT(r.status, 300u) << r.body;
    }
  }

  // Lists name only the topics within the token's channels.
  ASSERT_EQ(call(http::verb::put, "/v1/topics/payments", "{}", bearer(admin)).status, 201u);
  auto listed = call(http::verb::get, "/v1/topics", {}, bearer(consumer)).json();
  ASSERT_EQ(listed.at("topics").as_array().size(), 1u) << listed;
  EXPECT_EQ(listed.at("topics").at(0).at("topic"), "orders");
  EXPECT_EQ(  // orders, payments, and the audit trail
      call(http::verb::get, "/v1/topics", {}, bearer(admin)).json().at("topics").as_array().size(),
      3u);

  // WebSocket v1: the token in ?token=, checked again on every subscribe.
  V1Client c(port_, "/ws?token=" + consumer);
  c.send(R"({"op":"subscribe","sub":"p","channel":"payments","from":"0-0"})");
  EXPECT_EQ(c.until("error", "p").back().at("error").at("code").as_string(), "forbidden");
  c.send(R"({"op":"subscribe","sub":"o","channel":"orders-feed","from":"0-0"})");
  c.until("caught_up", "o");
  // Group subscriptions too: the topic must be within the token's channels.
  c.send(R"({"op":"subscribe","sub":"g","topic":"payments","group":"g","consumer":"c"})");
  EXPECT_EQ(c.until("error", "g").back().at("error").at("code").as_string(), "forbidden");
}

// With auth on, the server writes who published into the event: metadata.publisher.sub, from
// the token, on both publish endpoints. It is stored and delivered with the event (and so
// covered by the archive's hash chain); a body naming another publisher is refused, and stores
// nothing.
TEST_P(ServerE2E, WithAuthTheEventRecordsWhoPublishedIt) {
  // Auth off: there is no one to record, and a body's own metadata.publisher is its data.
  auto open = publish("feed", R"({"type":"t","metadata":{"publisher":{"sub":"anyone"}}})");
  ASSERT_EQ(open.status, 201u) << open.body;
  EXPECT_EQ(open.json().at("event").at("metadata"),
            json::parse(R"({"publisher":{"sub":"anyone"}})"));

  const auth::JwtConfig jwt{"test-secret", "", ""};
  restart_server({"--auth-jwt-secret", jwt.secret});
  auto as = [&](const std::string& sub, auth::Role role = auth::Role::producer) {
    return bearer(jwt, sub, role);
  };
  auto metadata_of = [](const HttpResult& r) { return r.json().at("event").at("metadata"); };

  auto stamped = call(http::verb::post, "/events/audit", R"({"type":"t","metadata":{"a":1}})",
                      as("svc-orders"));
  ASSERT_EQ(stamped.status, 201u) << stamped.body;
  EXPECT_EQ(metadata_of(stamped), json::parse(R"({"publisher":{"sub":"svc-orders"},"a":1})"));
  auto no_sub =
      call(http::verb::post, "/events/audit", R"({"type":"t"})", as("", auth::Role::admin));
  ASSERT_EQ(no_sub.status, 201u) << no_sub.body;
  EXPECT_EQ(metadata_of(no_sub), json::parse(R"({"publisher":{"sub":null}})"));

  // Claiming to be someone else: 403, and nothing is stored.
  auto forged = call(http::verb::post, "/events/audit",
                     R"({"type":"t","metadata":{"publisher":{"sub":"root"}}})", as("svc-orders"));
  EXPECT_EQ(forged.status, 403u) << forged.body;
  EXPECT_EQ(forged.error_code(), "forbidden");
  auto forged_batch =
      call(http::verb::post, "/v1/topics/audit-topic/events",
           R"({"events":[{"type":"t"},{"type":"t","metadata":{"publisher":{"sub":"root"}}}]})",
           as("svc-orders"));
  EXPECT_EQ(forged_batch.status, 403u) << forged_batch.body;
  EXPECT_NE(forged_batch.body.find("events[1]: metadata.publisher"), std::string::npos)
      << forged_batch.body;

  // A retry keeps its idempotency, whether it names the publisher or not; the same event_id
  // published by someone else is other content: a conflict.
  const std::string once = R"({"type":"t","event_id":"e-1"})";
  ASSERT_EQ(call(http::verb::post, "/events/audit", once, as("svc-orders")).status, 201u);
  EXPECT_EQ(call(http::verb::post, "/events/audit", once, as("svc-orders")).status, 200u);
  EXPECT_EQ(call(http::verb::post, "/events/audit",
                 R"({"type":"t","event_id":"e-1","metadata":{"publisher":{"sub":"svc-orders"}}})",
                 as("svc-orders"))
                .status,
            200u);
  EXPECT_EQ(call(http::verb::post, "/events/audit", once, as("svc-billing")).status, 409u);

  // Batch ingest stamps each event.
  auto batch = call(http::verb::post, "/v1/topics/audit-topic/events",
                    R"({"events":[{"type":"t"},{"type":"t","metadata":{"b":2}}],"partitions":1})",
                    as("svc-batch"));
  ASSERT_EQ(batch.status, 201u) << batch.body;

  // What is stored (and delivered) says who: the forged ones are not there.
  auto stored = call(http::verb::get, "/events/audit", "", as("reader", auth::Role::consumer));
  ASSERT_EQ(stored.status, 200u) << stored.body;
  std::vector<std::string> publishers;
  const auto stored_events = stored.json().at("events").as_array();
  for (const auto& e : stored_events) {
    publishers.push_back(json::serialize(e.at("metadata").at("publisher")));
  }
  EXPECT_EQ(publishers, (std::vector<std::string>{R"({"sub":"svc-orders"})", R"({"sub":null})",
                                                  R"({"sub":"svc-orders"})"}));
  auto topic = call(http::verb::get, "/events/audit-topic", "", as("reader", auth::Role::consumer));
  ASSERT_EQ(topic.status, 200u) << topic.body;
  const auto topic_events = topic.json().at("events").as_array();
  ASSERT_EQ(topic_events.size(), 2u) << topic.body;
  EXPECT_EQ(topic_events[0].at("metadata"), json::parse(R"({"publisher":{"sub":"svc-batch"}})"));
  EXPECT_EQ(topic_events[1].at("metadata"),
            json::parse(R"({"publisher":{"sub":"svc-batch"},"b":2})"));
}

// Every change made through the API is recorded, once made, in the audit trail: what (type,
// payload), who (actor: the token's role and subject, or whoever showed the admin secret), from
// where (metadata.remote). Reads and refused requests are not changes. Only the server writes
// to the trail, and it is read with an admin token or one whose channels claim names it.
TEST_P(ServerE2E, ChangesAreRecordedInTheAuditTrailWithWhoMadeThem) {
  const auth::JwtConfig jwt{"test-secret", "", ""};
  restart_server({"--auth-jwt-secret", jwt.secret, "--auth-admin-secret", "dev-admin-secret"});
  auto minted = call(http::verb::post, "/v1/auth/token",
                     R"({"sub":"alice","role":"admin","admin_secret":"dev-admin-secret",)"
                     R"("channels":["*"]})");
  ASSERT_EQ(minted.status, 200u) << minted.body;
  const auto alice = bearer(std::string(minted.json().at("token").as_string()));
  const auto bob = bearer(jwt, "bob", auth::Role::admin);
  const std::string trail = "/events/replayrail.audit";

  auto expect_status = [&](http::verb verb, const std::string& target, const std::string& body,
                           const Headers& who, unsigned status) {
    auto r = call(verb, target, body, who);
    EXPECT_EQ(r.status, status) << target << ": " << r.body;
  };
  expect_status(http::verb::put, "/v1/topics/orders", R"({"partitions":2,"max_length":50})", alice,
                201);
  expect_status(http::verb::put, "/v1/topics/orders", R"({"partitions":2})", bob, 200);
  expect_status(http::verb::post, "/v1/topics/orders/groups", R"({"group":"g","start_id":"$"})",
                alice, 201);
  expect_status(http::verb::post, "/v1/topics/orders/groups/g/reset", R"({"start_id":"0-0"})",
                alice, 200);
  expect_status(http::verb::post, "/v1/topics/orders/events",
                R"({"events":[{"type":"t"},{"type":"t"},{"type":"t"}]})",
                bearer(jwt, "svc", auth::Role::producer), 201);
  // A producer whose ingest makes a topic made a change too: its partition count is fixed.
  expect_status(http::verb::post, "/v1/topics/jobs/events",
                R"({"events":[{"type":"t"}],"partitions":3})",
                bearer(jwt, "svc", auth::Role::producer), 201);
  auto purged = call(http::verb::post, "/v1/topics/orders/purge", "{}",
                     {alice[0],
                      {"traceparent",
                       "00-0af7651916cd43dd8448eb211c80319c-"
                       "b7ad6b7169203331-01"}});
  ASSERT_EQ(purged.status, 200u) << purged.body;
  expect_status(http::verb::delete_, "/v1/topics/orders/groups/g", "", alice, 200);
  expect_status(http::verb::delete_, "/v1/topics/orders", "", bob, 200);
  // Not changes: reads, and what failed or was refused.
  expect_status(http::verb::get, "/v1/topics", "", alice, 200);
  expect_status(http::verb::delete_, "/v1/topics/orders", "", alice, 404);
  expect_status(http::verb::put, "/v1/topics/x", R"({"partitions":0})", alice, 400);
  expect_status(http::verb::put, "/v1/topics/x", "{}", bearer(jwt, "eve", auth::Role::consumer),
                403);

  auto page = call(http::verb::get, trail, "", alice);
  ASSERT_EQ(page.status, 200u) << page.body;
  const auto records = page.json().at("events").as_array();
  std::vector<std::string> types;
  for (const auto& r : records) types.push_back(std::string(r.at("type").as_string()));
  ASSERT_EQ(types, (std::vector<std::string>{"token.minted", "topic.created", "topic.configured",
                                             "group.created", "group.reset", "topic.created",
                                             "topic.purged", "group.deleted", "topic.deleted"}))
      << page.body;
  // The token's subject, never the token.
  EXPECT_EQ(records[0].at("actor"), json::parse(R"({"type":"admin_secret"})"));
  EXPECT_EQ(records[0].at("payload"),
            json::parse(R"({"sub":"alice","role":"admin","channels":["*"],"expires_at":)" +
                        std::to_string(minted.json().at("expires_at").as_int64()) + "}"));
  EXPECT_EQ(records[1].at("actor"), json::parse(R"({"type":"admin","id":"alice"})"));
  EXPECT_EQ(records[1].at("payload").at("retention").at("max_length"),
            json::parse(R"({"value":50,"source":"topic"})"));
  EXPECT_EQ(records[2].at("actor"), json::parse(R"({"type":"admin","id":"bob"})"));
  EXPECT_EQ(records[2].at("payload").at("retention").at("max_length").at("source"), "server");
  EXPECT_EQ(records[4].at("payload").at("start_id"), "0-0");
  EXPECT_EQ(records[5].at("actor"), json::parse(R"({"type":"producer","id":"svc"})"));
  EXPECT_EQ(records[5].at("payload").at("topic"), "jobs");
  EXPECT_EQ(records[5].at("payload").at("partitions"), 3);
  EXPECT_EQ(records[6].at("payload"), purged.json()) << "what the purge answered";
  EXPECT_EQ(records[6].at("payload").at("purged"), 3);
  EXPECT_EQ(records[6].at("metadata").at("traceparent"),
            "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01");
  EXPECT_EQ(records[8].at("payload"),
            json::parse(R"({"topic":"orders","partitions":2,"deleted":true})"));
  for (const auto& r : records) {
    EXPECT_EQ(std::string(r.at("metadata").at("remote").as_string()).rfind("127.0.0.1:", 0), 0u)
        << r;
  }

  // Only the server writes to the trail, on either publish route, whoever asks; and it keeps
  // one partition (one order).
  auto forged = call(http::verb::post, trail, R"({"type":"topic.deleted"})", alice);
  EXPECT_EQ(forged.status, 403u) << forged.body;
  EXPECT_EQ(forged.error_code(), "forbidden");
  expect_status(http::verb::post, "/v1/topics/replayrail.audit/events",
                R"({"events":[{"type":"topic.deleted"}]})", alice, 403);
  auto split = call(http::verb::put, "/v1/topics/replayrail.audit", R"({"partitions":4})", alice);
  EXPECT_EQ(split.status, 409u) << split.body;
  EXPECT_EQ(split.error_code(), "topic_conflict");
  EXPECT_EQ(call(http::verb::get, trail, "", alice).json().at("events").as_array().size(),
            records.size())
      << "nothing written by the refused requests";

  // Readers: an admin, or a token whose channels claim names the trail; not a consumer token
  // that is limited to nothing, over HTTP, SSE, WebSocket and the summary alike.
  const auto now = unix_now();
  const std::string unlimited = auth::mint({"c", auth::Role::consumer, {}, now + 600}, jwt, now);
  const std::string forwarder =
      auth::mint({"siem", auth::Role::consumer, {"replayrail.*"}, now + 600}, jwt, now);
  auto refused = call(http::verb::get, trail, "", bearer(unlimited));
  EXPECT_EQ(refused.status, 403u) << refused.body;
  EXPECT_NE(refused.body.find("audit trail"), std::string::npos) << refused.body;
  EXPECT_EQ(call(http::verb::get, "/sse/replayrail.audit", "", bearer(unlimited)).status, 403u);
  EXPECT_EQ(
      call(http::verb::get, "/v1/topics/replayrail.audit/describe", "", bearer(unlimited)).status,
      403u);
  EXPECT_EQ(call(http::verb::get, trail, "", bearer(forwarder)).status, 200u);
  auto names = [&](const std::string& token) {
    std::vector<std::string> out;
    const auto listed = call(http::verb::get, "/v1/topics", "", bearer(token)).json();
    for (const auto& t : listed.at("topics").as_array()) {
      out.push_back(std::string(t.at("topic").as_string()));
    }
    return out;
  };
  EXPECT_EQ(names(unlimited), std::vector<std::string>{"jobs"});
  EXPECT_EQ(names(forwarder), std::vector<std::string>{"replayrail.audit"});
  {
    V1Client c(port_, "/ws?token=" + unlimited);
    c.send(R"({"op":"subscribe","sub":"a","channel":"replayrail.audit","from":"0-0"})");
    EXPECT_EQ(c.until("error", "a").back().at("error").at("code").as_string(), "forbidden");
    V1Client f(port_, "/ws?token=" + forwarder);
    f.send(R"({"op":"subscribe","sub":"a","channel":"replayrail.audit","from":"0-0"})");
    EXPECT_EQ(event_ids(f.until("caught_up", "a"), "a").size(), records.size());
  }

  auto scraped = call(http::verb::get, "/metrics").body;
  EXPECT_NE(scraped.find("replayrail_audit_records_total 9"), std::string::npos) << scraped;
  EXPECT_NE(scraped.find("replayrail_audit_failures_total 0"), std::string::npos);

  // --audit-channel "": no trail, and the name is a channel as any other.
  restart_server({"--audit-channel", ""});
  const auto before = call(http::verb::get, trail).json().at("events").as_array().size();
  ASSERT_EQ(call(http::verb::put, "/v1/topics/payments", "{}").status, 201u);
  EXPECT_EQ(call(http::verb::get, trail).json().at("events").as_array().size(), before);
  EXPECT_EQ(publish("replayrail.audit", R"({"type":"t"})").status, 201u);
}

// Tokens of an identity provider (RS256 here), checked with its public key: on every store, over
// HTTP, WebSocket and SSE alike (they share the check), with no HS256 secret configured.
TEST_P(ServerE2E, TokensOfAnIdentityProviderAreCheckedWithItsPublicKey) {
  auto provider = auth::testing::KeyPair::rsa();
  const auto pem = dir_.path() / "provider.pem";
  std::ofstream(pem) << provider.public_pem();
  restart_server({"--auth-jwt-public-key", pem.string(), "--auth-jwt-issuer", "https://idp.test"});
  const auto now = unix_now();
  auto claims = [&](const char* role) {
    return json::object{{"sub", "u1"},
                        {"role", role},
                        {"iss", "https://idp.test"},
                        {"exp", now + 600},
                        {"channels", {"orders"}}};
  };
  const std::string body = R"({"type":"order.created","payload":{}})";

  auto stored =
      call(http::verb::post, "/events/orders", body, bearer(provider.sign(claims("producer"))));
  EXPECT_EQ(stored.status, 201u) << stored.body;
  auto read = call(http::verb::get, "/events/orders?after=0-0", {},
                   bearer(provider.sign(claims("consumer"))));
  EXPECT_EQ(read.status, 200u) << read.body;
  EXPECT_EQ(read.json().at("events").as_array().size(), 1u);

  auto refused = [&](const std::vector<std::pair<std::string, std::string>>& headers,
                     unsigned status, const std::string& why,
                     const std::string& target = "/events/orders") {
    auto r = call(http::verb::post, target, body, headers);
    EXPECT_EQ(r.status, status) << why;
    EXPECT_NE(r.body.find(why), std::string::npos) << r.body;
  };
  refused({}, 401, "a token is required");
  refused(bearer(auth::testing::KeyPair::rsa().sign(claims("producer"))), 401, "signature");
  // HS256 is not taken without a secret, whatever the token was signed with (here: the public
  // key's PEM, the classic algorithm confusion).
  auth::JwtConfig forger{provider.public_pem(), "https://idp.test", ""};
  refused(bearer(auth::mint({"u1", auth::Role::admin, {}, now + 600}, forger, now)), 401,
          "algorithm must be RS256");
  auto other_issuer = claims("producer");
  other_issuer["iss"] = "https://elsewhere.test";
  refused(bearer(provider.sign(other_issuer)), 401, "issuer");
  refused(bearer(provider.sign(claims("consumer"))), 403, "needs producer");
  refused(bearer(provider.sign(claims("producer"))), 403, "", "/events/payments");
  // Token minting needs the HS256 secret: off here.
  EXPECT_EQ(
      call(http::verb::post, "/v1/auth/token", R"({"admin_secret":"x","role":"admin"})").status,
      404u);
}

// An identity provider's roles where it puts them (--auth-jwt-role-claim): Keycloak's realm roles,
// an array in which ours are found among its own.
TEST_P(ServerE2E, TheRoleIsReadWhereTheIdentityProviderPutsIt) {
  if (GetParam() != "memory") GTEST_SKIP() << "the token check is the server's, whatever the store";
  auto provider = auth::testing::KeyPair::rsa();
  const auto pem = dir_.path() / "provider.pem";
  std::ofstream(pem) << provider.public_pem();
  restart_server(
      {"--auth-jwt-public-key", pem.string(), "--auth-jwt-role-claim", "realm_access.roles"});
  const auto now = unix_now();
  auto token = [&](json::array roles) {
    return provider.sign(json::object{
        {"sub", "u1"}, {"exp", now + 600}, {"realm_access", {{"roles", std::move(roles)}}}});
  };
  auto publish = [&](const std::string& t) {
    return call(http::verb::post, "/events/orders", R"({"type":"t"})", bearer(t));
  };
  auto read = [&](const std::string& t) {
    return call(http::verb::get, "/events/orders?after=0-0", {}, bearer(t));
  };
  const auto both = token({"offline_access", "consumer", "producer"});
  EXPECT_EQ(publish(both).status, 201u);
  EXPECT_EQ(read(both).status, 200u);
  auto not_admin =
      call(http::verb::post, "/v1/topics/orders/groups", R"({"group":"g"})", bearer(both));
  EXPECT_EQ(not_admin.status, 403u);
  EXPECT_NE(not_admin.body.find("a consumer/producer token may not do this (it needs admin)"),
            std::string::npos)
      << not_admin.body;
  const auto reader = token({"consumer", "uma_authorization"});
  EXPECT_EQ(read(reader).status, 200u);
  EXPECT_EQ(publish(reader).status, 403u);
  auto none = publish(token({"offline_access"}));
  EXPECT_EQ(none.status, 401u);
  EXPECT_NE(none.body.find("realm_access.roles names none of producer, consumer, admin"),
            std::string::npos)
      << none.body;
}

// A key rotation: SIGHUP loads the public key files again, without a restart; a file that does
// not load then leaves the keys as they were.
TEST_P(ServerE2E, SighupLoadsTheJwtPublicKeysAgain) {
  if (GetParam() != "memory") GTEST_SKIP() << "the keys are the server's, whatever the store";
  auto old_key = auth::testing::KeyPair::ec(), new_key = auth::testing::KeyPair::ed25519();
  const auto jwks = dir_.path() / "jwks.json";
  auto publish_jwks = [&](const std::vector<const auth::testing::KeyPair*>& pairs) {
    json::array keys;
    for (const auto* p : pairs) keys.push_back(p->jwk("k" + std::to_string(keys.size())));
    std::ofstream(jwks) << json::serialize(json::object{{"keys", keys}});
  };
  publish_jwks({&old_key});
  restart_server({"--auth-jwt-public-key", jwks.string()});
  const auto now = unix_now();
  const json::object claims{{"sub", "u1"}, {"role", "producer"}, {"exp", now + 600}};
  auto status_with = [&](const auth::testing::KeyPair& pair) {
    return call(http::verb::post, "/events/orders", R"({"type":"t"})", bearer(pair.sign(claims)))
        .status;
  };
  // Waits for the server to have read the files again (it logs nothing to stdout meanwhile).
  auto eventually = [&](const auth::testing::KeyPair& pair, unsigned status) {
    auto deadline = std::chrono::steady_clock::now() + 10s;
    while (status_with(pair) != status && std::chrono::steady_clock::now() < deadline) {
      std::this_thread::sleep_for(std::chrono::milliseconds(20));
    }
    return status_with(pair);
  };
  EXPECT_EQ(status_with(old_key), 201u);
  EXPECT_EQ(status_with(new_key), 401u);

  // The provider publishes its new key next to the old one, then drops the old one.
  publish_jwks({&old_key, &new_key});
  server_->kill(SIGHUP);
  EXPECT_EQ(eventually(new_key, 201), 201u);
  EXPECT_EQ(status_with(old_key), 201u);
  publish_jwks({&new_key});
  server_->kill(SIGHUP);
  EXPECT_EQ(eventually(old_key, 401), 401u);
  EXPECT_EQ(status_with(new_key), 201u);

  // A broken file: the keys loaded before stay.
  std::ofstream(jwks) << "{\"keys\": [";
  server_->kill(SIGHUP);
  std::this_thread::sleep_for(std::chrono::milliseconds(300));
  EXPECT_EQ(status_with(new_key), 201u);
  EXPECT_EQ(status_with(old_key), 401u);
}

// An identity provider's JWK set URL: its keys are fetched at start, and a token signed with a
// key the provider published since (a kid the server has not seen) has the set fetched again.
TEST_P(ServerE2E, KeysOfAJwkSetUrlAreFetchedAndFollowARotation) {
  if (GetParam() != "memory") GTEST_SKIP() << "the keys are the server's, whatever the store";
  auth::testing::JwksServer idp;
  auto old_key = auth::testing::KeyPair::rsa(), new_key = auth::testing::KeyPair::ec();
  idp.publish({old_key.jwk("2026-10")});
  restart_server({"--auth-jwks-url", idp.url(), "--auth-jwt-issuer", "https://idp.test"});
  const auto now = unix_now();
  const json::object claims{
      {"sub", "u1"}, {"role", "producer"}, {"iss", "https://idp.test"}, {"exp", now + 600}};
  auto publish = [&](const auth::testing::KeyPair& pair, const std::string& kid) {
    return call(http::verb::post, "/events/orders", R"({"type":"t"})",
                bearer(pair.sign(claims, "", kid)));
  };
  auto r = publish(old_key, "2026-10");
  EXPECT_EQ(r.status, 201u) << r.body;
  EXPECT_EQ(idp.requests(), 1u);

  // The provider rotates: tokens of its new key pass once the server fetched the set again,
  // which the first of them asked for.
  idp.publish({old_key.jwk("2026-10"), new_key.jwk("2026-11")});
  auto deadline = std::chrono::steady_clock::now() + 20s;
  while (publish(new_key, "2026-11").status != 201 && std::chrono::steady_clock::now() < deadline) {
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
  EXPECT_EQ(publish(new_key, "2026-11").status, 201u);
  EXPECT_EQ(publish(old_key, "2026-10").status, 201u);
  // Asked by many tokens, fetched once; and tokens naming keys nobody published do not make
  // the server fetch more than every 5 s.
  EXPECT_EQ(idp.requests(), 2u);
  for (int i = 0; i < 20; ++i) {
    r = publish(auth::testing::KeyPair::ec(), "made-up-" + std::to_string(i));
    EXPECT_EQ(r.status, 401u);
    EXPECT_NE(r.body.find("no key has the token's key id (kid made-up-"), std::string::npos)
        << r.body;
  }
  EXPECT_LE(idp.requests(), 3u);
}

// A provider that does not answer at start: the server starts, refuses tokens saying why, and
// takes them once the provider answers.
TEST_P(ServerE2E, AJwkSetUrlThatFailsAtStartIsTriedAgain) {
  if (GetParam() != "memory") GTEST_SKIP() << "the keys are the server's, whatever the store";
  auth::testing::JwksServer idp;
  idp.answer(503, "{}");
  restart_server({"--auth-jwks-url", idp.url()});
  auto key = auth::testing::KeyPair::ed25519();
  const auto now = unix_now();
  const std::string token =
      key.sign(json::object{{"sub", "u1"}, {"role", "consumer"}, {"exp", now + 600}}, "", "k1");
  auto read = [&] { return call(http::verb::get, "/events/orders?after=0-0", {}, bearer(token)); };
  // The token may well be good: not refused (401) but not checkable yet (503, try again).
  auto r = read();
  EXPECT_EQ(r.status, 503u);
  EXPECT_EQ(r.error_code(), "auth_unavailable");
  EXPECT_EQ(r.header("retry-after"), "1");
  EXPECT_NE(r.body.find("the keys of " + idp.url() + " are not loaded yet"), std::string::npos)
      << r.body;
  auto garbage = call(http::verb::get, "/events/orders?after=0-0", {}, bearer("not-a-token"));
  EXPECT_EQ(garbage.status, 401u) << "a malformed token is refused as ever: " << garbage.body;
  // Counted for the operator (deploy/prometheus/alerts.yml alerts on it).
  auto metrics = call(http::verb::get, "/metrics").body;
  EXPECT_NE(metrics.find("\nreplayrail_jwks_fetch_failures_total 1"), std::string::npos) << metrics;
  EXPECT_NE(metrics.find("\nreplayrail_jwks_last_success_timestamp_seconds 0"), std::string::npos);
  // Not ready: a load balancer leaves this node out while its tokens cannot be checked.
  auto ready = call(http::verb::get, "/readyz");
  EXPECT_EQ(ready.status, 503u) << ready.body;
  EXPECT_EQ(ready.error_code(), "auth_unavailable");
  EXPECT_EQ(call(http::verb::get, "/healthz").status, 200u) << "alive all the same";

  idp.publish({key.jwk("k1")});
  auto deadline = std::chrono::steady_clock::now() + 20s;
  while (read().status != 200 && std::chrono::steady_clock::now() < deadline) {
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
  EXPECT_EQ(read().status, 200u);
  EXPECT_EQ(call(http::verb::get, "/readyz").status, 200u);
  metrics = call(http::verb::get, "/metrics").body;
  EXPECT_NE(metrics.find("\nreplayrail_jwks_keys 1"), std::string::npos) << metrics;
  EXPECT_NE(metrics.find("\nreplayrail_jwks_last_success_timestamp_seconds 1"), std::string::npos)
      << "unix seconds";
}

// --auth-oidc-issuer: the JWK set URL comes from the provider's discovery document, and tokens
// must name the provider as their issuer.
TEST_P(ServerE2E, AnOpenIdProvidersKeysAreFoundByDiscovery) {
  if (GetParam() != "memory") GTEST_SKIP() << "the keys are the server's, whatever the store";
  auth::testing::JwksServer idp;
  auto key = auth::testing::KeyPair::rsa();
  idp.publish({key.jwk("k1")});
  idp.discovery();
  const std::string issuer = idp.url("");
  restart_server({"--auth-oidc-issuer", issuer});
  const auto now = unix_now();
  auto token = [&](const std::string& iss) {
    return key.sign(
        json::object{{"sub", "u1"}, {"role", "producer"}, {"iss", iss}, {"exp", now + 600}}, "",
        "k1");
  };
  auto publish_as = [&](const std::string& t) {
    return call(http::verb::post, "/events/orders", R"({"type":"t"})", bearer(t));
  };
  auto deadline = std::chrono::steady_clock::now() + 20s;
  while (publish_as(token(issuer)).status != 201 && std::chrono::steady_clock::now() < deadline) {
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
  EXPECT_EQ(publish_as(token(issuer)).status, 201u);
  auto other = publish_as(token("https://elsewhere.example"));
  EXPECT_EQ(other.status, 401u) << other.body;
  EXPECT_EQ(
      publish_as(
          key.sign(json::object{{"sub", "u1"}, {"role", "producer"}, {"exp", now + 600}}, "", "k1"))
          .status,
      401u)
      << "a token without iss";
}

#if defined(__SANITIZE_ADDRESS__)
constexpr bool kSanitized = true;
#else
constexpr bool kSanitized = false;
#endif

std::size_t rss_kib(pid_t pid) {
  std::ifstream status("/proc/" + std::to_string(pid) + "/status");
  for (std::string line; std::getline(status, line);) {
    if (line.rfind("VmRSS:", 0) == 0) return std::stoul(line.substr(6));
  }
  return 0;
}

TEST_P(ServerE2E, ASlowReaderGetsEverythingAndServerMemoryStaysBounded) {
  restart_server({"--max-outbound-bytes", "16384"});
  // A reader with a tiny receive window that does not read until everything is published.
  asio::io_context io;
  websocket::stream<beast::tcp_stream> ws(io);
  ws.next_layer().socket().open(tcp::v4());
  ws.next_layer().socket().set_option(asio::socket_base::receive_buffer_size(4096));
  ws.next_layer().connect(tcp::endpoint(asio::ip::make_address("127.0.0.1"), port_));
  ws.handshake("127.0.0.1", "/ws/slow?last_event_id=0-0");
  constexpr int kEvents = 3000;
  std::string pad(1000, 'x');
  std::size_t before = rss_kib(server_->pid());
  for (int i = 0; i < kEvents; ++i) {
    ASSERT_EQ(publish("slow", R"({"type":"t","payload":{"n":)" + std::to_string(i) + R"(,"pad":")" +
                                  pad + "\"}}")
                  .status,
              201u);
  }
  std::size_t after = rss_kib(server_->pid());
  // 3 MB of events were published; the slow reader holds at most its outbound limit (the
  // memory store itself holds the events, which it may do several times over).
  std::size_t allowed = 8 * 1024 + (GetParam() == "memory" ? kEvents * 4 : 0);
  if (kSanitized) {
    // ASan keeps freed blocks in a quarantine of up to 256 MiB and its own metadata, so RSS
    // measures ASan here; scripts/test runs this test again on the release build for the bound.
    std::cout << "RSS " << before << " -> " << after << " KiB (ASan build, not checked)\n";
  } else {
    EXPECT_LT(after, before + allowed) << "RSS grew from " << before << " to " << after << " KiB";
  }
  beast::flat_buffer buffer;
  for (int i = 0; i < kEvents; ++i) {
    ws.read(buffer);
    auto e = json::parse(beast::buffers_to_string(buffer.data()));
    buffer.clear();
    ASSERT_EQ(e.at("payload").at("n").as_int64(), i) << "every event, in order, exactly once";
  }
}

// --- backpressure, metrics, CORS (issue 6) ----------------------------------------------------

std::string one_partition_batch(int n) {
  std::string out = R"({"partitions":1,"events":[)";
  for (int i = 0; i < n; ++i) out += std::string(i ? "," : "") + R"({"type":"t","payload":{}})";
  return out + "]}";
}

TEST_P(ServerE2E, BackpressureAnswers429WithRetryAfterAndWritesNothing) {
  restart_server({"--backpressure-max-stream-len", "5", "--backpressure-max-group-pending", "2",
                  "--backpressure-max-group-lag", "3", "--backpressure-retry-after", "7"});
  auto refused = [](const HttpResult& r) {
    EXPECT_EQ(r.status, 429u) << r.body;
    if (r.status != 429u) return;
    EXPECT_EQ(r.error_code(), "backpressure");
    EXPECT_EQ(r.header("retry-after"), "7");
  };
  auto ingest = [&](const std::string& topic, int n) {
    return call(http::verb::post, "/v1/topics/" + topic + "/events", one_partition_batch(n));
  };
  auto length = [&](const std::string& topic) {
    return call(http::verb::get, "/v1/topics/" + topic + "/describe")
        .json()
        .at("length")
        .as_int64();
  };

  // A stream at its cap: the next publish, and a batch that would pass it, are refused whole.
  for (int i = 0; i < 5; ++i) ASSERT_EQ(publish("capped", R"({"type":"t"})").status, 201u);
  refused(publish("capped", R"({"type":"t"})"));
  EXPECT_EQ(call(http::verb::get, "/events/capped").json().at("events").as_array().size(), 5u);
  ASSERT_EQ(ingest("cappedtopic", 4).status, 201u);
  refused(ingest("cappedtopic", 2));
  EXPECT_EQ(length("cappedtopic"), 4) << "a refused batch writes none of its events";
  ASSERT_EQ(ingest("cappedtopic", 1).status, 201u) << "room for one more";

  auto group_call = [&](const std::string& topic, const std::string& action,
                        const std::string& body) {
    return call(http::verb::post, "/v1/topics/" + topic + "/groups/g/" + action, body);
  };
  // A group with two unacknowledged events holds publishes back until it acks.
  ASSERT_EQ(ingest("pend", 2).status, 201u);
  ASSERT_EQ(
      call(http::verb::post, "/v1/topics/pend/groups", R"({"group":"g","start_id":"0-0"})").status,
      201u);
  auto read = messages_of(group_call("pend", "read", R"({"consumer":"c","count":10})"));
  ASSERT_EQ(read.size(), 2u);
  refused(ingest("pend", 1));
  json::array ids{read[0].at("redis_id"), read[1].at("redis_id")};
  ASSERT_EQ(
      group_call("pend", "ack",
                 json::serialize(json::object{
                     {"items", json::array{json::object{{"partition", 0}, {"redis_ids", ids}}}}}))
          .status,
      200u);
  EXPECT_EQ(ingest("pend", 1).status, 201u) << "acked: room again";

  // A group three events behind holds publishes back until it reads.
  ASSERT_EQ(ingest("lagging", 1).status, 201u);
  ASSERT_EQ(
      call(http::verb::post, "/v1/topics/lagging/groups", R"({"group":"g","start_id":"$"})").status,
      201u);
  ASSERT_EQ(ingest("lagging", 3).status, 201u);
  refused(ingest("lagging", 1));
  EXPECT_EQ(length("lagging"), 4);
  ASSERT_EQ(messages_of(group_call("lagging", "read", R"({"consumer":"c","count":1})")).size(), 1u);
  EXPECT_EQ(ingest("lagging", 1).status, 201u) << "read one: one behind less";

  // Every refusal is counted by reason.
  auto metrics = call(http::verb::get, "/metrics").body;
  for (const char* line : {R"(replayrail_backpressure_rejections_total{reason="stream_length"} 2)",
                           R"(replayrail_backpressure_rejections_total{reason="group_pending"} 1)",
                           R"(replayrail_backpressure_rejections_total{reason="group_lag"} 1)"}) {
    EXPECT_NE(metrics.find(line), std::string::npos) << line << "\n" << metrics;
  }
}

TEST_P(ServerE2E, PublishAnswers503WhenTheStoreIsDown) {
  if (GetParam() != "redis") GTEST_SKIP() << "only Redis can go away under a running server";
  ASSERT_EQ(publish("outage", R"({"type":"t"})").status, 201u);
  redis_->kill();
  auto down = publish("outage", R"({"type":"t"})");
  EXPECT_EQ(down.status, 503u) << down.body;
  EXPECT_EQ(down.error_code(), "store_unavailable");
  EXPECT_FALSE(down.header("retry-after").empty());
  auto batch = call(http::verb::post, "/v1/topics/outage/events", one_partition_batch(2));
  EXPECT_EQ(batch.status, 503u) << batch.body;
  EXPECT_EQ(call(http::verb::get, "/readyz").status, 503u);
  redis_->start();
  HttpResult back;
  for (int i = 0; i < 100 && back.status != 201u; ++i) {
    back = publish("outage", R"({"type":"t"})");
    if (back.status != 201u) std::this_thread::sleep_for(std::chrono::milliseconds(100));
  }
  EXPECT_EQ(back.status, 201u) << back.body;
}

// A store that hangs (Redis stopped, its connections open) holds a publish past the shutdown
// grace period: SIGTERM still ends the server cleanly, soon after the grace, and the publish is
// answered 503 rather than left to resume in a server that is gone.
TEST_P(ServerE2E, SigtermWithAPublishHungInTheStoreExitsAfterTheGrace) {
  if (GetParam() != "redis") GTEST_SKIP() << "only Redis can hang under a running server";
  restart_server({"--shutdown-grace-ms", "1000"});
  ASSERT_EQ(publish("hung", R"({"type":"t"})").status, 201u);
  redis_->freeze();
  std::optional<HttpResult> answer;
  std::thread publisher([&] {
    try {
      answer = publish("hung", R"({"type":"t"})");
    } catch (const std::exception&) {
    }
  });
  std::this_thread::sleep_for(std::chrono::milliseconds(300));  // the publish waits for Redis
  expect_sigterm_exits_cleanly(4s);
  publisher.join();
  redis_->thaw();
  ASSERT_TRUE(answer) << "the hung publish got no answer";
  EXPECT_EQ(answer->status, 503u) << answer->body;
  EXPECT_EQ(answer->error_code(), "store_unavailable");
}

// A PostgreSQL that hangs under an archive pass: SIGTERM still ends the server soon after the
// grace (the pass's connection is cut), rather than waiting on PostgreSQL for ever.
TEST_P(ServerE2E, SigtermWithAnArchivePassHungOnPostgresExitsAfterTheGrace) {
  if (GetParam() != "local") GTEST_SKIP() << "the archive's PostgreSQL hangs, whatever the store";
  testing::PostgresServer pg;
  restart_server(
      {"--database-url", pg.url(), "--archive-interval-ms", "50", "--shutdown-grace-ms", "1000"});
  for (int i = 0; i < 5; ++i) ASSERT_EQ(publish("archived", R"({"type":"t"})").status, 201u);
  std::this_thread::sleep_for(std::chrono::milliseconds(500));  // archived, the loop going
  pg.freeze();
  ASSERT_EQ(publish("archived", R"({"type":"t"})").status, 201u);
  std::this_thread::sleep_for(std::chrono::milliseconds(300));  // a pass waits for PostgreSQL
  expect_sigterm_exits_cleanly(6s);
}

TEST_P(ServerE2E, MetricsAreValidPrometheusTextAndCountWhatHappened) {
  ASSERT_EQ(publish("m", R"({"type":"t","payload":{"n":1}})").status, 201u);
  ASSERT_EQ(publish("m", R"({"type":"t","payload":{"n":2}})").status, 201u);
  ASSERT_EQ(publish("m", "not json").status, 400u);
  ASSERT_EQ(call(http::verb::post, "/v1/topics/mt/events", one_partition_batch(5)).status, 201u);
  {
    // A subscriber gets both events: two deliveries.
    asio::io_context io;
    Received r;
    asio::co_spawn(io, subscribe(port_, "/ws/m?last_event_id=0-0", 2, r), asio::detached);
    io.run_for(10s);
    ASSERT_EQ(r.events.size(), 2u);
  }
  auto scraped = call(http::verb::get, "/metrics");
  ASSERT_EQ(scraped.status, 200u);
  EXPECT_EQ(scraped.header("content-type").rfind("text/plain; version=0.0.4", 0), 0u);
  EXPECT_EQ(call(http::verb::get, "/metrics/").status, 200u) << "the seed scrapes /metrics/";
  for (const char* line :
       {R"(replayrail_published_events_total{api="events"} 2)",
        R"(replayrail_published_events_total{api="topics",topic="mt"} 5)",
        R"(replayrail_errors_total{code="invalid_json"} 1)",
        R"(replayrail_http_responses_total{status="201"} 3)", R"(replayrail_deliveries_total 2)",
        R"(replayrail_publish_duration_seconds_count{api="events"} 2)"}) {
    EXPECT_NE(scraped.body.find(line), std::string::npos) << line << "\n" << scraped.body;
  }
  // Debian's promtool (scripts/setup installs the prometheus package) checks the format.
  auto file = dir_.path() / "metrics.txt";
  std::ofstream(file) << scraped.body;
  std::string command = "promtool check metrics < " + file.string() + " 2>&1";
  FILE* pipe = ::popen(command.c_str(), "r");
  ASSERT_NE(pipe, nullptr);
  std::string said;
  char chunk[256];
  while (std::fgets(chunk, sizeof chunk, pipe)) said += chunk;
  int status = ::pclose(pipe);
  EXPECT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0) << "promtool: " << said;
}

// --- consumer groups over replayrail.v1 ------------------------------------------------------

std::vector<json::object> of_type(const std::vector<json::object>& messages,
                                  const std::string& type) {
  std::vector<json::object> out;
  for (const auto& m : messages) {
    if (m.at("type").as_string() == type) out.push_back(m);
  }
  return out;
}

// A group message's identity: its partition and id (ids repeat across partitions).
std::string key_of(const json::object& m) {
  return std::to_string(m.at("partition").as_int64()) + "/" + m.at("redis_id").as_string().c_str();
}

// Reads until `n` group messages arrived for `sub`.
std::vector<json::object> group_messages(V1Client& c, const std::string& sub, std::size_t n) {
  std::vector<json::object> out;
  while (out.size() < n) {
    auto got = c.until("message", sub);
    out.push_back(got.back());
  }
  return out;
}

// The ack message for `messages`: {"op":"ack","sub":…,"items":[{partition, redis_ids}]}.
std::string ack_of(const std::string& sub, const std::vector<json::object>& messages) {
  std::map<std::int64_t, json::array> ids;
  for (const auto& m : messages) ids[m.at("partition").as_int64()].push_back(m.at("redis_id"));
  json::array items;
  for (auto& [p, list] : ids) {
    items.push_back(json::object{{"partition", p}, {"redis_ids", std::move(list)}});
  }
  return json::serialize(json::object{{"op", "ack"}, {"sub", sub}, {"items", std::move(items)}});
}

TEST_P(ServerE2E, V1GroupSubscriptionDeliversTakesAcksAndRedeliversWhatADeadConsumerHeld) {
  std::string batch = R"({"partitions":4,"events":[)";
  for (int i = 0; i < 20; ++i) {
    batch +=
        (i ? "," : "") + std::string(R"({"type":"job","payload":{"n":)") + std::to_string(i) + "}}";
  }
  ASSERT_EQ(call(http::verb::post, "/v1/topics/jobs/events", batch + "]}").status, 201u);
  ASSERT_EQ(
      call(http::verb::post, "/v1/topics/jobs/groups", R"({"group":"g","start_id":"0-0"})").status,
      201u);

  std::set<std::string> acked_ids;
  std::vector<json::object> held_by_a;
  {
    V1Client a(port_);
    a.send(
        R"({"op":"subscribe","sub":"w","topic":"jobs","group":"g","consumer":"a","max_in_flight":5})");
    auto first = a.until("message", "w");
    EXPECT_EQ(first.front().at("type").as_string(), "subscribed");
    EXPECT_EQ(first.front().at("partitions").as_int64(), 4);
    auto got = group_messages(a, "w", 4);
    got.insert(got.begin(), first.back());
    for (const auto& m : got) {
      EXPECT_EQ(m.at("delivery_count").as_int64(), 1);
      EXPECT_EQ(m.at("event").at("channel").as_string(), "jobs");
    }
    // Five unacknowledged: no sixth until an ack.
    a.send(R"({"op":"ping","data":1})");
    EXPECT_TRUE(of_type(a.until("pong"), "message").empty()) << "more than max_in_flight out";
    std::vector<json::object> three(got.begin(), got.begin() + 3);
    a.send(ack_of("w", three));
    auto after_ack = a.until("acked", "w");
    EXPECT_EQ(after_ack.back().at("acked").as_int64(), 3);
    for (const auto& m : three) acked_ids.insert(key_of(m));
    auto more = of_type(after_ack, "message");
    auto rest = group_messages(a, "w", 3 - std::min<std::size_t>(3, more.size()));
    more.insert(more.end(), rest.begin(), rest.end());
    ASSERT_EQ(more.size(), 3u) << "three acks make room for three more";
    held_by_a.assign(got.begin() + 3, got.end());
    held_by_a.insert(held_by_a.end(), more.begin(), more.end());
    // Bad acks answer an error marked "op":"ack" and leave the subscription running.
    a.send(R"({"op":"ack","sub":"w","items":[{"partition":9,"redis_ids":["1-0"]}]})");
    auto bad = a.until("error", "w").back();
    EXPECT_EQ(bad.at("op").as_string(), "ack");
    EXPECT_EQ(bad.at("error").at("code").as_string(), "invalid_argument");
    a.send(R"({"op":"ack","sub":"w","items":"all"})");
    EXPECT_EQ(a.until("error", "w").back().at("error").at("code").as_string(), "invalid_argument");
    a.send(R"({"op":"ack","sub":"nobody","items":[]})");
    EXPECT_EQ(a.until("error", "nobody").back().at("error").at("code").as_string(), "not_found");
    // Consumer a goes away holding five unacknowledged messages.
  }
  ASSERT_EQ(held_by_a.size(), 5u);

  // Consumer b gets what nobody had, and a's five once they were idle for 300 ms.
  V1Client b(port_);
  b.send(
      R"({"op":"subscribe","sub":"w","topic":"jobs","group":"g","consumer":"b","claim_idle_ms":300,"max_deliveries":5})");
  std::map<std::string, json::object> received;  // by key_of
  while (received.size() < 20 - acked_ids.size()) {
    auto m = b.until("message", "w").back();
    std::string id = key_of(m);
    EXPECT_FALSE(acked_ids.count(id)) << "an acknowledged message came again: " << id;
    received[id] = m;
  }
  for (const auto& m : held_by_a) {
    std::string id = key_of(m);
    ASSERT_TRUE(received.count(id)) << "a's message " << id << " was not redelivered";
    EXPECT_EQ(received[id].at("delivery_count").as_int64(), 2) << "delivered to a, then to b";
  }
  // b acks everything: nothing of the group is pending any more.
  std::vector<json::object> all;
  for (const auto& [id, m] : received) all.push_back(m);
  b.send(ack_of("w", all));
  EXPECT_EQ(b.until("acked", "w").back().at("acked").as_int64(),
            static_cast<std::int64_t>(all.size()));
  auto described = call(http::verb::get, "/v1/topics/jobs/describe");
  ASSERT_EQ(described.status, 200u);
  const auto doc = described.json();
  for (const auto& g : doc.at("groups").as_array()) {
    if (g.at("group").as_string() == "g") {
      EXPECT_EQ(g.at("pending").as_int64(), 0);
      EXPECT_EQ(g.at("lag").as_int64(), 0);
    }
  }
  // Unsubscribed: nothing more for it, even when new events arrive.
  b.send(R"({"op":"unsubscribe","sub":"w"})");
  b.until("unsubscribed", "w");
  ASSERT_EQ(call(http::verb::post, "/v1/topics/jobs/events",
                 R"({"events":[{"type":"job","payload":{"n":20}}]})")
                .status,
            201u);
  b.send(R"({"op":"ping"})");
  EXPECT_TRUE(of_type(b.until("pong"), "message").empty());
}

TEST_P(ServerE2E, V1GroupSubscribeRefusesBadRequestsClearly) {
  ASSERT_EQ(call(http::verb::post, "/v1/topics/jobs/events",
                 R"({"partitions":2,"events":[{"type":"job","payload":{}}]})")
                .status,
            201u);
  ASSERT_EQ(
      call(http::verb::post, "/v1/topics/jobs/groups", R"({"group":"g","start_id":"$"})").status,
      201u);
  V1Client c(port_);
  auto code_of = [&](const std::string& message) {
    c.send(message);
    return std::string(c.until("error", "x").back().at("error").at("code").as_string());
  };
  EXPECT_EQ(code_of(R"({"op":"subscribe","sub":"x","topic":"jobs","group":"g"})"),
            "invalid_argument")
      << "no consumer";
  EXPECT_EQ(code_of(R"({"op":"subscribe","sub":"x","topic":"jobs","group":"nope","consumer":"c"})"),
            "group_not_found");
  EXPECT_EQ(code_of(R"({"op":"subscribe","sub":"x","topic":"none","group":"g","consumer":"c"})"),
            "stream_not_found");
  EXPECT_EQ(
      code_of(
          R"({"op":"subscribe","sub":"x","topic":"jobs","group":"g","consumer":"c","partitions":[2]})"),
      "invalid_argument");
  EXPECT_EQ(
      code_of(
          R"({"op":"subscribe","sub":"x","topic":"jobs","group":"g","consumer":"c","max_in_flight":0})"),
      "invalid_argument");
  EXPECT_EQ(
      code_of(
          R"({"op":"subscribe","sub":"x","topic":"jobs","group":"g","consumer":"c","max_deliveries":3})"),
      "invalid_argument")
      << "max_deliveries without claim_idle_ms";
  EXPECT_EQ(
      code_of(
          R"({"op":"subscribe","sub":"x","topic":"jobs","group":"g","consumer":"c","from":"0-0"})"),
      "invalid_argument")
      << "an unknown field";
  // A good one after all that, and its name is then taken.
  c.send(R"({"op":"subscribe","sub":"x","topic":"jobs","group":"g","consumer":"c"})");
  EXPECT_EQ(c.until("subscribed", "x").back().at("group").as_string(), "g");
  EXPECT_EQ(code_of(R"({"op":"subscribe","sub":"x","channel":"jobs"})"), "invalid_argument");
  // SIGTERM while the group subscription waits for messages: a clean exit, soon.
  std::thread reader([&] {
    try {
      for (;;) c.next();  // until the server's close frame
    } catch (const std::exception&) {
    }
  });
  expect_sigterm_exits_cleanly(5s);
  reader.join();
}

// A blocking HTTP group read waits in slices of a second (so a shutdown can end it): an event
// produced after more than one slice still ends the wait, and nothing is lost between slices.
TEST_P(ServerE2E, BlockingHttpGroupReadReturnsAnEventProducedWhileItWaits) {
  ASSERT_EQ(call(http::verb::post, "/v1/topics/jobs/events", one_partition_batch(1)).status, 201u);
  ASSERT_EQ(
      call(http::verb::post, "/v1/topics/jobs/groups", R"({"group":"g","start_id":"$"})").status,
      201u);
  auto started = std::chrono::steady_clock::now();
  HttpResult answer;
  std::thread reader([&] {
    answer = call(http::verb::post, "/v1/topics/jobs/groups/g/read",
                  R"({"consumer":"c","block_ms":10000})");
  });
  std::this_thread::sleep_for(std::chrono::milliseconds(1500));
  ASSERT_EQ(call(http::verb::post, "/v1/topics/jobs/events", one_partition_batch(1)).status, 201u);
  reader.join();
  auto waited = std::chrono::steady_clock::now() - started;
  EXPECT_GE(waited, std::chrono::milliseconds(1400));
  EXPECT_LT(waited, std::chrono::seconds(8)) << "the event did not end the wait";
  ASSERT_EQ(answer.status, 200u) << answer.body;
  EXPECT_EQ(answer.json().at("messages").as_array().size(), 1u) << answer.body;
}

// An HTTP group read may block for up to a minute: SIGTERM must not wait for it (nor leave it to
// resume after the topics and the store are gone). It is answered, with what came (nothing),
// and the server exits cleanly within its grace period.
TEST_P(ServerE2E, SigtermAnswersABlockedHttpGroupReadAndExitsZero) {
  ASSERT_EQ(call(http::verb::post, "/v1/topics/jobs/events", one_partition_batch(1)).status, 201u);
  ASSERT_EQ(
      call(http::verb::post, "/v1/topics/jobs/groups", R"({"group":"g","start_id":"$"})").status,
      201u);
  std::optional<HttpResult> answer;
  std::thread reader([&] {
    try {
      answer = call(http::verb::post, "/v1/topics/jobs/groups/g/read",
                    R"({"consumer":"c","block_ms":60000})");
    } catch (const std::exception&) {
    }
  });
  std::this_thread::sleep_for(std::chrono::milliseconds(300));  // the read is blocked by now
  expect_sigterm_exits_cleanly(5s);
  reader.join();
  ASSERT_TRUE(answer) << "the blocked read got no answer";
  EXPECT_EQ(answer->status, 200u) << answer->body;
  EXPECT_TRUE(answer->json().at("messages").as_array().empty()) << answer->body;
}

TEST_P(ServerE2E, ClaimMovesAMessageDeliveredTooOftenToTheDeadLetterTopic) {
  auto produced = call(http::verb::post, "/v1/topics/jobs/events", one_partition_batch(2));
  ASSERT_EQ(produced.status, 201u) << produced.body;
  ASSERT_EQ(
      call(http::verb::post, "/v1/topics/jobs/groups", R"({"group":"g","start_id":"0-0"})").status,
      201u);
  auto claim = [&](const std::string& body) {
    return call(http::verb::post, "/v1/topics/jobs/groups/g/claim", body);
  };
  ASSERT_EQ(messages_of(call(http::verb::post, "/v1/topics/jobs/groups/g/read",
                             R"({"consumer":"c1","count":10})"))
                .size(),
            2u);
  // Second delivery: within the limit.
  auto second = claim(R"({"consumer":"c2","min_idle_ms":0,"max_deliveries":2})");
  ASSERT_EQ(messages_of(second).size(), 2u);
  EXPECT_TRUE(second.json().at("dead_lettered").as_array().empty());
  // A third would pass it: both go to jobs.dlq, acknowledged in the group.
  auto third = claim(R"({"consumer":"c3","min_idle_ms":0,"max_deliveries":2})");
  EXPECT_TRUE(messages_of(third).empty()) << third.body;
  const json::value third_json = third.json();
  EXPECT_EQ(third_json.at("dead_letter_stream").as_string(), "jobs.dlq");
  ASSERT_EQ(third_json.at("dead_lettered").as_array().size(), 1u);
  const auto& ids = third_json.at("dead_lettered").as_array()[0].at("redis_ids").as_array();
  ASSERT_EQ(ids.size(), 2u);
  auto dlq = call(http::verb::get, "/events/jobs.dlq");
  ASSERT_EQ(dlq.status, 200u) << dlq.body;
  const json::value dlq_json = dlq.json();
  const auto& dead = dlq_json.at("events").as_array();
  ASSERT_EQ(dead.size(), 2u);
  for (std::size_t i = 0; i < 2; ++i) {
    const auto& letter = dead[i].at("metadata").at("dead_letter");
    EXPECT_EQ(letter.at("reason").as_string(), "max_deliveries");
    EXPECT_EQ(letter.at("group").as_string(), "g");
    EXPECT_EQ(letter.at("original_id").as_string(), ids[i].as_string());
    EXPECT_EQ(letter.at("deliveries").as_int64(), 3);
    EXPECT_EQ(dead[i].at("type").as_string(), "t");
  }
  EXPECT_TRUE(messages_of(claim(R"({"consumer":"c4","min_idle_ms":0})")).empty())
      << "dead letters are no longer pending";
  auto bad = claim(R"({"consumer":"c4","max_deliveries":-1})");
  EXPECT_EQ(bad.status, 400u);
  EXPECT_EQ(bad.error_code(), "invalid_argument");

  // The limit as a setting of the group: claims without max_deliveries use it.
  auto created = call(http::verb::post, "/v1/topics/jobs/groups",
                      R"({"group":"once","start_id":"0-0","max_deliveries":1})");
  ASSERT_EQ(created.status, 201u) << created.body;
  EXPECT_EQ(created.json().at("max_deliveries").as_int64(), 1);
  const auto described = call(http::verb::get, "/v1/topics/jobs/describe").json();
  bool listed = false;
  for (const auto& g : described.at("groups").as_array()) {
    if (g.at("group").as_string() == "once") {
      EXPECT_EQ(g.at("max_deliveries").as_int64(), 1);
      listed = true;
    }
  }
  EXPECT_TRUE(listed);
  ASSERT_EQ(messages_of(call(http::verb::post, "/v1/topics/jobs/groups/once/read",
                             R"({"consumer":"c1","count":10})"))
                .size(),
            2u);
  auto over = call(http::verb::post, "/v1/topics/jobs/groups/once/claim",
                   R"({"consumer":"c2","min_idle_ms":0})");
  EXPECT_TRUE(messages_of(over).empty()) << over.body;
  EXPECT_EQ(over.json().at("dead_lettered").as_array().size(), 1u) << over.body;
  auto bad_group = call(http::verb::post, "/v1/topics/jobs/groups",
                        R"({"group":"neg","start_id":"0-0","max_deliveries":-2})");
  EXPECT_EQ(bad_group.status, 400u);
}

TEST_P(ServerE2E, CorsAllowsTheConfiguredOriginsOnly) {
  // No origins configured: no CORS headers.
  auto plain = call(http::verb::get, "/events/c", "", {{"Origin", "http://ui.example"}});
  EXPECT_EQ(plain.header("access-control-allow-origin"), "");

  restart_server({"--cors-allow-origins", "http://ui.example,http://localhost:3000"});
  auto preflight = call(http::verb::options, "/v1/topics/t/events", "",
                        {{"Origin", "http://localhost:3000"},
                         {"Access-Control-Request-Method", "POST"},
                         {"Access-Control-Request-Headers", "authorization, content-type"}});
  EXPECT_EQ(preflight.status, 204u);
  EXPECT_EQ(preflight.header("access-control-allow-origin"), "http://localhost:3000");
  EXPECT_NE(preflight.header("access-control-allow-headers").find("Authorization"),
            std::string::npos);
  EXPECT_NE(preflight.header("access-control-allow-headers").find("traceparent"),
            std::string::npos);
  EXPECT_NE(preflight.header("access-control-allow-methods").find("POST"), std::string::npos);
  auto allowed = call(http::verb::get, "/events/c", "", {{"Origin", "http://ui.example"}});
  EXPECT_EQ(allowed.status, 200u);
  EXPECT_EQ(allowed.header("access-control-allow-origin"), "http://ui.example");
  EXPECT_EQ(allowed.header("vary"), "Origin");
  auto other = call(http::verb::get, "/events/c", "", {{"Origin", "http://evil.example"}});
  EXPECT_EQ(other.status, 200u);
  EXPECT_EQ(other.header("access-control-allow-origin"), "") << "not a configured origin";
}

TEST(ServerCli, RefusesANonLoopbackAddressWithoutInsecure) {
  testing::ChildProcess p({RR_SERVER_BINARY, "serve", "--store", "memory", "--listen",
                           "0.0.0.0:" + std::to_string(testing::free_port())});
  int status = p.wait();
  ASSERT_TRUE(WIFEXITED(status));
  EXPECT_NE(WEXITSTATUS(status), 0);
}

// Settings the seeds' users carry over and that would otherwise be ignored silently are named.
TEST(ServerCli, WarnsAboutARedisUrlItDoesNotUse) {
  auto first_lines = [](const std::string& environment, const std::string& store) {
    testing::ChildProcess p({"/bin/sh", "-c",
                             environment + " exec " + RR_SERVER_BINARY + " serve --store " + store +
                                 " --listen 127.0.0.1:" + std::to_string(testing::free_port()) +
                                 " 2>&1"});
    std::string lines;
    while (auto line = p.read_line(std::chrono::seconds(20))) {
      if (line->find("serving on") != std::string::npos) break;
      lines += *line + "\n";
    }
    p.kill(SIGTERM);
    p.wait();
    return lines;
  };
  auto warned = first_lines("REDIS_URL=redis://127.0.0.1:1/0", "memory");
  EXPECT_NE(warned.find("a Redis URL is set"), std::string::npos) << warned;
  EXPECT_NE(warned.find("--store redis"), std::string::npos) << warned;
  EXPECT_EQ(first_lines("unset REDIS_URL DATABASE_URL;", "memory"), "");
}

// DESIGN §5: the server logs what goes wrong, here as JSON lines: a store it cannot reach, a
// request it answered with a 5xx, and its own start and stop.
TEST(ServerCli, LogsAreJsonLinesThatSayWhatWentWrong) {
  testing::RedisServer redis;
  const auto port = testing::free_port();
  testing::ChildProcess server({"/bin/sh", "-c",
                                std::string("exec ") + RR_SERVER_BINARY +
                                    " serve --store redis --redis " + redis.url() +
                                    " --listen 127.0.0.1:" + std::to_string(port) +
                                    " --log-format json --log-level debug 2>&1"});
  std::vector<json::object> records;
  // Reads lines until one holds `text`; every line but the banner must be a JSON record.
  auto until = [&](const std::string& text) {
    while (auto line = server.read_line(std::chrono::seconds(20))) {
      if (line->starts_with("replayrail: ")) {  // the banner on stdout
        if (line->find(text) != std::string::npos) return true;
        continue;
      }
      boost::system::error_code ec;
      auto v = json::parse(*line, ec);
      EXPECT_FALSE(ec) << "not JSON: " << *line;
      if (ec || !v.is_object()) continue;
      const auto& o = v.as_object();
      EXPECT_TRUE(o.contains("time") && o.contains("level") && o.contains("msg")) << *line;
      records.push_back(o);
      if (line->find(text) != std::string::npos) return true;
    }
    return false;
  };
  ASSERT_TRUE(until("serving on"));
  auto publish = [&] {
    asio::io_context io;
    beast::tcp_stream stream(io);
    stream.connect(tcp::endpoint(asio::ip::make_address("127.0.0.1"), port));
    http::request<http::string_body> req{http::verb::post, "/events/logged", 11};
    req.body() = R"({"type":"t"})";
    req.prepare_payload();
    http::write(stream, req);
    beast::flat_buffer buffer;
    http::response<http::string_body> res;
    http::read(stream, buffer, res);
    return res.result_int();
  };
  EXPECT_EQ(publish(), 201u);
  ASSERT_TRUE(until("POST /events/logged 201")) << "debug: one record per request";
  redis.kill();
  EXPECT_EQ(publish(), 503u);
  ASSERT_TRUE(until("answered 503"));
  EXPECT_EQ(records.back().at("level").as_string(), "error");
  EXPECT_NE(records.back().at("msg").as_string().find("store_unavailable"), std::string::npos);
  bool lost = false;
  for (const auto& r : records) {
    lost = lost || (r.at("level").as_string() == "warning" &&
                    r.at("msg").as_string().find("Redis at") != std::string::npos);
  }
  EXPECT_TRUE(lost) << "the lost Redis connection is logged";
  server.kill(SIGTERM);
  EXPECT_TRUE(until("\"stopped\""));
  server.wait();
}

// DESIGN §4: a setting comes from its flag, else the environment, else the --config TOML file.
TEST(ServerCli, ConfigFileSettingsRankBelowEnvironmentAndFlags) {
  testing::TempDir dir("cli-config");
  const auto port = std::to_string(testing::free_port());
  auto write = [&](const std::string& name, const std::string& text) {
    std::ofstream(dir.path() / name) << text;
    return (dir.path() / name).string();
  };
  const std::string data_dir = "data-dir = \"" + (dir.path() / "data").string() + "\"\n";
  const auto flat = write("flat.toml", "store = \"memory\"\nlisten = \"127.0.0.1:" + port + "\"\n");
  const auto sectioned =
      write("sectioned.toml", "[serve]\nstore = \"memory\"\nlisten = \"127.0.0.1:" + port + "\"\n");
  const auto local =
      write("local.toml", data_dir + "store = \"local\"\nlisten = \"127.0.0.1:" + port + "\"\n");
  // The first line the server prints (or its error), with `environment` (NAME=value…) set.
  auto first_line = [&](std::vector<std::string> args, std::vector<std::string> environment = {}) {
    std::vector<std::string> argv{"/usr/bin/env", "-u", "REPLAYRAIL_STORE", "-u",
                                  "REPLAYRAIL_LISTEN"};
    argv.insert(argv.end(), environment.begin(), environment.end());
    argv.insert(argv.end(), {"/bin/sh", "-c", "exec \"$0\" \"$@\" 2>&1", RR_SERVER_BINARY});
    argv.insert(argv.end(), args.begin(), args.end());
    testing::ChildProcess p(argv);
    auto line = p.read_line(std::chrono::seconds(20)).value_or("(nothing)");
    p.kill(SIGTERM);
    p.wait();
    return line;
  };
  const std::string on_port = "127.0.0.1:" + port + " (store: ";
  EXPECT_NE(first_line({"serve", "--config", flat}).find(on_port + "memory)"), std::string::npos)
      << "keys at the top of the file are serve's";
  EXPECT_NE(first_line({"--config", sectioned, "serve"}).find(on_port + "memory)"),
            std::string::npos);
  EXPECT_NE(first_line({"serve", "--config", sectioned}).find(on_port + "memory)"),
            std::string::npos);
  EXPECT_NE(first_line({"serve", "--config", local}, {"REPLAYRAIL_STORE=memory"})
                .find(on_port + "memory)"),
            std::string::npos)
      << "the environment beats the file";
  EXPECT_NE(
      first_line({"serve", "--config", local, "--store", "memory"}, {"REPLAYRAIL_STORE=local"})
          .find(on_port + "memory)"),
      std::string::npos)
      << "a flag beats the environment";

  // A misspelt key is an error that names it, not a setting silently left at its default.
  const auto typo = write("typo.toml", "stroe = \"memory\"\n");
  testing::ChildProcess p(
      {"/bin/sh", "-c", std::string(RR_SERVER_BINARY) + " serve --config " + typo + " 2>&1"});
  auto said = p.read_line(std::chrono::seconds(20)).value_or("");
  EXPECT_NE(said.find("stroe"), std::string::npos) << said;
  const int status = p.wait();
  ASSERT_TRUE(WIFEXITED(status));
  EXPECT_EQ(WEXITSTATUS(status), 2);
}

// Arguments that are wrong are a usage error (exit 2), before anything starts.
TEST(ServerCli, BadArgumentsExitWithTheUsageCode) {
  const std::vector<std::vector<std::string>> bad = {
      {"serve", "--fsync", "sometimes"},
      {"serve", "--fsync", "batch", "--fsync-interval-ms", "0"},
      {"serve", "--threads", "-1"},
      {"serve", "--listen", "no-port"},
      {"serve", "--no-such-flag"},
      {"serve", "--log-level", "loud"},
      {"serve", "--log-format", "xml"},
      {"serve", "--max-stream-age", "10"},  // no unit
      {"serve", "--max-stream-age", "-1h"},
      {"serve", "--max-stream-age", "1y"},
      {"serve", "--auth-jwt-public-key", "/nonexistent/idp.pem"},
      {"serve", "--auth-jwt-public-key", "/etc/hostname"},  // no PEM key
      {"serve", "--auth-jwks-url", "idp.test/jwks"},
      {"serve", "--auth-jwks-url", "ftp://idp.test/jwks"},
      {"serve", "--auth-jwks-url", "http://127.0.0.1:1/jwks", "--auth-jwks-refresh-ms", "0"},
      {"serve", "--auth-oidc-issuer", "ftp://idp.test"},
      {"serve", "--auth-oidc-issuer", "https://idp.test", "--auth-jwks-url",
       "https://idp.test/jwks"},
      {"serve", "--auth-oidc-issuer", "https://idp.test", "--auth-jwt-issuer", "https://other"},
      {"publish"},
      {"replay", "c", "--url", "ftp://127.0.0.1:1"},
      {},
  };
  for (const auto& args : bad) {
    std::vector<std::string> argv{RR_SERVER_BINARY};
    argv.insert(argv.end(), args.begin(), args.end());
    testing::ChildProcess p(argv);
    int status = p.wait();
    ASSERT_TRUE(WIFEXITED(status));
    EXPECT_EQ(WEXITSTATUS(status), 2) << ::testing::PrintToString(args);
  }
}

// `replayrail serve <args>` refuses to start: its first line says `why`, and it exits 1.
void expect_serve_refused(const std::string& args, const std::string& why) {
  testing::ChildProcess p(
      {"/bin/sh", "-c",
       std::string(RR_SERVER_BINARY) + " serve " + args + " --listen 127.0.0.1:0 2>&1"});
  auto said = p.read_line(std::chrono::seconds(20)).value_or("");
  EXPECT_NE(said.find(why), std::string::npos) << said;
  const int status = p.wait();
  ASSERT_TRUE(WIFEXITED(status));
  EXPECT_EQ(WEXITSTATUS(status), 1);
}

// A Redis Cluster has no SELECT: a URL naming another database is refused before anything starts.
TEST(ServerCli, ARedisClusterUrlNamesDatabaseZero) {
  expect_serve_refused("--store redis --redis redis://127.0.0.1:1/2 --redis-cluster",
                       "database 0 only");
}

// `replayrail audit verify` on `database_url`: exit code and output lines.
std::pair<int, std::vector<std::string>> audit_verify(const std::string& database_url) {
  testing::ChildProcess p({RR_SERVER_BINARY, "audit", "verify", "--database-url", database_url});
  std::vector<std::string> lines;
  while (auto line = p.read_line(std::chrono::seconds(20))) lines.push_back(*line);
  const int status = p.wait();
  return {WIFEXITED(status) ? WEXITSTATUS(status) : -1, lines};
}

// DESIGN §6: a server with --database-url archives every stream as it goes.
TEST_P(ServerE2E, TheServerArchivesWhatItStoresToPostgres) {
  testing::PostgresServer pg;
  restart_server({"--database-url", pg.url(), "--archive-interval-ms", "50"});
  for (int i = 0; i < 5; ++i) ASSERT_EQ(publish("archived", R"({"type":"t"})").status, 201u);
  ASSERT_EQ(call(http::verb::post, "/v1/topics/parts/events",
                 R"({"partitions":2,"events":[{"type":"a"},{"type":"b"}]})")
                .status,
            201u);
  // Archived within a few passes.
  std::vector<std::string> lines;
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(20);
  for (;;) {
    auto [code, out] = audit_verify(pg.url());
    ASSERT_EQ(code, 0) << ::testing::PrintToString(out);
    lines = out;
    const std::string all = ::testing::PrintToString(out);
    if (all.find("archived: 5 events, chain intact") != std::string::npos &&
        all.find("parts#0: 1 events") != std::string::npos &&
        all.find("parts#1: 1 events") != std::string::npos &&
        all.find("replayrail.audit: 1 events") != std::string::npos) {  // parts was created
      break;
    }
    ASSERT_LT(std::chrono::steady_clock::now(), deadline) << all;
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
  }
  const auto metrics = call(http::verb::get, "/metrics").body;
  EXPECT_NE(metrics.find("replayrail_archived_events_total 8"), std::string::npos) << metrics;
  EXPECT_NE(metrics.find("replayrail_archive_last_success_timestamp_seconds 1"), std::string::npos);
  EXPECT_NE(metrics.find("replayrail_archive_failures_total 0"), std::string::npos);
  EXPECT_NE(metrics.find("\nreplayrail_archive_lag_seconds "), std::string::npos);
  // The dashboard's view of the same: the summary's "archive".
  auto summary = call(http::verb::get, "/v1/metrics/summary");
  ASSERT_EQ(summary.status, 200u) << summary.body;
  const json::value summary_json = summary.json();
  const auto& archive = summary_json.at("archive");
  EXPECT_EQ(archive.at("events").to_number<std::int64_t>(), 8);
  EXPECT_EQ(archive.at("failed_passes").to_number<std::int64_t>(), 0);
  EXPECT_GT(archive.at("last_success").to_number<double>(), 1.7e9) << "unix seconds";
  EXPECT_GE(archive.at("lag_seconds").to_number<double>(), 0.0);
  expect_sigterm_exits_cleanly(10s);
}

// DESIGN §6, "replay reads span tiers": with an archive, a cursor older than the store keeps is
// served from the archive, then the store, on every read path, as one sequence.
TEST_P(ServerE2E, ReplaysOlderThanTheStoreKeepsAreReadFromTheArchive) {
  testing::PostgresServer pg;
  restart_server(
      {"--max-stream-length", "20", "--database-url", pg.url(), "--archive-interval-ms", "50"});
  std::vector<std::string> published;
  for (int round = 0; round < 5; ++round) {
    for (int i = 0; i < 10; ++i) {
      auto r = publish("tiered",
                       R"({"type":"t","payload":{"n":)" + std::to_string(published.size()) + "}}");
      ASSERT_EQ(r.status, 201u) << r.body;
      published.push_back(r.json().at("event").at("id").as_string().c_str());
    }
    // Archived before the next round trims it.
    const std::string want = "tiered: " + std::to_string(published.size()) + " events";
    const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(20);
    while (::testing::PrintToString(audit_verify(pg.url()).second).find(want) ==
           std::string::npos) {
      ASSERT_LT(std::chrono::steady_clock::now(), deadline) << want;
      std::this_thread::sleep_for(std::chrono::milliseconds(50));
    }
  }
  const std::vector<std::string> wanted(published.begin() + 3, published.end());

  // GET /events: pages across the boundary, each `next` where the last ended.
  for (int limit : {1000, 7}) {
    std::vector<std::string> got;
    std::string after = published[2];
    for (;;) {
      auto page = call(http::verb::get,
                       "/events/tiered?after=" + after + "&limit=" + std::to_string(limit));
      ASSERT_EQ(page.status, 200u) << page.body;
      const auto body = page.json();
      const auto& events = body.at("events").as_array();
      if (events.empty()) break;
      for (const auto& e : events) got.push_back(e.at("id").as_string().c_str());
      after = body.at("next").as_string().c_str();
    }
    EXPECT_EQ(got, wanted) << "limit " << limit;
  }
  // From the start: the whole history.
  auto all = call(http::verb::get, "/events/tiered?after=0-0&limit=1000");
  ASSERT_EQ(all.status, 200u);
  EXPECT_EQ(all.json().at("events").as_array().size(), published.size());

  // WebSocket and SSE from the old cursor.
  asio::io_context io;
  Received ws;
  asio::co_spawn(io,
                 subscribe(port_, "/ws/tiered?last_event_id=" + published[2], wanted.size(), ws),
                 asio::detached);
  io.run();
  EXPECT_EQ(ids(ws), wanted);
  std::string text = read_sse(
      "/sse/tiered",
      [&](const std::string& t) { return t.find("id: " + published.back()) != std::string::npos; },
      {{"Last-Event-ID", published[2]}});
  std::vector<std::string> sse;
  for (auto at = text.find("id: "); at != std::string::npos; at = text.find("id: ", at + 1)) {
    sse.push_back(text.substr(at + 4, text.find('\n', at) - at - 4));
  }
  EXPECT_EQ(sse, wanted);
  expect_sigterm_exits_cleanly(10s);
}

// DESIGN §8: server nodes are stateless. Two nodes on one Redis: an event published on one
// reaches a subscriber of the other; a consumer group is shared (read on one, acked on the
// other); both archive, each event once (advisory locks), with an intact chain.
TEST_P(ServerE2E, TwoNodesOnOneRedisShareEventsGroupsAndTheArchive) {
  if (GetParam() != "redis") GTEST_SKIP() << "only Redis is shared by several nodes";
  testing::PostgresServer pg;
  restart_server({"--database-url", pg.url(), "--archive-interval-ms", "50"});
  const std::uint16_t other_port = testing::free_port();
  testing::ChildProcess other({RR_SERVER_BINARY, "serve", "--store", "redis", "--redis",
                               redis_->url(), "--listen", "127.0.0.1:" + std::to_string(other_port),
                               "--threads", "2", "--database-url", pg.url(),
                               "--archive-interval-ms", "50"});
  auto line = other.read_line(20s);
  ASSERT_TRUE(line && line->find("serving on") != std::string::npos) << line.value_or("");

  // Live: a subscriber on the other node, events published on this one.
  asio::io_context io;
  Received got;
  asio::co_spawn(io, subscribe(other_port, "/ws/shared?last_event_id=0-0", 20, got),
                 asio::detached);
  std::thread runner([&] { io.run(); });
  std::vector<std::string> published;
  for (int i = 0; i < 20; ++i) {
    auto r = publish("shared", R"({"type":"t","payload":{"n":)" + std::to_string(i) + "}}");
    ASSERT_EQ(r.status, 201u);
    published.push_back(r.json().at("event").at("id").as_string().c_str());
  }
  runner.join();
  EXPECT_EQ(ids(got), published);

  // A consumer group created on this node, read on the other, acked here.
  ASSERT_EQ(call(http::verb::post, "/v1/topics/shared/groups", R"({"group":"g","start_id":"0-0"})")
                .status,
            201u);
  auto other_call = [&](const std::string& target, const std::string& body) {
    const auto saved = port_;
    port_ = other_port;
    auto r = call(http::verb::post, target, body);
    port_ = saved;
    return r;
  };
  auto read = other_call("/v1/topics/shared/groups/g/read", R"({"consumer":"c","count":5})");
  ASSERT_EQ(read.status, 200u) << read.body;
  const auto read_body = read.json();
  const auto& messages = read_body.at("messages").as_array();
  ASSERT_EQ(messages.size(), 5u) << read.body;
  json::array ids_read;
  for (const auto& m : messages) ids_read.push_back(m.at("redis_id"));
  auto acked =
      call(http::verb::post, "/v1/topics/shared/groups/g/ack",
           json::serialize(json::object{
               {"items", json::array{json::object{{"partition", 0}, {"redis_ids", ids_read}}}}}));
  ASSERT_EQ(acked.status, 200u) << acked.body;
  EXPECT_EQ(acked.json().at("acked").as_int64(), 5);
  auto described = call(http::verb::get, "/v1/topics/shared/describe");
  EXPECT_NE(described.body.find(R"("pending":0)"), std::string::npos) << described.body;

  // Both nodes archive; each event once, one chain.
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(20);
  for (;;) {
    auto [code, out] = audit_verify(pg.url());
    ASSERT_EQ(code, 0) << ::testing::PrintToString(out);
    if (::testing::PrintToString(out).find("shared: 20 events, chain intact") !=
        std::string::npos) {
      break;
    }
    ASSERT_LT(std::chrono::steady_clock::now(), deadline) << ::testing::PrintToString(out);
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
  }
  std::this_thread::sleep_for(std::chrono::milliseconds(300));  // more passes, on both nodes
  auto [code, out] = audit_verify(pg.url());
  EXPECT_NE(::testing::PrintToString(out).find("shared: 20 events, chain intact"),
            std::string::npos)
      << ::testing::PrintToString(out);
  other.kill(SIGTERM);
  const int status = other.wait();
  EXPECT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0);
}

// DESIGN §8 on a Redis Cluster: two nodes started with --redis-cluster share a channel (a
// subscriber of one gets what the other publishes) and a topic whose partitions lie on different
// cluster nodes, read by a consumer group that waits on all of them at once.
// Partitions are separate streams: on a Redis Cluster with a node down, an ingest stores the
// partitions the other nodes serve and fails those of the lost node. The answer is that failure's
// status and error, with each event's result in request order (an id, or the error), so a client
// without event_ids can resend just the events that were not stored.
TEST_P(ServerE2E, AnIngestThatFailsOnSomePartitionsSaysWhichEventsWereStored) {
  if (GetParam() != "redis") GTEST_SKIP() << "a Redis Cluster is for the redis store";
  testing::RedisCluster cluster;
  restart_server({"--redis", cluster.url(), "--redis-cluster"});
  std::string batch = R"({"partitions":8,"events":[)";
  for (int i = 0; i < 8; ++i) batch += std::string(i ? "," : "") + R"({"type":"t"})";
  batch += "]}";
  ASSERT_EQ(call(http::verb::post, "/v1/topics/split/events", batch).status, 201u);
  auto key = [](std::int64_t p) { return "rr:{split#" + std::to_string(p) + "}"; };
  std::vector<std::size_t> owner;  // of each partition's stream
  for (int p = 0; p < 8; ++p) {
    owner.push_back(cluster.owner(static_cast<std::uint16_t>(
        std::stoi(cluster.cli(0, {"CLUSTER", "KEYSLOT", key(p)}).at(0)))));
  }
  const std::size_t lost = owner[0];
  ASSERT_NE(std::count(owner.begin(), owner.end(), lost), 8) << "the partitions all on one node";
  cluster.kill(lost);  // the others serve on until they mark it failed (node timeout: 5 s)

  auto r = call(http::verb::post, "/v1/topics/split/events", batch);
  EXPECT_EQ(r.status, 503u) << r.body;
  EXPECT_EQ(r.error_code(), "store_unavailable");
  const auto results = r.json().at("results").as_array();
  ASSERT_EQ(results.size(), 8u) << r.body;
  std::set<std::int64_t> partitions;
  for (const auto& result : results) {
    const auto p = result.at("partition").as_int64();
    partitions.insert(p);
    if (owner[static_cast<std::size_t>(p)] == lost) {
      EXPECT_EQ(result.at("error").at("code"), "store_unavailable") << result;
      EXPECT_FALSE(result.as_object().contains("redis_id"));
    } else {
      ASSERT_TRUE(result.as_object().contains("redis_id")) << result;
      const std::string id = result.at("redis_id").as_string().c_str();
      auto stored = cluster.cli(owner[static_cast<std::size_t>(p)], {"XRANGE", key(p), id, id});
      EXPECT_FALSE(stored.empty()) << "partition " << p << " does not hold " << id;
    }
  }
  EXPECT_EQ(partitions.size(), 8u) << "one event a partition, round-robin";
}

TEST_P(ServerE2E, TwoNodesOnARedisClusterShareChannelsAndTopics) {
  if (GetParam() != "redis") GTEST_SKIP() << "a Redis Cluster is for the redis store";
  testing::RedisCluster cluster;
  restart_server({"--redis", cluster.url(), "--redis-cluster"});
  const std::uint16_t other_port = testing::free_port();
  // This one learns it from the environment, as a container would be told.
  ::setenv("REDIS_CLUSTER", "1", 1);
  testing::ChildProcess other({RR_SERVER_BINARY, "serve", "--store", "redis", "--redis",
                               cluster.url(), "--listen", "127.0.0.1:" + std::to_string(other_port),
                               "--threads", "2"});
  ::unsetenv("REDIS_CLUSTER");
  auto line = other.read_line(20s);
  ASSERT_TRUE(line && line->find("serving on") != std::string::npos) << line.value_or("");
  auto on_other = [&](http::verb verb, const std::string& target, const std::string& body) {
    const auto saved = port_;
    port_ = other_port;
    auto r = call(verb, target, body);
    port_ = saved;
    return r;
  };

  // A channel: live across the nodes, and stored under its hash tag on the node of its slot.
  asio::io_context io;
  Received got;
  asio::co_spawn(io, subscribe(other_port, "/ws/shared?last_event_id=0-0", 20, got),
                 asio::detached);
  std::thread runner([&] { io.run_for(30s); });
  std::vector<std::string> published;
  for (int i = 0; i < 20; ++i) {
    auto r = publish("shared", R"({"type":"t","payload":{"n":)" + std::to_string(i) + "}}");
    ASSERT_EQ(r.status, 201u) << r.body;
    published.push_back(r.json().at("event").at("id").as_string().c_str());
  }
  runner.join();
  EXPECT_EQ(ids(got), published);
  const auto slot = std::stoi(cluster.cli(0, {"CLUSTER", "KEYSLOT", "rr:{shared}"}).at(0));
  EXPECT_EQ(
      cluster.cli(cluster.owner(static_cast<std::uint16_t>(slot)), {"XLEN", "rr:{shared}"}).at(0),
      "20");

  // A topic of 8 partitions, spread over the cluster's nodes, read by a group on the other node.
  ASSERT_EQ(call(http::verb::post, "/v1/topics/orders/events", event_batch(0, 20)).status, 201u);
  std::set<std::size_t> nodes;
  for (int p = 0; p < 8; ++p) {
    auto key = "rr:{orders#" + std::to_string(p) + "}";  // partition p's stream
    auto owner = cluster.owner(
        static_cast<std::uint16_t>(std::stoi(cluster.cli(0, {"CLUSTER", "KEYSLOT", key}).at(0))));
    if (cluster.cli(owner, {"EXISTS", key}).at(0) == "1") nodes.insert(owner);
  }
  EXPECT_GT(nodes.size(), 1u) << "the partitions all on one node";
  ASSERT_EQ(call(http::verb::post, "/v1/topics/orders/groups", R"({"group":"g","start_id":"0-0"})")
                .status,
            201u);
  auto all = messages_of(on_other(http::verb::post, "/v1/topics/orders/groups/g/read",
                                  R"({"consumer":"c","count":100})"));
  EXPECT_EQ(all.size(), 20u);

  // Blocked on all eight partitions at once; one event on any of them answers it.
  HttpResult waited;
  const auto started = std::chrono::steady_clock::now();
  std::thread reader([&] {
    waited = on_other(http::verb::post, "/v1/topics/orders/groups/g/read",
                      R"({"consumer":"c","count":100,"block_ms":10000})");
  });
  std::this_thread::sleep_for(std::chrono::milliseconds(500));
  ASSERT_EQ(call(http::verb::post, "/v1/topics/orders/events", event_batch(20, 21)).status, 201u);
  reader.join();
  EXPECT_LT(std::chrono::steady_clock::now() - started, 5s) << "the wait did not wake";
  auto woken = messages_of(waited);
  ASSERT_EQ(woken.size(), 1u);
  EXPECT_EQ(woken[0].at("event").at("payload").at("n").as_int64(), 20);

  other.kill(SIGTERM);
  const int status = other.wait();
  EXPECT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0);
}

// A WebSocket subscriber that does what a client should when the server closes it with 1013
// (try again later: the store is down) or refuses it: reconnects, with the last id it got, until
// `want` events came or 60 s passed. Counts its reconnections.
asio::awaitable<void> subscribe_resuming(std::uint16_t port, std::string channel, std::size_t want,
                                         Received& out, int& reconnections) {
  asio::steady_timer pause(co_await asio::this_coro::executor);
  const auto give_up = std::chrono::steady_clock::now() + 60s;
  while (out.events.size() < want && std::chrono::steady_clock::now() < give_up) {
    std::string cursor =
        out.events.empty() ? "0-0" : out.events.back().at("id").as_string().c_str();
    Received part;
    bool refused = false;
    try {
      co_await subscribe(port, "/ws/" + channel + "?last_event_id=" + cursor,
                         want - out.events.size(), part);
    } catch (const boost::system::system_error&) {
      refused = true;  // the handshake answered 503
    }
    for (auto& e : part.events) out.events.push_back(std::move(e));
    if (part.close_code != 0) out.close_code = part.close_code;
    if (out.events.size() < want && (refused || part.close_code != 0)) {
      ++reconnections;
      pause.expires_after(std::chrono::milliseconds(200));
      co_await pause.async_wait(asio::use_awaitable);
    }
  }
}

// DESIGN §8: a server on a Redis watched by Sentinels keeps serving through a failover. The
// primary dies; publishes answer 503 store_unavailable (never 201 for an event not stored) until
// the Sentinels promote the replica. A WebSocket subscriber is closed with 1013 meanwhile, and,
// resuming from its last id, gets every event published before and after, in order, once each.
TEST_P(ServerE2E, AServerOnRedisSentinelCarriesOnThroughAFailover) {
  if (GetParam() != "redis") GTEST_SKIP() << "Sentinels watch a Redis";
  testing::RedisSentinel sentinel(1, 1, 1000);
  restart_server({"--redis", sentinel.url()});
  asio::io_context io;
  Received got;
  int reconnections = 0;
  asio::co_spawn(io, subscribe_resuming(port_, "orders", 10, got, reconnections), asio::detached);
  std::thread runner([&] { io.run_for(60s); });
  std::vector<std::string> published;
  auto publish_n = [&](int n) {
    const auto give_up = std::chrono::steady_clock::now() + 30s;
    for (;;) {
      auto r = publish("orders", R"({"type":"t","payload":{"n":)" + std::to_string(n) + "}}");
      if (r.status == 201u) {
        published.push_back(r.json().at("event").at("id").as_string().c_str());
        return;
      }
      ASSERT_EQ(r.status, 503u) << r.body;
      EXPECT_EQ(r.error_code(), "store_unavailable");
      ASSERT_LT(std::chrono::steady_clock::now(), give_up) << "no new primary: " << r.body;
      std::this_thread::sleep_for(std::chrono::milliseconds(50));
    }
  };
  for (int i = 0; i < 5; ++i) publish_n(i);
  testing::wait_for_replicas(sentinel.server(0).port());
  sentinel.kill(0);
  for (int i = 5; i < 10; ++i) publish_n(i);
  runner.join();
  EXPECT_EQ(sentinel.primary(), 1u);
  EXPECT_EQ(ids(got), published);
  EXPECT_GT(reconnections, 0);
  EXPECT_EQ(got.close_code, 1013) << "the store's outage, said as try again later";
  EXPECT_EQ(sentinel.cli(1, {"XLEN", "rr:orders"}).at(0), "10");
  EXPECT_EQ(call(http::verb::get, "/readyz").status, 200u);
}

// --redis-wait-replicas: a publish no replica confirms is not acknowledged (this Redis has none).
TEST_P(ServerE2E, PublishesWaitForTheReplicasTheyAreToldTo) {
  if (GetParam() != "redis") GTEST_SKIP() << "replicas are Redis'";
  restart_server({"--redis-wait-replicas", "1", "--redis-wait-timeout-ms", "100"});
  auto r = publish("waited", R"({"type":"t"})");
  EXPECT_EQ(r.status, 503u) << r.body;
  EXPECT_EQ(r.error_code(), "store_unavailable");
  EXPECT_NE(r.body.find("only 0 of 1 replicas confirmed it within 100 ms"), std::string::npos)
      << r.body;

  // On a Redis Cluster, the replica of each primary confirms what that primary stored: a
  // publish, and a topic ingest whose partitions lie on every primary.
  testing::RedisCluster cluster(3, 1);
  restart_server({"--redis", cluster.url(), "--redis-cluster", "--redis-wait-replicas", "1"});
  auto stored = publish("waited", R"({"type":"t"})");
  EXPECT_EQ(stored.status, 201u) << stored.body;
  auto ingested = call(http::verb::post, "/v1/topics/ingested/events", event_batch(0, 40));
  EXPECT_EQ(ingested.status, 201u) << ingested.body;
}

TEST(ServerCli, ARedisClusterHasNoSentinels) {
  expect_serve_refused("--store redis --redis redis+sentinel://127.0.0.1:1/m --redis-cluster",
                       "a Redis Cluster has no Sentinels");
}

// The archive's API for the dashboard (admin only): its streams, a search, a chain's check.
TEST_P(ServerE2E, TheArchiveApiListsSearchesAndVerifies) {
  auto none = call(http::verb::get, "/v1/archive/streams");
  EXPECT_EQ(none.status, 404u) << "no --database-url: no archive";
  EXPECT_EQ(none.error_code(), "not_found");

  testing::PostgresServer pg;
  const auth::JwtConfig jwt{"test-secret", "", ""};
  restart_server(
      {"--database-url", pg.url(), "--archive-interval-ms", "50", "--auth-jwt-secret", jwt.secret});
  auto as = [&](auth::Role role, const std::string& sub = "tester") {
    return bearer(jwt, sub, role);
  };
  const auto admin = as(auth::Role::admin);
  std::vector<std::string> ids;
  for (const char* type : {"a", "b", "a"}) {
    // The second is published by another service: the search tells them apart.
    auto r = call(http::verb::post, "/events/kept", R"({"type":")" + std::string(type) + "\"}",
                  ids.size() == 1 ? as(auth::Role::producer, "svc-other") : admin);
    ASSERT_EQ(r.status, 201u) << r.body;
    ids.push_back(r.json().at("event").at("id").as_string().c_str());
  }
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(20);
  for (;;) {
    auto streams = call(http::verb::get, "/v1/archive/streams", {}, admin);
    ASSERT_EQ(streams.status, 200u) << streams.body;
    const auto body = streams.json();
    const auto& list = body.at("streams").as_array();
    if (!list.empty() && list[0].at("events").as_int64() == 3) {
      EXPECT_EQ(list[0].at("stream").as_string(), "kept");
      EXPECT_EQ(list[0].at("last_id").as_string(), ids[2]);
      break;
    }
    ASSERT_LT(std::chrono::steady_clock::now(), deadline) << streams.body;
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
  EXPECT_EQ(call(http::verb::get, "/v1/archive/streams", {}, as(auth::Role::consumer)).status,
            403u);
  EXPECT_EQ(call(http::verb::get, "/v1/archive/streams").status, 401u);

  auto found = call(http::verb::get, "/v1/archive/streams/kept/events?type=a", {}, admin);
  ASSERT_EQ(found.status, 200u) << found.body;
  const auto body = found.json();
  const auto& events = body.at("events").as_array();
  ASSERT_EQ(events.size(), 2u);
  EXPECT_EQ(events[1].at("id").as_string(), ids[2]);
  EXPECT_EQ(events[1].at("hash").as_string().size(), 64u);
  EXPECT_EQ(body.at("next").as_string(), ids[2]);
  auto after = call(http::verb::get, "/v1/archive/streams/kept/events?after=" + ids[0], {}, admin);
  EXPECT_EQ(after.json().at("events").as_array().size(), 2u);
  // By who published (metadata.publisher.sub, from each publish's token).
  auto by_other =
      call(http::verb::get, "/v1/archive/streams/kept/events?publisher=svc-other", {}, admin);
  ASSERT_EQ(by_other.status, 200u) << by_other.body;
  const auto other_events = by_other.json().at("events").as_array();
  ASSERT_EQ(other_events.size(), 1u) << by_other.body;
  EXPECT_EQ(other_events[0].at("id").as_string(), ids[1]);
  EXPECT_EQ(other_events[0].at("metadata").at("publisher").at("sub").as_string(), "svc-other");
  auto by_tester =
      call(http::verb::get, "/v1/archive/streams/kept/events?publisher=tester&type=a", {}, admin);
  EXPECT_EQ(by_tester.json().at("events").as_array().size(), 2u) << by_tester.body;
  auto by_nobody =
      call(http::verb::get, "/v1/archive/streams/kept/events?publisher=nobody", {}, admin);
  EXPECT_TRUE(by_nobody.json().at("events").as_array().empty()) << by_nobody.body;

  auto verified = call(http::verb::get, "/v1/archive/streams/kept/verify", {}, admin);
  ASSERT_EQ(verified.status, 200u) << verified.body;
  EXPECT_TRUE(verified.json().at("intact").as_bool());
  EXPECT_EQ(verified.json().at("events").as_int64(), 3);

  // The audit trail is archived as any channel is, in its own chain: who made a change is kept
  // with the events.
  ASSERT_EQ(
      call(http::verb::post, "/v1/topics/kept/groups", R"({"group":"g","start_id":"$"})", admin)
          .status,
      201u);
  for (;;) {
    auto changes =
        call(http::verb::get, "/v1/archive/streams/replayrail.audit/events?type=group.created", {},
             admin);
    const auto changes_doc = changes.json();
    if (changes.status == 200u && !changes_doc.at("events").as_array().empty()) {
      const auto& change = changes_doc.at("events").at(0);
      EXPECT_EQ(change.at("actor"), json::parse(R"({"type":"admin","id":"tester"})"));
      EXPECT_EQ(change.at("payload").at("topic"), "kept");
      break;
    }
    ASSERT_LT(std::chrono::steady_clock::now(), deadline) << changes.body;
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
  auto trail = call(http::verb::get, "/v1/archive/streams/replayrail.audit/verify", {}, admin);
  ASSERT_EQ(trail.status, 200u) << trail.body;
  EXPECT_TRUE(trail.json().at("intact").as_bool()) << trail.body;

  // Bad input.
  EXPECT_EQ(
      call(http::verb::get, "/v1/archive/streams/kept/events?after=x", {}, admin).error_code(),
      "invalid_cursor");
  EXPECT_EQ(call(http::verb::get, "/v1/archive/streams/kept/events?limit=0", {}, admin).status,
            400u);
  auto huge = call(
      http::verb::get,
      "/v1/archive/streams/kept/events?after=18446744073709551615-18446744073709551615", {}, admin);
  EXPECT_EQ(huge.status, 200u) << huge.body;
  EXPECT_TRUE(huge.json().at("events").as_array().empty());
  EXPECT_EQ(call(http::verb::get, "/v1/archive/streams/nope/verify", {}, admin).status, 404u);
  auto post = call(http::verb::post, "/v1/archive/streams", "{}", admin);
  EXPECT_EQ(post.status, 405u);
  EXPECT_EQ(post.header("allow"), "GET, HEAD");
}

// `replayrail bench` (DESIGN §1) against the server: every event published, and delivered once
// to every subscriber; a refused channel or an unreachable server is its exit code.
TEST_P(ServerE2E, BenchLoadsTheServerAndCountsEveryEvent) {
  const std::string url = "http://127.0.0.1:" + std::to_string(port_);
  auto bench = [&](std::vector<std::string> args) {
    std::vector<std::string> argv{RR_SERVER_BINARY, "bench", "--url", url};
    argv.insert(argv.end(), args.begin(), args.end());
    testing::ChildProcess p(argv);
    std::string out;
    while (auto line = p.read_line(60s)) out += *line + "\n";
    const int status = p.wait();
    return std::pair{WIFEXITED(status) ? WEXITSTATUS(status) : -1, out};
  };
  publish("loaded", R"({"type":"before"})");  // subscribers start after what is there already
  auto [code, out] =
      bench({"--channel", "loaded", "--events", "300", "--publishers", "3", "--subscribers", "5"});
  EXPECT_EQ(code, 0) << out;
  EXPECT_NE(out.find("published 300 in "), std::string::npos) << out;
  EXPECT_NE(out.find("delivered 1500 to 5 subscribers"), std::string::npos) << out;
  EXPECT_NE(out.find("lost 0, duplicates 0"), std::string::npos) << out;
  auto page = call(http::verb::get, "/events/loaded?after=0-0&limit=1000");
  EXPECT_EQ(page.json().at("events").as_array().size(), 301u);
  // The same over replayrail.v1 publish ops.
  auto [v1_code, v1_out] = bench({"--channel", "loaded", "--events", "300", "--publishers", "3",
                                  "--subscribers", "5", "--v1-publish"});
  EXPECT_EQ(v1_code, 0) << v1_out;
  EXPECT_NE(v1_out.find("(replayrail.v1, as fast as answered)"), std::string::npos) << v1_out;
  EXPECT_NE(v1_out.find("published 300 in "), std::string::npos) << v1_out;
  EXPECT_NE(v1_out.find("delivered 1500 to 5 subscribers"), std::string::npos) << v1_out;
  EXPECT_NE(v1_out.find("lost 0, duplicates 0"), std::string::npos) << v1_out;
  page = call(http::verb::get, "/events/loaded?after=0-0&limit=1000");
  EXPECT_EQ(page.json().at("events").as_array().size(), 601u);

  // A partitioned topic is not one channel: refused, exit 1.
  ASSERT_EQ(call(http::verb::post, "/v1/topics/parts/events",
                 R"({"partitions":2,"events":[{"type":"a"}]})")
                .status,
            201u);
  EXPECT_EQ(bench({"--channel", "parts", "--events", "5", "--subscribers", "1"}).first, 1);
  EXPECT_EQ(bench({"--events", "0"}).first, 2) << "bad input is a usage error";
  testing::ChildProcess unreachable({RR_SERVER_BINARY, "bench", "--url",
                                     "http://127.0.0.1:" + std::to_string(testing::free_port()),
                                     "--events", "5"});
  const int status = unreachable.wait();
  EXPECT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 3);
}

// An event as the Python library writes it, straight into Redis (stream rr:feed).
void xadd_to_feed(const testing::RedisServer& redis, const std::string& event_id) {
  std::vector<std::string> argv{
      "/usr/bin/redis-cli", "-p", std::to_string(redis.port()), "XADD", "rr:feed", "*"};
  for (const auto& [field, value] : std::vector<std::pair<std::string, std::string>>{
           {"event_id", event_id},
           {"channel", "feed"},
           {"type", "t"},
           {"payload", R"({"n":1})"},
           {"actor", "null"},
           {"metadata", "{}"},
           {"created_at", "2026-06-29T12:00:00.000Z"}}) {
    argv.insert(argv.end(), {field, value});
  }
  testing::run_lines(argv);
}

// Waits until `audit verify` reports `events` in the feed stream's intact chain.
void wait_until_archived(const std::string& database_url, int events) {
  const std::string wanted = "feed: " + std::to_string(events) + " events, chain intact";
  for (const auto deadline = std::chrono::steady_clock::now() + 20s;;) {
    auto [code, lines] = audit_verify(database_url);
    if (code == 0 && !lines.empty() && lines[0].starts_with(wanted)) return;
    ASSERT_LT(std::chrono::steady_clock::now(), deadline) << ::testing::PrintToString(lines);
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
}

// `replayrail archive --once` outside a server, then `audit verify`, which finds tampering.
TEST(ArchiveCli, ArchiveOnceThenVerifyFindsTampering) {
  testing::RedisServer redis;
  testing::PostgresServer pg;
  for (int i = 0; i < 3; ++i) xadd_to_feed(redis, "e-" + std::to_string(i));
  auto archive_once = [&] {
    testing::ChildProcess p({RR_SERVER_BINARY, "archive", "--once", "--store", "redis", "--redis",
                             redis.url(), "--database-url", pg.url()});
    auto line = p.read_line(20s).value_or("");
    const int status = p.wait();
    EXPECT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0) << line;
    return line;
  };
  EXPECT_NE(archive_once().find("archived 3 events from 1 streams"), std::string::npos);
  EXPECT_NE(archive_once().find("archived 0 events"), std::string::npos) << "idempotent";
  auto [intact, out] = audit_verify(pg.url());
  EXPECT_EQ(intact, 0);
  ASSERT_EQ(out.size(), 1u);
  EXPECT_EQ(out[0].rfind("feed: 3 events, chain intact, head ", 0), 0u) << out[0];

  // Without --once it archives every interval until SIGTERM.
  testing::ChildProcess looping({RR_SERVER_BINARY, "archive", "--store", "redis", "--redis",
                                 redis.url(), "--database-url", pg.url(), "--archive-interval-ms",
                                 "50"});
  xadd_to_feed(redis, "e-3");
  wait_until_archived(pg.url(), 4);
  looping.kill(SIGTERM);
  const int stopped = looping.wait();
  EXPECT_TRUE(WIFEXITED(stopped) && WEXITSTATUS(stopped) == 0);

  // A superuser gets past the trigger; the chain still tells.
  auto db = archive::pg::Connection::open(pg.url());
  ASSERT_TRUE(db);
  ASSERT_TRUE(
      db->run("BEGIN; ALTER TABLE rr_archive_events DISABLE TRIGGER USER; "
              "UPDATE rr_archive_events SET type = 'forged' WHERE event_id = 'e-1'; "
              "ALTER TABLE rr_archive_events ENABLE TRIGGER USER; COMMIT;"));
  auto [broken, said] = audit_verify(pg.url());
  EXPECT_EQ(broken, 1);
  ASSERT_EQ(said.size(), 1u);
  EXPECT_NE(said[0].find("feed: BROKEN at "), std::string::npos) << said[0];
  EXPECT_NE(said[0].find("(1 events before it are intact)"), std::string::npos) << said[0];
  EXPECT_NE(said[0].find("content does not match its hash"), std::string::npos) << said[0];

  auto [unreachable, nothing] = audit_verify("postgresql://rr@127.0.0.1:1/postgres");
  EXPECT_EQ(unreachable, 3);
}

// `replayrail archive` with its PostgreSQL hung under a pass: SIGTERM still ends it soon after
// the grace (the pass's connection is cut), as it does `serve`.
TEST(ArchiveCli, SigtermWithAPassHungOnPostgresExitsAfterTheGrace) {
  testing::RedisServer redis;
  testing::PostgresServer pg;
  xadd_to_feed(redis, "e-0");
  testing::ChildProcess looping({RR_SERVER_BINARY, "archive", "--store", "redis", "--redis",
                                 redis.url(), "--database-url", pg.url(), "--archive-interval-ms",
                                 "50", "--shutdown-grace-ms", "1000"});
  wait_until_archived(pg.url(), 1);
  pg.freeze();
  xadd_to_feed(redis, "e-1");
  std::this_thread::sleep_for(std::chrono::milliseconds(300));  // a pass waits for PostgreSQL
  auto started = std::chrono::steady_clock::now();
  looping.kill(SIGTERM);
  auto status = looping.wait_for(6s);
  pg.thaw();
  ASSERT_TRUE(status) << "still running 6 s after SIGTERM";
  EXPECT_GE(std::chrono::steady_clock::now() - started, 1s) << "the pass got no grace";
  EXPECT_TRUE(WIFEXITED(*status) && WEXITSTATUS(*status) == 0);
}

// The command-line clients (publish, replay, tail, groups) and `token`, against a real server
// with auth on.
class ClientCli : public ::testing::Test {
 protected:
  static constexpr const char* kSecret = "cli-test-secret";

  void SetUp() override {
    url_ = "http://127.0.0.1:" + std::to_string(testing::free_port());
    server_ = std::make_unique<testing::ChildProcess>(
        std::vector<std::string>{RR_SERVER_BINARY, "serve", "--store", "memory", "--listen",
                                 url_.substr(7), "--auth-jwt-secret", kSecret});
    auto line = server_->read_line(std::chrono::seconds(20));
    ASSERT_TRUE(line && line->find("serving on") != std::string::npos);
  }

  struct Run {
    int code = -1;
    std::vector<std::string> lines;
    json::value json(std::size_t i = 0) const { return json::parse(lines.at(i)); }
  };
  // `replayrail args…` with REPLAYRAIL_URL set and `environment` (NAME=value…) added.
  Run cli(const std::vector<std::string>& args, std::vector<std::string> environment = {}) {
    std::vector<std::string> argv{"/usr/bin/env", "REPLAYRAIL_URL=" + url_};
    argv.insert(argv.end(), environment.begin(), environment.end());
    argv.push_back(RR_SERVER_BINARY);
    argv.insert(argv.end(), args.begin(), args.end());
    testing::ChildProcess p(argv);
    Run run;
    while (auto line = p.read_line(std::chrono::seconds(20))) run.lines.push_back(*line);
    p.kill(SIGKILL);  // still running 20 s after its last line: it hangs (an exited one is kept)
    const int status = p.wait();
    if (WIFEXITED(status)) run.code = WEXITSTATUS(status);
    return run;
  }
  std::string token(const std::string& role, const std::string& channels = "") {
    std::vector<std::string> args{"token", "--sub", "cli-test", "--role", role};
    if (!channels.empty()) args.insert(args.end(), {"--channels", channels});
    auto run = cli(args, {std::string("AUTH_JWT_SECRET=") + kSecret});
    EXPECT_EQ(run.code, 0);
    return run.lines.empty() ? "" : run.lines.front();
  }

  std::string url_;
  std::unique_ptr<testing::ChildProcess> server_;
};

TEST_F(ClientCli, TokenSignsWhatTheServerAccepts) {
  const auto producer = token("producer", "orders*,jobs");
  auto claims = auth::verify(producer, {kSecret, "", ""}, std::time(nullptr));
  ASSERT_TRUE(claims) << claims.error().message;
  EXPECT_EQ(claims->subject, "cli-test");
  EXPECT_EQ(claims->role, auth::Role::producer);
  EXPECT_EQ(claims->channels, (std::vector<std::string>{"orders*", "jobs"}));
  EXPECT_NEAR(static_cast<double>(claims->expires - std::time(nullptr)), 3600, 60);

  auto published =
      cli({"publish", "orders:1", "order.created", "--payload", R"({"n":1})", "--token", producer});
  ASSERT_EQ(published.code, 0) << ::testing::PrintToString(published.lines);
  EXPECT_EQ(published.json().at("event").at("payload").at("n").as_int64(), 1);
  auto outside = cli({"publish", "payments", "t", "--token", producer});
  EXPECT_EQ(outside.code, 1);
  EXPECT_EQ(outside.json().at("error").at("code").as_string(), "forbidden");
  auto anonymous = cli({"publish", "orders:1", "t"});
  EXPECT_EQ(anonymous.code, 1);
  EXPECT_EQ(anonymous.json().at("error").at("code").as_string(), "unauthorized");

  // REPLAYRAIL_TOKEN stands for --token.
  auto page = cli({"replay", "orders:1"}, {"REPLAYRAIL_TOKEN=" + token("consumer")});
  ASSERT_EQ(page.code, 0);
  EXPECT_EQ(page.json().at("events").as_array().size(), 1u);

  // A flag beats the environment (CLI11 read every command's variables, and another command's
  // environment variable used to overwrite this one's flag).
  auto flags_win = cli({"publish", "orders:1", "t", "--token", producer, "--url", url_},
                       {"REPLAYRAIL_TOKEN=not-a-token", "REPLAYRAIL_URL=http://127.0.0.1:1"});
  EXPECT_EQ(flags_win.code, 0) << ::testing::PrintToString(flags_win.lines);

  // The role under the claim a server reads it from (AUTH_JWT_ROLE_CLAIM, shared with serve).
  auto elsewhere = cli({"token", "--sub", "x", "--role", "admin"},
                       {std::string("AUTH_JWT_SECRET=") + kSecret, "AUTH_JWT_ROLE_CLAIM=rr_role"});
  ASSERT_EQ(elsewhere.code, 0);
  auth::JwtConfig reading_rr_role{kSecret, "", ""};
  reading_rr_role.role_claim = "rr_role";
  auto admin = auth::verify(elsewhere.lines.front(), reading_rr_role, std::time(nullptr));
  ASSERT_TRUE(admin) << admin.error().message;
  EXPECT_EQ(admin->role, auth::Role::admin);
  EXPECT_FALSE(auth::verify(elsewhere.lines.front(), {kSecret, "", ""}, std::time(nullptr)));

  // Without the secret, or with a role that does not exist, nothing is signed.
  EXPECT_EQ(cli({"token", "--sub", "x", "--role", "admin"}).code, 2);
  EXPECT_EQ(cli({"token", "--sub", "x", "--role", "root"}, {"AUTH_JWT_SECRET=s"}).code, 2);
  EXPECT_EQ(cli({"token", "--role", "admin"}, {"AUTH_JWT_SECRET=s"}).code, 2);
}

TEST_F(ClientCli, ConfigureAndDeleteATopic) {
  const std::string admin = token("admin");
  auto made = cli({"configure", "jobs", "--partitions", "3", "--max-length", "2", "--max-age", "7d",
                   "--token", admin});
  ASSERT_EQ(made.code, 0) << ::testing::PrintToString(made.lines);
  const auto answer = made.json();
  EXPECT_EQ(answer.at("partitions").as_int64(), 3);
  EXPECT_EQ(answer.at("retention").at("max_length").at("value").as_int64(), 2);
  EXPECT_EQ(answer.at("retention").at("max_age_ms").at("value").as_int64(), 7 * 86'400'000LL);
  auto reset = cli({"configure", "jobs", "--token", admin});
  ASSERT_EQ(reset.code, 0);
  EXPECT_EQ(reset.json().at("retention").at("max_age_ms").at("source").as_string(), "server");
  auto conflict = cli({"configure", "jobs", "--partitions", "2", "--token", admin});
  EXPECT_EQ(conflict.code, 1);
  EXPECT_EQ(conflict.json().at("error").at("code").as_string(), "topic_conflict");
  EXPECT_EQ(cli({"configure", "jobs", "--max-age", "7", "--token", admin}).code, 2) << "no unit";
  EXPECT_EQ(cli({"configure", "jobs", "--max-length", "-1", "--token", admin}).code, 2);
  auto refused = cli({"configure", "jobs", "--token", token("producer")});
  EXPECT_EQ(refused.code, 1);
  EXPECT_EQ(refused.json().at("error").at("code").as_string(), "forbidden");

  auto deleted = cli({"delete", "jobs", "--token", admin});
  ASSERT_EQ(deleted.code, 0) << ::testing::PrintToString(deleted.lines);
  EXPECT_TRUE(deleted.json().at("deleted").as_bool());
  auto gone = cli({"delete", "jobs", "--token", admin});
  EXPECT_EQ(gone.code, 1);
  EXPECT_EQ(gone.json().at("error").at("code").as_string(), "stream_not_found");
  EXPECT_EQ(cli({"configure", "jobs", "--partitions", "2", "--token", admin}).code, 0)
      << "made again with another count";
  auto listed = cli({"topics", "--token", token("consumer")});
  ASSERT_EQ(listed.code, 0) << ::testing::PrintToString(listed.lines);
  EXPECT_EQ(listed.json().at("topics").at(0).at("partitions").as_int64(), 2);
}

TEST_F(ClientCli, PurgeRemovesEventsWithAnAdminToken) {
  const std::string admin = token("admin");
  std::vector<std::string> ids;
  for (int i = 0; i < 3; ++i) {
    auto r = cli({"publish", "jobs", "job.queued", "--token", admin});
    ASSERT_EQ(r.code, 0);
    ids.emplace_back(r.json().at("event").at("id").as_string());
  }
  auto refused = cli({"purge", "jobs", "--token", token("producer")});
  EXPECT_EQ(refused.code, 1);
  EXPECT_EQ(refused.json().at("error").at("code").as_string(), "forbidden");
  auto older = cli({"purge", "jobs", "--before", ids[1], "--token", admin});
  ASSERT_EQ(older.code, 0) << ::testing::PrintToString(older.lines);
  EXPECT_EQ(older.json().at("purged").as_int64(), 1);
  auto bad = cli({"purge", "jobs", "--partition", "1", "--token", admin});
  EXPECT_EQ(bad.code, 1);
  EXPECT_EQ(bad.json().at("error").at("code").as_string(), "invalid_argument");
  auto rest = cli({"purge", "jobs", "--partition", "0", "--token", admin});
  ASSERT_EQ(rest.code, 0);
  EXPECT_EQ(rest.json().at("purged").as_int64(), 2);
  auto page = cli({"replay", "jobs", "--token", admin});
  ASSERT_EQ(page.code, 0);
  EXPECT_TRUE(page.json().at("events").as_array().empty());
}

// The seed's consumer-group walkthrough, from the command line.
TEST_F(ClientCli, GroupsCreateReadAckClaimResetDelete) {
  const std::vector<std::string> admin{"--token", token("admin")};
  auto with_token = [&](std::vector<std::string> args) {
    args.insert(args.end(), admin.begin(), admin.end());
    return cli(args);
  };
  std::vector<std::string> ids;
  for (int i = 0; i < 2; ++i) {
    auto r = with_token({"publish", "jobs", "job.queued"});
    ASSERT_EQ(r.code, 0);
    ids.emplace_back(r.json().at("event").at("id").as_string());
  }
  ASSERT_EQ(with_token({"groups", "create", "jobs", "workers", "--start", "0-0"}).code, 0);
  auto read =
      with_token({"groups", "read", "jobs", "workers", "--consumer", "c1", "--count", "10"});
  ASSERT_EQ(read.code, 0);
  ASSERT_EQ(read.json().at("messages").as_array().size(), 2u);

  // Ack the first and leave the second pending: c2 claims it.
  auto acked = with_token({"groups", "ack", "jobs", "workers", "0:" + ids[0]});
  ASSERT_EQ(acked.code, 0);
  EXPECT_EQ(acked.json().at("acked").as_int64(), 1);
  auto claimed =
      with_token({"groups", "claim", "jobs", "workers", "--consumer", "c2", "--min-idle-ms", "0"});
  ASSERT_EQ(claimed.code, 0);
  const auto answer = claimed.json();
  ASSERT_EQ(answer.at("messages").as_array().size(), 1u);
  EXPECT_EQ(answer.at("messages").at(0).at("redis_id").as_string(), ids[1]);
  EXPECT_EQ(answer.at("messages").at(0).at("delivery_count").as_int64(), 2);
  EXPECT_EQ(with_token({"groups", "ack", "jobs", "workers", ids[1]}).json().at("acked").as_int64(),
            1)
      << "an id without a partition is partition 0's";
  auto listed = with_token({"groups", "list", "jobs"});
  ASSERT_EQ(listed.code, 0);
  EXPECT_EQ(listed.json().at("groups").at(0).at("pending").as_int64(), 0);

  // Reset to the beginning: everything is delivered again.
  ASSERT_EQ(with_token({"groups", "reset", "jobs", "workers", "--start", "0-0"}).code, 0);
  EXPECT_EQ(with_token({"groups", "read", "jobs", "workers", "--consumer", "c1"})
                .json()
                .at("messages")
                .as_array()
                .size(),
            2u);
  EXPECT_EQ(with_token({"groups", "delete", "jobs", "workers"}).code, 0);
  auto again = with_token({"groups", "delete", "jobs", "workers"});
  EXPECT_EQ(again.code, 1);
  EXPECT_EQ(again.json().at("error").at("code").as_string(), "group_not_found");

  // Bad arguments are refused before anything is sent.
  EXPECT_EQ(with_token({"groups", "ack", "jobs", "workers", "x:1-0"}).code, 2);
  EXPECT_EQ(with_token({"groups", "ack", "jobs", "workers", "not-an-id"}).code, 2);
  EXPECT_EQ(with_token({"groups", "read", "jobs", "workers"}).code, 2) << "no --consumer";
  EXPECT_EQ(with_token({"groups", "read", "jobs", "w", "--consumer", "c", "--count", "0"}).code, 2);
  EXPECT_EQ(with_token({"groups", "reset", "jobs", "workers"}).code, 2) << "no --start";
}

TEST_F(ClientCli, TailFollowsWithItsTokenAndStopsWhenRefused) {
  const auto consumer = token("consumer");
  ASSERT_EQ(cli({"publish", "feed", "t", "--token", token("producer")}).code, 0);
  testing::ChildProcess tail({"/usr/bin/env", "REPLAYRAIL_URL=" + url_,
                              "REPLAYRAIL_TOKEN=" + consumer, RR_SERVER_BINARY, "tail", "feed",
                              "--from", "0-0"});
  auto first = tail.read_line(std::chrono::seconds(10));
  ASSERT_TRUE(first);
  EXPECT_EQ(json::parse(*first).at("channel").as_string(), "feed");
  tail.kill(SIGTERM);
  tail.wait();

  // Refused at the handshake (no token): tail says so and exits instead of retrying forever.
  auto refused = cli({"tail", "feed", "--from", "0-0"});
  EXPECT_EQ(refused.code, 1);
  ASSERT_FALSE(refused.lines.empty());
  EXPECT_EQ(refused.json().at("error").at("code").as_string(), "unauthorized");
}

INSTANTIATE_TEST_SUITE_P(Stores, ServerE2E, ::testing::Values("memory", "local", "redis"),
                         [](const auto& info) { return info.param; });

}  // namespace
}  // namespace replayrail
