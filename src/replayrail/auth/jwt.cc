#include "replayrail/auth/jwt.h"

#include <fnmatch.h>
#include <openssl/bio.h>
#include <openssl/bn.h>
#include <openssl/core_names.h>
#include <openssl/crypto.h>
#include <openssl/ec.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/param_build.h>
#include <openssl/pem.h>
#include <openssl/sha.h>
#include <openssl/x509.h>

#include <algorithm>
#include <boost/json/parse.hpp>
#include <boost/json/serialize.hpp>
#include <boost/json/value.hpp>
#include <fstream>
#include <sstream>

namespace replayrail::auth {

namespace json = boost::json;

namespace {

Error unauthorized(std::string why) { return make_error(errc::unauthorized, std::move(why)); }

// Base64url (RFC 4648 §5, no padding) through OpenSSL's standard base64: translate the two
// characters that differ and restore or drop the padding.
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

// A JWS ES256 signature is r ‖ s (32 bytes each); OpenSSL verifies the DER form.
std::optional<std::string> es256_der(std::string_view raw) {
  if (raw.size() != 64) return std::nullopt;
  std::unique_ptr<ECDSA_SIG, decltype(&ECDSA_SIG_free)> sig(ECDSA_SIG_new(), ECDSA_SIG_free);
  const auto* bytes = reinterpret_cast<const unsigned char*>(raw.data());
  BIGNUM* r = BN_bin2bn(bytes, 32, nullptr);
  BIGNUM* s = BN_bin2bn(bytes + 32, 32, nullptr);
  if (!sig || !r || !s || ECDSA_SIG_set0(sig.get(), r, s) != 1) {
    BN_free(r);
    BN_free(s);
    return std::nullopt;
  }
  unsigned char* der = nullptr;
  int size = i2d_ECDSA_SIG(sig.get(), &der);
  if (size <= 0) return std::nullopt;
  std::string out(reinterpret_cast<const char*>(der), static_cast<std::size_t>(size));
  OPENSSL_free(der);
  return out;
}

Error invalid_key(std::string why) { return make_error(errc::invalid_argument, std::move(why)); }

using Key = std::unique_ptr<EVP_PKEY, PublicKey::Free>;

// A JWK's base64url field.
std::optional<std::string> jwk_bytes(const json::object& jwk, std::string_view name) {
  const json::value* v = jwk.if_contains(name);
  if (!v || !v->is_string()) return std::nullopt;
  return base64url_decode(v->get_string());
}

// A string member of a JWK or a token's header; empty when there is none.
std::string_view text_of(const json::object& object, std::string_view name) {
  const json::value* v = object.if_contains(name);
  return v && v->is_string() ? std::string_view(v->get_string()) : std::string_view();
}

// The public key of a JWK (RFC 7517, 7518 §6, 8037): RSA, EC or OKP (Ed25519); an empty Key for
// a kind tokens are not checked with here (another curve, an encryption key).
result<Key> jwk_key(const json::object& jwk) {
  const auto kty = text_of(jwk, "kty");
  const auto crv = text_of(jwk, "crv");
  if (kty == "OKP") {
    if (crv != "Ed25519") return Key();
    auto x = jwk_bytes(jwk, "x");
    if (!x || x->size() != 32) return invalid_key("an Ed25519 JWK needs x, 32 bytes");
    Key key(EVP_PKEY_new_raw_public_key(
        EVP_PKEY_ED25519, nullptr, reinterpret_cast<const unsigned char*>(x->data()), x->size()));
    if (!key) return invalid_key("an Ed25519 JWK that is no valid key");
    return key;
  }
  std::unique_ptr<OSSL_PARAM_BLD, decltype(&OSSL_PARAM_BLD_free)> build(OSSL_PARAM_BLD_new(),
                                                                        OSSL_PARAM_BLD_free);
  std::unique_ptr<BIGNUM, decltype(&BN_free)> n(nullptr, BN_free), e(nullptr, BN_free);
  std::string point;
  const char* type = nullptr;
  if (kty == "RSA") {
    auto nb = jwk_bytes(jwk, "n"), eb = jwk_bytes(jwk, "e");
    if (!nb || !eb || nb->empty() || eb->empty()) return invalid_key("an RSA JWK needs n and e");
    const auto* nd = reinterpret_cast<const unsigned char*>(nb->data());
    const auto* ed = reinterpret_cast<const unsigned char*>(eb->data());
    n.reset(BN_bin2bn(nd, static_cast<int>(nb->size()), nullptr));
    e.reset(BN_bin2bn(ed, static_cast<int>(eb->size()), nullptr));
    OSSL_PARAM_BLD_push_BN(build.get(), OSSL_PKEY_PARAM_RSA_N, n.get());
    OSSL_PARAM_BLD_push_BN(build.get(), OSSL_PKEY_PARAM_RSA_E, e.get());
    type = "RSA";
  } else if (kty == "EC") {
    if (crv != "P-256") return Key();
    auto x = jwk_bytes(jwk, "x"), y = jwk_bytes(jwk, "y");
    if (!x || !y || x->size() != 32 || y->size() != 32) {
      return invalid_key("a P-256 JWK needs x and y, 32 bytes each");
    }
    point = '\x04' + *x + *y;  // uncompressed (SEC 1)
    OSSL_PARAM_BLD_push_utf8_string(build.get(), OSSL_PKEY_PARAM_GROUP_NAME, "prime256v1", 0);
    OSSL_PARAM_BLD_push_octet_string(build.get(), OSSL_PKEY_PARAM_PUB_KEY, point.data(),
                                     point.size());
    type = "EC";
  } else {
    return Key();
  }
  std::unique_ptr<OSSL_PARAM, decltype(&OSSL_PARAM_free)> params(
      OSSL_PARAM_BLD_to_param(build.get()), OSSL_PARAM_free);
  std::unique_ptr<EVP_PKEY_CTX, decltype(&EVP_PKEY_CTX_free)> ctx(
      EVP_PKEY_CTX_new_from_name(nullptr, type, nullptr), EVP_PKEY_CTX_free);
  EVP_PKEY* key = nullptr;
  if (!params || !ctx || EVP_PKEY_fromdata_init(ctx.get()) != 1 ||
      EVP_PKEY_fromdata(ctx.get(), &key, EVP_PKEY_PUBLIC_KEY, params.get()) != 1) {
    return invalid_key(std::string("an ") + type + " JWK that is no valid key");
  }
  return Key(key);
}

// The claim `name`, or else the member at dot path `name` (`realm_access.roles`).
const json::value* find_claim(const json::object& claims, std::string_view name) {
  if (const json::value* exact = claims.if_contains(name)) return exact;
  const json::object* at = &claims;
  for (;;) {
    auto dot = name.find('.');
    const json::value* member = at->if_contains(name.substr(0, dot));
    if (!member || dot == std::string_view::npos) return member;
    if (!member->is_object()) return nullptr;
    at = &member->get_object();
    name.remove_prefix(dot + 1);
  }
}

// The roles of `claims` into out.role and out.other_roles.
result<void> read_roles(const json::object& claims, const std::string& claim, Claims& out) {
  const json::value* value = find_claim(claims, claim);
  if (value && value->is_string()) {
    auto role = parse_role(value->get_string());
    if (!role) return unauthorized("the token's role must be producer, consumer or admin");
    out.role = *role;
    return {};
  }
  if (value && value->is_array()) {  // an identity provider's roles, ours among them
    std::vector<Role> roles;
    for (const auto& name : value->get_array()) {
      auto role = name.is_string() ? parse_role(name.get_string()) : std::nullopt;
      if (role) roles.push_back(*role);
    }
    if (roles.empty()) {
      return unauthorized("the token's " + claim + " names none of producer, consumer, admin");
    }
    out.role = roles.front();
    out.other_roles.assign(roles.begin() + 1, roles.end());
    return {};
  }
  return unauthorized("the token has no role (" + claim +
                      ": producer, consumer or admin, or an array of them)");
}

}  // namespace

void PublicKey::Free::operator()(EVP_PKEY* key) const { EVP_PKEY_free(key); }

result<std::shared_ptr<const PublicKey>> PublicKey::from(Key key, std::string kid) {
  switch (EVP_PKEY_get_base_id(key.get())) {
    case EVP_PKEY_RSA:
      if (EVP_PKEY_get_bits(key.get()) < 2048) {
        return invalid_key("an RSA key of " + std::to_string(EVP_PKEY_get_bits(key.get())) +
                           " bits: RS256 needs at least 2048");
      }
      return std::shared_ptr<const PublicKey>(
          new PublicKey(std::move(key), "RS256", std::move(kid)));
    case EVP_PKEY_EC: {
      char curve[64] = "";
      std::size_t size = 0;
      EVP_PKEY_get_group_name(key.get(), curve, sizeof curve, &size);
      if (std::string_view(curve) != "prime256v1") {
        return invalid_key(std::string("an EC key on curve ") + curve + ": ES256 needs P-256");
      }
      return std::shared_ptr<const PublicKey>(
          new PublicKey(std::move(key), "ES256", std::move(kid)));
    }
    case EVP_PKEY_ED25519:
      return std::shared_ptr<const PublicKey>(
          new PublicKey(std::move(key), "EdDSA", std::move(kid)));
    default:
      return invalid_key("a key of a kind JWTs are not checked with (RSA, EC P-256, Ed25519 are)");
  }
}

result<std::shared_ptr<const PublicKey>> PublicKey::from_pem(std::string_view pem) {
  std::unique_ptr<BIO, decltype(&BIO_free)> bio(
      BIO_new_mem_buf(pem.data(), static_cast<int>(pem.size())), BIO_free);
  Key key(PEM_read_bio_PUBKEY(bio.get(), nullptr, nullptr, nullptr));
  if (!key) {  // a certificate: its key
    bio.reset(BIO_new_mem_buf(pem.data(), static_cast<int>(pem.size())));
    std::unique_ptr<X509, decltype(&X509_free)> cert(
        PEM_read_bio_X509(bio.get(), nullptr, nullptr, nullptr), X509_free);
    if (cert) key.reset(X509_get_pubkey(cert.get()));
  }
  if (!key) return invalid_key("not a PEM public key (BEGIN PUBLIC KEY) or certificate");
  return from(std::move(key));
}

result<PublicKeys> PublicKey::from_jwks(std::string_view text) {
  boost::system::error_code ec;
  auto set = json::parse(text, ec);
  const json::value* keys = !ec && set.is_object() ? set.get_object().if_contains("keys") : nullptr;
  if (!keys || !keys->is_array()) return invalid_key("not a JWK set ({\"keys\": [...]})");
  PublicKeys out;
  for (std::size_t i = 0; i < keys->get_array().size(); ++i) {
    const json::value& jwk = keys->get_array()[i];
    auto where = [&] {
      auto kid = jwk.is_object() ? text_of(jwk.get_object(), "kid") : std::string_view();
      return "key " + std::to_string(i) + (kid.empty() ? "" : " (kid " + std::string(kid) + ")");
    };
    if (!jwk.is_object()) return invalid_key(where() + ": not a JSON object");
    auto use = text_of(jwk.get_object(), "use");
    if (!use.empty() && use != "sig") continue;  // an encryption key
    auto key = jwk_key(jwk.get_object());
    if (!key) return invalid_key(where() + ": " + key.error().message);
    if (!*key) continue;  // another kind
    auto made = from(std::move(*key), std::string(text_of(jwk.get_object(), "kid")));
    if (!made) return invalid_key(where() + ": " + made.error().message);
    auto alg = text_of(jwk.get_object(), "alg");
    if (!alg.empty() && alg != (*made)->algorithm()) continue;  // e.g. RSA for PS256
    out.push_back(std::move(*made));
  }
  if (out.empty()) return invalid_key("no key of the set is for RS256, ES256 or EdDSA");
  return out;
}

result<PublicKeys> PublicKey::load(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::ostringstream read;
  read << in.rdbuf();
  if (!in) return make_error(errc::invalid_argument, path + ": cannot be read");
  const std::string text = read.str();
  auto in_file = [&](const Error& e) { return make_error(e.code, path + ": " + e.message); };
  auto first = text.find_first_not_of(" \t\r\n");
  if (first != std::string::npos && text[first] == '{') {  // a JWK set
    auto keys = from_jwks(text);
    if (!keys) return in_file(keys.error());
    return keys;
  }
  auto key = from_pem(text);
  if (!key) return in_file(key.error());
  return PublicKeys{std::move(*key)};
}

result<PublicKeys> load_public_keys(const std::vector<std::string>& paths) {
  PublicKeys all;
  for (const auto& path : paths) {
    auto keys = PublicKey::load(path);
    if (!keys) return keys.error();
    all.insert(all.end(), keys->begin(), keys->end());
  }
  return all;
}

bool PublicKey::verifies(std::string_view input, std::string_view signature) const {
  std::string der;
  if (algorithm_ == "ES256") {
    auto converted = es256_der(signature);
    if (!converted) return false;
    der = std::move(*converted);
    signature = der;
  }
  std::unique_ptr<EVP_MD_CTX, decltype(&EVP_MD_CTX_free)> ctx(EVP_MD_CTX_new(), EVP_MD_CTX_free);
  // Ed25519 hashes inside the signature scheme: no digest of its own.
  const EVP_MD* md = algorithm_ == "EdDSA" ? nullptr : EVP_sha256();
  return ctx && EVP_DigestVerifyInit(ctx.get(), nullptr, md, nullptr, key_.get()) == 1 &&
         EVP_DigestVerify(ctx.get(), reinterpret_cast<const unsigned char*>(signature.data()),
                          signature.size(), reinterpret_cast<const unsigned char*>(input.data()),
                          input.size()) == 1;
}

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

std::string JwtConfig::algorithms() const {
  std::vector<std::string_view> names;
  if (!secret.empty()) names.push_back("HS256");
  for (const auto& key : public_keys) {
    if (std::find(names.begin(), names.end(), key->algorithm()) == names.end()) {
      names.push_back(key->algorithm());
    }
  }
  std::string out;
  for (auto name : names) out += (out.empty() ? "" : ", ") + std::string(name);
  return out;
}

bool JwtConfig::knows_key_id(std::string_view kid) const {
  return std::any_of(public_keys.begin(), public_keys.end(),
                     [&](const auto& key) { return key->kid() == kid; });
}

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
  const std::string_view alg = text_of(header, "alg");
  // Pinned: `none`, and an algorithm no configured key is for (algorithm confusion: HS256 with
  // a public key as the secret, …), never reach a signature check.
  const bool hmac = alg == "HS256" && !config.secret.empty();
  // A token the provider may have signed, while its keys have never loaded: not refused (401
  // would tell the client its token is bad) but not checkable yet (503, try again shortly).
  const bool provider_alg = alg == "RS256" || alg == "ES256" || alg == "EdDSA";
  if (!hmac && provider_alg && config.awaiting_keys()) {
    return make_error(errc::auth_unavailable,
                      "the keys of " + config.key_source() +
                          " are not loaded yet: the token cannot be checked; try again shortly");
  }
  const bool keyed = std::any_of(config.public_keys.begin(), config.public_keys.end(),
                                 [&](const auto& key) { return key->algorithm() == alg; });
  if (!hmac && !keyed) {
    return unauthorized("the token's algorithm must be " + config.algorithms());
  }
  // A token that names its key is checked with that key (or a key without an id, as a PEM
  // file's): an identity provider's tokens all say which of its keys signed them.
  const std::string_view kid = text_of(header, "kid");
  auto candidate = [&](const PublicKey& key) {
    return key.algorithm() == alg && (kid.empty() || key.kid().empty() || key.kid() == kid);
  };
  auto signature = base64url_decode(signature_part);
  const auto input = token.substr(0, second);
  bool valid = false, tried = hmac;
  if (signature && hmac) {
    auto expected = hs256(config.secret, input);
    valid = signature->size() == expected.size() &&
            CRYPTO_memcmp(signature->data(), expected.data(), expected.size()) == 0;
  }
  for (const auto& key : config.public_keys) {
    if (valid || !candidate(*key)) continue;
    tried = true;
    valid = signature && key->verifies(input, *signature);
  }
  if (!tried) return unauthorized("no key has the token's key id (kid " + std::string(kid) + ")");
  if (!valid) return unauthorized("the token's signature is not valid");

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
  RR_TRY(read_roles(claims, config.role_claim, out));
  if (const json::value* channels = claims.if_contains("channels")) {
    if (!channels->is_array()) return unauthorized("the token's channels must be an array");
    for (const auto& c : channels->get_array()) {
      if (!c.is_string()) return unauthorized("the token's channels must be strings");
      out.channels.emplace_back(c.get_string());
    }
  }
  return out;
}

