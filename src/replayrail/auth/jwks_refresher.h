#pragma once

// The keys of an identity provider's JWK set URL (its `jwks_uri`), kept up to date: what a
// server that checks Keycloak's, Auth0's or Cognito's tokens needs, since they rotate their
// signing keys. Every Beast include of it is in jwks_refresher.cc.

#include <chrono>
#include <condition_variable>
#include <functional>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "replayrail/auth/jwt.h"
#include "replayrail/common/errc.h"

namespace boost::asio {
class io_context;
}

namespace replayrail::auth {

// One GET of an http:// or https:// URL (the server's certificate checked against the system's
// authorities, as the CLI clients do) and the keys of the JWK set it answers with
// (PublicKey::from_jwks). Errors say what failed: the URL, the connection, the status, the set.
result<PublicKeys> fetch_jwks(const std::string& url, std::chrono::milliseconds timeout);

// The jwks_uri of the OpenID provider `issuer` (OpenID Connect Discovery 1.0): its
// `<issuer>/.well-known/openid-configuration`, whose `issuer` must be `issuer` exactly.
result<std::string> discover_jwks_uri(const std::string& issuer, std::chrono::milliseconds timeout);

// Fetches a JWK set on a thread of its own: at once, then every `refresh`, and sooner when asked
// (refresh_soon: a token named a key id the set did not have, so the provider may have rotated),
// but never more often than every `min_gap`. A fetch that fails keeps the keys as they were (it
// is logged) and is tried again after 1 s, 2 s, 4 s … up to `refresh`. Like Kafka's
// sasl.oauthbearer.jwks.endpoint.* settings and Centrifugo's token_jwks_public_endpoint. Given
// an OpenID provider's issuer instead of the set's URL, it first discovers the URL (as Spring's
// issuer-uri does), tried again as a failed fetch is.
class JwksRefresher {
 public:
  struct Options {
    std::string url;  // the JWK set's; when empty, discovered from `issuer` (then cached)
    std::string issuer;
    std::chrono::milliseconds refresh = std::chrono::minutes(5);
    std::chrono::milliseconds min_gap = std::chrono::seconds(5);
    std::chrono::milliseconds timeout = std::chrono::seconds(10);
  };
  // Called on the refresher's thread with each set fetched.
  using OnKeys = std::function<void(PublicKeys)>;
  // Called on the refresher's thread after each fetch that failed (it is logged already).
  using OnFailure = std::function<void()>;

  // Returns once the first fetch succeeded or failed, so a server starts with the keys.
  JwksRefresher(Options options, OnKeys on_keys, OnFailure on_failure = {});
  // Stops: a fetch under way is cut off, not waited for.
  ~JwksRefresher();
  JwksRefresher(const JwksRefresher&) = delete;
  JwksRefresher& operator=(const JwksRefresher&) = delete;

  // Asks for a fetch as soon as `min_gap` allows. Cheap, from any thread.
  void refresh_soon();

 private:
  void run();

  const Options options_;
  std::string url_;  // the refresher thread's: options_.url, or the one discovered
  const OnKeys on_keys_;
  const OnFailure on_failure_;
  std::mutex mu_;
  std::condition_variable cv_;
  bool stopping_ = false;     // guarded by mu_
  bool soon_ = false;         // guarded by mu_: refresh_soon() was called since the last fetch
  std::size_t attempts_ = 0;  // guarded by mu_: fetches done
  std::shared_ptr<boost::asio::io_context> fetching_;  // guarded by mu_: the fetch under way
  std::thread thread_;
};

}  // namespace replayrail::auth
