#pragma once

#include <cstdint>
#include <string>
#include <string_view>

#include "replayrail/common/errc.h"

namespace replayrail::resp {

// `redis://[[user]:password@]host[:port][/db]`, or `rediss://` for TLS. TLS takes the query
// parameters redis-py uses: `ssl_ca_certs` (PEM file of trusted CAs; default: the system's),
// `ssl_cert_reqs=none` (do not verify the server: tests only), `ssl_certfile` and
// `ssl_keyfile` (a client certificate).
struct RedisUrl {
  bool tls = false;
  std::string host = "127.0.0.1";
  std::uint16_t port = 6379;
  std::string username;  // empty: AUTH with the password only (the "default" user)
  std::string password;  // empty: no AUTH
  int db = 0;
  std::string ca_file;  // TLS: trusted CAs; empty = the system's default paths
  bool verify_peer = true;
  std::string cert_file, key_file;  // TLS client certificate, both or neither

  // The URL without the password, for logs and errors.
  std::string redacted() const;
};

// errc::invalid_argument with the reason for anything else.
result<RedisUrl> parse_redis_url(std::string_view text);

}  // namespace replayrail::resp
