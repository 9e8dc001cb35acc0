// Publishes a few events with the library, replays them after a cursor, and follows the channel
// live while another coroutine publishes: the replay-then-live contract in thirty lines.
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/io_context.hpp>
#include <cstdio>

#include "replayrail/rail.h"
#include "replayrail/store/memory/memory_store.h"

namespace asio = boost::asio;
using replayrail::Cursor;
using replayrail::EventInput;

asio::awaitable<void> demo(replayrail::Rail& rail) {
  const char* channel = "restaurant:123:orders";
  replayrail::StreamId first;
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

  auto sub = (co_await rail.subscribe(channel, Cursor::beginning())).value();
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

int main() {
  asio::io_context io;
  replayrail::Rail rail(std::make_shared<replayrail::store::MemoryStore>());
  asio::co_spawn(io, demo(rail), [](std::exception_ptr e) {
    if (e) std::rethrow_exception(e);
  });
  io.run();
}
