#pragma once

#include <atomic>
#include <boost/asio/any_io_executor.hpp>
#include <boost/asio/awaitable.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/strand.hpp>
#include <chrono>
#include <deque>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "replayrail/resp/codec.h"
#include "replayrail/resp/url.h"

namespace replayrail::resp {

using Millis = std::chrono::milliseconds;

// One connection to Redis that pipelines: concurrent command() calls are written together and
// their replies matched in order. It connects in the background, sends AUTH and SELECT on every
// (re)connect, and reconnects with exponential backoff and jitter after a failure.
//
// While it is not connected, command() fails at once with store_unavailable; when the connection
// drops, every command in flight fails with store_unavailable and is never retried here (the
// caller knows whether its command is idempotent). A command without a reply within
// command_timeout fails, and so does the connection (its replies can no longer be matched).
//
// Threads: every member runs on the connection's strand; command() may be called from any thread.
// Lifecycle: start() returns it connecting; stop() closes it for good and fails what is pending.
class Connection : public std::enable_shared_from_this<Connection> {
 public:
  struct Options {
    RedisUrl url;
    Millis connect_timeout{2000};
    Millis command_timeout{10000};
    Millis reconnect_min{25};
    Millis reconnect_max{2000};
  };

  static std::shared_ptr<Connection> start(boost::asio::any_io_executor executor, Options options);

  // Sends one command; its reply (an error reply is a value, not a failure).
  boost::asio::awaitable<result<Reply>> command(std::vector<std::string> args);

  // Waits until the connection is ready or `timeout` passed; true when ready.
  boost::asio::awaitable<bool> wait_ready(Millis timeout);

  bool ready() const { return ready_; }
  void stop();

 private:
  struct Slot;
  Connection(boost::asio::any_io_executor executor, Options options);

  boost::asio::awaitable<result<Reply>> do_command(std::vector<std::string> args, bool handshake);
  std::shared_ptr<Slot> enqueue(const std::vector<std::string>& args);
  void maybe_write();
  boost::asio::awaitable<void> run();
  boost::asio::awaitable<result<void>> connect_once();
  boost::asio::awaitable<void> read_loop(std::uint64_t generation);
  void fail(const Error& error);

  boost::asio::strand<boost::asio::any_io_executor> strand_;
  Options options_;
  boost::asio::ip::tcp::socket socket_;
  Decoder decoder_;
  std::string out_;      // encoded commands not yet handed to the socket
  std::string writing_;  // the bytes being written
  bool write_in_progress_ = false;
  std::deque<std::shared_ptr<Slot>> in_flight_;
  std::uint64_t generation_ = 0;  // one per socket, so stale callbacks are ignored
  bool connected_ = false;        // socket open (handshake may still run)
  std::atomic<bool> ready_ = false;
  bool stopped_ = false;
  boost::asio::steady_timer down_;          // cancelled when the connection fails
  boost::asio::steady_timer ready_signal_;  // cancelled when the connection becomes ready
};

}  // namespace replayrail::resp
