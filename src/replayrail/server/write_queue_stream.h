#pragma once

// Included by server.cc only (Beast lives in that one translation unit).

#include <boost/asio/any_completion_handler.hpp>
#include <boost/asio/async_result.hpp>
#include <boost/asio/buffer.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/write.hpp>
#include <boost/beast/core/flat_buffer.hpp>
#include <boost/beast/core/role.hpp>
#include <boost/beast/core/stream_traits.hpp>
#include <boost/beast/websocket/teardown.hpp>
#include <memory>
#include <utility>
#include <vector>

namespace replayrail::server {

// The stream under a WebSocket: the one place its bytes are handed to the socket, one write in
// flight. Two writers share a WebSocket: the session's writer, which frames the messages it
// sends itself (see ws_write_loop in server.cc), and Beast, which writes pings, pongs and the
// close frame. Each hands over whole frames in one call; their bytes are copied here and go out
// in order, so a control frame never lands inside a data frame, and what arrives while a write
// is in flight goes out in the next one, together.
//
// Memory: at most `limit` bytes wait here; a write past that waits until the socket took them
// (so a slow reader still backs up into its Outbox, where the slow-consumer policies apply).
// Threads: one connection's thread, like the socket.
template <class Next>
class WriteQueueStream {
 public:
  using next_layer_type = Next;
  using executor_type = typename Next::executor_type;

  explicit WriteQueueStream(Next next, std::size_t limit = 64 * 1024)
      : next_(std::move(next)), state_(std::make_shared<State>(this, limit)) {}
  WriteQueueStream(WriteQueueStream&& other) noexcept
      : next_(std::move(other.next_)), state_(std::move(other.state_)) {
    if (state_) state_->owner = this;
  }
  WriteQueueStream& operator=(WriteQueueStream&&) = delete;
  ~WriteQueueStream() {
    if (state_) state_->owner = nullptr;  // a write completing later must not touch us
  }

  executor_type get_executor() noexcept { return next_.get_executor(); }

  // Completes once everything handed over has gone to the next layer, or its writing failed:
  // what the WebSocket's teardown waits for, so that the close frame goes out before TLS's
  // close_notify (and before TCP's FIN).
  template <class Token>
  auto async_drain(Token&& token) {
    return boost::asio::async_initiate<Token, void(boost::system::error_code)>(
        [this](auto handler) {
          State& s = *state_;
          s.drained.emplace_back(std::move(handler));
          if (s.failed || s.size() == 0) s.complete_drained(get_executor());
        },
        token);
  }
  Next& next_layer() noexcept { return next_; }

  template <class Buffers, class Token>
  auto async_read_some(const Buffers& buffers, Token&& token) {
    return next_.async_read_some(buffers, std::forward<Token>(token));
  }

  // Takes all of `buffers` (never part): completes with their whole size, or with the error
  // that ended the connection's writing.
  template <class Buffers, class Token>
  auto async_write_some(const Buffers& buffers, Token&& token) {
    return boost::asio::async_initiate<Token, void(boost::system::error_code, std::size_t)>(
        [this](auto handler, const Buffers& buffers) {
          State& s = *state_;
          std::size_t n = 0;
          if (!s.failed) {
            n = boost::asio::buffer_size(buffers);
            s.pending.commit(boost::asio::buffer_copy(s.pending.prepare(n), buffers));
          }
          Waiter waiter{std::move(handler), n};
          if (s.failed || s.size() <= s.limit) {
            s.complete(std::move(waiter), get_executor());
          } else {
            s.waiting.push_back(std::move(waiter));
          }
          flush();
        },
        token, buffers);
  }

 private:
  struct Waiter {
    boost::asio::any_completion_handler<void(boost::system::error_code, std::size_t)> handler;
    std::size_t bytes;
  };
  // Shared with the write in flight, which may complete after the stream is gone.
  struct State {
    State(WriteQueueStream* owner, std::size_t limit) : owner(owner), limit(limit) {}
    WriteQueueStream* owner;
    std::size_t limit;
    boost::system::error_code failed;
    boost::beast::flat_buffer pending;  // handed over, not yet to the socket
    boost::beast::flat_buffer writing;  // being written to the socket
    std::vector<Waiter> waiting;        // writes past the limit
    std::vector<boost::asio::any_completion_handler<void(boost::system::error_code)>> drained;

    std::size_t size() const { return pending.size() + writing.size(); }
    void complete(Waiter w, const executor_type& executor) {
      boost::asio::post(executor, [w = std::move(w), ec = failed]() mutable {
        std::move(w.handler)(ec, ec ? 0 : w.bytes);
      });
    }
    void complete_drained(const executor_type& executor) {
      for (auto& handler : std::exchange(drained, {})) {
        boost::asio::post(executor, [handler = std::move(handler), ec = failed]() mutable {
          std::move(handler)(ec);
        });
      }
    }
  };

  void flush() {
    State& s = *state_;
    if (s.failed || s.writing.size() > 0 || s.pending.size() == 0) return;
    std::swap(s.writing, s.pending);
    // Without a timeout of the stream's own: the WebSocket keeps its own timeouts, so the
    // stream's timer bookkeeping would be work for nothing on every write (Transport).
    next_.async_write_all(s.writing.data(), [state = state_](boost::system::error_code ec,
                                                             std::size_t) { written(state, ec); });
  }

  static void written(const std::shared_ptr<State>& state, boost::system::error_code ec) {
    State& s = *state;
    s.writing.clear();
    if (s.pending.size() == 0) {
      // Idle again: give the memory back (idle WebSockets are many).
      s.writing.shrink_to_fit();
      s.pending.shrink_to_fit();
    }
    if (ec) s.failed = ec;
    if (!s.owner) return;
    if (s.failed || s.size() <= s.limit) {
      for (auto& w : std::exchange(s.waiting, {}))
        s.complete(std::move(w), s.owner->get_executor());
    }
    s.owner->flush();
    if (s.failed || s.size() == 0) s.complete_drained(s.owner->get_executor());
  }

  Next next_;
  std::shared_ptr<State> state_;
};

// The WebSocket close handshake ends by shutting down the socket: the one below.
template <class Next>
void teardown(boost::beast::role_type role, WriteQueueStream<Next>& stream,
              boost::system::error_code& ec) {
  using boost::beast::websocket::teardown;
  teardown(role, stream.next_layer(), ec);
}

template <class Next, class Handler>
void async_teardown(boost::beast::role_type role, WriteQueueStream<Next>& stream,
                    Handler&& handler) {
  // After what is queued: the close frame may still be on its way.
  stream.async_drain(
      [role, &stream, handler = std::forward<Handler>(handler)](boost::system::error_code) mutable {
        using boost::beast::websocket::async_teardown;
        async_teardown(role, stream.next_layer(), std::move(handler));
      });
}

}  // namespace replayrail::server
