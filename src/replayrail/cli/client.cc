#include "replayrail/cli/client.h"

#include <boost/asio/connect.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/ssl.hpp>
#include <boost/beast/core/buffers_to_string.hpp>
#include <boost/beast/core/flat_buffer.hpp>
#include <boost/beast/core/tcp_stream.hpp>
#include <boost/beast/http.hpp>
#include <boost/beast/ssl.hpp>
#include <boost/beast/websocket.hpp>
#include <boost/beast/websocket/ssl.hpp>
#include <boost/json/parse.hpp>
#include <boost/url/encode.hpp>
#include <boost/url/rfc/unreserved_chars.hpp>
#include <chrono>
#include <cstdio>
#include <thread>

#include "replayrail/common/http_url.h"
#include "replayrail/common/tls_client.h"

namespace replayrail::cli {

namespace asio = boost::asio;
namespace beast = boost::beast;
namespace http = beast::http;
namespace websocket = beast::websocket;
namespace ssl = asio::ssl;
using tcp = asio::ip::tcp;

std::optional<ServerAddress> parse_server_url(const std::string& url, std::string token) {
  auto parsed = parse_http_url(url);
  if (!parsed) return std::nullopt;
  return ServerAddress{std::move(parsed->host), std::move(parsed->port), std::move(token),
                       parsed->tls};
}

std::string path_segment(std::string_view s) {
  return boost::urls::encode(s, boost::urls::unreserved_chars);
}

namespace {

std::string bearer(const ServerAddress& at) { return "Bearer " + at.token; }

// The TLS handshake of a client of `at`, after TCP connected.
template <class Tls>
void handshake_tls(Tls& tls, const ServerAddress& at) {
  if (auto ec = tls_client::name_server(tls, at.host)) throw boost::system::system_error(ec);
  tls.handshake(ssl::stream_base::client);
}

template <class Stream>
int exchange(Stream& stream, const ServerAddress& at, http::verb verb, const std::string& target,
             std::string body) {
  http::request<http::string_body> req{verb, target, 11};
  req.set(http::field::host, at.host);
  if (!at.token.empty()) req.set(http::field::authorization, bearer(at));
  if (!body.empty()) {
    req.set(http::field::content_type, "application/json");
    req.body() = std::move(body);
  }
  req.prepare_payload();
  http::write(stream, req);
  beast::flat_buffer buffer;
  http::response<http::string_body> res;
  http::read(stream, buffer, res);
  std::printf("%s\n", res.body().c_str());
  return res.result_int() < 300 ? 0 : kRefused;
}

// Prints each event `ws` receives, one JSON line each, until it fails; `cursor` follows them.
template <class WebSocket>
void print_events(WebSocket& ws, std::string& cursor) {
  beast::flat_buffer buffer;
  for (;;) {
    ws.read(buffer);
    std::string frame = beast::buffers_to_string(buffer.data());
    buffer.clear();
    std::printf("%s\n", frame.c_str());
    std::fflush(stdout);
    boost::system::error_code ec;
    auto value = boost::json::parse(frame, ec);
    if (!ec && value.is_object()) {
      if (const auto* id = value.as_object().if_contains("id"); id && id->is_string()) {
        cursor = id->get_string().c_str();
      }
    }
  }
}

// A client's TLS context: the system's authorities, and the environment's client certificate
// (tls_client::use_client_certificate). nullopt, once it has said why, when that cannot load.
std::optional<ssl::context> client_tls() {
  auto tls = tls_client::trusting_the_system();
  if (auto wrong = tls_client::use_client_certificate(tls)) {
    std::fprintf(stderr, "replayrail: %s\n", wrong->c_str());
    return std::nullopt;
  }
  return tls;
}

}  // namespace

int http_call(const ServerAddress& at, http::verb verb, const std::string& target,
              std::string body) {
  std::optional<ssl::context> tls;
  if (at.tls && !(tls = client_tls())) return kUsage;
  try {
    asio::io_context io;
    auto endpoints = tcp::resolver(io).resolve(at.host, at.port);
    const auto timeout = std::chrono::seconds(90);  // longer than a group read's longest block
    if (!at.tls) {
      beast::tcp_stream stream(io);
      stream.expires_after(timeout);
      stream.connect(endpoints);
      return exchange(stream, at, verb, target, std::move(body));
    }
    beast::ssl_stream<beast::tcp_stream> stream(io, *tls);
    beast::get_lowest_layer(stream).expires_after(timeout);
    beast::get_lowest_layer(stream).connect(endpoints);
    handshake_tls(stream, at);
    return exchange(stream, at, verb, target, std::move(body));
  } catch (const std::exception& e) {
    std::fprintf(stderr, "replayrail: cannot reach %s: %s\n", at.url().c_str(), e.what());
    return kUnreachable;
  }
}

int tail(const ServerAddress& at, const std::string& channel, std::string cursor) {
  std::optional<ssl::context> tls;
  if (at.tls && !(tls = client_tls())) return kUsage;
  auto backoff = std::chrono::milliseconds(100);
  for (;;) {
    websocket::response_type handshake;
    try {
      asio::io_context io;
      auto endpoints = tcp::resolver(io).resolve(at.host, at.port);
      std::string target = "/ws/" + path_segment(channel);
      if (!cursor.empty()) target += "?last_event_id=" + path_segment(cursor);
      auto follow = [&](auto& ws) {
        if (!at.token.empty()) {
          ws.set_option(
              websocket::stream_base::decorator([auth = bearer(at)](websocket::request_type& req) {
                req.set(http::field::authorization, auth);
              }));
        }
        ws.handshake(handshake, at.host + ":" + at.port, target);
        backoff = std::chrono::milliseconds(100);
        print_events(ws, cursor);
      };
      if (!at.tls) {
        websocket::stream<tcp::socket> ws(io);
        asio::connect(ws.next_layer(), endpoints);
        follow(ws);
      } else {
        websocket::stream<beast::ssl_stream<tcp::socket>> ws(io, *tls);
        asio::connect(beast::get_lowest_layer(ws), endpoints);
        handshake_tls(ws.next_layer(), at);
        follow(ws);
      }
    } catch (const boost::system::system_error& e) {
      if (e.code() == websocket::error::closed) {
        // The server closed on purpose: a 44xx code is final (bad cursor, window expired).
        std::fprintf(stderr, "replayrail: closed by the server: %s\n", e.what());
        return kRefused;
      }
      const unsigned status = handshake.result_int();
      if (e.code() == websocket::error::upgrade_declined && status >= 400 && status < 500 &&
          status != 429) {
        // Refused (no or a bad token, a bad cursor): trying again would be refused again.
        std::printf("%s\n", handshake.body().c_str());
        std::fprintf(stderr, "replayrail: the server refused the subscription (HTTP %u)\n", status);
        return kRefused;
      }
      std::fprintf(stderr, "replayrail: %s; reconnecting after %s\n", e.what(),
                   cursor.empty() ? "the start position" : cursor.c_str());
    }
    std::this_thread::sleep_for(backoff);
    backoff = std::min(backoff * 2, std::chrono::milliseconds(5000));
  }
}

}  // namespace replayrail::cli