std::string key_id(std::string_view token) {
  auto header = decode_part(token.substr(0, token.find('.')), "header");
  return header ? std::string(text_of(*header, "kid")) : std::string();
}

std::string mint(const Claims& claims, const JwtConfig& config, std::int64_t now) {
  json::object body{{"sub", claims.subject}, {"iat", now}, {"exp", claims.expires}};
  body[config.role_claim] = to_string(claims.role);  // verify() looks for its exact name first
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
  auto grants = [needed](Role r) { return r == Role::admin || r == needed; };
  return grants(claims.role) ||
         std::any_of(claims.other_roles.begin(), claims.other_roles.end(), grants);
}

bool allows_channel(const Claims& claims, std::string_view channel) {
  if (claims.channels.empty()) return true;
  std::string name(channel);
  return std::any_of(claims.channels.begin(), claims.channels.end(), [&](const std::string& glob) {
    return fnmatch(glob.c_str(), name.c_str(), 0) == 0;
  });
}

result<void> check_channel(const Claims& claims, std::string_view channel) {
  if (allows_channel(claims, channel)) return {};
  return make_error(errc::forbidden, "the token's channels do not include " + std::string(channel));
}

bool secrets_equal(std::string_view a, std::string_view b) {
  // Compare fixed-size digests, so neither the length nor the first difference shows in the time.
  unsigned char da[SHA256_DIGEST_LENGTH], db[SHA256_DIGEST_LENGTH];
  SHA256(reinterpret_cast<const unsigned char*>(a.data()), a.size(), da);
  SHA256(reinterpret_cast<const unsigned char*>(b.data()), b.size(), db);
  return CRYPTO_memcmp(da, db, sizeof da) == 0;
}

}  // namespace replayrail::auth
