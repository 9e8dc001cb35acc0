// Test helper for the local store's crash tests: appends continuously (with the fsync policy
// given, always by default) from several coroutines, consumes through a group, and reports each
// acknowledged step on stdout with one write(2) per line, so a SIGKILL never leaves a half-reported
// step:
//   A <id> <payload>   append acknowledged
//   D <id>             delivered to consumer "c" of group "g"
//   K <id>             acknowledged to the group (XACK returned)
// Usage: local_crash_child <data-dir> [always|batch|never]
#include <unistd.h>

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/io_context.hpp>
#include <cstdio>
#include <random>
#include <string>

#include "replayrail/store/local/local_store.h"

namespace asio = boost::asio;
using namespace replayrail;

namespace {

void report(const std::string& line) {
  std::string out = line + "\n";
  if (::write(STDOUT_FILENO, out.data(), out.size()) != static_cast<ssize_t>(out.size())) {
    std::_Exit(3);
  }
}

asio::awaitable<void> publisher(store::Store& s, int who) {
  std::mt19937_64 rng(static_cast<std::uint64_t>(who) * 7919 +
                      static_cast<std::uint64_t>(getpid()));
  for (;;) {
    std::string payload =
        R"({"who":)" + std::to_string(who) + R"(,"r":)" + std::to_string(rng()) + "}";
    EventInput in{.channel = "crash", .type = "crash.test", .payload = payload};
    auto r = co_await s.append("crash", make_event(in).value(), {});
    if (!r) {
      report("E " + r.error().message);
      std::_Exit(2);
    }
    report("A " + r->event->id.to_string() + " " + payload);
  }
}

asio::awaitable<void> consumer(store::Store& s) {
  std::vector<store::GroupCursor> fresh{{"crash", std::nullopt}};
  for (;;) {
    auto r = co_await s.read_group("g", "c", fresh, {8, std::chrono::milliseconds(1000)});
    if (!r) {
      report("E " + r.error().message);
      std::_Exit(2);
    }
    if (r->empty()) continue;
    std::vector<StreamId> to_ack;
    for (const auto& m : r->front().messages) {
      report("D " + m.id.to_string());
      if (m.id.seq % 2 == 0) to_ack.push_back(m.id);
    }
    if (!(co_await s.ack("crash", "g", to_ack))) std::_Exit(2);
    for (auto id : to_ack) report("K " + id.to_string());
  }
}

}  // namespace

int main(int argc, char** argv) {
  auto fsync = argc == 3 ? store::local::parse_fsync(argv[2]) : store::local::Fsync::always;
  if (argc < 2 || argc > 3 || !fsync) {
    std::fprintf(stderr, "usage: %s <data-dir> [always|batch|never]\n", argv[0]);
    return 64;
  }
  auto opened = store::LocalStore::open({.dir = argv[1], .fsync = *fsync});
  if (!opened) {
    report("E " + opened.error().message);
    return 1;
  }
  auto s = *opened;
  asio::io_context io;
  auto fail = [](std::exception_ptr e) {
    if (e) std::_Exit(4);
  };
  asio::co_spawn(
      io,
      [](store::Store& s) -> asio::awaitable<void> {
        auto created = co_await s.group_create("crash", "g", Cursor::beginning(), true);
        if (!created && created.error().code != errc::group_exists) std::_Exit(2);
        report("R");  // ready
      }(*s),
      fail);
  io.run();
  io.restart();
  for (int i = 0; i < 6; ++i) asio::co_spawn(io, publisher(*s, i), fail);
  asio::co_spawn(io, consumer(*s), fail);
  io.run();
}
