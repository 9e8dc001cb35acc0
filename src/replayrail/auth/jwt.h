#pragma once

// JWT HS256 tokens (DESIGN §4 "Auth"): roles producer / consumer / admin and an optional
// `channels` claim of glob patterns. The algorithm is pinned: a token whose header names anything
// but HS256 (`none`, RS256, …) is refused before its signature is looked at.

#include <cstdint>
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
  Role role = Role::consumer;         // `role`
  std::vector<std::string> channels;  // glob patterns; empty: every channel
  std::int64_t expires = 0;           // `exp`, seconds since the epoch
};

struct JwtConfig {
  std::string secret;    // HS256 key; empty: auth is off
  std::string issuer;    // `iss` required to match when set
  std::string audience;  // `aud` (a string or an array) required to contain it when set
};

// The token's claims when its header is {"alg":"HS256"}, its signature is the secret's, `exp` is
// present and in the future, `nbf` (if any) is past, and `iss` / `aud` match the configuration.
// Anything else is unauthorized, with a message saying what was wrong.
result<Claims> verify(std::string_view token, const JwtConfig& config, std::int64_t now);

// A signed token for `claims` (`iat` = now, `exp` = claims.expires), with the configured `iss`
// and `aud`.
std::string mint(const Claims& claims, const JwtConfig& config, std::int64_t now);

// Admin may do everything; producer and consumer only what their name says.
bool allows(const Claims& claims, Role needed);
// Whether the `channels` claim lets the token use `channel` (fnmatch globs; none: all).
bool allows_channel(const Claims& claims, std::string_view channel);

// Compares secrets in time independent of where they differ.
bool secrets_equal(std::string_view a, std::string_view b);

}  // namespace replayrail::auth
