#include "replayrail/resp/cluster.h"

#include <spdlog/spdlog.h>

#include <algorithm>
#include <boost/asio/as_tuple.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/dispatch.hpp>
#include <boost/asio/experimental/awaitable_operators.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/this_coro.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/crc.hpp>
#include <charconv>
#include <numeric>

namespace replayrail::resp {

namespace asio = boost::asio;

namespace {

constexpr auto kToken = asio::as_tuple(asio::use_awaitable);

// Redirections followed for one command before its last answer is returned as it is.
constexpr int kMaxRedirections = 16;
// A command answered TRYAGAIN is sent again after a pause that grows from the first to the
// second, for as long as the third: a slot's migration lasts as long as moving its keys takes.
constexpr Millis kTryAgainPause{10};
constexpr Millis kTryAgainPauseMax{200};
constexpr Millis kTryAgainFor{10000};
// The map is read again this often without a redirection, to notice failovers.
constexpr Millis kRefreshEvery{5000};
// Refreshes asked for by redirections are at least this far apart.
constexpr Millis kRefreshGap{50};
// After a failed refresh.
constexpr Millis kRefreshRetry{250};

// "MOVED 3999 127.0.0.1:6381" / "ASK 3999 127.0.0.1:6381": the slot and the address.
std::optional<std::pair<std::uint16_t, std::string>> parse_redirection(const Reply& reply) {
  std::string_view text = reply.str;
  auto first = text.find(' ');
  auto second = text.find(' ', first + 1);
  if (first == std::string_view::npos || second == std::string_view::npos) return std::nullopt;
  std::uint16_t slot = 0;
  auto digits = text.substr(first + 1, second - first - 1);
  auto [end, ec] = std::from_chars(digits.data(), digits.data() + digits.size(), slot);
  if (ec != std::errc() || end != digits.data() + digits.size() || slot >= Cluster::kSlots) {
    return std::nullopt;
  }
  return std::make_pair(slot, std::string(text.substr(second + 1)));
}

std::string address_of(const RedisUrl& url) { return url.host + ":" + std::to_string(url.port); }

// The addresses that own a slot in `slot_owner`, sorted. Slots come in ranges of one owner, so
// each is compared with the one before first: a pass over 16384 strings, none copied (a set of
// them all cost ~1 ms, under the lock every send takes, on each /readyz or stream listing).
std::vector<std::string> distinct_owners(const std::vector<std::string>& slot_owner) {
  std::vector<std::string> out;
  const std::string* last = nullptr;
  for (const auto& owner : slot_owner) {
    if (owner.empty() || (last && *last == owner)) continue;
    last = &owner;
    if (std::find(out.begin(), out.end(), owner) == out.end()) out.push_back(owner);
  }
  std::sort(out.begin(), out.end());
  return out;
}

}  // namespace

std::uint16_t key_slot(std::string_view key) {
  if (auto open = key.find('{'); open != std::string_view::npos) {
    auto close = key.find('}', open + 1);
    if (close != std::string_view::npos && close > open + 1) {
      key = key.substr(open + 1, close - open - 1);
    }
  }
  // CRC-16/XMODEM, the cluster specification's CRC16.
  boost::crc_optimal<16, 0x1021, 0, 0, false, false> crc;
  crc.process_bytes(key.data(), key.size());
  return static_cast<std::uint16_t>(crc.checksum() % Cluster::kSlots);
}

Cluster::Cluster(asio::any_io_executor executor, Options options)
    : executor_(executor),
      strand_(asio::make_strand(executor)),
      options_(std::move(options)),
      wake_(strand_),
      ready_signal_(strand_, asio::steady_timer::time_point::max()),
      slot_owner_(kSlots) {}

std::shared_ptr<Cluster> Cluster::start(asio::any_io_executor executor, Options options) {
  std::shared_ptr<Cluster> c(new Cluster(std::move(executor), std::move(options)));
  asio::co_spawn(c->strand_, c->refresh_loop(), asio::detached);
  return c;
}

void Cluster::stop() {
  std::map<std::string, std::shared_ptr<Connection>> connections;
  {
    std::lock_guard lock(mu_);
    stopped_ = true;
    connections = connections_;
  }
  for (auto& [address, c] : connections) c->stop();
  asio::dispatch(strand_, [self = shared_from_this()] {
    self->wake_.cancel();
    self->ready_signal_.cancel();
  });
}

RedisUrl Cluster::url_of(const std::string& address) const {
  RedisUrl url = options_.url;
  auto colon = address.rfind(':');
  url.host = address.substr(0, colon);
  if (url.host.empty()) url.host = options_.url.host;  // an unknown endpoint: the seed's host
  std::from_chars(address.data() + colon + 1, address.data() + address.size(), url.port);
  url.db = 0;
  return url;
}

std::shared_ptr<Connection> Cluster::connection_to(const std::string& address) {
  std::lock_guard lock(mu_);
  auto& c = connections_[address];
  if (!c) {
    c = Connection::start(executor_, {.url = url_of(address)});
    if (stopped_) c->stop();
  }
  return c;
}

std::optional<Cluster::Node> Cluster::node(std::uint16_t slot) const {
  std::lock_guard lock(mu_);
  const std::string& owner = slot_owner_[slot];
  auto it = connections_.find(owner);
  if (owner.empty() || it == connections_.end()) return std::nullopt;
  return Node{owner, url_of(owner), it->second};
}

std::vector<Cluster::Node> Cluster::primaries() const {
  std::lock_guard lock(mu_);
  std::vector<Node> out;
  for (const auto& address : owners_) {
    if (auto it = connections_.find(address); it != connections_.end()) {
      out.push_back({address, url_of(address), it->second});
    }
  }
  return out;
}

bool Cluster::stopped() const {
  std::lock_guard lock(mu_);
  return stopped_;
}

bool Cluster::ready() const {
  std::lock_guard lock(mu_);
  return known_;
}

Error Cluster::not_ready_error() const {
  std::lock_guard lock(mu_);
  return make_error(errc::store_unavailable,
                    "Redis Cluster at " + options_.url.redacted() + ": " +
                        (last_failure_.empty() ? "the slot map is not known yet" : last_failure_));
}

bool Cluster::redirected(const Reply& reply) {
  if (!reply.error_is("MOVED")) return false;
  if (auto moved = parse_redirection(reply)) {
    connection_to(moved->second);
    std::lock_guard lock(mu_);
    slot_owner_[moved->first] = moved->second;
    owners_ = distinct_owners(slot_owner_);
  }
  request_refresh();
  return true;
}

namespace {

// Whether a node answered any of the commands with a redirection or TRYAGAIN.
bool redirects(const Reply& reply, std::size_t commands) {
  auto redirect = [](const Reply& r) {
    return r.is_error() && (r.error_is("MOVED") || r.error_is("ASK") || r.error_is("TRYAGAIN"));
  };
  if (commands == 1) return redirect(reply);
  return std::any_of(reply.elements.begin(), reply.elements.end(), redirect);
}

}  // namespace

asio::awaitable<result<Reply>> Cluster::send(std::uint16_t slot, Encoded encoded, Route route) {
  if (!ready()) co_await wait_ready(options_.connect_wait);
  // The usual case: the slot's owner runs every command.
  auto first = co_await send_to({}, slot, encoded, route);
  if (!first) co_return first;
  if (!redirects(*first, encoded.commands)) co_return first;
  co_return co_await redirect(slot, std::move(encoded), std::move(*first), route);
}

asio::awaitable<result<Reply>> Cluster::send_to(std::string address, std::uint16_t slot,
                                                Encoded encoded, const Route& route) {
  if (address.empty()) {
    std::lock_guard lock(mu_);
    address = slot_owner_[slot];
  }
  if (address.empty()) co_return not_ready_error();
  result<Reply> reply;
  if (route) {
    reply = co_await route(address, std::move(encoded));
  } else {
    auto connection = connection_to(address);
    if (!connection->ready()) co_await connection->wait_ready(options_.connect_wait);
    reply = co_await connection->send(std::move(encoded));
  }
  if (!reply) request_refresh();  // the node may be gone: a failover changes the map
  co_return reply;
}

asio::awaitable<result<Reply>> Cluster::redirect(std::uint16_t slot, Encoded encoded, Reply first,
                                                 const Route& route) {
  const std::size_t n = encoded.commands;
  std::vector<std::size_t> todo(n);  // the commands of `encoded` still to be answered
  std::iota(todo.begin(), todo.end(), std::size_t{0});
  std::vector<Reply> replies(n);
  std::string ask_target;  // ASK: the importing node; empty: the slot's owner
  int redirections = 0;
  Millis pause = kTryAgainPause;
  const auto give_up = std::chrono::steady_clock::now() + kTryAgainFor;
  // Each round takes the answers to `sent` commands, then sends what they redirected.
  Reply reply = std::move(first);
  std::size_t sent = n;
  bool asking = false;
  for (;;) {
    // This round's answers, one per command of `todo` (ASKING's OKs skipped).
    std::vector<Reply> answers;
    if (sent == 1) {
      answers.push_back(std::move(reply));
    } else {
      answers = std::move(reply.elements);
    }
    if (asking) {
      for (std::size_t i = 0; i < todo.size(); ++i) answers[i] = std::move(answers[2 * i + 1]);
      answers.resize(todo.size());
    }
    std::vector<std::size_t> again;
    bool try_again = false;
    ask_target.clear();
    const bool may_redirect = redirections < kMaxRedirections;
    const bool may_try_again = std::chrono::steady_clock::now() < give_up;
    for (std::size_t i = 0; i < todo.size(); ++i) {
      Reply& answer = answers[i];
      if (answer.is_error()) {
        if (may_redirect && redirected(answer)) {
          again.push_back(todo[i]);
          continue;
        }
        if (may_redirect && answer.error_is("ASK")) {
          if (auto ask = parse_redirection(answer)) ask_target = ask->second;
          again.push_back(todo[i]);
          continue;
        }
        if (may_try_again && answer.error_is("TRYAGAIN")) {
          try_again = true;
          again.push_back(todo[i]);
          continue;
        }
      }
      replies[todo[i]] = std::move(answer);
    }
    if (again.empty()) break;
    todo = std::move(again);
    if (try_again) {
      asio::steady_timer timer(co_await asio::this_coro::executor, pause);
      co_await timer.async_wait(kToken);
      pause = std::min(pause * 2, kTryAgainPauseMax);
    } else {
      ++redirections;
    }
    asking = !ask_target.empty();
    Encoded part = encoded.subset(todo, asking);
    sent = part.commands;
    auto next = co_await send_to(ask_target, slot, std::move(part), route);
    if (!next) co_return next.error();
    reply = std::move(*next);
  }
  if (n == 1) co_return std::move(replies.front());
  Reply out;
  out.type = Reply::Type::array;
  out.elements = std::move(replies);
  co_return out;
}

asio::awaitable<bool> Cluster::wait_ready(Millis timeout) {
  auto deadline = std::chrono::steady_clock::now() + timeout;
  if (!ready()) {
    co_await asio::co_spawn(
        strand_,
        [](std::shared_ptr<Cluster> self, Millis timeout) -> asio::awaitable<void> {
          if (self->ready() || self->stopped()) co_return;
          asio::steady_timer expiry(self->strand_, timeout);
          using namespace asio::experimental::awaitable_operators;
          co_await (self->ready_signal_.async_wait(kToken) || expiry.async_wait(kToken));
        }(shared_from_this(), timeout),
        asio::use_awaitable);
  }
  if (!ready()) co_return false;
  for (const auto& node : primaries()) {
    auto left = std::chrono::duration_cast<Millis>(deadline - std::chrono::steady_clock::now());
    if (!node.connection->ready() && !co_await node.connection->wait_ready(left)) co_return false;
  }
  co_return true;
}

void Cluster::request_refresh() {
  asio::post(strand_, [self = shared_from_this()] {
    self->refresh_requested_ = true;
    self->wake_.cancel();
  });
}

asio::awaitable<void> Cluster::refresh_loop() {
  auto self = shared_from_this();
  bool warned = false;  // once per outage, not once per attempt
  while (!stopped()) {
    refresh_requested_ = false;
    auto refreshed = co_await refresh_once();
    if (refreshed) {
      if (warned) spdlog::info("Redis Cluster at {}: slot map read", options_.url.redacted());
      warned = false;
    } else {
      {
        std::lock_guard lock(mu_);
        last_failure_ = refreshed.error().message;
      }
      if (!warned) spdlog::warn("Redis Cluster: {}; retrying", refreshed.error().message);
      warned = true;
    }
    // A pause between refreshes, then the next one: on a request, or periodically.
    wake_.expires_after(refreshed ? kRefreshGap : kRefreshRetry);
    co_await wake_.async_wait(kToken);
    if (!refresh_requested_ && refreshed && !stopped()) {
      wake_.expires_after(kRefreshEvery);
      co_await wake_.async_wait(kToken);
    }
  }
}

asio::awaitable<result<void>> Cluster::refresh_once() {
  // Any node answers for the whole cluster: the seed, then the others known.
  std::vector<std::string> candidates{address_of(options_.url)};
  {
    std::lock_guard lock(mu_);
    for (const auto& [address, c] : connections_) {
      if (address != candidates.front()) candidates.push_back(address);
    }
  }
  std::string why = "no node answered";
  for (const auto& address : candidates) {
    auto connection = connection_to(address);
    if (!connection->ready() && !co_await connection->wait_ready(options_.connect_wait)) {
      continue;
    }
    std::vector<std::string> cmd{"CLUSTER", "SLOTS"};
    auto reply = co_await connection->command(cmd);
    if (!reply) {
      why = reply.error().message;
      continue;
    }
    if (reply->is_error()) {
      why = address + " answered CLUSTER SLOTS with " + reply->str;
      continue;
    }
    // [[start, end, [host, port, id, …] (the primary), replicas…], …]
    std::vector<std::string> owners(kSlots);
    for (const auto& range : reply->elements) {
      if (range.elements.size() < 3 || range.elements[2].elements.size() < 2) continue;
      const auto& primary = range.elements[2].elements;
      std::string host = primary[0].str;
      if (host.empty() || host == "?") host = url_of(address).host;
      std::string owner = host + ":" + std::to_string(primary[1].integer);
      auto first = std::clamp<std::int64_t>(range.elements[0].integer, 0, kSlots - 1);
      auto last = std::clamp<std::int64_t>(range.elements[1].integer, 0, kSlots - 1);
      for (auto s = first; s <= last; ++s) owners[static_cast<std::size_t>(s)] = owner;
    }
    std::vector<std::string> primaries = distinct_owners(owners);
    for (const auto& owner : primaries) connection_to(owner);
    std::vector<std::shared_ptr<Connection>> gone;
    {
      std::lock_guard lock(mu_);
      slot_owner_ = std::move(owners);
      owners_ = primaries;
      known_ = true;
      last_failure_.clear();
      // A node that serves no slot any more (failed over, removed, a replica now) is closed,
      // so a dead one is not reconnected to forever; the seed stays, to ask for the map.
      std::erase_if(connections_, [&](const auto& entry) {
        if (std::binary_search(primaries.begin(), primaries.end(), entry.first) ||
            entry.first == address_of(options_.url)) {
          return false;
        }
        gone.push_back(entry.second);
        return true;
      });
    }
    for (auto& connection : gone) connection->stop();
    ready_signal_.cancel();
    co_return result<void>{};
  }
  co_return make_error(errc::store_unavailable,
                       "Redis Cluster at " + options_.url.redacted() + ": " + why);
}

}  // namespace replayrail::resp
