#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "replayrail/common/errc.h"

namespace replayrail::resp {

// `redis://[[user]:password@]host[:port][/db]`, or `rediss://` for TLS. TLS takes the query
// parameters redis-py uses: `ssl_ca_certs` (PEM file of trusted CAs; default: the system's),
// `ssl_cert_reqs=none` (do not verify the server: tests only), `ssl_certfile` and
// `ssl_keyfile` (a client certificate).
//
// Redis Sentinel: `redis+sentinel://[[user]:password@]host[:port][,host[:port]…][/service[/db]]`
// (`rediss+sentinel://` for TLS to the Sentinels and the primary) names the Sentinels (port
// 26379 by default) and the service they monitor (`mymaster` by default), as the
// redis-sentinel-url convention does. The credentials are the primary's; Sentinels that ask for
// their own take the `sentinel_username` and `sentinel_password` parameters.
struct RedisUrl {
  struct Address {
    std::string host;
    std::uint16_t port = 0;
    // host:port, an IPv6 host in brackets.
    std::string str() const {
      return (host.find(':') == std::string::npos ? host : "[" + host + "]") + ":" +
             std::to_string(port);
    }
    bool operator==(const Address&) const = default;
  };

  bool tls = false;
  std::string host = "127.0.0.1";  // with Sentinels: unused, they name the primary
  std::uint16_t port = 6379;
  std::string username;  // empty: AUTH with the password only (the "default" user)
  std::string password;  // empty: no AUTH
  int db = 0;
  std::string ca_file;  // TLS: trusted CAs; empty = the system's default paths
  bool verify_peer = true;
  std::string cert_file, key_file;  // TLS client certificate, both or neither

  std::vector<Address> sentinels;  // empty: host:port is the server
  std::string service;             // the primary's name in the Sentinels' configuration
  std::string sentinel_username, sentinel_password;

  bool uses_sentinels() const { return !sentinels.empty(); }
  // The URL without the password, for logs and errors.
  std::string redacted() const;
};

// errc::invalid_argument with the reason for anything else.
result<RedisUrl> parse_redis_url(std::string_view text);

}  // namespace replayrail::resp
