#include "replayrail/resp/sentinels.h"

#include <algorithm>
#include <boost/asio/as_tuple.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/dispatch.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <cstdlib>

#include "replayrail/resp/connection.h"

namespace replayrail::resp {

namespace asio = boost::asio;

namespace {

// How often the primary is asked for again while connections depend on it.
constexpr std::chrono::seconds kWatchInterval(1);

// How one Sentinel is asked: the URL's TLS settings, the Sentinels' own credentials.
RedisUrl sentinel_url(const RedisUrl& url, const RedisUrl::Address& sentinel) {
  RedisUrl out = url;
  out.sentinels.clear();
  out.host = sentinel.host;
  out.port = sentinel.port;
  out.username = url.sentinel_username;
  out.password = url.sentinel_password;
  out.db = 0;
  return out;
}

std::vector<std::string> get_master_addr(const std::string& service) {
  return {"SENTINEL", "GET-MASTER-ADDR-BY-NAME", service};
}

// The address in a Sentinel's answer; an empty one (and why) when it names none.
RedisUrl::Address parse_answer(const RedisUrl::Address& sentinel, const std::string& service,
                               const result<Reply>& reply, std::string& why) {
  if (!reply) {
    why = reply.error().message;
  } else if (reply->is_nil()) {
    why = sentinel.str() + " monitors no service named '" + service + "'";
  } else if (reply->is_error()) {
    why = sentinel.str() + " answered " + reply->str;
  } else if (reply->elements.size() == 2) {
    auto port = std::strtoul(reply->elements[1].str.c_str(), nullptr, 10);
    if (port > 0 && port <= 65535 && !reply->elements[0].str.empty()) {
      return {reply->elements[0].str, static_cast<std::uint16_t>(port)};
    }
  }
  if (why.empty()) why = sentinel.str() + " gave an unexpected answer";
  return {};
}

}  // namespace

Sentinels::Sentinels(asio::any_io_executor executor, RedisUrl url,
                     std::chrono::milliseconds timeout)
    : strand_(asio::make_strand(executor)),
      url_(std::move(url)),
      timeout_(timeout),
      order_(url_.sentinels),
      answered_(strand_, asio::steady_timer::time_point::max()),
      pause_(strand_) {}

std::shared_ptr<Sentinels> Sentinels::start(asio::any_io_executor executor, RedisUrl url,
                                            std::chrono::milliseconds timeout) {
  std::shared_ptr<Sentinels> s(new Sentinels(std::move(executor), std::move(url), timeout));
  asio::co_spawn(s->strand_, s->poll(), asio::detached);
  return s;
}

void Sentinels::stop() {
  asio::dispatch(strand_, [self = shared_from_this()] {
    self->stopped_ = true;
    self->pause_.cancel();
    self->answered_.cancel();
    if (self->sentinel_) self->sentinel_->stop();
    self->sentinel_.reset();
  });
}

void Sentinels::watch(std::weak_ptr<Connection> connection) {
  asio::dispatch(strand_, [self = shared_from_this(), connection = std::move(connection)] {
    std::erase_if(self->watchers_, [](const auto& w) { return w.expired(); });
    self->watchers_.push_back(connection);
  });
}

asio::awaitable<result<RedisUrl::Address>> Sentinels::primary() {
  return asio::co_spawn(strand_, ask(), asio::use_awaitable);
}

asio::awaitable<result<RedisUrl::Address>> Sentinels::ask() {
  auto self = shared_from_this();
  // One question at a time: those asked meanwhile share its answer.
  if (asking_) {
    co_await answered_.async_wait(asio::as_tuple(asio::use_awaitable));
    if (stopped_) co_return closed();
    co_return answer_;
  }
  asking_ = true;
  std::string failures;  // each Sentinel's reason, for the error when none answers
  RedisUrl::Address named;
  for (std::size_t i = 0; i < order_.size() && named.host.empty() && !stopped_; ++i) {
    if (i > 0 || !sentinel_ || !sentinel_->ready()) {
      if (sentinel_) sentinel_->stop();
      sentinel_ =
          Connection::start(strand_.get_inner_executor(), {.url = sentinel_url(url_, order_[i]),
                                                           .connect_timeout = timeout_,
                                                           .command_timeout = timeout_,
                                                           .reconnect = false});
    }
    // Held here: stop() may drop sentinel_ meanwhile.
    auto sentinel = sentinel_;
    (void)co_await sentinel->wait_ready(timeout_);  // if not ready, the command says why
    auto reply = co_await sentinel->command(get_master_addr(url_.service));
    std::string why;
    named = parse_answer(order_[i], url_.service, reply, why);
    if (named.host.empty()) {
      failures += (failures.empty() ? "" : "; ") + why;
      sentinel->stop();
      if (sentinel_ == sentinel) sentinel_.reset();
    } else {
      // The Sentinel that answered (and its open connection) goes first next time.
      std::rotate(order_.begin(), order_.begin() + i, order_.begin() + i + 1);
    }
  }
  if (stopped_) {
    answer_ = closed();
  } else if (named.host.empty()) {
    answer_ = make_error(
        errc::store_unavailable,
        "Redis at " + url_.redacted() + ": no Sentinel named the primary (" + failures + ")");
  } else {
    answer_ = named;
    if (!primary_.host.empty() && named != primary_) {
      // A failover: whoever is still on the old primary leaves it.
      for (const auto& weak : watchers_) {
        if (auto connection = weak.lock()) connection->primary_replaced(named);
      }
    }
    primary_ = named;
  }
  asking_ = false;
  answered_.cancel();
  co_return answer_;
}

Error Sentinels::closed() const {
  return make_error(errc::store_unavailable, "Redis at " + url_.redacted() + ": closed");
}

asio::awaitable<void> Sentinels::poll() {
  auto self = shared_from_this();
  while (!stopped_) {
    pause_.expires_after(kWatchInterval);
    co_await pause_.async_wait(asio::as_tuple(asio::use_awaitable));
    std::erase_if(watchers_, [](const auto& w) { return w.expired(); });
    if (!stopped_ && !watchers_.empty()) (void)co_await ask();
  }
}

}  // namespace replayrail::resp
