#pragma once

#include <cstdint>
#include <string>
#include <string_view>

#include "replayrail/common/errc.h"

namespace replayrail::resp {

// `redis://[[user]:password@]host[:port][/db]`, or `rediss://` for TLS.
struct RedisUrl {
  bool tls = false;
  std::string host = "127.0.0.1";
  std::uint16_t port = 6379;
  std::string username;  // empty: AUTH with the password only (the "default" user)
  std::string password;  // empty: no AUTH
  int db = 0;

  // The URL without the password, for logs and errors.
  std::string redacted() const;
};

// errc::invalid_argument with the reason for anything else.
result<RedisUrl> parse_redis_url(std::string_view text);

}  // namespace replayrail::resp
