#include "replayrail/server/hub.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/use_awaitable.hpp>

#include "replayrail/store/memory/memory_store.h"
#include "replayrail/store/testing/run.h"

namespace replayrail::server {
namespace {

namespace asio = boost::asio;
using namespace std::chrono_literals;
using Clock = std::chrono::steady_clock;

asio::awaitable<StreamId> append(store::Store& store, const std::string& stream) {
  auto event = make_event({.channel = stream, .type = "t", .payload = "{}"}).value();
  auto appended = co_await store.append(stream, std::move(event), {});
  co_return appended.value().event->id;
}

asio::awaitable<void> sleep(std::chrono::milliseconds d) {
  asio::steady_timer timer(co_await asio::this_coro::executor, d);
  co_await timer.async_wait(asio::use_awaitable);
}

TEST(Frame, AnEnvelopeWithLineBreaksBecomesOneSseDataLineEach) {
  Event e = make_event({.channel = "c", .type = "t", .payload = "{\n  \"a\": 1,\r\n  \"b\": 2\r}"})
                .value()
                .event;
  Frame f = make_frame(e);
  EXPECT_EQ(f.json, render_envelope(e));
  ASSERT_FALSE(f.sse_data.empty());
  EXPECT_EQ(f.sse_data.find_first_of("\r"), std::string::npos);
  // What EventSource makes of the data lines: joined with "\n", the same JSON but for whitespace.
  std::string joined = f.sse_data;
  for (auto at = joined.find("\ndata: "); at != std::string::npos; at = joined.find("\ndata: ")) {
    joined.replace(at, 7, "\n");
  }
  std::string expected = f.json;
  for (auto at = expected.find("\r\n"); at != std::string::npos; at = expected.find("\r\n")) {
    expected.erase(at, 1);
  }
  std::replace(expected.begin(), expected.end(), '\r', '\n');
  EXPECT_EQ(joined, expected);
  // One line: sent as it is.
  EXPECT_TRUE(make_frame(make_event({.channel = "c", .type = "t"}).value().event).sse_data.empty());
}

// The id of the outbox's next frame, waiting at most `limit`; nullopt when none came.
asio::awaitable<std::optional<StreamId>> next(Outbox& outbox, std::chrono::milliseconds limit) {
  auto item = co_await outbox.pop(limit);
  if (!item || outbox.idle(*item)) co_return std::nullopt;
  co_return item->frame().id;
}

// The steps of the test below. (A function, not a capturing lambda: the coroutine outlives a
// temporary lambda object.)
asio::awaitable<void> gathering_steps(store::Store& store, Hub& hub,
                                      std::shared_ptr<Outbox> outbox) {
  auto sub = std::make_unique<Subscriber>(hub, 0, outbox,
                                          Subscriber::Options{.stream = "g", .position = {}});
  sub->start();
  co_await sleep(100ms);  // replay of the empty stream is done: live

  // The first event after a quiet spell is sent at once.
  auto started = Clock::now();
  StreamId a = co_await append(store, "g");
  EXPECT_EQ(co_await next(*outbox, 2000ms), a);
  EXPECT_LT(Clock::now() - started, 200ms);

  // Two more soon after: they wait for the window a's batch opened, then go together.
  auto delivered_a = Clock::now();
  StreamId b = co_await append(store, "g");
  co_await sleep(20ms);
  StreamId c = co_await append(store, "g");
  EXPECT_EQ(co_await next(*outbox, 2000ms), b);
  EXPECT_GE(Clock::now() - delivered_a, 250ms) << "b was not held for the gathering window";
  EXPECT_FALSE(outbox->empty()) << "c was not sent with b";
  EXPECT_EQ(co_await next(*outbox, 0ms), c);

  // Quiet for longer than the window: the next event goes at once again.
  co_await sleep(500ms);
  started = Clock::now();
  StreamId d = co_await append(store, "g");
  EXPECT_EQ(co_await next(*outbox, 2000ms), d);
  EXPECT_LT(Clock::now() - started, 200ms);

  // The feed ends once nobody watches (after its window and one blocking read).
  sub.reset();
  co_await sleep(600ms);
  EXPECT_EQ(hub.feeds(), 0u);
}

TEST(HubTest, ABusyStreamIsGatheredIntoOneBatchAQuietStreamIsNot) {
  asio::io_context io;
  store::MemoryStore store;
  // One subscriber: a 300 ms gathering window after each batch (long, so timings under the
  // sanitizers are far from it).
  Hub hub(
      store, {io.get_executor()},
      HubOptions{
          .feed_block = store::Millis(50), .gather_per_subscriber = 300ms, .gather_max = 300ms});
  auto outbox = std::make_shared<Outbox>(io.get_executor(), 1 << 20);
  std::vector<asio::awaitable<void>> test;
  test.push_back(gathering_steps(store, hub, outbox));
  testing::run_all(io, std::move(test));
}

}  // namespace
}  // namespace replayrail::server
