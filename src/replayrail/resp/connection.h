#pragma once

#include <atomic>
#include <boost/asio/any_completion_handler.hpp>
#include <boost/asio/any_io_executor.hpp>
#include <boost/asio/associated_executor.hpp>
#include <boost/asio/async_result.hpp>
#include <boost/asio/awaitable.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/ssl/context.hpp>
#include <boost/asio/ssl/stream.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/strand.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <chrono>
#include <deque>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "replayrail/resp/codec.h"
#include "replayrail/resp/sentinels.h"
#include "replayrail/resp/url.h"

namespace replayrail::resp {

using Millis = std::chrono::milliseconds;

// One connection to Redis that pipelines: commands issued while a write is in progress, or in the
// same turn of the event loop, go out in one write, and their replies are matched in order. It
// connects in the background (TLS for rediss://), sends AUTH and SELECT on every (re)connect,
// and reconnects with exponential backoff and jitter after a failure.
//
// While it is not connected, command() fails at once with store_unavailable; when the connection
// drops, every command in flight fails with store_unavailable and is never retried here (the
// caller knows whether its command is idempotent). A command without a reply within
// command_timeout fails, and so does the connection (its replies can no longer be matched).
//
// With Sentinels (redis+sentinel://), each (re)connect first asks them which server is the
// primary of the URL's service (see Sentinels) and checks that the server says it is (ROLE), as
// the Sentinel client guidelines ask. A failover is followed through the reconnect: the old
// primary dies, or it answers a write with READONLY, or the Sentinels name another primary, and
// each of these fails the connection (and what is in flight: never a command's success).
//
// Threads: every member runs on the connection's strand; command() may be called from any thread
// and completes on the caller's executor.
// Lifecycle: start() returns it connecting; stop() closes it for good and fails what is pending.
class Connection : public std::enable_shared_from_this<Connection> {
 public:
  struct Options {
    RedisUrl url;
    Millis connect_timeout{2000};
    Millis command_timeout{10000};
    Millis reconnect_min{25};
    Millis reconnect_max{2000};
    // Asks for the connection's CLIENT ID on every (re)connect, for CLIENT UNBLOCK.
    bool client_id = false;
    // False: one attempt to connect; when it fails, or the connection drops, it stops.
    bool reconnect = true;
    // With a redis+sentinel:// URL: the Sentinels it shares with other connections to the
    // primary (none: it asks them on its own).
    std::shared_ptr<Sentinels> sentinels;
  };

  static std::shared_ptr<Connection> start(boost::asio::any_io_executor executor, Options options);

  // Sends one command; its reply (an error reply is a value, not a failure).
  boost::asio::awaitable<result<Reply>> command(const std::vector<std::string>& args);

  // Sends several commands back to back in one go; their replies as one array reply, in order.
  boost::asio::awaitable<result<Reply>> commands(
      const std::vector<std::vector<std::string>>& batch);

  // Sends commands encoded by the caller (on its own thread): the reply of one, or the replies
  // of several as one array reply, in order.
  boost::asio::awaitable<result<Reply>> send(Encoded encoded) {
    return boost::asio::async_initiate<decltype(boost::asio::use_awaitable), void(result<Reply>)>(
        [self = shared_from_this()](auto handler, Encoded encoded) {
          // The executor is taken before the handler's type is erased: the caller resumes there.
          auto executor = boost::asio::get_associated_executor(handler, self->strand_);
          self->initiate(std::move(encoded), {std::move(handler), std::move(executor)});
        },
        boost::asio::use_awaitable, std::move(encoded));
  }

  // Waits until the connection is ready or `timeout` passed; true when ready. False at once
  // after stop().
  boost::asio::awaitable<bool> wait_ready(Millis timeout);

  bool ready() const { return ready_; }
  // The Sentinels name `primary` now: if this is connected elsewhere, it reconnects.
  void primary_replaced(RedisUrl::Address primary);
  // The server's id for this connection (Options::client_id); -1 while not connected.
  std::int64_t client_id() const { return client_id_; }
  void stop();

 private:
  using Handler = boost::asio::any_completion_handler<void(result<Reply>)>;
  using Clock = std::chrono::steady_clock;
  using TlsStream = boost::asio::ssl::stream<boost::asio::ip::tcp::socket>;
  // Where a command's reply goes: the caller's handler, resumed on the caller's executor.
  struct Completion {
    Handler handler;
    boost::asio::any_io_executor executor;
  };
  struct Pending {
    Completion completion;
    Clock::time_point deadline;
    std::size_t expected = 1;  // replies; more than one: a batch, answered as an array
    Reply batch;
  };

  Connection(boost::asio::any_io_executor executor, Options options);

  void initiate(Encoded encoded, Completion completion);
  // On the strand: queues the commands (handshake commands run before the connection is ready).
  void enqueue(Encoded encoded, Completion completion, bool handshake);
  static void complete(Completion completion, result<Reply> value);
  void schedule_write();
  void maybe_write();
  void arm_timeout();
  boost::asio::awaitable<void> run();
  boost::asio::awaitable<result<void>> connect_once();
  // "Redis at <URL>" and, with Sentinels, the primary it is connected to, for errors and logs.
  std::string where() const;
  Error unavailable(const std::string& why) const;
  boost::asio::awaitable<result<void>> handshake_tls();
  boost::asio::awaitable<result<Reply>> handshake_command(std::vector<std::string> args);
  boost::asio::awaitable<void> read_loop(std::uint64_t generation);
  void fail(const Error& error);
  boost::asio::ip::tcp::socket& socket() { return tls_ ? tls_->next_layer() : *tcp_; }

  boost::asio::strand<boost::asio::any_io_executor> strand_;
  Options options_;
  RedisUrl::Address server_;              // where it connects: the URL's, or the primary
  std::shared_ptr<Sentinels> sentinels_;  // with a redis+sentinel:// URL
  bool own_sentinels_ = false;            // started by this connection: stopped with it
  std::optional<boost::asio::ssl::context> tls_context_;  // rediss:// only
  std::unique_ptr<boost::asio::ip::tcp::socket> tcp_;     // a fresh one per connection
  std::unique_ptr<TlsStream> tls_;                        // or this, for rediss://
  Decoder decoder_;
  std::string out_;      // encoded commands not yet handed to the socket
  std::string writing_;  // the bytes being written
  bool write_in_progress_ = false;
  bool write_scheduled_ = false;
  std::deque<Pending> in_flight_;
  std::uint64_t generation_ = 0;  // one per socket, so stale callbacks are ignored
  bool connected_ = false;        // socket open (handshake may still run)
  std::atomic<bool> ready_ = false;
  std::atomic<std::int64_t> client_id_ = -1;
  bool stopped_ = false;
  std::string last_failure_;  // why it last failed: for the log, and commands while it is down
  boost::asio::steady_timer timeout_;  // the oldest command's deadline
  bool timeout_armed_ = false;
  boost::asio::steady_timer down_;          // cancelled when the connection fails
  boost::asio::steady_timer ready_signal_;  // cancelled when the connection becomes ready
};

}  // namespace replayrail::resp
