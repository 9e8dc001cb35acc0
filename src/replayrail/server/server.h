#pragma once

// The ReplayRail server (DESIGN §4): HTTP, WebSocket and SSE over Boost.Beast, on N event-loop
// threads, in front of a Rail over any store.

#include <boost/asio/any_io_executor.hpp>
#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "replayrail/auth/jwt.h"
#include "replayrail/rail.h"

namespace replayrail::server {

using Millis = std::chrono::milliseconds;

struct ServerOptions {
  std::string host = "127.0.0.1";
  std::uint16_t port = 8000;  // 0: any free port (the bound one is printed and returned)
  unsigned threads = 0;       // event-loop threads; 0 = one per core
  bool insecure = false;      // allow a non-loopback address without auth
  // PEM files: with them every connection is TLS (HTTPS, WSS); both or neither.
  std::string tls_cert;  // the certificate, then its chain
  std::string tls_key;
  // PEM of the authorities whose client certificates the server requires (mutual TLS); empty:
  // none asked for. Needs tls_cert; SIGHUP loads it again with the certificate.
  std::string tls_client_ca;
  std::size_t max_body_bytes = 1 << 20;
  std::size_t max_frame_bytes = 64 << 10;  // incoming WebSocket message
  std::size_t max_connections = 20000;
  // Bytes queued for one streaming client; past it a subscriber counts as slow (DESIGN §4).
  std::size_t max_outbound_bytes = 1 << 20;
  std::size_t max_subscriptions = 100;  // per replayrail.v1 connection
  Millis header_timeout{10'000};        // to receive a request's headers
  Millis idle_timeout{60'000};          // keep-alive connection with no request
  Millis heartbeat{15'000};             // SSE comment / WebSocket ping when nothing else is sent
  Millis shutdown_grace{5'000};         // SIGTERM: how long sessions and requests get to end
  // The longest a busy stream's new events wait so that each subscriber gets them in one write
  // (HubOptions: 10 µs per subscriber, up to this; 0: never wait).
  Millis fanout_gather{10};
  RailConfig rail;
  // Auth (off until jwt has a secret, a public key or a JWK set URL): JWTs, and POST
  // /v1/auth/token minting dev tokens when admin_secret is set.
  auth::JwtConfig jwt;
  // The files jwt.public_keys were loaded from: SIGHUP loads them again (a key rotation).
  std::vector<std::string> jwt_public_key_files;
  // With jwt.jwks_url: how often its keys are fetched again (a token with an unknown `kid`
  // has them fetched sooner, at most every 5 s or this, whichever is shorter).
  Millis jwks_refresh{300'000};
  std::string admin_secret;
  std::uint32_t default_partitions = 1;  // of a topic created without `partitions`
  std::size_t max_batch = 5000;          // events per POST /v1/topics/{topic}/events
  BackpressureConfig backpressure;       // 429 with Retry-After on publish
  // CORS_ALLOW_ORIGINS: origins whose browsers may call the API ("*": any); empty: none.
  std::vector<std::string> cors_origins;
  // The PostgreSQL archive (DESIGN §6): passes over every stream, one per archive_interval, on
  // a thread of their own, and replays of what the store trimmed read from it; empty URL: none.
  std::string database_url;
  Millis archive_interval{1000};
  // The channel changes made through the API are recorded in (AuditTrail); empty: none.
  std::string audit_channel = "replayrail.audit";
};

// Makes the store once the server's executors exist (the Redis store runs on them).
using StoreFactory =
    std::function<result<std::shared_ptr<store::Store>>(boost::asio::any_io_executor)>;

// Lifecycle: create() binds the port (errors: address in use, non-loopback without --insecure);
// run() serves until stop() or SIGTERM/SIGINT, then closes WebSockets with 1001 and returns.
class Server {
 public:
  static result<std::unique_ptr<Server>> create(ServerOptions options, StoreFactory make_store);
  ~Server();

  std::uint16_t port() const;
  // Event-loop threads run() runs.
  std::size_t threads() const;
  // The store the server runs on (closed when the server stops).
  std::shared_ptr<store::Store> store() const;
  // Blocks, running the event loops on this thread and threads-1 others.
  void run();
  // Thread-safe; run() returns after the grace period at most.
  void stop();

 private:
  struct Impl;
  explicit Server(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

// Whether `host` is a loopback address (127.0.0.0/8, ::1, localhost).
bool is_loopback(const std::string& host);

}  // namespace replayrail::server
