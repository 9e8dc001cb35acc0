#include "support/redis_server.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <signal.h>
#include <sys/socket.h>
#include <unistd.h>

#include <chrono>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <random>
#include <stdexcept>
#include <thread>

namespace replayrail::testing {

namespace {

// Opens a loopback connection to `port` and sends PING; true on +PONG (or -NOAUTH: it is up).
bool answers_ping(std::uint16_t port) {
  int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_port = htons(port);
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  bool up = false;
  if (::connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) == 0 &&
      ::write(fd, "PING\r\n", 6) == 6) {
    char buf[64];
    ssize_t n = ::read(fd, buf, sizeof buf);
    up = n > 0 && (buf[0] == '+' || buf[0] == '-');
  }
  ::close(fd);
  return up;
}

}  // namespace

namespace {

bool binds(std::uint16_t port) {
  int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  addr.sin_port = htons(port);
  const bool bound = ::bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) == 0;
  ::close(fd);
  return bound;
}

}  // namespace

namespace {

// A field of INFO's output ("name:value" lines), or "".
std::string info_field(std::uint16_t port, const std::string& name) {
  for (const auto& line : run_lines({"/usr/bin/redis-cli", "-h", "127.0.0.1", "-p",
                                     std::to_string(port), "INFO", "replication"})) {
    if (line.starts_with(name + ":")) return line.substr(name.size() + 1);
  }
  return "";
}

}  // namespace

void wait_for_replicas(std::uint16_t primary_port) {
  const long long written = std::stoll(info_field(primary_port, "master_repl_offset"));
  // The replicas, as "slave<n>:ip=…,port=…,state=…,offset=…,lag=…".
  std::vector<std::uint16_t> replicas;
  for (int n = 0;; ++n) {
    auto replica = info_field(primary_port, "slave" + std::to_string(n));
    if (replica.empty()) break;
    auto at = replica.find("port=") + 5;
    replicas.push_back(static_cast<std::uint16_t>(std::stoi(replica.substr(at))));
  }
  for (auto replica : replicas) {
    for (int attempt = 0;; ++attempt) {
      if (std::stoll(info_field(replica, "slave_repl_offset")) >= written) break;
      if (attempt == 1000) throw std::runtime_error("a replica did not catch up");
      std::this_thread::sleep_for(std::chrono::milliseconds(10));
    }
  }
}

std::uint16_t free_port(std::uint16_t also_free_at) {
  // Below the kernel's ephemeral range (ip_local_port_range), which the client sockets of tests
  // running alongside draw from: a port bind(0) picked could be taken by one of their connections
  // before the server binds it. A random one is tried until one binds.
  std::uint16_t low = 32768;
  if (std::ifstream range("/proc/sys/net/ipv4/ip_local_port_range"); range) range >> low;
  if (low <= 10000 + also_free_at) {
    throw std::runtime_error("the ephemeral port range leaves no ports below it");
  }
  std::mt19937 random(std::random_device{}());
  std::uniform_int_distribution<int> pick(10000, low - 1 - also_free_at);
  for (int attempt = 0; attempt < 1000; ++attempt) {
    auto port = static_cast<std::uint16_t>(pick(random));
    if (binds(port) && (also_free_at == 0 || binds(port + also_free_at))) return port;
  }
  throw std::runtime_error("no free loopback port");
}

RedisServer::RedisServer(std::vector<std::string> extra_args, std::uint16_t port)
    : extra_args_(std::move(extra_args)), port_(port ? port : free_port()) {
  start();
}

std::unique_ptr<RedisServer> RedisServer::with_tls() {
  TempDir certs("redis-certs");
  std::string cert = (certs.path() / "cert.pem").string();
  std::string key = (certs.path() / "key.pem").string();
  std::string make =
      "openssl req -x509 -newkey rsa:2048 -nodes -days 1 -subj /CN=127.0.0.1 "
      "-addext subjectAltName=IP:127.0.0.1 -keyout " +
      key + " -out " + cert + " >/dev/null 2>&1";
  if (std::system(make.c_str()) != 0) throw std::runtime_error("openssl could not make a cert");
  std::uint16_t tls_port = free_port();
  auto server = std::make_unique<RedisServer>(std::vector<std::string>{
      "--tls-port", std::to_string(tls_port), "--tls-cert-file", cert, "--tls-key-file", key,
      "--tls-ca-cert-file", cert, "--tls-auth-clients", "no"});
  std::filesystem::copy_file(cert, server->ca_file());
  server->tls_port_ = tls_port;
  return server;
}

RedisServer::RedisServer(const std::string& sentinel_config, std::uint16_t port)
    : port_(port), config_file_((dir_.path() / "sentinel.conf").string()) {
  std::ofstream(config_file_) << sentinel_config;
  start();
}

std::unique_ptr<RedisServer> RedisServer::sentinel(const std::string& config) {
  return std::unique_ptr<RedisServer>(new RedisServer(config, free_port()));
}

std::string RedisServer::tls_url() const {
  return "rediss://127.0.0.1:" + std::to_string(tls_port_) + "/0?ssl_ca_certs=" + ca_file();
}

std::string RedisServer::url(const std::string& credentials, int db) const {
  return "redis://" + credentials + "127.0.0.1:" + std::to_string(port_) + "/" + std::to_string(db);
}

void RedisServer::kill() {
  if (!process_) return;
  process_->kill(SIGKILL);
  process_->wait();
  process_.reset();
}

void RedisServer::freeze() {
  if (process_) process_->kill(SIGSTOP);
}

void RedisServer::thaw() {
  if (process_) process_->kill(SIGCONT);
}

void RedisServer::start() {
  std::vector<std::string> argv{"/usr/bin/redis-server",
                                "--port",
                                std::to_string(port_),
                                "--bind",
                                "127.0.0.1",
                                "--save",
                                "",
                                "--appendonly",
                                "no",
                                "--dir",
                                dir_.path().string(),
                                "--logfile",
                                (dir_.path() / "redis.log").string()};
  argv.insert(argv.end(), extra_args_.begin(), extra_args_.end());
  if (!config_file_.empty()) {
    argv.insert(argv.begin() + 1, config_file_);
    argv.push_back("--sentinel");
  }
  process_ = std::make_unique<ChildProcess>(argv);
  // Polled, bounded: the server is a separate process with no readiness signal of its own.
  for (int i = 0; i < 1000; ++i) {
    if (answers_ping(port_)) return;
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  throw std::runtime_error("redis-server did not start on port " + std::to_string(port_));
}

}  // namespace replayrail::testing
