#include "replayrail/auth/jwt.h"

#include <gtest/gtest.h>

#include <fstream>

#include "replayrail/auth/testing/key_pair.h"
#include "replayrail/store/testing/temp_dir.h"

namespace replayrail::auth {
namespace {

constexpr std::int64_t kNow = 1'800'000'000;

class JwtTest : public ::testing::Test {
 protected:
  JwtConfig config_{"s3cret", "replayrail", "events"};
  Claims claims(Role role = Role::producer, std::vector<std::string> channels = {}) {
    return {"me", role, std::move(channels), kNow + 60};
  }
  static std::string replace_part(const std::string& token, int index, const std::string& part) {
    auto a = token.find('.'), b = token.find('.', a + 1);
    std::string parts[3] = {token.substr(0, a), token.substr(a + 1, b - a - 1),
                            token.substr(b + 1)};
    parts[index] = part;
    return parts[0] + "." + parts[1] + "." + parts[2];
  }
  void expect_refused(const std::string& token, const std::string& why) {
    expect_refused(token, why, config_);
  }
  static void expect_refused(const std::string& token, const std::string& why,
                             const JwtConfig& config) {
    auto r = verify(token, config, kNow);
    ASSERT_FALSE(r) << why;
    EXPECT_EQ(r.error().code, errc::unauthorized);
    EXPECT_NE(r.error().message.find(why), std::string::npos) << r.error().message;
  }
};

TEST_F(JwtTest, AMintedTokenVerifies) {
  auto token = mint(claims(Role::admin, {"orders*"}), config_, kNow);
  auto r = verify(token, config_, kNow);
  ASSERT_TRUE(r) << r.error().message;
  EXPECT_EQ(r->subject, "me");
  EXPECT_EQ(r->role, Role::admin);
  EXPECT_EQ(r->channels, std::vector<std::string>{"orders*"});
}

TEST_F(JwtTest, RefusesWhatIsWrong) {
  auto good = mint(claims(), config_, kNow);
  ASSERT_TRUE(verify(good, config_, kNow));
  // Expired: exp is past, or now.
  auto expired = claims();
  expired.expires = kNow - 3600;
  expect_refused(mint(expired, config_, kNow - 7200), "expired");
  expired.expires = kNow;
  expect_refused(mint(expired, config_, kNow), "expired");
  // Signed with another secret: a forgery.
  JwtConfig other = config_;
  other.secret = "guess";
  expect_refused(mint(claims(), other, kNow), "signature");
  // Another audience or issuer.
  other = config_;
  other.audience = "elsewhere";
  expect_refused(mint(claims(), other, kNow), "audience");
  other = config_;
  other.issuer = "someone";
  expect_refused(mint(claims(), other, kNow), "issuer");
  // alg none (no signature) and algorithm confusion are refused before the signature check.
  expect_refused(replace_part(replace_part(good, 0, "eyJhbGciOiJub25lIn0"), 2, ""), "HS256");
  expect_refused(replace_part(good, 0, "eyJhbGciOiJSUzI1NiJ9"), "HS256");  // {"alg":"RS256"}
  // A claims part changed after signing (role raised to admin).
  auto raised = replace_part(good, 1, "eyJyb2xlIjoiYWRtaW4iLCJleHAiOjk5OTk5OTk5OTl9");
  expect_refused(raised, "signature");
  // Not a JWT at all.
  expect_refused("abc", "not a JWT");
  expect_refused("a.b.c.d", "not a JWT");
  expect_refused("!!!.e30.", "base64url");
}

// What an identity provider's token carries.
boost::json::object provider_claims(std::int64_t exp = kNow + 60) {
  return {{"sub", "user-7"},     {"role", "consumer"}, {"channels", {"orders*"}},
          {"iss", "replayrail"}, {"aud", "events"},    {"exp", exp}};
}

std::shared_ptr<const PublicKey> public_key(const testing::KeyPair& pair) {
  return PublicKey::from_pem(pair.public_pem()).value();
}

TEST_F(JwtTest, TokensOfAnIdentityProviderVerifyWithItsPublicKey) {
  for (const auto& pair :
       {testing::KeyPair::rsa(), testing::KeyPair::ec(), testing::KeyPair::ed25519()}) {
    JwtConfig config{"", "replayrail", "events", {public_key(pair)}};
    const std::string alg(config.public_keys[0]->algorithm());
    SCOPED_TRACE(alg);
    auto r = verify(pair.sign(provider_claims()), config, kNow);
    ASSERT_TRUE(r) << r.error().message;
    EXPECT_EQ(r->subject, "user-7");
    EXPECT_EQ(r->role, Role::consumer);
    EXPECT_EQ(r->channels, std::vector<std::string>{"orders*"});
    EXPECT_TRUE(config.enabled());
    EXPECT_EQ(config.algorithms(), alg);

    auto refused = [&](const std::string& token, const std::string& why) {
      expect_refused(token, why, config);
    };
    // The same kind of key, another pair: a forgery.
    auto other = alg == "RS256"   ? testing::KeyPair::rsa()
                 : alg == "ES256" ? testing::KeyPair::ec()
                                  : testing::KeyPair::ed25519();
    refused(other.sign(provider_claims()), "signature");
    // Claims changed after signing; the signature cut short; the claims checked as for HS256.
    auto token = pair.sign(provider_claims());
    auto raised = provider_claims();
    raised["role"] = "admin";
    refused(replace_part(token, 1, base64url_encode(boost::json::serialize(raised))), "signature");
    refused(token.substr(0, token.size() - 4), "signature");
    refused(pair.sign(provider_claims(kNow - 1)), "expired");
    // Algorithm confusion: HS256 "signed" with the public key as the secret, and another
    // algorithm than the key's, are refused before any signature check.
    JwtConfig hmac_forger{pair.public_pem(), "replayrail", "events"};
    Claims admin{"x", Role::admin, {}, kNow + 60};
    refused(mint(admin, hmac_forger, kNow), "algorithm must be " + alg);
    refused(replace_part(token, 0, "eyJhbGciOiJub25lIn0"), "algorithm must be " + alg);  // none
    const char* another = alg == "RS256" ? "ES256" : "RS256";
    refused(pair.sign(provider_claims(), another), "algorithm must be " + alg);
  }
}

TEST_F(JwtTest, ASecretAndSeveralPublicKeysAreTakenTogether) {
  auto old_key = testing::KeyPair::rsa(), new_key = testing::KeyPair::rsa();
  auto ec = testing::KeyPair::ec();
  JwtConfig config = config_;
  config.public_keys = {public_key(old_key), public_key(new_key), public_key(ec)};
  EXPECT_EQ(config.algorithms(), "HS256, RS256, ES256");
  // A rotation: tokens of the old key and of the new one both verify.
  EXPECT_TRUE(verify(old_key.sign(provider_claims()), config, kNow));
  EXPECT_TRUE(verify(new_key.sign(provider_claims()), config, kNow));
  EXPECT_TRUE(verify(ec.sign(provider_claims()), config, kNow));
  EXPECT_TRUE(verify(mint(claims(), config, kNow), config, kNow));
  // A secret of the configuration's signs nothing but HS256: the RSA key's PEM is no secret.
  JwtConfig hmac_forger = config_;
  hmac_forger.secret = old_key.public_pem();
  auto r = verify(mint(claims(Role::admin), hmac_forger, kNow), config, kNow);
  ASSERT_FALSE(r);
  EXPECT_NE(r.error().message.find("signature"), std::string::npos) << r.error().message;
  // An ES256 signature in OpenSSL's DER form, not JWS's r ‖ s, is refused.
  auto token = ec.sign(provider_claims());
  auto der = replace_part(token, 2, base64url_encode(std::string(70, '\x30')));
  EXPECT_FALSE(verify(der, config, kNow));
}

TEST_F(JwtTest, PublicKeysLoadFromPemAndRefuseWhatIsWeakOrNoKey) {
  ::replayrail::testing::TempDir dir("jwt-keys");
  auto write = [&](const std::string& name, const std::string& text) {
    std::ofstream(dir.path() / name) << text;
    return (dir.path() / name).string();
  };
  auto pair = testing::KeyPair::ec();
  auto keys = PublicKey::load(write("ec.pem", pair.public_pem()));
  ASSERT_TRUE(keys) << keys.error().message;
  ASSERT_EQ(keys->size(), 1u);
  EXPECT_EQ(keys->front()->algorithm(), "ES256");
  // A certificate stands for its key.
  auto rsa = testing::KeyPair::rsa();
  auto from_cert = PublicKey::load(write("rsa.crt", rsa.certificate_pem()));
  ASSERT_TRUE(from_cert) << from_cert.error().message;
  EXPECT_EQ(from_cert->front()->algorithm(), "RS256");
  EXPECT_TRUE(verify(rsa.sign(provider_claims()), {"", "", "", *from_cert}, kNow));

  auto refused = [&](const auto& r, const std::string& why) {
    ASSERT_FALSE(r) << why;
    EXPECT_EQ(r.error().code, errc::invalid_argument);
    EXPECT_NE(r.error().message.find(why), std::string::npos) << r.error().message;
  };
  refused(PublicKey::from_pem(testing::KeyPair::rsa(1024).public_pem()), "at least 2048");
  refused(PublicKey::from_pem(testing::KeyPair::ec("P-384").public_pem()), "needs P-256");
  refused(PublicKey::from_pem("not a key"), "not a PEM public key");
  refused(PublicKey::load((dir.path() / "missing.pem").string()), "missing.pem: cannot be read");
  refused(PublicKey::load(write("empty.pem", "")), "empty.pem: not a PEM public key");
}

// A JWK set, as an identity provider's jwks_uri serves it: the signing keys of the kinds taken
// are loaded, the others left out; a key that is there but broken is an error that names it.
TEST_F(JwtTest, JwkSetsGiveTheirSigningKeys) {
  auto rsa = testing::KeyPair::rsa(), ec = testing::KeyPair::ec();
  auto ed = testing::KeyPair::ed25519();
  auto encryption = rsa.jwk("enc-1");
  encryption["use"] = "enc";
  auto pss = testing::KeyPair::rsa().jwk("pss-1");
  pss["alg"] = "PS256";
  boost::json::object set{{"keys",
                           {rsa.jwk("rsa-1"),
                            encryption,
                            ec.jwk("ec-1"),
                            testing::KeyPair::ec("P-384").jwk("p384"),
                            pss,
                            ed.jwk("ed-1"),
                            {{"kty", "oct"}, {"k", "c2VjcmV0"}}}}};
  ::replayrail::testing::TempDir dir("jwks");
  const auto path = dir.path() / "jwks.json";
  std::ofstream(path) << "\n  " << boost::json::serialize(set);
  auto keys = PublicKey::load(path.string());
  ASSERT_TRUE(keys) << keys.error().message;
  std::vector<std::string_view> algorithms;
  for (const auto& k : *keys) algorithms.push_back(k->algorithm());
  EXPECT_EQ(algorithms, (std::vector<std::string_view>{"RS256", "ES256", "EdDSA"}));
  JwtConfig config{"", "replayrail", "events", *keys};
  for (const auto* pair : {&rsa, &ec, &ed}) {
    auto r = verify(pair->sign(provider_claims()), config, kNow);
    EXPECT_TRUE(r) << r.error().message;
  }
  EXPECT_FALSE(verify(testing::KeyPair::ec().sign(provider_claims()), config, kNow));

  auto refused = [](std::string_view text, const std::string& why) {
    auto r = PublicKey::from_jwks(text);
    ASSERT_FALSE(r) << why;
    EXPECT_NE(r.error().message.find(why), std::string::npos) << r.error().message;
  };
  refused("[]", "not a JWK set");
  refused(R"({"keys":{}})", "not a JWK set");
  refused(R"({"keys":[]})", "no key of the set");
  refused(R"({"keys":[{"kty":"RSA","kid":"a","n":"AQAB"}]})",
          "key 0 (kid a): an RSA JWK needs n and e");
  refused(R"({"keys":[{"kty":"EC","crv":"P-256","x":"AAAA","y":"AAAA"}]})", "x and y, 32 bytes");
  auto weak = boost::json::object{{"keys", {testing::KeyPair::rsa(1024).jwk("old")}}};
  refused(boost::json::serialize(weak), "key 0 (kid old): an RSA key of 1024 bits");
  // A point that is not on the curve is no key.
  auto off_curve = ec.jwk("bad");
  off_curve["y"] = base64url_encode(std::string(32, '\x01'));
  refused(boost::json::serialize(boost::json::object{{"keys", {off_curve}}}), "no valid key");
}

// A token that names its key (`kid`, as every identity provider's do) is checked with that key of
// the set, or a key without an id (a PEM file's); a kid the set lacks is said so.
TEST_F(JwtTest, ATokensKeyIdPicksItsKey) {
  auto current = testing::KeyPair::rsa(), next = testing::KeyPair::rsa();
  auto set = PublicKey::from_jwks(boost::json::serialize(
      boost::json::object{{"keys", {current.jwk("2026-10"), next.jwk("2026-11")}}}));
  ASSERT_TRUE(set) << set.error().message;
  EXPECT_EQ((*set)[0]->kid(), "2026-10");
  JwtConfig config{"", "replayrail", "events", *set};
  EXPECT_TRUE(config.knows_key_id("2026-11"));
  EXPECT_FALSE(config.knows_key_id("2026-12"));
  EXPECT_FALSE(config.knows_key_id(""));

  const auto claims = provider_claims();
  EXPECT_TRUE(verify(current.sign(claims, "", "2026-10"), config, kNow));
  EXPECT_TRUE(verify(next.sign(claims, "", "2026-11"), config, kNow));
  EXPECT_TRUE(verify(next.sign(claims), config, kNow)) << "no kid: every key of the kind is tried";
  // The key of the id named, and only it, is tried.
  expect_refused(current.sign(claims, "", "2026-11"), "signature is not valid", config);
  expect_refused(current.sign(claims, "", "2026-12"), "no key has the token's key id (kid 2026-12)",
                 config);
  EXPECT_EQ(key_id(current.sign(claims, "", "2026-12")), "2026-12");
  EXPECT_EQ(key_id(current.sign(claims)), "");
  EXPECT_EQ(key_id("not a token"), "");

  // A PEM key has no id: it is tried whatever the token names.
  JwtConfig pem{"", "replayrail", "events", {PublicKey::from_pem(current.public_pem()).value()}};
  EXPECT_TRUE(verify(current.sign(claims, "", "anything"), pem, kNow));

  // A JWK set URL whose keys are not fetched yet: no token passes. One the provider may have
  // signed cannot be checked yet (auth_unavailable, 503: try again), and the message says why;
  // one it cannot have signed is refused as ever.
  JwtConfig waiting{"", "replayrail", "events", {}, "https://idp.test/jwks"};
  EXPECT_TRUE(waiting.enabled());
  auto unavailable = [&](const std::string& token) {
    auto r = verify(token, waiting, kNow);
    ASSERT_FALSE(r);
    EXPECT_EQ(r.error().code, errc::auth_unavailable) << r.error().message;
    EXPECT_NE(r.error().message.find("the keys of https://idp.test/jwks are not loaded yet"),
              std::string::npos)
        << r.error().message;
  };
  unavailable(current.sign(claims, "", "2026-10"));
  unavailable(testing::KeyPair::ec().sign(claims));
  unavailable(testing::KeyPair::ed25519().sign(claims));
  expect_refused(mint({"me", Role::producer, {}, kNow + 60}, {"s3cret", "", ""}, kNow),
                 "algorithm must be", waiting);
  expect_refused("eyJhbGciOiJub25lIn0.e30.", "algorithm must be", waiting);
  expect_refused("not a token", "not a JWT", waiting);
  // With a secret as well, its HS256 tokens pass meanwhile.
  waiting.secret = "s3cret";
  EXPECT_TRUE(verify(mint({"me", Role::producer, {}, kNow + 60}, waiting, kNow), waiting, kNow));
  unavailable(current.sign(claims, "", "2026-10"));
}

// The role where an identity provider puts it (--auth-jwt-role-claim): a claim of another name
// (Auth0's namespaced ones have dots of their own), or a dot path to an array of role names
// (Keycloak's realm_access.roles), in which names that are no role of ours are left out.
TEST_F(JwtTest, TheRoleClaimCanBeAnotherClaimOrAnArrayOfRoles) {
  auto idp = testing::KeyPair::ec();
  JwtConfig config{"", "", "", {PublicKey::from_pem(idp.public_pem()).value()}};
  auto token = [&](boost::json::object extra) {
    extra["exp"] = kNow + 60;
    return idp.sign(extra);
  };
  auto roles = [&](const std::string& t) -> std::vector<Role> {
    auto r = verify(t, config, kNow);
    if (!r) return {};
    std::vector<Role> out{r->role};
    out.insert(out.end(), r->other_roles.begin(), r->other_roles.end());
    return out;
  };
  EXPECT_EQ(roles(token({{"role", "producer"}})), std::vector<Role>{Role::producer});
  expect_refused(token({}), "the token has no role (role: ", config);
  expect_refused(token({{"role", "owner"}}), "role must be producer, consumer or admin", config);

  config.role_claim = "realm_access.roles";
  const boost::json::object keycloak{
      {"realm_access",
       {{"roles", {"offline_access", "consumer", "producer", "uma_authorization"}}}}};
  auto both = verify(token(keycloak), config, kNow);
  ASSERT_TRUE(both) << both.error().message;
  EXPECT_EQ(both->role, Role::consumer);
  EXPECT_EQ(both->other_roles, std::vector<Role>{Role::producer});
  EXPECT_TRUE(allows(*both, Role::producer));
  EXPECT_TRUE(allows(*both, Role::consumer));
  EXPECT_FALSE(allows(*both, Role::admin));
  EXPECT_EQ(roles(token({{"realm_access", {{"roles", "admin"}}}})), std::vector<Role>{Role::admin});
  expect_refused(token({{"realm_access", {{"roles", {"offline_access"}}}}}),
                 "realm_access.roles names none of producer, consumer, admin", config);
  expect_refused(token({{"realm_access", "admin"}}), "no role (realm_access.roles", config);
  expect_refused(token({{"role", "admin"}}), "no role", config);  // only the configured claim

  config.role_claim = "https://replayrail.example/role";
  EXPECT_EQ(roles(token({{"https://replayrail.example/role", "consumer"}})),
            std::vector<Role>{Role::consumer});
  // Minted tokens carry the role under the configured name.
  config.secret = "s3cret";
  auto minted = verify(mint({"me", Role::admin, {}, kNow + 60}, config, kNow), config, kNow);
  ASSERT_TRUE(minted) << minted.error().message;
  EXPECT_EQ(minted->role, Role::admin);
}

TEST_F(JwtTest, RolesAndChannelGlobs) {
  Claims producer = claims(Role::producer, {"orders", "restaurant:*:orders"});
  EXPECT_TRUE(allows(producer, Role::producer));
  EXPECT_FALSE(allows(producer, Role::consumer));
  EXPECT_FALSE(allows(producer, Role::admin));
  EXPECT_TRUE(allows(claims(Role::admin), Role::consumer));
  EXPECT_TRUE(allows_channel(producer, "orders"));
  EXPECT_TRUE(allows_channel(producer, "restaurant:12:orders"));
  EXPECT_FALSE(allows_channel(producer, "restaurant:12:payments"));
  EXPECT_FALSE(allows_channel(producer, "orders2"));
  EXPECT_TRUE(allows_channel(claims(), "anything")) << "no channels claim: every channel";
}

TEST_F(JwtTest, SecretsCompare) {
  EXPECT_TRUE(secrets_equal("dev-admin-secret", "dev-admin-secret"));
  EXPECT_FALSE(secrets_equal("dev-admin-secret", "dev-admin-secreT"));
  EXPECT_FALSE(secrets_equal("dev", "dev-admin-secret"));
}

}  // namespace
}  // namespace replayrail::auth
