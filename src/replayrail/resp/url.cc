#include "replayrail/resp/url.h"

#include <boost/url/parse.hpp>
#include <charconv>

namespace replayrail::resp {

std::string RedisUrl::redacted() const {
  std::string out = tls ? "rediss://" : "redis://";
  if (!username.empty() || !password.empty()) out += username + (password.empty() ? "@" : ":***@");
  return out + host + ":" + std::to_string(port) + "/" + std::to_string(db);
}

result<RedisUrl> parse_redis_url(std::string_view text) {
  auto bad = [&](std::string why) {
    return make_error(errc::invalid_argument, "bad Redis URL: " + why);
  };
  auto parsed = boost::urls::parse_absolute_uri(text);
  if (!parsed) return bad(parsed.error().message());
  const auto& u = *parsed;
  RedisUrl out;
  if (u.scheme() == "rediss") {
    out.tls = true;
  } else if (u.scheme() != "redis") {
    return bad("the scheme must be redis:// or rediss://");
  }
  if (!u.has_authority() || u.encoded_host().empty()) return bad("no host");
  out.host = u.host_address();
  if (u.has_port()) {
    auto p = u.port();
    unsigned value = 0;
    auto [end, ec] = std::from_chars(p.data(), p.data() + p.size(), value);
    if (ec != std::errc{} || end != p.data() + p.size() || value == 0 || value > 65535) {
      return bad("port must be 1-65535");
    }
    out.port = static_cast<std::uint16_t>(value);
  }
  if (u.has_userinfo()) {
    out.username = u.user();
    if (u.has_password()) out.password = u.password();
  }
  std::string_view path = u.encoded_path();
  if (!path.empty() && path != "/") {
    path.remove_prefix(1);
    auto [end, ec] = std::from_chars(path.data(), path.data() + path.size(), out.db);
    if (ec != std::errc{} || end != path.data() + path.size() || out.db < 0) {
      return bad("the path must be a database number, e.g. /0");
    }
  }
  if (u.has_fragment()) return bad("no fragment is allowed");
  for (auto param : u.params()) {
    if (!out.tls) return bad("query parameters are only for rediss:// (TLS)");
    if (param.key == "ssl_ca_certs") {
      out.ca_file = param.value;
    } else if (param.key == "ssl_certfile") {
      out.cert_file = param.value;
    } else if (param.key == "ssl_keyfile") {
      out.key_file = param.value;
    } else if (param.key == "ssl_cert_reqs") {
      if (param.value != "none" && param.value != "required") {
        return bad("ssl_cert_reqs must be none or required");
      }
      out.verify_peer = param.value == "required";
    } else {
      return bad("unknown parameter '" + std::string(param.key) +
                 "' (known: ssl_ca_certs, ssl_cert_reqs, ssl_certfile, ssl_keyfile)");
    }
  }
  if (out.cert_file.empty() != out.key_file.empty()) {
    return bad("ssl_certfile and ssl_keyfile go together");
  }
  return out;
}

}  // namespace replayrail::resp
