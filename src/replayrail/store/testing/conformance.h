#pragma once

// The store conformance suite: one set of tests that every store must pass unchanged
// (DESIGN §3). A store's test file instantiates it:
//
//   INSTANTIATE_TEST_SUITE_P(Memory, StoreConformance,
//                            ::testing::Values(StoreFactory{"memory", make_memory_store}),
//                            StoreConformance::name_of);

#include <gtest/gtest.h>

#include <boost/asio/any_io_executor.hpp>
#include <boost/asio/io_context.hpp>
#include <functional>
#include <memory>
#include <string>

#include "replayrail/store/store.h"
#include "replayrail/store/testing/run.h"

namespace replayrail::testing {

struct StoreFactory {
  std::string name;
  // A fresh, empty store whose I/O (if any) runs on `executor`.
  std::function<std::shared_ptr<store::Store>(boost::asio::any_io_executor executor)> make;

  friend void PrintTo(const StoreFactory& f, std::ostream* os) { *os << f.name; }
};

class StoreConformance : public ::testing::TestWithParam<StoreFactory> {
 public:
  static std::string name_of(const ::testing::TestParamInfo<StoreFactory>& info) {
    return info.param.name;
  }

 protected:
  void SetUp() override { store_ = GetParam().make(io_.get_executor()); }
  void TearDown() override {
    // Let the store's connections see the stop and end their coroutines; a coroutine left
    // suspended when io_ is destroyed may hold the last reference to its own connection.
    store_.reset();
    io_.restart();
    io_.run_for(std::chrono::seconds(5));
  }

  store::Store& store() { return *store_; }

  template <class T>
  T run(boost::asio::awaitable<T> task) {
    return testing::run(io_, std::move(task));
  }
  void run_concurrently(std::vector<boost::asio::awaitable<void>> tasks, int threads) {
    testing::run_all(io_, std::move(tasks), threads);
  }

  // A valid event for `channel`.
  static NewEvent event(std::string_view channel, std::string_view payload = R"({"n":1})",
                        std::optional<std::string_view> event_id = {});

  // Appends and expects success.
  EventPtr append(std::string_view stream, std::string_view payload = R"({"n":1})",
                  std::uint64_t maxlen = 0);
  // Appends `n` events with payloads {"n":0}..{"n":n-1}.
  std::vector<EventPtr> append_n(std::string_view stream, int n, std::uint64_t maxlen = 0);

  boost::asio::io_context io_;
  std::shared_ptr<store::Store> store_;
};

}  // namespace replayrail::testing
