#include "support/postgres_server.h"

#include <libpq-fe.h>
#include <pwd.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <filesystem>
#include <fstream>
#include <map>
#include <sstream>
#include <stdexcept>
#include <thread>
#include <vector>

#include "support/redis_server.h"  // free_port

namespace replayrail::testing {

namespace {

namespace fs = std::filesystem;

// The newest installed PostgreSQL's bin directory (Debian: /usr/lib/postgresql/<major>/bin).
fs::path postgres_bin() {
  fs::path best;
  for (const auto& entry : fs::directory_iterator("/usr/lib/postgresql")) {
    if (fs::exists(entry.path() / "bin" / "initdb") &&
        (best.empty() || std::stoi(entry.path().filename()) > std::stoi(best.filename()))) {
      best = entry.path();
    }
  }
  if (best.empty())
    throw std::runtime_error("no PostgreSQL in /usr/lib/postgresql (scripts/setup)");
  return best / "bin";
}

// argv, run as the `postgres` system user when this process is root.
std::vector<std::string> as_server_user(std::vector<std::string> argv) {
  if (::geteuid() != 0) return argv;
  argv.insert(argv.begin(),
              {"/usr/bin/setpriv", "--reuid=postgres", "--regid=postgres", "--clear-groups", "--"});
  return argv;
}

void give_to_server_user(const fs::path& dir) {
  if (::geteuid() != 0) return;
  const passwd* pw = ::getpwnam("postgres");
  if (!pw) throw std::runtime_error("running as root, and there is no postgres user");
  if (::chown(dir.c_str(), pw->pw_uid, pw->pw_gid) != 0) {
    throw std::runtime_error("cannot chown " + dir.string());
  }
}

}  // namespace

PostgresServer::PostgresServer() : port_(free_port()) {
  const auto bin = postgres_bin();
  const auto data = dir_.path() / "data";
  give_to_server_user(dir_.path());
  ChildProcess initdb(
      as_server_user({(bin / "initdb").string(), "-D", data.string(), "-U", "rr", "-A", "trust",
                      "-E", "UTF8", "--no-sync", "--no-instructions"}));
  while (initdb.read_line(std::chrono::seconds(60))) {
  }
  const int status = initdb.wait();
  if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) throw std::runtime_error("initdb failed");
  process_ = std::make_unique<ChildProcess>(
      as_server_user({(bin / "postgres").string(), "-D", data.string(), "-p", std::to_string(port_),
                      "-k", dir_.path().string(), "-c", "listen_addresses=127.0.0.1", "-c",
                      "fsync=off", "-c", "synchronous_commit=off", "-c", "full_page_writes=off",
                      "-c", "log_min_messages=fatal", "-c", "log_checkpoints=off"}));
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(30);
  const std::string conninfo = url() + "?connect_timeout=2";
  while (PQping(conninfo.c_str()) != PQPING_OK) {
    if (std::chrono::steady_clock::now() > deadline) {
      throw std::runtime_error("PostgreSQL did not start on port " + std::to_string(port_));
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
}

namespace {

// `root` and every process descended from it (PostgreSQL's backends and helpers), from /proc.
std::vector<pid_t> process_tree(pid_t root) {
  std::multimap<pid_t, pid_t> children;  // parent -> child
  for (const auto& entry : std::filesystem::directory_iterator("/proc")) {
    const std::string name = entry.path().filename().string();
    if (name.find_first_not_of("0123456789") != std::string::npos) continue;
    std::ifstream stat(entry.path() / "stat");
    std::string line;
    std::getline(stat, line);
    // "pid (comm) state ppid …": comm may hold spaces, so read after its closing parenthesis.
    auto close = line.rfind(')');
    if (close == std::string::npos) continue;
    char state = 0;
    pid_t parent = 0;
    std::istringstream(line.substr(close + 1)) >> state >> parent;
    children.emplace(parent, static_cast<pid_t>(std::stoi(name)));
  }
  std::vector<pid_t> tree{root};
  for (std::size_t i = 0; i < tree.size(); ++i) {
    auto [from, to] = children.equal_range(tree[i]);
    for (auto it = from; it != to; ++it) tree.push_back(it->second);
  }
  return tree;
}

}  // namespace

void PostgresServer::freeze() {
  for (pid_t pid : process_tree(process_->pid())) ::kill(pid, SIGSTOP);
  frozen_ = true;
}

void PostgresServer::thaw() {
  for (pid_t pid : process_tree(process_->pid())) ::kill(pid, SIGCONT);
  frozen_ = false;
}

PostgresServer::~PostgresServer() {
  if (!process_) return;
  if (frozen_) thaw();
  process_->kill(SIGINT);  // fast shutdown: ends sessions, no wait for clients
  process_->wait();
}

std::string PostgresServer::url() const {
  return "postgresql://rr@127.0.0.1:" + std::to_string(port_) + "/postgres";
}

}  // namespace replayrail::testing
