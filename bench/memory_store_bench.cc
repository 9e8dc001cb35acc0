// Memory store throughput: append (with idempotency records and trimming, as Rail::publish does)
// and range pages, each driven by one coroutine so the figure is the store's, not co_spawn's.
#include <benchmark/benchmark.h>

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/io_context.hpp>

#include "replayrail/store/memory/memory_store.h"

namespace {

using namespace replayrail;
namespace asio = boost::asio;

NewEvent sample_event() {
  static const std::string payload = [] {
    std::string p = R"({"note":")";
    p.append(200 - p.size() - 2, 'x');
    return p + "\"}";
  }();
  EventInput in{.channel = "bench", .type = "bench.event", .payload = payload};
  return make_event(in).value();
}

// Runs `body` as one coroutine on a fresh io_context.
template <class F>
void run_coroutine(F body) {
  asio::io_context io;
  asio::co_spawn(io, body(), [](std::exception_ptr e) {
    if (e) std::rethrow_exception(e);
  });
  io.run();
}

void BM_MemoryAppend(benchmark::State& state) {
  store::MemoryStore store;
  NewEvent proto = sample_event();
  store::AppendOptions options{10000};
  run_coroutine([&]() -> asio::awaitable<void> {
    for (auto _ : state) {
      NewEvent e = proto;
      e.event.event_id = std::to_string(state.iterations());  // a fresh idempotency key
      auto r = co_await store.append("bench", std::move(e), options);
      benchmark::DoNotOptimize(r);
    }
  });
  state.SetItemsProcessed(state.iterations());
}
BENCHMARK(BM_MemoryAppend);

void BM_MemoryRange(benchmark::State& state) {
  const auto page = static_cast<std::size_t>(state.range(0));
  store::MemoryStore store;
  NewEvent proto = sample_event();
  run_coroutine([&]() -> asio::awaitable<void> {
    for (int i = 0; i < 100000; ++i) {
      NewEvent e = proto;
      e.event.event_id = std::to_string(i);
      (void)(co_await store.append("bench", std::move(e), {0, std::chrono::seconds(0)})).value();
    }
    StreamId after;
    for (auto _ : state) {
      auto r = co_await store.range("bench", after, page, {});
      after = r->empty() ? StreamId{} : r->back()->id;
      benchmark::DoNotOptimize(r);
    }
  });
  state.SetItemsProcessed(state.iterations() * state.range(0));
}
BENCHMARK(BM_MemoryRange)->Arg(1)->Arg(100)->Arg(1000);

}  // namespace
