#include "replayrail/auth/jwt.h"

#include <fnmatch.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/sha.h>

#include <algorithm>
#include <boost/json/parse.hpp>
#include <boost/json/serialize.hpp>
#include <boost/json/value.hpp>

namespace replayrail::auth {

namespace json = boost::json;

namespace {

Error unauthorized(std::string why) { return make_error(errc::unauthorized, std::move(why)); }

// Base64url (RFC 4648 §5, no padding) through OpenSSL's standard base64: translate the two
// characters that differ and restore or drop the padding.
std::string base64url_encode(std::string_view bytes) {
  std::string out(4 * ((bytes.size() + 2) / 3), '\0');
  int n = EVP_EncodeBlock(reinterpret_cast<unsigned char*>(out.data()),
                          reinterpret_cast<const unsigned char*>(bytes.data()),
                          static_cast<int>(bytes.size()));
  out.resize(static_cast<std::size_t>(n));
  while (!out.empty() && out.back() == '=') out.pop_back();
  std::replace(out.begin(), out.end(), '+', '-');
  std::replace(out.begin(), out.end(), '/', '_');
  return out;
}

std::optional<std::string> base64url_decode(std::string_view text) {
  if (text.size() % 4 == 1) return std::nullopt;
  std::string b64(text);
  for (char& c : b64) {
    if (c == '-') {
      c = '+';
    } else if (c == '_') {
      c = '/';
    } else if (c == '+' || c == '/' || c == '=') {
      return std::nullopt;  // not base64url
    }
  }
  std::size_t padding = (4 - b64.size() % 4) % 4;
  b64.append(padding, '=');
  std::string out(3 * b64.size() / 4, '\0');
  int n = EVP_DecodeBlock(reinterpret_cast<unsigned char*>(out.data()),
                          reinterpret_cast<const unsigned char*>(b64.data()),
                          static_cast<int>(b64.size()));
  if (n < 0) return std::nullopt;
  out.resize(static_cast<std::size_t>(n) - padding);
  return out;
}

std::string hs256(std::string_view key, std::string_view data) {
  unsigned char mac[EVP_MAX_MD_SIZE];
  unsigned int size = 0;
  HMAC(EVP_sha256(), key.data(), static_cast<int>(key.size()),
       reinterpret_cast<const unsigned char*>(data.data()), data.size(), mac, &size);
  return std::string(reinterpret_cast<const char*>(mac), size);
}

result<json::object> decode_part(std::string_view part, const char* what) {
  auto bytes = base64url_decode(part);
  if (!bytes) return unauthorized(std::string("the token's ") + what + " is not base64url");
  boost::system::error_code ec;
  auto v = json::parse(*bytes, ec);
  if (ec || !v.is_object()) {
    return unauthorized(std::string("the token's ") + what + " is not a JSON object");
  }
  return std::move(v.get_object());
}

std::optional<std::int64_t> seconds(const json::object& claims, std::string_view name) {
  const json::value* v = claims.if_contains(name);
  if (!v) return std::nullopt;
  if (v->is_int64()) return v->get_int64();
  if (v->is_uint64()) return static_cast<std::int64_t>(v->get_uint64());
  if (v->is_double()) return static_cast<std::int64_t>(v->get_double());
  return std::nullopt;
}

}  // namespace

std::optional<Role> parse_role(std::string_view name) {
  if (name == "producer") return Role::producer;
  if (name == "consumer") return Role::consumer;
  if (name == "admin") return Role::admin;
  return std::nullopt;
}

std::string_view to_string(Role role) {
  switch (role) {
    case Role::producer:
      return "producer";
    case Role::consumer:
      return "consumer";
    case Role::admin:
      return "admin";
  }
  return "consumer";
}

result<Claims> verify(std::string_view token, const JwtConfig& config, std::int64_t now) {
  auto first = token.find('.');
  auto second = first == std::string_view::npos ? first : token.find('.', first + 1);
  if (second == std::string_view::npos || token.find('.', second + 1) != std::string_view::npos) {
    return unauthorized("the token is not a JWT (header.claims.signature)");
  }
  auto header_part = token.substr(0, first);
  auto claims_part = token.substr(first + 1, second - first - 1);
  auto signature_part = token.substr(second + 1);

  json::object header;
  RR_TRY_ASSIGN(header, decode_part(header_part, "header"));
  const json::value* alg = header.if_contains("alg");
  // Pinned: `none` and algorithm confusion (RS256 with the secret as a public key, …) never
  // reach the signature check.
  if (!alg || !alg->is_string() || alg->get_string() != "HS256") {
    return unauthorized("the token's algorithm must be HS256");
  }
  auto signature = base64url_decode(signature_part);
  auto expected = hs256(config.secret, token.substr(0, second));
  if (!signature || signature->size() != expected.size() ||
      CRYPTO_memcmp(signature->data(), expected.data(), expected.size()) != 0) {
    return unauthorized("the token's signature is not valid");
  }

  json::object claims;
  RR_TRY_ASSIGN(claims, decode_part(claims_part, "claims"));
  auto exp = seconds(claims, "exp");
  if (!exp) return unauthorized("the token has no exp");
  if (now >= *exp) return unauthorized("the token expired");
  if (auto nbf = seconds(claims, "nbf"); nbf && now < *nbf) {
    return unauthorized("the token is not valid yet (nbf)");
  }
  if (!config.issuer.empty()) {
    const json::value* iss = claims.if_contains("iss");
    if (!iss || !iss->is_string() || iss->get_string() != config.issuer) {
      return unauthorized("the token's issuer is not " + config.issuer);
    }
  }
  if (!config.audience.empty()) {
    const json::value* aud = claims.if_contains("aud");
    bool ok = false;
    if (aud && aud->is_string()) ok = aud->get_string() == config.audience;
    if (aud && aud->is_array()) {
      for (const auto& a : aud->get_array())
        ok = ok || (a.is_string() && a.get_string() == config.audience);
    }
    if (!ok) return unauthorized("the token's audience is not " + config.audience);
  }

  Claims out;
  out.expires = *exp;
  if (const json::value* sub = claims.if_contains("sub"); sub && sub->is_string()) {
    out.subject = sub->get_string();
  }
  const json::value* role = claims.if_contains("role");
  auto parsed = role && role->is_string() ? parse_role(role->get_string()) : std::nullopt;
  if (!parsed) return unauthorized("the token's role must be producer, consumer or admin");
  out.role = *parsed;
  if (const json::value* channels = claims.if_contains("channels")) {
    if (!channels->is_array()) return unauthorized("the token's channels must be an array");
    for (const auto& c : channels->get_array()) {
      if (!c.is_string()) return unauthorized("the token's channels must be strings");
      out.channels.emplace_back(c.get_string());
    }
  }
  return out;
}

std::string mint(const Claims& claims, const JwtConfig& config, std::int64_t now) {
  json::object body{{"sub", claims.subject},
                    {"role", to_string(claims.role)},
                    {"iat", now},
                    {"exp", claims.expires}};
  if (!config.issuer.empty()) body["iss"] = config.issuer;
  if (!config.audience.empty()) body["aud"] = config.audience;
  if (!claims.channels.empty()) {
    json::array channels;
    for (const auto& c : claims.channels) channels.emplace_back(c);
    body["channels"] = std::move(channels);
  }
  std::string signing_input = base64url_encode(R"({"alg":"HS256","typ":"JWT"})") + "." +
                              base64url_encode(json::serialize(body));
  return signing_input + "." + base64url_encode(hs256(config.secret, signing_input));
}

bool allows(const Claims& claims, Role needed) {
  return claims.role == Role::admin || claims.role == needed;
}

bool allows_channel(const Claims& claims, std::string_view channel) {
  if (claims.channels.empty()) return true;
  std::string name(channel);
  return std::any_of(claims.channels.begin(), claims.channels.end(), [&](const std::string& glob) {
    return fnmatch(glob.c_str(), name.c_str(), 0) == 0;
  });
}

bool secrets_equal(std::string_view a, std::string_view b) {
  // Compare fixed-size digests, so neither the length nor the first difference shows in the time.
  unsigned char da[SHA256_DIGEST_LENGTH], db[SHA256_DIGEST_LENGTH];
  SHA256(reinterpret_cast<const unsigned char*>(a.data()), a.size(), da);
  SHA256(reinterpret_cast<const unsigned char*>(b.data()), b.size(), db);
  return CRYPTO_memcmp(da, db, sizeof da) == 0;
}

}  // namespace replayrail::auth
