#pragma once

#include <boost/asio/any_io_executor.hpp>
#include <boost/asio/awaitable.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/strand.hpp>
#include <chrono>
#include <memory>
#include <vector>

#include "replayrail/resp/url.h"

namespace replayrail::resp {

class Connection;

// The Sentinels of a redis+sentinel:// URL, shared by every connection to the primary they
// watch: a connection asks them which server is the primary on every (re)connect, and they tell
// it when that changes.
//
// Asking: SENTINEL GET-MASTER-ADDR-BY-NAME, each Sentinel in turn, the last one that answered
// first, over one connection kept open to it (the Sentinel client guidelines).
//
// Watching: once a second, while a connection is registered, the primary is asked for again;
// when the answer changes, every registered connection still on the old one is dropped, and
// reconnects to the new one. A failover ordered while the old primary runs (SENTINEL FAILOVER)
// leaves it a primary until the Sentinels turn it into a replica, 10 s or more later: writes
// that reach it meanwhile are lost. Polling rather than a subscription to +switch-master keeps
// one way of asking, and cannot miss a message sent while its connection was down.
//
// Threads: every member runs on its strand; the public ones may be called from any thread.
// Lifecycle: start() returns it watching; stop() ends that and closes its connection.
class Sentinels : public std::enable_shared_from_this<Sentinels> {
 public:
  static std::shared_ptr<Sentinels> start(boost::asio::any_io_executor executor, RedisUrl url,
                                          std::chrono::milliseconds timeout);

  // The primary the Sentinels name now; store_unavailable, with each one's reason, when none
  // does.
  boost::asio::awaitable<result<RedisUrl::Address>> primary();

  // `connection` is dropped when the primary it is connected to is replaced (see above).
  void watch(std::weak_ptr<Connection> connection);

  void stop();

 private:
  Sentinels(boost::asio::any_io_executor executor, RedisUrl url, std::chrono::milliseconds timeout);

  boost::asio::awaitable<result<RedisUrl::Address>> ask();
  boost::asio::awaitable<void> poll();
  Error closed() const;

  boost::asio::strand<boost::asio::any_io_executor> strand_;
  RedisUrl url_;
  std::chrono::milliseconds timeout_;
  std::vector<RedisUrl::Address> order_;  // the URL's Sentinels, the last to answer first
  std::shared_ptr<Connection> sentinel_;  // to order_.front(), while it answers
  RedisUrl::Address primary_;             // the last address they named
  std::vector<std::weak_ptr<Connection>> watchers_;
  bool asking_ = false;  // ask() runs: others wait for its answer
  result<RedisUrl::Address> answer_ = RedisUrl::Address{};
  boost::asio::steady_timer answered_;  // cancelled when an ask() ends
  boost::asio::steady_timer pause_;     // between two rounds of watching
  bool stopped_ = false;
};

}  // namespace replayrail::resp
