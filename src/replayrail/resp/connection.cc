#include "replayrail/resp/connection.h"

#include <spdlog/spdlog.h>

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/bind_executor.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/connect.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/dispatch.hpp>
#include <boost/asio/experimental/awaitable_operators.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/write.hpp>
#include <random>

#include "replayrail/common/tls_client.h"

namespace replayrail::resp {

namespace asio = boost::asio;
namespace ssl = asio::ssl;
using asio::ip::tcp;
using namespace asio::experimental::awaitable_operators;

namespace {

constexpr auto kToken = asio::as_tuple(asio::use_awaitable);

Error unavailable_at(const std::string& where, const std::string& why) {
  return make_error(errc::store_unavailable, "Redis at " + where + ": " + why);
}

// The TLS settings a rediss:// URL asks for; a file that cannot be loaded is a clear error.
result<ssl::context> make_tls_context(const RedisUrl& url) {
  ssl::context ctx(ssl::context::tls_client);
  boost::system::error_code ec;
  if (!url.ca_file.empty()) {
    ctx.load_verify_file(url.ca_file, ec);
    if (ec)
      return unavailable_at(url.redacted(),
                            "cannot load ssl_ca_certs " + url.ca_file + ": " + ec.message());
  } else {
    ctx.set_default_verify_paths(ec);
    if (ec)
      return unavailable_at(url.redacted(),
                            "cannot load the system's CA certificates: " + ec.message());
  }
  if (!url.cert_file.empty()) {
    ctx.use_certificate_chain_file(url.cert_file, ec);
    if (!ec) ctx.use_private_key_file(url.key_file, ssl::context::pem, ec);
    if (ec)
      return unavailable_at(url.redacted(), "cannot load the client certificate: " + ec.message());
  }
  ctx.set_verify_mode(url.verify_peer ? ssl::verify_peer : ssl::verify_none);
  return ctx;
}

}  // namespace

Connection::Connection(asio::any_io_executor executor, Options options)
    : strand_(asio::make_strand(executor)),
      options_(std::move(options)),
      server_(options_.url.uses_sentinels()
                  ? RedisUrl::Address{}
                  : RedisUrl::Address{options_.url.host, options_.url.port}),
      sentinels_(options_.sentinels),
      timeout_(strand_),
      down_(strand_),
      ready_signal_(strand_, asio::steady_timer::time_point::max()) {}

std::string Connection::where() const {
  if (!options_.url.uses_sentinels() || server_.host.empty()) return options_.url.redacted();
  return options_.url.redacted() + " (primary " + server_.str() + ")";
}

Error Connection::unavailable(const std::string& why) const { return unavailable_at(where(), why); }

std::shared_ptr<Connection> Connection::start(asio::any_io_executor executor, Options options) {
  std::shared_ptr<Connection> c(new Connection(executor, std::move(options)));
  if (c->options_.url.uses_sentinels()) {
    if (!c->sentinels_) {
      c->sentinels_ = Sentinels::start(executor, c->options_.url, c->options_.connect_timeout);
      c->own_sentinels_ = true;
    }
    c->sentinels_->watch(c);
  }
  asio::co_spawn(c->strand_, c->run(), asio::detached);
  return c;
}

void Connection::stop() {
  asio::dispatch(strand_, [self = shared_from_this()] {
    self->stopped_ = true;
    if (self->own_sentinels_) self->sentinels_->stop();
    self->fail(self->unavailable("connection closed"));
    self->ready_signal_.cancel();  // nobody need wait for it to be ready any more
  });
}

void Connection::primary_replaced(RedisUrl::Address primary) {
  asio::dispatch(strand_, [self = shared_from_this(), primary = std::move(primary)] {
    if (!self->connected_ || self->server_ == primary) return;
    self->fail(self->unavailable("the Sentinels name " + primary.str() + " the primary now"));
  });
}

asio::awaitable<bool> Connection::wait_ready(Millis timeout) {
  auto self = shared_from_this();
  co_return co_await asio::co_spawn(
      strand_,
      [](std::shared_ptr<Connection> self, Millis timeout) -> asio::awaitable<bool> {
        if (self->ready_) co_return true;
        if (self->stopped_) co_return false;
        asio::steady_timer deadline(self->strand_, timeout);
        co_await (self->ready_signal_.async_wait(kToken) || deadline.async_wait(kToken));
        co_return self->ready_.load();
      }(self, timeout),
      asio::use_awaitable);
}

asio::awaitable<result<Reply>> Connection::command(const std::vector<std::string>& args) {
  Encoded encoded;
  encoded.add(std::vector<std::string_view>(args.begin(), args.end()));
  return send(std::move(encoded));
}

asio::awaitable<result<Reply>> Connection::commands(
    const std::vector<std::vector<std::string>>& batch) {
  Encoded encoded;
  for (const auto& args : batch)
    encoded.add(std::vector<std::string_view>(args.begin(), args.end()));
  return send(std::move(encoded));
}

void Connection::initiate(Encoded encoded, Completion completion) {
  asio::dispatch(strand_, [self = shared_from_this(), encoded = std::move(encoded),
                           completion = std::move(completion)]() mutable {
    self->enqueue(std::move(encoded), std::move(completion), false);
  });
}

// The caller's coroutine resumes on its own executor, never inside the strand.
void Connection::complete(Completion completion, result<Reply> value) {
  asio::post(completion.executor,
             [handler = std::move(completion.handler), value = std::move(value)]() mutable {
               std::move(handler)(std::move(value));
             });
}

void Connection::enqueue(Encoded encoded, Completion completion, bool handshake) {
  if (!(handshake ? connected_ : ready_.load())) {
    // Why it is down says more than "not connected" (a refused connection, no primary, a
    // password refused, or stop()'s "connection closed").
    return complete(std::move(completion),
                    last_failure_.empty()
                        ? unavailable(stopped_ ? "connection closed" : "not connected")
                        : make_error(errc::store_unavailable, last_failure_));
  }
  out_.append(encoded.bytes);
  Pending pending{std::move(completion), Clock::now() + options_.command_timeout, encoded.commands};
  if (encoded.commands > 1) pending.batch.type = Reply::Type::array;
  in_flight_.push_back(std::move(pending));
  arm_timeout();
  schedule_write();
}

// Commands queued in the same turn of the event loop, or while a write is in progress, go out
// in the next single write: that is the pipelining.
void Connection::schedule_write() {
  if (write_scheduled_ || write_in_progress_) return;
  write_scheduled_ = true;
  asio::post(strand_, [self = shared_from_this()] {
    self->write_scheduled_ = false;
    self->maybe_write();
  });
}

void Connection::maybe_write() {
  if (write_in_progress_ || out_.empty() || !connected_) return;
  write_in_progress_ = true;
  writing_.clear();
  writing_.swap(out_);
  auto done = asio::bind_executor(strand_, [self = shared_from_this(), gen = generation_](
                                               boost::system::error_code ec, std::size_t) {
    if (gen != self->generation_) return;
    self->write_in_progress_ = false;
    if (ec) return self->fail(self->unavailable(ec.message()));
    self->maybe_write();
  });
  if (tls_) {
    asio::async_write(*tls_, asio::buffer(writing_), std::move(done));
  } else {
    asio::async_write(*tcp_, asio::buffer(writing_), std::move(done));
  }
}

// One timer for all commands: they share one timeout and are answered in order, so the oldest
// has the nearest deadline.
void Connection::arm_timeout() {
  if (timeout_armed_ || in_flight_.empty()) return;
  timeout_armed_ = true;
  timeout_.expires_at(in_flight_.front().deadline);
  timeout_.async_wait(asio::bind_executor(strand_, [self = shared_from_this()](auto) {
    self->timeout_armed_ = false;
    if (self->in_flight_.empty()) return;
    if (Clock::now() >= self->in_flight_.front().deadline) {
      // Later replies could no longer be matched to their commands.
      return self->fail(self->unavailable(
          "no reply within " + std::to_string(self->options_.command_timeout.count()) + " ms"));
    }
    self->arm_timeout();
  }));
}

asio::awaitable<void> Connection::read_loop(std::uint64_t generation) {
  auto self = shared_from_this();
  char buf[16384];
  while (generation == generation_) {
    boost::system::error_code ec;
    std::size_t n = 0;
    if (tls_) {
      std::tie(ec, n) = co_await tls_->async_read_some(asio::buffer(buf), kToken);
    } else {
      std::tie(ec, n) = co_await tcp_->async_read_some(asio::buffer(buf), kToken);
    }
    if (generation != generation_) co_return;
    if (ec) {
      fail(unavailable(ec.message()));
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
        fail(unavailable("a reply arrived for no command"));
        co_return;
      }
      if (options_.url.uses_sentinels() && (*reply)->error_is("READONLY")) {
        // A failover made our primary a replica: this command and the rest fail, and the
        // reconnect asks the Sentinels for the new one.
        fail(unavailable("the primary is a replica now (READONLY); asking the Sentinels again"));
        co_return;
      }
      Pending& front = in_flight_.front();
      if (front.expected == 1) {
        complete(std::move(front.completion), std::move(**reply));
        in_flight_.pop_front();
      } else {
        front.batch.elements.push_back(std::move(**reply));
        if (front.batch.elements.size() == front.expected) {
          complete(std::move(front.completion), std::move(front.batch));
          in_flight_.pop_front();
        }
      }
    }
  }
}

