// Micro-benchmarks of the pure-data hot path: validating a published event, rendering its
// envelope, and parsing/formatting stream ids.
#include <benchmark/benchmark.h>

#include <string>

#include "replayrail/common/stream_id.h"
#include "replayrail/core/cursor.h"
#include "replayrail/core/event.h"

namespace {

using namespace replayrail;

// A 200-byte payload, the size the issues' benchmarks use.
const std::string kPayload = [] {
  std::string p = R"({"order_id":"ord_123","table":7,"note":")";
  p.append(200 - p.size() - 2, 'x');
  return p + "\"}";
}();

EventInput typical_input() {
  EventInput in;
  in.channel = "restaurant:123:orders";
  in.type = "order.created";
  in.payload = kPayload;
  in.actor = R"({"type":"waiter","id":"usr_123"})";
  in.metadata = R"({"correlation_id":"req_abc123"})";
  return in;
}

void BM_ValidateEvent(benchmark::State& state) {
  auto in = typical_input();
  for (auto _ : state) benchmark::DoNotOptimize(make_event(in));
  state.SetBytesProcessed(state.iterations() * static_cast<std::int64_t>(kPayload.size()));
}
BENCHMARK(BM_ValidateEvent);

void BM_RenderEnvelope(benchmark::State& state) {
  Event e = make_event(typical_input()).value().event;
  e.id = {1719367320123, 7};
  for (auto _ : state) benchmark::DoNotOptimize(render_envelope(e));
}
BENCHMARK(BM_RenderEnvelope);

void BM_ValidateAndRender(benchmark::State& state) {
  auto in = typical_input();
  for (auto _ : state) {
    auto e = make_event(in).value();
    e.event.id = {1719367320123, 7};
    benchmark::DoNotOptimize(render_envelope(e.event));
  }
}
BENCHMARK(BM_ValidateAndRender);

void BM_ParsePublishBody(benchmark::State& state) {
  std::string body = R"({"type":"order.created","payload":)" + kPayload +
                     R"(,"actor":{"type":"waiter","id":"usr_123"}})";
  for (auto _ : state) benchmark::DoNotOptimize(parse_publish_body(body));
}
BENCHMARK(BM_ParsePublishBody);

void BM_StreamIdParse(benchmark::State& state) {
  for (auto _ : state) benchmark::DoNotOptimize(StreamId::parse("1719367320123-42"));
}
BENCHMARK(BM_StreamIdParse);

void BM_StreamIdFormat(benchmark::State& state) {
  StreamId id{1719367320123, 42};
  char buf[StreamId::kMaxTextSize];
  for (auto _ : state) benchmark::DoNotOptimize(id.format_to(buf));
}
BENCHMARK(BM_StreamIdFormat);

void BM_CursorParse(benchmark::State& state) {
  for (auto _ : state) benchmark::DoNotOptimize(Cursor::parse("1719367320123-42"));
}
BENCHMARK(BM_CursorParse);

}  // namespace
