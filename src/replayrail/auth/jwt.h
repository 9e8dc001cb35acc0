#pragma once

// JWTs (DESIGN §4 "Auth"): roles producer / consumer / admin and an optional `channels` claim of
// glob patterns. HS256 with a shared secret, and tokens an identity provider signs with its
// private key, verified with public keys: RS256 (RSA), ES256 (EC P-256), EdDSA (Ed25519).
//
// Each algorithm is pinned to the kind of key configured for it: a token is checked only with a
// key of the kind its `alg` names, and an `alg` no configured key takes (`none`, HS256 without a
// secret, RS256 without an RSA key, …) is refused before its signature is looked at. So an RSA
// public key can never serve as an HMAC secret (algorithm confusion).

#include <openssl/types.h>

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "replayrail/common/errc.h"

namespace replayrail::auth {

enum class Role { producer, consumer, admin };

std::optional<Role> parse_role(std::string_view name);
std::string_view to_string(Role role);

struct Claims {
  std::string subject;                // `sub`
  Role role = Role::consumer;         // `role` (JwtConfig::role_claim): the first role it names
  std::vector<std::string> channels;  // glob patterns; empty: every channel
  std::int64_t expires = 0;           // `exp`, seconds since the epoch
  std::vector<Role> other_roles;      // the rest, when the role claim is an array of roles
};

class PublicKey;
using PublicKeys = std::vector<std::shared_ptr<const PublicKey>>;

// A public key tokens are verified with. Immutable, so shared by every copy of a JwtConfig.
class PublicKey {
 public:
  // The keys of a file: a PEM public key (`BEGIN PUBLIC KEY`) or certificate (its key), or a JWK
  // set (RFC 7517, `{"keys": [...]}`, what an identity provider's jwks_uri serves). RSA keys need
  // at least 2048 bits, EC keys the P-256 curve. Of a set, the keys for signatures of these
  // kinds are taken (not those for encryption, other curves or other algorithms); one is needed.
  static result<PublicKeys> load(const std::string& path);
  static result<std::shared_ptr<const PublicKey>> from_pem(std::string_view pem);
  static result<PublicKeys> from_jwks(std::string_view text);

  // "RS256", "ES256" or "EdDSA": the only `alg` this key verifies.
  std::string_view algorithm() const { return algorithm_; }
  // The JWK's `kid`; empty for a PEM key (which then verifies tokens of any `kid`).
  const std::string& kid() const { return kid_; }
  // Whether `signature` (as a JWS carries it: for ES256 r ‖ s, 64 bytes) signs `input`.
  bool verifies(std::string_view input, std::string_view signature) const;

  struct Free {
    void operator()(EVP_PKEY* key) const;
  };

 private:
  // The algorithm of `key`'s kind; a weak key or one of another kind is refused.
  static result<std::shared_ptr<const PublicKey>> from(std::unique_ptr<EVP_PKEY, Free> key,
                                                       std::string kid = {});
  PublicKey(std::unique_ptr<EVP_PKEY, Free> key, std::string_view algorithm, std::string kid)
      : key_(std::move(key)), algorithm_(algorithm), kid_(std::move(kid)) {}
  std::unique_ptr<EVP_PKEY, Free> key_;
  std::string_view algorithm_;
  std::string kid_;
};

// The keys of every file (PublicKey::load), in order; the first file that fails is the error.
result<PublicKeys> load_public_keys(const std::vector<std::string>& paths);

struct JwtConfig {
  std::string secret;      // HS256 key
  std::string issuer;      // `iss` required to match when set
  std::string audience;    // `aud` (a string or an array) required to contain it when set
  PublicKeys public_keys;  // RS256 / ES256 / EdDSA
  // An identity provider's jwks_uri the server keeps its keys from (they are in `public_keys`
  // once fetched); or, with `oidc_issuer`, the one its OpenID discovery document names.
  std::string jwks_url;
  std::string oidc_issuer;
  // Where a token's role is: a claim of that name, or else that dot path into the claims (an
  // identity provider's, e.g. Keycloak's `realm_access.roles`). A role name, or an array in
  // which the names that are no role of ours are left out.
  std::string role_claim = "role";

  // Auth is on once a secret, a public key, a JWK set URL or an OpenID provider is configured.
  bool enabled() const { return !secret.empty() || !public_keys.empty() || fetches_keys(); }
  // Whether keys come from an identity provider (a JWK set URL, or one discovered).
  bool fetches_keys() const { return !jwks_url.empty() || !oidc_issuer.empty(); }
  // Keys come from an identity provider and none has loaded yet: its tokens cannot be checked.
  bool awaiting_keys() const { return fetches_keys() && public_keys.empty(); }
  // Where they come from, for messages: the JWK set URL, or the OpenID provider.
  const std::string& key_source() const { return jwks_url.empty() ? oidc_issuer : jwks_url; }
  // The algorithms accepted, e.g. "HS256, RS256".
  std::string algorithms() const;
  // Whether a public key has this `kid`.
  bool knows_key_id(std::string_view kid) const;
};

// The token's claims when its `alg` is one a configured key takes and one such key verifies its
// signature (HS256: the secret), `exp` is present and in the future, `nbf` (if any) is past, and
// `iss` / `aud` match the configuration. A token that names its key (`kid`) is checked only with
// the key of that id (and keys without one). Anything else is unauthorized, with a message saying
// what was wrong.
result<Claims> verify(std::string_view token, const JwtConfig& config, std::int64_t now);

// The `kid` of the token's header; empty when it has none (or is no JWT).
std::string key_id(std::string_view token);

// An HS256 token for `claims` (`iat` = now, `exp` = claims.expires), signed with the secret, with
// the configured `iss` and `aud`.
std::string mint(const Claims& claims, const JwtConfig& config, std::int64_t now);

// Base64url without padding (RFC 4648 §5), as the parts of a JWT are written.
std::string base64url_encode(std::string_view bytes);

// Admin may do everything; producer and consumer only what their name says.
bool allows(const Claims& claims, Role needed);
// Whether the `channels` claim lets the token use `channel` (fnmatch globs; none: all).
bool allows_channel(const Claims& claims, std::string_view channel);
// The same as an error: forbidden, naming the channel, when the claim does not allow it.
result<void> check_channel(const Claims& claims, std::string_view channel);

// Compares secrets in time independent of where they differ.
bool secrets_equal(std::string_view a, std::string_view b);

}  // namespace replayrail::auth
