#pragma once

// Test helpers: run coroutines to completion on an io_context the test owns.

#include <atomic>
#include <boost/asio/awaitable.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/io_context.hpp>
#include <chrono>
#include <exception>
#include <functional>
#include <optional>
#include <thread>
#include <vector>

namespace replayrail::testing {

// Spawns `tasks` on `io` and runs it on `threads` threads until every task finished; rethrows
// the first exception a task threw. Other work on `io` (a store's connections) may stay.
void run_all(boost::asio::io_context& io, std::vector<boost::asio::awaitable<void>> tasks,
             int threads = 1);

// Runs one coroutine to completion on `io` (on this thread) and returns its value.
template <class T>
T run(boost::asio::io_context& io, boost::asio::awaitable<T> task) {
  std::optional<T> out;
  auto wrapper = [](boost::asio::awaitable<T> t,
                    std::optional<T>& o) -> boost::asio::awaitable<void> {
    o.emplace(co_await std::move(t));
  };
  std::vector<boost::asio::awaitable<void>> tasks;
  tasks.push_back(wrapper(std::move(task), out));
  run_all(io, std::move(tasks), 1);
  return std::move(*out);
}

}  // namespace replayrail::testing
