#include "replayrail/resp/connection.h"

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/bind_executor.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/connect.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/dispatch.hpp>
#include <boost/asio/experimental/awaitable_operators.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/asio/write.hpp>
#include <random>

namespace replayrail::resp {

namespace asio = boost::asio;
using asio::ip::tcp;
using namespace asio::experimental::awaitable_operators;

namespace {

constexpr auto kToken = asio::as_tuple(asio::use_awaitable);

Error unavailable(const RedisUrl& url, const std::string& why) {
  return make_error(errc::store_unavailable, "Redis at " + url.redacted() + ": " + why);
}

}  // namespace

// A command waiting for its reply; completed by cancelling its timer.
struct Connection::Slot {
  explicit Slot(asio::strand<asio::any_io_executor>& strand) : timer(strand) {}
  std::optional<result<Reply>> value;
  asio::steady_timer timer;
};

Connection::Connection(asio::any_io_executor executor, Options options)
    : strand_(asio::make_strand(executor)),
      options_(std::move(options)),
      socket_(strand_),
      down_(strand_),
      ready_signal_(strand_, asio::steady_timer::time_point::max()) {}

std::shared_ptr<Connection> Connection::start(asio::any_io_executor executor, Options options) {
  std::shared_ptr<Connection> c(new Connection(std::move(executor), std::move(options)));
  asio::co_spawn(c->strand_, c->run(), asio::detached);
  return c;
}

void Connection::stop() {
  asio::dispatch(strand_, [self = shared_from_this()] {
    self->stopped_ = true;
    self->fail(unavailable(self->options_.url, "connection closed"));
  });
}

asio::awaitable<result<Reply>> Connection::command(std::vector<std::string> args) {
  co_return co_await asio::co_spawn(strand_, do_command(std::move(args), false),
                                    asio::use_awaitable);
}

asio::awaitable<bool> Connection::wait_ready(Millis timeout) {
  auto self = shared_from_this();
  co_return co_await asio::co_spawn(
      strand_,
      [](std::shared_ptr<Connection> self, Millis timeout) -> asio::awaitable<bool> {
        if (self->ready_) co_return true;
        asio::steady_timer deadline(self->strand_, timeout);
        co_await (self->ready_signal_.async_wait(kToken) || deadline.async_wait(kToken));
        co_return self->ready_.load();
      }(self, timeout),
      asio::use_awaitable);
}

asio::awaitable<result<Reply>> Connection::do_command(std::vector<std::string> args,
                                                      bool handshake) {
  if (!(handshake ? connected_ : ready_.load())) {
    co_return unavailable(options_.url, stopped_ ? "connection closed" : "not connected");
  }
  auto self = shared_from_this();  // the connection outlives every command in flight
  auto slot = enqueue(args);
  slot->timer.expires_after(options_.command_timeout);
  co_await slot->timer.async_wait(kToken);
  if (!slot->value) {
    // No reply in time: later replies could no longer be matched to their commands.
    fail(unavailable(options_.url, "no reply within " +
                                       std::to_string(options_.command_timeout.count()) + " ms"));
  }
  co_return std::move(*slot->value);
}

std::shared_ptr<Connection::Slot> Connection::enqueue(const std::vector<std::string>& args) {
  std::vector<std::string_view> views(args.begin(), args.end());
  encode_command(out_, views);
  auto slot = std::make_shared<Slot>(strand_);
  in_flight_.push_back(slot);
  maybe_write();
  return slot;
}

// Everything queued while a write was in progress goes out in the next single write: that is
// the pipelining.
void Connection::maybe_write() {
  if (write_in_progress_ || out_.empty() || !connected_) return;
  write_in_progress_ = true;
  writing_.clear();
  writing_.swap(out_);
  asio::async_write(socket_, asio::buffer(writing_),
                    asio::bind_executor(strand_, [self = shared_from_this(), gen = generation_](
                                                     boost::system::error_code ec, std::size_t) {
                      if (gen != self->generation_) return;
                      self->write_in_progress_ = false;
                      if (ec) return self->fail(unavailable(self->options_.url, ec.message()));
                      self->maybe_write();
                    }));
}

asio::awaitable<void> Connection::read_loop(std::uint64_t generation) {
  auto self = shared_from_this();
  char buf[16384];
  while (generation == generation_) {
    auto [ec, n] = co_await socket_.async_read_some(asio::buffer(buf), kToken);
    if (generation != generation_) co_return;
    if (ec) {
      fail(unavailable(options_.url, ec.message()));
      co_return;
    }
    decoder_.feed({buf, n});
    for (;;) {
      auto reply = decoder_.next();
      if (!reply) {
        fail(reply.error());
        co_return;
      }
      if (!*reply) break;
      if (in_flight_.empty()) {
        {
          fail(unavailable(options_.url, "a reply arrived for no command"));
          co_return;
        }
      }
      auto slot = std::move(in_flight_.front());
      in_flight_.pop_front();
      slot->value = std::move(**reply);
      slot->timer.cancel();
    }
  }
}

void Connection::fail(const Error& error) {
  ++generation_;
  boost::system::error_code ignored;
  socket_.close(ignored);
  connected_ = false;
  ready_ = false;
  write_in_progress_ = false;
  out_.clear();
  decoder_.reset();
  for (auto& slot : in_flight_) {
    slot->value = error;
    slot->timer.cancel();
  }
  in_flight_.clear();
  down_.cancel();
}

asio::awaitable<result<void>> Connection::connect_once() {
  const RedisUrl& url = options_.url;
  if (url.tls) co_return unavailable(url, "rediss:// (TLS) is not supported yet");
  tcp::resolver resolver(strand_);
  auto [rec, endpoints] =
      co_await resolver.async_resolve(url.host, std::to_string(url.port), kToken);
  if (rec) co_return unavailable(url, "cannot resolve: " + rec.message());
  asio::steady_timer deadline(strand_, options_.connect_timeout);
  auto which =
      co_await (asio::async_connect(socket_, endpoints, kToken) || deadline.async_wait(kToken));
  if (which.index() == 1) {
    boost::system::error_code ignored;
    socket_.close(ignored);
    co_return unavailable(url, "connect timed out");
  }
  if (auto ec = std::get<0>(std::get<0>(which)); ec) {
    co_return unavailable(url, "cannot connect: " + ec.message());
  }
  socket_.set_option(tcp::no_delay(true));
  ++generation_;
  connected_ = true;
  asio::co_spawn(strand_, read_loop(generation_), asio::detached);

  // AUTH and SELECT on every (re)connect, before any caller's command.
  std::vector<std::vector<std::string>> handshake;
  if (!url.password.empty()) {
    handshake.push_back(url.username.empty()
                            ? std::vector<std::string>{"AUTH", url.password}
                            : std::vector<std::string>{"AUTH", url.username, url.password});
  }
  if (url.db != 0) handshake.push_back({"SELECT", std::to_string(url.db)});
  handshake.push_back({"PING"});
  for (auto& cmd : handshake) {
    auto reply = co_await do_command(cmd, true);
    if (!reply) co_return reply.error();
    if (reply->is_error()) {
      auto e = unavailable(url, cmd[0] + " failed: " + reply->str);
      fail(e);
      co_return e;
    }
  }
  co_return result<void>{};
}

asio::awaitable<void> Connection::run() {
  auto self = shared_from_this();
  std::mt19937 rng(std::random_device{}());
  Millis backoff = options_.reconnect_min;
  while (!stopped_) {
    auto connected = co_await connect_once();
    if (connected && connected_ && !stopped_) {
      ready_ = true;
      ready_signal_.cancel();
      backoff = options_.reconnect_min;
      down_.expires_at(asio::steady_timer::time_point::max());
      co_await down_.async_wait(kToken);  // until fail() or stop()
    }
    if (stopped_) break;
    // Exponential backoff with full jitter, so many nodes do not reconnect in lockstep.
    asio::steady_timer pause(strand_, Millis(std::uniform_int_distribution<std::int64_t>(
                                          backoff.count() / 2, backoff.count())(rng)));
    co_await pause.async_wait(kToken);
    backoff = std::min(backoff * 2, options_.reconnect_max);
  }
}

}  // namespace replayrail::resp
