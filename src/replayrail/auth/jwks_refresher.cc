#include "replayrail/auth/jwks_refresher.h"

#include <spdlog/spdlog.h>

#include <algorithm>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/ssl.hpp>
#include <boost/asio/this_coro.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/beast/core/tcp_stream.hpp>
#include <boost/beast/http.hpp>
#include <boost/beast/ssl/ssl_stream.hpp>
#include <boost/json/parse.hpp>
#include <optional>
#include <utility>

#include "replayrail/common/http_url.h"
#include "replayrail/common/tls_client.h"

namespace replayrail::auth {
namespace {

namespace asio = boost::asio;
namespace beast = boost::beast;
namespace http = beast::http;
using tcp = asio::ip::tcp;

// A JWK set is a few kilobytes; this bounds what a wrong URL can make the server read.
constexpr std::size_t kMaxBody = 1 << 20;

template <class Stream>
asio::awaitable<void> exchange(Stream& stream, const HttpUrl& t,
                               http::response_parser<http::string_body>& parser) {
  http::request<http::empty_body> req{http::verb::get, t.target, 11};
  req.set(http::field::host, t.host);
  req.set(http::field::accept, "application/json");
  req.set(http::field::user_agent, "replayrail");
  co_await http::async_write(stream, req, asio::use_awaitable);
  beast::flat_buffer buffer;
  co_await http::async_read(stream, buffer, parser, asio::use_awaitable);
}

// The body of a 200 answer to GET `t`, or what went wrong.
asio::awaitable<result<std::string>> get(HttpUrl t) {
  try {
    auto executor = co_await asio::this_coro::executor;
    auto endpoints =
        co_await tcp::resolver(executor).async_resolve(t.host, t.port, asio::use_awaitable);
    beast::tcp_stream tcp(executor);
    co_await tcp.async_connect(endpoints, asio::use_awaitable);
    http::response_parser<http::string_body> parser;
    parser.body_limit(kMaxBody);
    if (t.tls) {
      // Made here, so that it lives as long as the stream: a fetch cut off ends with the
      // io_context, which destroys this frame.
      auto context = tls_client::trusting_the_system();
      beast::ssl_stream<beast::tcp_stream> stream(std::move(tcp), context);
      if (auto ec = tls_client::name_server(stream, t.host)) throw boost::system::system_error(ec);
      co_await stream.async_handshake(asio::ssl::stream_base::client, asio::use_awaitable);
      co_await exchange(stream, t, parser);
    } else {
      co_await exchange(tcp, t, parser);
    }
    auto& res = parser.get();
    if (res.result() != http::status::ok) {
      // Redirects are not followed (a jwks_uri is the set's own address); the message says
      // where to point the URL instead.
      std::string where(res[http::field::location]);
      co_return make_error(errc::internal, "answered HTTP " + std::to_string(res.result_int()) +
                                               (where.empty() ? "" : " (Location: " + where + ")"));
    }
    co_return std::move(res.body());
  } catch (const boost::system::system_error& e) {
    co_return make_error(errc::internal, e.code().message());
  }
}

// The body of a 200 answer to GET `url` on `io` (stopping `io` cuts it off), or what failed,
// after the URL.
result<std::string> fetch_body(asio::io_context& io, const std::string& url,
                               std::chrono::milliseconds timeout) {
  HttpUrl target;
  RR_TRY_ASSIGN(target, parse_http_url(url));
  std::optional<result<std::string>> body;
  asio::co_spawn(io, get(std::move(target)),
                 [&body](std::exception_ptr failed, result<std::string> got) {
                   if (!failed) {
                     body = std::move(got);
                     return;
                   }
                   try {  // a bug: get() turns what it expects into errors
                     std::rethrow_exception(failed);
                   } catch (const std::exception& e) {
                     body = make_error(errc::internal, e.what());
                   }
                 });
  io.run_for(timeout);
  if (!body) {
    return make_error(errc::internal,
                      url + ": no answer within " + std::to_string(timeout.count()) + " ms");
  }
  if (!*body) return make_error(body->error().code, url + ": " + body->error().message);
  return std::move(**body);
}

// fetch_jwks on `io`: stopping `io` cuts it off.
result<PublicKeys> fetch_on(asio::io_context& io, const std::string& url,
                            std::chrono::milliseconds timeout) {
  std::string body;
  RR_TRY_ASSIGN(body, fetch_body(io, url, timeout));
  auto keys = PublicKey::from_jwks(body);
  if (!keys) return make_error(keys.error().code, url + ": " + keys.error().message);
  return keys;
}

// discover_jwks_uri on `io`: stopping `io` cuts it off.
result<std::string> discover_on(asio::io_context& io, const std::string& issuer,
                                std::chrono::milliseconds timeout) {
  std::string url = issuer;
  while (url.ends_with('/')) url.pop_back();
  url += "/.well-known/openid-configuration";
  std::string body;
  RR_TRY_ASSIGN(body, fetch_body(io, url, timeout));
  auto bad = [&](const std::string& why) {
    return make_error(errc::internal,
                      url + ": not the OpenID configuration of " + issuer + ": " + why);
  };
  boost::system::error_code ec;
  auto parsed = boost::json::parse(body, ec);
  if (ec || !parsed.is_object()) return bad("not a JSON object");
  const auto& doc = parsed.get_object();
  const auto* named = doc.if_contains("issuer");
  if (!named || !named->is_string()) return bad("no issuer");
  // Discovery §4.3: the document's issuer is the one asked, exactly, or its keys are not trusted.
  if (named->get_string() != issuer) {
    return bad("it names the issuer " + std::string(named->get_string()));
  }
  const auto* jwks_uri = doc.if_contains("jwks_uri");
  if (!jwks_uri || !jwks_uri->is_string()) return bad("no jwks_uri");
  std::string found(jwks_uri->get_string());
  if (auto checked = parse_http_url(found); !checked) {
    return bad("jwks_uri " + found + ": " + checked.error().message);
  }
  return found;
}

std::string key_ids(const PublicKeys& keys) {
  std::string out;
  for (const auto& key : keys) {
    out += (out.empty() ? "" : ", ") + (key->kid().empty() ? "(no kid)" : key->kid());
  }
  return out;
}

}  // namespace

result<PublicKeys> fetch_jwks(const std::string& url, std::chrono::milliseconds timeout) {
  asio::io_context io;
  return fetch_on(io, url, timeout);
}

result<std::string> discover_jwks_uri(const std::string& issuer,
                                      std::chrono::milliseconds timeout) {
  asio::io_context io;
  return discover_on(io, issuer, timeout);
}

JwksRefresher::JwksRefresher(Options options, OnKeys on_keys, OnFailure on_failure)
    : options_(std::move(options)),
      url_(options_.url),
      on_keys_(std::move(on_keys)),
      on_failure_(std::move(on_failure)) {
  thread_ = std::thread([this] { run(); });
  std::unique_lock lock(mu_);
  cv_.wait(lock, [this] { return attempts_ > 0; });
}

JwksRefresher::~JwksRefresher() {
  {
    std::lock_guard lock(mu_);
    stopping_ = true;
    if (fetching_) fetching_->stop();
  }
  cv_.notify_all();
  thread_.join();
}

void JwksRefresher::refresh_soon() {
  {
    std::lock_guard lock(mu_);
    if (soon_) return;
    soon_ = true;
  }
  cv_.notify_all();
}

void JwksRefresher::run() {
  using clock = std::chrono::steady_clock;
  std::chrono::milliseconds backoff = std::chrono::seconds(1);
  std::string loaded;  // the key ids of the last set, to log when they change
  for (;;) {
    auto io = std::make_shared<asio::io_context>();
    {
      // Under the lock with the check of stopping_: the destructor either sees this fetch and
      // stops it, or comes first and this thread returns.
      std::lock_guard lock(mu_);
      if (stopping_) return;
      soon_ = false;
      fetching_ = io;
    }
    // Without the set's URL yet: this round discovers it, and the next fetches the keys at once.
    const bool discovering = url_.empty();
    result<PublicKeys> keys = PublicKeys{};
    if (discovering) {
      auto found = discover_on(*io, options_.issuer, options_.timeout);
      if (found) {
        url_ = std::move(*found);
      } else {
        keys = found.error();
      }
    } else {
      keys = fetch_on(*io, url_, options_.timeout);
    }
    const auto fetched = clock::now();
    {
      std::lock_guard lock(mu_);
      fetching_.reset();
      if (stopping_) return;
    }
    io.reset();  // ends what a fetch cut off by its timeout left
    if (discovering && keys) {
      spdlog::info("JWT keys: the OpenID provider {} publishes them at {}", options_.issuer, url_);
      continue;
    }
    auto next = fetched + options_.refresh;
    if (keys) {
      auto ids = key_ids(*keys);
      if (ids != loaded) spdlog::info("JWT keys of {} loaded: {}", url_, ids);
      loaded = std::move(ids);
      on_keys_(std::move(*keys));
      backoff = std::chrono::seconds(1);
    } else {
      next = fetched + std::min(backoff, options_.refresh);
      spdlog::warn("JWT keys: {}; {}, trying again in {} ms", keys.error().message,
                   loaded.empty() ? "no token of the provider passes until they load"
                                  : "keeping the keys loaded before",
                   std::min(backoff, options_.refresh).count());
      backoff = std::min(2 * backoff, options_.refresh);
      if (on_failure_) on_failure_();
    }
    std::unique_lock lock(mu_);
    if (++attempts_ == 1) cv_.notify_all();  // the constructor waits for the first
    cv_.wait_until(lock, next, [this] { return stopping_ || soon_; });
    // Asked for sooner: not before min_gap has passed since the last fetch.
    if (soon_) {
      cv_.wait_until(lock, std::min(next, fetched + options_.min_gap),
                     [this] { return stopping_; });
    }
  }
}

}  // namespace replayrail::auth
