// JWT auth: a token the fuzzer makes up is never accepted (it cannot sign with the secret), and
// any claims a token is minted with come back from verify() unchanged.
#include <boost/json.hpp>
#include <cstdint>
#include <optional>
#include <string_view>

#include "check.h"
#include "replayrail/auth/jwt.h"

namespace {

using namespace replayrail;
namespace json = boost::json;

constexpr std::int64_t kNow = 1'800'000'000;
const auth::JwtConfig kConfig{"fuzz-secret", "replayrail", "clients"};

// `{"sub": "...", "role": "...", "channels": ["..."]}` as claims; nullopt when it is not that.
std::optional<auth::Claims> claims_from(std::string_view text) {
  boost::system::error_code ec;
  json::value v = json::parse(text, ec);
  if (ec || !v.is_object()) return std::nullopt;
  const auto& o = v.get_object();
  auth::Claims claims;
  claims.expires = kNow + 60;
  if (auto* sub = o.if_contains("sub"); sub && sub->is_string()) claims.subject = sub->get_string();
  if (auto* role = o.if_contains("role"); role && role->is_string()) {
    auto parsed = auth::parse_role(role->get_string());
    if (!parsed) return std::nullopt;
    claims.role = *parsed;
  }
  if (auto* channels = o.if_contains("channels"); channels && channels->is_array()) {
    for (const auto& c : channels->get_array()) {
      if (!c.is_string()) return std::nullopt;
      claims.channels.emplace_back(c.get_string());
    }
  }
  return claims;
}

}  // namespace

// The first byte picks: even = verify the rest as a token, odd = mint the rest as claims.
extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  if (size == 0) return 0;
  std::string_view text(reinterpret_cast<const char*>(data + 1), size - 1);
  if (data[0] % 2 == 0) {
    RR_FUZZ_CHECK(!auth::verify(text, kConfig, kNow));
    return 0;
  }
  auto claims = claims_from(text);
  if (!claims) return 0;
  auto verified = auth::verify(auth::mint(*claims, kConfig, kNow), kConfig, kNow);
  RR_FUZZ_CHECK(verified);
  RR_FUZZ_CHECK(verified->subject == claims->subject);
  RR_FUZZ_CHECK(verified->role == claims->role);
  RR_FUZZ_CHECK(verified->channels == claims->channels);
  RR_FUZZ_CHECK(verified->expires == claims->expires);
  return 0;
}
