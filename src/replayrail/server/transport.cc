// The TLS side of Transport, compiled once here for type-erased handlers (see transport.h).
#include "replayrail/server/transport.h"

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/bind_executor.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/beast/websocket/ssl.hpp>

namespace replayrail::server {

namespace asio = boost::asio;

namespace {

// Runs `handler` on the connection's executor. Boost 1.81's any_completion_handler has an
// executor (any_completion_executor) that TLS operations cannot post to (it lacks
// blocking.never); the connection's is where the handler runs anyway.
template <class Handler>
auto on_connection(Transport::Tls& tls, Handler handler) {
  return asio::bind_executor(tls.get_executor(), std::move(handler));
}

}  // namespace

void Transport::tls_read_some(Tls& tls, asio::mutable_buffer into, Handler handler) {
  tls.async_read_some(into, on_connection(tls, std::move(handler)));
}

void Transport::tls_write_some(Tls& tls, Buffers buffers, Handler handler) {
  tls.async_write_some(buffers, on_connection(tls, std::move(handler)));
}

void Transport::tls_write_all(Tls& tls, asio::const_buffer data, Handler handler) {
  asio::async_write(tls, data, on_connection(tls, std::move(handler)));
}

asio::awaitable<std::pair<boost::system::error_code, std::size_t>> tls_handshake(
    Transport::Tls& tls, asio::const_buffer hello) {
  auto [ec, used] = co_await tls.async_handshake(asio::ssl::stream_base::server, hello,
                                                 asio::as_tuple(asio::use_awaitable));
  co_return std::pair(ec, used);
}

asio::awaitable<void> tls_shutdown(Transport::Tls& tls) {
  (void)co_await tls.async_shutdown(asio::as_tuple(asio::use_awaitable));
}

void tls_teardown(boost::beast::role_type role, Transport::Tls& tls,
                  boost::system::error_code& ec) {
  using boost::beast::websocket::teardown;
  teardown(role, tls, ec);
}

void tls_async_teardown(boost::beast::role_type role, Transport::Tls& tls,
                        asio::any_completion_handler<void(boost::system::error_code)> done) {
  using boost::beast::websocket::async_teardown;
  async_teardown(role, tls, on_connection(tls, std::move(done)));
}

}  // namespace replayrail::server