void Connection::fail(const Error& error) {
  ++generation_;
  last_failure_ = error.message;
  boost::system::error_code ignored;
  if (tcp_ || tls_) socket().close(ignored);
  connected_ = false;
  ready_ = false;
  client_id_ = -1;
  write_in_progress_ = false;
  out_.clear();
  decoder_.reset();
  for (auto& pending : in_flight_) complete(std::move(pending.completion), error);
  in_flight_.clear();
  timeout_.cancel();
  down_.cancel();
}

asio::awaitable<result<Reply>> Connection::handshake_command(std::vector<std::string> args) {
  Encoded encoded;
  encoded.add(std::vector<std::string_view>(args.begin(), args.end()));
  return asio::async_initiate<decltype(asio::use_awaitable), void(result<Reply>)>(
      [this](auto handler, Encoded encoded) {
        auto executor = asio::get_associated_executor(handler, strand_);
        enqueue(std::move(encoded), {std::move(handler), std::move(executor)}, true);
      },
      asio::use_awaitable, std::move(encoded));
}

asio::awaitable<result<void>> Connection::handshake_tls() {
  const RedisUrl& url = options_.url;
  // SNI, and the certificate must name the host we asked for.
  if (tls_client::name_server(*tls_, server_.host, url.verify_peer)) {
    co_return unavailable("cannot set the TLS server name");
  }
  asio::steady_timer deadline(strand_, options_.connect_timeout);
  auto which = co_await (tls_->async_handshake(ssl::stream_base::client, kToken) ||
                         deadline.async_wait(kToken));
  if (which.index() == 1) co_return unavailable("TLS handshake timed out");
  if (auto [ec] = std::get<0>(which); ec) {
    co_return unavailable("TLS handshake failed: " + ec.message());
  }
  co_return result<void>{};
}

