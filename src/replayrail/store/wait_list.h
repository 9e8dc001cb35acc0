#pragma once

#include <boost/asio/any_io_executor.hpp>
#include <boost/asio/awaitable.hpp>
#include <boost/asio/experimental/concurrent_channel.hpp>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "replayrail/common/string_map.h"
#include "replayrail/store/store.h"

namespace replayrail::store {

// Blocked readers of in-process stores (memory, local), keyed by stream. A reader registers
// *before* it releases the lock under which it saw no data, then waits; a writer notifies after
// its data is visible. The wake-up is buffered in a channel, so a notify that lands between the
// registration and the wait is not lost.
//
// Thread-safe: writers notify from any thread; each waiter wakes on its own executor.
class WaitList {
 public:
  class Waiter {
   public:
    explicit Waiter(boost::asio::any_io_executor ex) : channel_(ex, 1) {}

    // Returns when notified or when `timeout` (nullopt = no limit) passed; true if notified.
    boost::asio::awaitable<bool> wait(std::optional<Millis> timeout);

   private:
    friend class WaitList;
    void wake() { channel_.try_send(boost::system::error_code{}); }

    boost::asio::experimental::concurrent_channel<void(boost::system::error_code)> channel_;
  };

  // Registers a waiter on every stream of `streams`; removed again by the returned guard.
  class Registration {
   public:
    Registration(WaitList& list, std::shared_ptr<Waiter> waiter, std::vector<std::string> streams);
    ~Registration();
    Registration(const Registration&) = delete;
    Registration& operator=(const Registration&) = delete;

    Waiter& waiter() { return *waiter_; }

   private:
    WaitList& list_;
    std::shared_ptr<Waiter> waiter_;
    std::vector<std::string> streams_;
  };

  // A new waiter on `streams`, woken on `ex`; unregistered when the result is destroyed.
  std::unique_ptr<Registration> watch(boost::asio::any_io_executor ex,
                                      std::vector<std::string> streams) {
    return std::make_unique<Registration>(*this, std::make_shared<Waiter>(std::move(ex)),
                                          std::move(streams));
  }

  // Wakes every waiter registered on `stream`.
  void notify(std::string_view stream);

  // Wakes every waiter, now and from now on at once (Store::close): each finds its store closed.
  void close();

 private:
  std::mutex mu_;
  bool closed_ = false;
  StringMap<std::vector<std::shared_ptr<Waiter>>> waiters_;
};

}  // namespace replayrail::store
