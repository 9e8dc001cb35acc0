#include "replayrail/store/memory/memory_store.h"

#include <gtest/gtest.h>

#include <atomic>

#include "replayrail/store/testing/conformance.h"

namespace replayrail::testing {

INSTANTIATE_TEST_SUITE_P(Memory, StoreConformance,
                         ::testing::Values(StoreFactory{
                             "memory",
                             [](boost::asio::any_io_executor) {
                               return std::make_shared<store::MemoryStore>();
                             }}),
                         StoreConformance::name_of);

}  // namespace replayrail::testing

namespace replayrail::store {
namespace {

TEST(MemoryStore, IdsStayIncreasingWhenTheClockStepsBack) {
  std::atomic<std::uint64_t> now = 2'000'000'000'000;
  MemoryStore store(MemoryStore::Options{[&] { return now.load(); }});
  boost::asio::io_context io;
  auto append = [&] {
    EventInput in{.channel = "s", .type = "t"};
    return testing::run(io, store.append("s", make_event(in).value(), {})).value().event->id;
  };
  StreamId a = append();
  EXPECT_EQ(a, (StreamId{2'000'000'000'000, 0}));
  StreamId b = append();
  EXPECT_EQ(b, (StreamId{2'000'000'000'000, 1}));
  now = 1'000'000'000'000;  // the clock steps back
  StreamId c = append();
  EXPECT_EQ(c, (StreamId{2'000'000'000'000, 2}));
  now = 3'000'000'000'000;
  EXPECT_EQ(append(), (StreamId{3'000'000'000'000, 0}));
}

}  // namespace
}  // namespace replayrail::store
