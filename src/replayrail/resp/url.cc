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
  if (u.has_query() || u.has_fragment()) return bad("no query or fragment is allowed");
  return out;
}

}  // namespace replayrail::resp
