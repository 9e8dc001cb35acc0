#pragma once

// The command-line clients of a running server (`publish`, `replay`, `tail`, `groups …`): one
// HTTP request each, or a WebSocket that follows a channel. Every Beast include of the CLI is
// behind this header, in client.cc.

#include <boost/beast/http/verb.hpp>
#include <optional>
#include <string>
#include <string_view>

namespace replayrail::cli {

// Exit codes: 0 ok, 1 the server refused (HTTP error), 2 usage, 3 cannot reach the server.
inline constexpr int kRefused = 1;
inline constexpr int kUsage = 2;
inline constexpr int kUnreachable = 3;

// Where the clients connect (`--url http://host:port`, or https:// for a server with TLS) and
// the JWT they present (`--token`, sent as `Authorization: Bearer`; empty: none).
//
// Over TLS the server's certificate must be valid for `host` and signed by an authority the
// system trusts: OpenSSL's default store, which SSL_CERT_FILE or SSL_CERT_DIR replace (for a
// private authority, or a self-signed certificate).
struct ServerAddress {
  std::string host;
  std::string port;
  std::string token;
  bool tls = false;

  std::string url() const { return (tls ? "https://" : "http://") + host + ":" + port; }
};

std::optional<ServerAddress> parse_server_url(const std::string& url, std::string token);

// `s` percent-encoded as one path segment.
std::string path_segment(std::string_view s);

// One HTTP request. Prints the answer's body on stdout; returns 0 for a 2xx status, kRefused for
// any other, kUnreachable when there was no answer.
int http_call(const ServerAddress& at, boost::beast::http::verb verb, const std::string& target,
              std::string body);

// Follows a channel over WebSocket, printing one JSON line per event. Reconnects after a lost
// connection with the last cursor it printed, so nothing is missed or repeated; a refusal (a 4xx
// answer to the handshake, a 44xx close) is final.
int tail(const ServerAddress& at, const std::string& channel, std::string cursor);

}  // namespace replayrail::cli
