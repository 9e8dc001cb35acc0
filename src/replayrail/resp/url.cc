#include "replayrail/resp/url.h"

#include <boost/url/parse.hpp>
#include <charconv>

namespace replayrail::resp {

namespace {

constexpr std::uint16_t kSentinelPort = 26379;
constexpr const char* kDefaultService = "mymaster";

Error bad(const std::string& why) {
  return make_error(errc::invalid_argument, "bad Redis URL: " + why);
}

result<int> parse_number(std::string_view text) {
  int value = 0;
  auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), value);
  if (ec != std::errc{} || end != text.data() + text.size() || value < 0) {
    return bad("'" + std::string(text) + "' is not a number");
  }
  return value;
}

// The host and port of a parsed URL's authority.
result<RedisUrl::Address> parse_address(const boost::urls::url_view& u,
                                        std::uint16_t default_port) {
  if (!u.has_authority() || u.encoded_host().empty()) return bad("no host");
  RedisUrl::Address out{u.host_address(), default_port};
  if (u.has_port()) {
    auto port = parse_number(u.port());
    if (!port || *port == 0 || *port > 65535) return bad("port must be 1-65535");
    out.port = static_cast<std::uint16_t>(*port);
  }
  return out;
}

// The query parameters: TLS settings (rediss only) and, with Sentinels, their credentials.
result<void> parse_params(const boost::urls::url_view& u, RedisUrl& out) {
  for (auto param : u.params()) {
    if (out.uses_sentinels() && param.key == "sentinel_username") {
      out.sentinel_username = param.value;
      continue;
    }
    if (out.uses_sentinels() && param.key == "sentinel_password") {
      out.sentinel_password = param.value;
      continue;
    }
    if (!out.tls) {
      return bad(out.uses_sentinels()
                     ? "unknown parameter '" + std::string(param.key) +
                           "' (known: sentinel_username, sentinel_password; TLS ones with "
                           "rediss+sentinel://)"
                     : "query parameters are only for rediss:// (TLS)");
    }
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
                 "' (known: ssl_ca_certs, ssl_cert_reqs, ssl_certfile, ssl_keyfile" +
                 (out.uses_sentinels() ? ", sentinel_username, sentinel_password)" : ")"));
    }
  }
  if (out.cert_file.empty() != out.key_file.empty()) {
    return bad("ssl_certfile and ssl_keyfile go together");
  }
  return {};
}

// The Sentinels of a redis+sentinel:// URL: its authority lists several hosts, which no URL
// parser takes, so the list is cut out and each host parsed as a URL of its own; the rest is
// parsed with the first host in place of the list.
result<std::string> take_sentinels(std::string_view text, std::size_t scheme_end, RedisUrl& out) {
  std::size_t start = scheme_end + 3;  // after "://"
  std::size_t end = text.find_first_of("/?#", start);
  if (end == std::string_view::npos) end = text.size();
  std::string_view authority = text.substr(start, end - start);
  std::size_t at = authority.rfind('@');
  std::string_view userinfo = at == std::string_view::npos ? "" : authority.substr(0, at + 1);
  std::string_view hosts = at == std::string_view::npos ? authority : authority.substr(at + 1);
  for (std::size_t from = 0;;) {
    std::size_t comma = hosts.find(',', from);
    std::string_view one = hosts.substr(from, comma - from);
    std::string spec = "redis://" + std::string(one);  // outlives the view parsed from it
    auto parsed = boost::urls::parse_absolute_uri(spec);
    if (!parsed || !parsed->encoded_path().empty()) {
      return bad("'" + std::string(one) + "' is not a Sentinel's host[:port]");
    }
    RedisUrl::Address sentinel;
    RR_TRY_ASSIGN(sentinel, parse_address(*parsed, kSentinelPort));
    out.sentinels.push_back(std::move(sentinel));
    if (comma == std::string_view::npos) break;
    from = comma + 1;
  }
  std::string first(hosts.substr(0, hosts.find(',')));
  return std::string(out.tls ? "rediss://" : "redis://") + std::string(userinfo) + first +
         std::string(text.substr(end));
}

}  // namespace

std::string RedisUrl::redacted() const {
  std::string out = uses_sentinels() ? (tls ? "rediss+sentinel://" : "redis+sentinel://")
                                     : (tls ? "rediss://" : "redis://");
  if (!username.empty() || !password.empty()) out += username + (password.empty() ? "@" : ":***@");
  if (!uses_sentinels()) return out + host + ":" + std::to_string(port) + "/" + std::to_string(db);
  for (const auto& sentinel : sentinels) out += sentinel.str() + ",";
  out.back() = '/';
  return out + service + "/" + std::to_string(db);
}

result<RedisUrl> parse_redis_url(std::string_view text) {
  RedisUrl out;
  std::size_t scheme_end = text.find("://");
  std::string_view scheme = text.substr(0, scheme_end);
  std::string rewritten;
  if (scheme_end != std::string_view::npos &&
      (scheme == "redis+sentinel" || scheme == "rediss+sentinel")) {
    out.tls = scheme == "rediss+sentinel";
    RR_TRY_ASSIGN(rewritten, take_sentinels(text, scheme_end, out));
    text = rewritten;
  }
  auto parsed = boost::urls::parse_absolute_uri(text);
  if (!parsed) return bad(parsed.error().message());
  const auto& u = *parsed;
  if (u.scheme() == "rediss") {
    out.tls = true;
  } else if (u.scheme() != "redis") {
    return bad("the scheme must be redis://, rediss://, redis+sentinel:// or rediss+sentinel://");
  }
  if (!out.uses_sentinels()) {
    RedisUrl::Address server;
    RR_TRY_ASSIGN(server, parse_address(u, out.port));
    out.host = std::move(server.host);
    out.port = server.port;
  }
  if (u.has_userinfo()) {
    out.username = u.user();
    if (u.has_password()) out.password = u.password();
  }
  // The path: /db, or with Sentinels /service[/db] (each segment percent-decoded).
  std::vector<std::string> path(u.segments().begin(), u.segments().end());
  if (out.uses_sentinels() && !path.empty()) {
    out.service = path.front();
    path.erase(path.begin());
  }
  if (out.service.empty() && out.uses_sentinels()) out.service = kDefaultService;
  if (path.size() == 1 && path.front().empty()) path.clear();  // a trailing slash
  if (!path.empty()) {
    auto db = path.size() == 1 ? parse_number(path.front()) : bad("too many path segments");
    if (!db) {
      return bad(out.uses_sentinels() ? "the path must be /service or /service/db, e.g. /mymaster/0"
                                      : "the path must be a database number, e.g. /0");
    }
    out.db = *db;
  }
  if (u.has_fragment()) return bad("no fragment is allowed");
  RR_TRY(parse_params(u, out));
  return out;
}

}  // namespace replayrail::resp
