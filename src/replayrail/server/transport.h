#pragma once

// Included by server.cc and transport.cc only (Beast lives in those translation units).

#include <array>
#include <boost/asio/any_completion_handler.hpp>
#include <boost/asio/async_result.hpp>
#include <boost/asio/awaitable.hpp>
#include <boost/asio/buffer.hpp>
#include <boost/asio/ssl/context.hpp>
#include <boost/asio/write.hpp>
#include <boost/beast/core/role.hpp>
#include <boost/beast/core/tcp_stream.hpp>
#include <boost/beast/ssl/ssl_stream.hpp>
#include <boost/beast/websocket/teardown.hpp>
#include <memory>
#include <optional>
#include <utility>

namespace replayrail::server {

// A client's connection: TCP, or TLS over TCP when the server has a certificate
// (ServerOptions::tls_cert). One type for both, so that every session is compiled once; each
// operation picks its layer at run time.
//
// The TLS operations are type-erased (any_completion_handler) and compiled once, in
// transport.cc, rather than for every operation of every session that runs over them: that
// instantiation doubled server.cc's compile time. Plain TCP is called directly.
//
// Timeouts are the TCP stream's (tcp().expires_after), under TLS as well, since TLS reads and
// writes go through it.
class Transport {
 public:
  using executor_type = boost::beast::tcp_stream::executor_type;
  using Tls = boost::beast::ssl_stream<boost::beast::tcp_stream>;
  using Handler = boost::asio::any_completion_handler<void(boost::system::error_code, std::size_t)>;

  // The first buffers of a write, by value (TLS operations keep a copy of what they write).
  struct Buffers {
    std::array<boost::asio::const_buffer, 64> items;
    std::size_t count = 0;
    const boost::asio::const_buffer* begin() const { return items.data(); }
    const boost::asio::const_buffer* end() const { return items.data() + count; }
  };

  explicit Transport(boost::beast::tcp_stream tcp) : plain_(std::move(tcp)) {}
  // `context` stays alive with the connection: a reload (SIGHUP) replaces the server's.
  Transport(boost::beast::tcp_stream tcp, std::shared_ptr<boost::asio::ssl::context> context)
      : context_(std::move(context)), tls_(std::in_place, std::move(tcp), *context_) {}

  bool is_tls() const { return tls_.has_value(); }
  Tls& tls() { return *tls_; }
  boost::beast::tcp_stream& tcp() { return tls_ ? tls_->next_layer() : *plain_; }
  executor_type get_executor() { return tcp().get_executor(); }

  template <class MutableBuffers, class Token>
  auto async_read_some(const MutableBuffers& buffers, Token&& token) {
    return boost::asio::async_initiate<Token, void(boost::system::error_code, std::size_t)>(
        [this](auto handler, const MutableBuffers& buffers) {
          if (!tls_) return plain_->async_read_some(buffers, std::move(handler));
          // A read may fill less than it is given: the first buffer with room is enough.
          boost::asio::mutable_buffer into;
          for (auto it = boost::asio::buffer_sequence_begin(buffers);
               it != boost::asio::buffer_sequence_end(buffers) && into.size() == 0; ++it) {
            into = *it;
          }
          tls_read_some(*tls_, into, Handler(std::move(handler)));
        },
        token, buffers);
  }

  template <class ConstBuffers, class Token>
  auto async_write_some(const ConstBuffers& buffers, Token&& token) {
    return boost::asio::async_initiate<Token, void(boost::system::error_code, std::size_t)>(
        [this](auto handler, const ConstBuffers& buffers) {
          if (!tls_) return plain_->async_write_some(buffers, std::move(handler));
          // A write may take less than it is given: the first 64 buffers.
          Buffers first;
          for (auto it = boost::asio::buffer_sequence_begin(buffers);
               it != boost::asio::buffer_sequence_end(buffers) && first.count < first.items.size();
               ++it) {
            first.items[first.count++] = *it;
          }
          tls_write_some(*tls_, first, Handler(std::move(handler)));
        },
        token, buffers);
  }

  // All of `data`, with no timeout: for WebSockets, which keep their own. Plain TCP goes to the
  // socket itself, past the TCP stream's per-write timer bookkeeping.
  template <class Token>
  auto async_write_all(boost::asio::const_buffer data, Token&& token) {
    return boost::asio::async_initiate<Token, void(boost::system::error_code, std::size_t)>(
        [this](auto handler, boost::asio::const_buffer data) {
          if (!tls_) return boost::asio::async_write(plain_->socket(), data, std::move(handler));
          tls_write_all(*tls_, data, Handler(std::move(handler)));
        },
        token, data);
  }

 private:
  // In transport.cc.
  static void tls_read_some(Tls& tls, boost::asio::mutable_buffer into, Handler handler);
  static void tls_write_some(Tls& tls, Buffers buffers, Handler handler);
  static void tls_write_all(Tls& tls, boost::asio::const_buffer data, Handler handler);

  std::optional<boost::beast::tcp_stream> plain_;
  std::shared_ptr<boost::asio::ssl::context> context_;
  std::optional<Tls> tls_;
};

// The TLS handshake of a server, after `hello` (bytes already read from the client, the start of
// its ClientHello); returns its error and how many of those bytes it used.
boost::asio::awaitable<std::pair<boost::system::error_code, std::size_t>> tls_handshake(
    Transport::Tls& tls, boost::asio::const_buffer hello);
// Sends TLS's close_notify and waits for the client's (within the TCP stream's timeout).
boost::asio::awaitable<void> tls_shutdown(Transport::Tls& tls);

// What Beast calls to drop a connection at once (a WebSocket that failed).
inline void beast_close_socket(Transport& transport) {
  boost::beast::close_socket(transport.tcp());
}

// The WebSocket close handshake ends by shutting the connection down: TLS first (close_notify),
// then TCP.
void tls_teardown(boost::beast::role_type role, Transport::Tls& tls, boost::system::error_code& ec);
void tls_async_teardown(boost::beast::role_type role, Transport::Tls& tls,
                        boost::asio::any_completion_handler<void(boost::system::error_code)> done);

inline void teardown(boost::beast::role_type role, Transport& transport,
                     boost::system::error_code& ec) {
  if (transport.is_tls()) return tls_teardown(role, transport.tls(), ec);
  boost::beast::websocket::teardown(role, transport.tcp().socket(), ec);
}

template <class Handler>
void async_teardown(boost::beast::role_type role, Transport& transport, Handler&& handler) {
  if (transport.is_tls()) {
    return tls_async_teardown(role, transport.tls(),
                              boost::asio::any_completion_handler<void(boost::system::error_code)>(
                                  std::forward<Handler>(handler)));
  }
  boost::beast::websocket::async_teardown(role, transport.tcp().socket(),
                                          std::forward<Handler>(handler));
}

}  // namespace replayrail::server
