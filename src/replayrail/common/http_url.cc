#include "replayrail/common/http_url.h"

#include <boost/url/parse.hpp>

namespace replayrail {

result<HttpUrl> parse_http_url(const std::string& url) {
  auto parsed = boost::urls::parse_absolute_uri(url);
  if (!parsed || parsed->encoded_host().empty()) {
    return make_error(errc::invalid_argument, url + " is not an absolute URL with a host");
  }
  HttpUrl out;
  out.tls = parsed->scheme() == "https";
  if (!out.tls && parsed->scheme() != "http") {
    return make_error(errc::invalid_argument, url + ": the scheme must be http or https");
  }
  out.host = parsed->host_address();
  out.port = parsed->has_port() ? std::string(parsed->port()) : out.tls ? "443" : "80";
  out.target = parsed->encoded_target();
  if (out.target.empty()) out.target = "/";
  return out;
}

}  // namespace replayrail