asio::awaitable<result<void>> Connection::connect_once() {
  const RedisUrl& url = options_.url;
  if (url.tls && !tls_context_) {
    auto ctx = make_tls_context(url);
    if (!ctx) co_return ctx.error();
    tls_context_.emplace(std::move(*ctx));
  }
  if (url.uses_sentinels()) {
    auto primary = co_await sentinels_->primary();
    if (!primary) co_return primary.error();
    server_ = std::move(*primary);
  }
  tcp::resolver resolver(strand_);
  auto [rec, endpoints] =
      co_await resolver.async_resolve(server_.host, std::to_string(server_.port), kToken);
  if (rec) co_return unavailable("cannot resolve: " + rec.message());
  tls_.reset();
  tcp_.reset();
  if (url.tls) {
    tls_ = std::make_unique<TlsStream>(strand_, *tls_context_);
  } else {
    tcp_ = std::make_unique<tcp::socket>(strand_);
  }
  asio::steady_timer deadline(strand_, options_.connect_timeout);
  auto which =
      co_await (asio::async_connect(socket(), endpoints, kToken) || deadline.async_wait(kToken));
  if (which.index() == 1) {
    boost::system::error_code ignored;
    socket().close(ignored);
    co_return unavailable("connect timed out");
  }
  if (auto ec = std::get<0>(std::get<0>(which)); ec) {
    co_return unavailable("cannot connect: " + ec.message());
  }
  socket().set_option(tcp::no_delay(true));
  if (tls_) {
    auto shaken = co_await handshake_tls();
    if (!shaken) {
      boost::system::error_code ignored;
      socket().close(ignored);
      co_return shaken.error();
    }
  }
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
  if (url.uses_sentinels()) handshake.push_back({"ROLE"});
  // The last command also proves the connection answers.
  handshake.push_back(options_.client_id ? std::vector<std::string>{"CLIENT", "ID"}
                                         : std::vector<std::string>{"PING"});
  for (auto& cmd : handshake) {
    auto reply = co_await handshake_command(cmd);
    if (!reply) co_return reply.error();
    if (reply->is_error()) {
      auto e = unavailable(cmd[0] + " failed: " + reply->str);
      fail(e);
      co_return e;
    }
    if (cmd[0] == "ROLE" && (reply->elements.empty() || reply->elements[0].str != "master")) {
      // The Sentinels' answer was already out of date (a failover under way).
      auto e = unavailable("the Sentinels named a server that is not a primary");
      fail(e);
      co_return e;
    }
    if (options_.client_id && cmd[0] == "CLIENT") client_id_ = reply->integer;
  }
  co_return result<void>{};
}

