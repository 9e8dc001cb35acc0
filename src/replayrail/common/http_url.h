#pragma once

// An http:// or https:// URL as a client connects to it: how the CLI clients and the JWK set
// fetch read theirs (Boost.URL).

#include <string>

#include "replayrail/common/errc.h"

namespace replayrail {

struct HttpUrl {
  std::string host;    // as connected to (an IPv6 address without its brackets)
  std::string port;    // the URL's, or 80 / 443
  std::string target;  // path and query, "/" when the URL has none
  bool tls = false;    // https
};

// The parts of `url`; invalid_argument, naming it, when it is not an absolute http(s) URL with a
// host.
result<HttpUrl> parse_http_url(const std::string& url);

}  // namespace replayrail
