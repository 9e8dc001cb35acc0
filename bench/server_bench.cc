// Server load (issue 5), against the real `replayrail serve` started here on a free port, with
// the load generator of `replayrail bench` (loadgen::run_load), per store: single-event HTTP
// publishes over 32 keep-alive connections, and fanout of E events to S WebSocket subscribers of
// one channel with end-to-end latency (the payload carries the send time) and a count of lost and
// duplicated deliveries, which must be 0. Fanout runs twice: publishers as fast as they can (the
// most the server delivers), then publishing on a schedule at the target rate (the latency at that
// load, measured from when each event was due).
#include <sys/resource.h>
#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <memory>
#include <sstream>
#include <string>
#include <vector>

#include "picked.h"
#include "replayrail/loadgen/load.h"
#include "replayrail/store/testing/temp_dir.h"
#include "support/child_process.h"
#include "support/redis_cluster.h"
#include "support/redis_server.h"

namespace {

using namespace replayrail;

struct Server {
  testing::TempDir dir{"server-bench"};
  std::uint16_t port = testing::free_port();
  std::unique_ptr<testing::ChildProcess> process;

  // `store`: local, memory, redis, redis-cluster (the redis store with --redis-cluster), or
  // memory-tls (the memory store, HTTPS and WSS with a self-signed certificate, which the load
  // generator is told to trust through SSL_CERT_FILE).
  Server(const std::string& store, const std::string& redis_url) {
    const bool cluster = store == "redis-cluster", tls = store == "memory-tls";
    std::vector<std::string> argv{RR_SERVER_BINARY, "serve",
                                  "--store",        cluster ? "redis" : tls ? "memory" : store,
                                  "--data-dir",     (dir.path() / "d").string(),
                                  "--listen",       "127.0.0.1:" + std::to_string(port)};
    if (tls) {
      const std::string cert = (dir.path() / "cert.pem").string();
      const std::string key = (dir.path() / "key.pem").string();
      const std::string make =
          "openssl req -x509 -newkey rsa:2048 -nodes -days 1 -subj /CN=127.0.0.1 -addext "
          "subjectAltName=IP:127.0.0.1 -keyout " +
          key + " -out " + cert + " >/dev/null 2>&1";
      if (std::system(make.c_str()) != 0) {
        std::fprintf(stderr, "openssl could not make a certificate\n");
        std::exit(1);
      }
      ::setenv("SSL_CERT_FILE", cert.c_str(), 1);
      argv.insert(argv.end(), {"--tls-cert", cert, "--tls-key", key});
    }
    if (!redis_url.empty()) {
      argv.push_back("--redis");
      argv.push_back(redis_url);
    }
    if (cluster) argv.push_back("--redis-cluster");
    process = std::make_unique<testing::ChildProcess>(argv);
    auto line = process->read_line(std::chrono::seconds(20));
    if (!line || line->find("serving") == std::string::npos) {
      std::fprintf(stderr, "server did not start\n");
      std::exit(1);
    }
  }
};

// A run whose requests failed measures nothing: say why and stop.
void check(const loadgen::LoadReport& r) {
  if (r.errors.empty()) return;
  for (const auto& e : r.errors) std::fprintf(stderr, "%s\n", e.c_str());
  std::exit(1);
}

// CPU seconds (user + system) a process used so far: this one (pid 0) or a child.
double cpu_seconds(pid_t pid = 0) {
  if (pid == 0) {
    rusage usage{};
    getrusage(RUSAGE_SELF, &usage);
    auto secs = [](timeval t) { return t.tv_sec + t.tv_usec / 1e6; };
    return secs(usage.ru_utime) + secs(usage.ru_stime);
  }
  // /proc/<pid>/stat: fields 14 and 15 are utime and stime in clock ticks.
  std::ifstream stat("/proc/" + std::to_string(pid) + "/stat");
  std::string text((std::istreambuf_iterator<char>(stat)), std::istreambuf_iterator<char>());
  std::istringstream fields(text.substr(text.rfind(')') + 2));
  std::string skip;
  for (int i = 3; i < 14; ++i) fields >> skip;
  double utime = 0, stime = 0;
  fields >> utime >> stime;
  return (utime + stime) / static_cast<double>(sysconf(_SC_CLK_TCK));
}

// Single-event publishes from 32 connections: HTTP requests (keep-alive), then replayrail.v1
// publish ops (up to 16 unanswered on each), on the same server.
void publish_rate(const std::string& store, const std::string& redis_url) {
  Server server(store, redis_url);
  for (bool v1 : {false, true}) {
    auto r = loadgen::run_load({.port = std::to_string(server.port),
                                .tls = store == "memory-tls",
                                .channel = v1 ? "pub-v1" : "pub",
                                .publishers = 32,
                                .v1_publish = v1,
                                .channels = 8,
                                .events = 32 * 1500});
    check(r);
    std::printf("%-7s %s, 32 connections: %9.0f events/s, p50 %.2f ms, p99 %.2f ms\n",
                store.c_str(), v1 ? "v1 publish ops " : "HTTP publishes ",
                static_cast<double>(r.published) / r.seconds, r.publish.p50, r.publish.p99);
  }
}

// kEvents events published by kPublishers to kSubscribers WebSocket subscribers of one channel.
// `events_per_second` 0: the publishers go as fast as they can, which measures the most the
// server delivers; its latencies are mostly the backlog the publishers build. Otherwise they
// publish on that schedule (open loop) and the latencies are the server's at that load.
void fanout(const std::string& store, const std::string& redis_url, int events_per_second,
            int kEvents) {
  constexpr int kSubscribers = 1000;
  Server server(store, redis_url);
  double server_cpu = 0, own_cpu = 0;
  // Two threads, as the server has: one thread reading a thousand sockets would be the
  // bottleneck (and its backlog the latency) before the server is.
  auto r = loadgen::run_load(
      {.port = std::to_string(server.port),
       .tls = store == "memory-tls",
       // A channel of its own: the redis runs share one redis-server.
       .channel = "fan-" + std::to_string(events_per_second),
       // Paced, more connections: a publish answered late must not hold the next one back.
       .publishers = events_per_second > 0 ? 20 : 4,
       .events = kEvents,
       .rate = events_per_second,
       .subscribers = kSubscribers,
       .threads = 2,
       .on_start = [&] {
         server_cpu = cpu_seconds(server.process->pid());
         own_cpu = cpu_seconds();
       }});
  check(r);
  const double secs = r.seconds;
  const double server_used = cpu_seconds(server.process->pid()) - server_cpu;
  const double own_used = cpu_seconds() - own_cpu;
  std::string how = events_per_second > 0
                        ? "publishing " + std::to_string(events_per_second) + " events/s"
                        : "publishing as fast as they can";
  std::printf(
      "%-7s fanout %d subscribers x %d events, %s: %9.0f deliveries/s, p50 %.1f ms, "
      "p99 %.1f ms, lost %llu, duplicates %llu; CPU: server %.0f%%, load generator %.0f%% "
      "(of one core)\n",
      store.c_str(), kSubscribers, kEvents, how.c_str(), static_cast<double>(r.delivered) / secs,
      r.end_to_end.p50, r.end_to_end.p99, static_cast<unsigned long long>(r.lost),
      static_cast<unsigned long long>(r.duplicates), 100 * server_used / secs,
      100 * own_used / secs);
}

void run_store(const std::string& store, const std::string& redis_url) {
  publish_rate(store, redis_url);
  fanout(store, redis_url, 0, 1000);
  // The target: 500,000 deliveries/s (500 events/s to 1,000 subscribers), p99 < 50 ms.
  // Paced 10% above it for 5 s: the rate measured includes the last events' latency.
  fanout(store, redis_url, 550, 2750);
}

}  // namespace

// With arguments, only the stores named (local, memory, memory-tls, redis, redis-cluster): e.g.
// to profile one of them.
int main(int argc, char** argv) {
  const Picked wanted(argc, argv);
  std::printf("server benchmark (load generator in this process, server in another)\n\n");
  if (wanted("local")) run_store("local", "");
  if (wanted("memory")) run_store("memory", "");
  if (wanted("memory-tls")) run_store("memory-tls", "");
  if (wanted("redis")) {
    testing::RedisServer redis;
    run_store("redis", redis.url());
  }
  if (wanted("redis-cluster")) {
    testing::RedisCluster cluster(3);  // three primaries, on the same cores
    run_store("redis-cluster", cluster.url());
  }
}