asio::awaitable<void> Connection::run() {
  auto self = shared_from_this();
  std::mt19937 rng(std::random_device{}());
  Millis backoff = options_.reconnect_min;
  int failed_attempts = 0;  // in a row; logged once per outage, not once per attempt
  while (!stopped_) {
    auto connected = co_await connect_once();
    if (!connected) last_failure_ = connected.error().message;
    if (stopped_ || (!options_.reconnect && !(connected && connected_))) {
      // stop() came while connecting, or the one attempt failed: close what connect_once()
      // opened (and its read loop).
      fail(connected ? unavailable("connection closed") : connected.error());
      break;
    }
    if (connected && connected_ && !stopped_) {
      if (failed_attempts > 0) {
        spdlog::info("Redis at {}: connected again after {} failed attempts", where(),
                     failed_attempts);
      }
      failed_attempts = 0;
      ready_ = true;
      ready_signal_.cancel();
      backoff = options_.reconnect_min;
      down_.expires_at(asio::steady_timer::time_point::max());
      co_await down_.async_wait(kToken);  // until fail() or stop()
      if (!options_.reconnect) break;
      if (!stopped_) spdlog::warn("{}; reconnecting", last_failure_);
    } else if (failed_attempts++ == 0) {
      spdlog::warn("{}; retrying, at least every {} ms",
                   connected ? last_failure_ : connected.error().message,
                   options_.reconnect_max.count());
    }
    if (stopped_) break;
    // Exponential backoff with full jitter, so many nodes do not reconnect in lockstep.
    asio::steady_timer pause(strand_, Millis(std::uniform_int_distribution<std::int64_t>(
                                          backoff.count() / 2, backoff.count())(rng)));
    co_await pause.async_wait(kToken);
    backoff = std::min(backoff * 2, options_.reconnect_max);
  }
  // Stopped, or its one attempt is over: nobody need wait for it to be ready any more.
  stopped_ = true;
  ready_signal_.cancel();
}

}  // namespace replayrail::resp
