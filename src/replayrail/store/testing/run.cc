#include "replayrail/store/testing/run.h"

#include <boost/asio/executor_work_guard.hpp>
#include <mutex>

namespace replayrail::testing {

void run_all(boost::asio::io_context& io, std::vector<boost::asio::awaitable<void>> tasks,
             int threads) {
  std::atomic<std::size_t> remaining = tasks.size();
  std::mutex mu;
  std::exception_ptr first_error;
  for (auto& t : tasks) {
    boost::asio::co_spawn(io, std::move(t), [&](std::exception_ptr e) {
      if (e) {
        std::lock_guard lock(mu);
        if (!first_error) first_error = e;
      }
      --remaining;
    });
  }
  io.restart();
  // Keeps run_one_for() waiting rather than returning when no handler is ready for a moment.
  auto guard = boost::asio::make_work_guard(io);
  auto loop = [&] {
    while (remaining > 0) io.run_one_for(std::chrono::milliseconds(20));
  };
  std::vector<std::thread> pool;
  for (int i = 1; i < threads; ++i) pool.emplace_back(loop);
  loop();
  for (auto& t : pool) t.join();
  if (first_error) std::rethrow_exception(first_error);
}

}  // namespace replayrail::testing
