#pragma once

// A load generator for a running server: what `replayrail bench` runs and bench/server_bench
// measures with. Publishers send single-event HTTP publishes over keep-alive connections (as
// fast as each answer comes, or paced on one schedule); WebSocket subscribers of the channel
// count every event, measure its end-to-end latency (the payload carries the send time) and
// notice any event lost or delivered twice. All of Beast's client side is in load.cc.

#include <chrono>
#include <cstdint>
#include <functional>
#include <string>
#include <vector>

namespace replayrail::loadgen {

struct LoadOptions {
  std::string host = "127.0.0.1";
  std::string port = "8000";
  // HTTPS and WSS, the server's certificate checked against the default store (SSL_CERT_FILE,
  // SSL_CERT_DIR), as the CLI clients do.
  bool tls = false;
  std::string token;  // sent as a bearer token (and ?token= on WebSockets); empty: none
  std::string channel = "bench";
  int publishers = 4;  // keep-alive connections publishing
  // Publish over a replayrail.v1 WebSocket per publisher (`publish` ops, up to 16 unanswered),
  // not HTTP requests.
  bool v1_publish = false;
  int channels = 1;     // publisher p publishes to channel-p%channels (1: `channel` itself)
  int events = 10000;   // published in all
  int rate = 0;         // events per second, on one schedule; 0: as fast as the answers come
  int subscribers = 0;  // WebSocket subscribers of `channel` (channels must be 1)
  std::size_t payload_bytes = 200;
  int threads = 2;                    // event-loop threads of the load generator
  std::chrono::seconds timeout{300};  // the whole run
  std::function<void()> on_start;     // once subscribers are connected, before publishing
};

// Latency percentiles in milliseconds.
struct Latencies {
  double p50 = 0, p99 = 0, max = 0;
};

struct LoadReport {
  double seconds = 0;           // from the first publish to the last delivery (or answer)
  std::uint64_t published = 0;  // answered 201
  Latencies publish;            // request sent to answer read
  std::uint64_t delivered = 0;  // events received by all subscribers, each counted once
  std::uint64_t lost = 0;       // expected by a subscriber and never received
  std::uint64_t duplicates = 0;
  Latencies end_to_end;             // send time (scheduled, when paced) to receipt
  std::vector<std::string> errors;  // publish refusals, refused handshakes, broken connections
  bool unreachable = false;         // no connection to the server could be made
};

// Runs the load to completion (or the timeout) and reports. Errors are in the report; the run
// goes on with the publishers and subscribers that work.
LoadReport run_load(const LoadOptions& options);

}  // namespace replayrail::loadgen
