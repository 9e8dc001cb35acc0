// Publishes a few events with the library, replays them after a cursor, and follows the channel
// live while another coroutine publishes: the replay-then-live contract in a few lines.
// Usage: publish_replay [DATA_DIR]   (default ./replayrail-data, the local store; "-" = memory)
// Run it twice: the second run replays the first run's events too, from disk.
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/io_context.hpp>
#include <cstdio>

#include "replayrail/rail.h"
#include "replayrail/store/local/local_store.h"
#include "replayrail/store/memory/memory_store.h"

namespace asio = boost::asio;
using replayrail::Cursor;
using replayrail::EventInput;

asio::awaitable<void> demo(replayrail::Rail& rail) {
  const char* channel = "restaurant:123:orders";
  replayrail::StreamId first;
  auto existing = co_await rail.store().info(channel);
  replayrail::StreamId before = existing ? existing->last_id : replayrail::StreamId{};
  for (int i = 1; i <= 3; ++i) {
    std::string payload = R"({"order_id":"ord_)" + std::to_string(i) + R"("})";
    EventInput in{.channel = channel,
                  .type = "order.created",
                  .payload = payload,
                  .actor = R"({"type":"waiter","id":"usr_123"})"};
    auto published = (co_await rail.publish(in)).value();
    if (i == 1) first = published.event->id;
    std::printf("published %s\n", replayrail::render_envelope(*published.event).c_str());
  }

  auto missed = (co_await rail.replay(channel, Cursor::after(first))).value();
  std::printf("replay after %s: %zu events\n", first.to_string().c_str(), missed.size());

  auto info = (co_await rail.store().info(channel)).value();
  std::printf("the channel holds %llu events (epoch %s)\n",
              static_cast<unsigned long long>(info.length), info.epoch.c_str());

  // Follow from the first event published by this run: replay, then live.
  auto sub = (co_await rail.subscribe(channel, Cursor::after(before))).value();
  EventInput live{.channel = channel, .type = "order.ready", .payload = R"({"order_id":"ord_1"})"};
  (void)(co_await rail.publish(live)).value();
  std::size_t received = 0;
  while (received < 4) {
    for (const auto& e : (co_await sub.next()).value()) {
      std::printf("subscriber got %s %s\n", e->id.to_string().c_str(), e->type.c_str());
      ++received;
    }
  }
}

int main(int argc, char** argv) {
  std::string dir = argc > 1 ? argv[1] : "replayrail-data";
  std::shared_ptr<replayrail::store::Store> store;
  if (dir == "-") {
    store = std::make_shared<replayrail::store::MemoryStore>();
  } else {
    auto local = replayrail::store::LocalStore::open({.dir = dir});
    if (!local) {
      std::fprintf(stderr, "publish_replay: %s\n", local.error().message.c_str());
      return 1;
    }
    store = *local;
    std::printf("local store in %s\n", dir.c_str());
  }
  asio::io_context io;
  replayrail::Rail rail(store);
  asio::co_spawn(io, demo(rail), [](std::exception_ptr e) {
    if (e) std::rethrow_exception(e);
  });
  io.run();
}
