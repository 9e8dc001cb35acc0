// `replayrail`: the server (`serve`) and its command-line clients (`publish`, `replay`, `tail`).
// Settings come from flags, then the environment, then a TOML file (`--config`), in that order
// of precedence (CLI11 reads all three).
#include <CLI/CLI.hpp>
#include <boost/asio/connect.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/beast/core/buffers_to_string.hpp>
#include <boost/beast/core/flat_buffer.hpp>
#include <boost/beast/core/tcp_stream.hpp>
#include <boost/beast/http.hpp>
#include <boost/beast/websocket.hpp>
#include <boost/json/parse.hpp>
#include <boost/json/serialize.hpp>
#include <boost/url/encode.hpp>
#include <boost/url/parse.hpp>
#include <boost/url/rfc/pchars.hpp>
#include <boost/url/rfc/unreserved_chars.hpp>
#include <chrono>
#include <cstdio>
#include <iostream>
#include <thread>

#include "replayrail/core/json_text.h"
#include "replayrail/resp/url.h"
#include "replayrail/server/server.h"
#include "replayrail/store/local/local_store.h"
#include "replayrail/store/memory/memory_store.h"
#include "replayrail/store/redis/redis_store.h"

namespace {

using namespace replayrail;
namespace asio = boost::asio;
namespace beast = boost::beast;
namespace http = beast::http;
namespace websocket = beast::websocket;
using tcp = asio::ip::tcp;

// Exit codes: 0 ok, 1 the server refused (HTTP error), 2 usage, 3 cannot reach the server.
constexpr int kRefused = 1;
constexpr int kUsage = 2;
constexpr int kUnreachable = 3;

struct ServeArgs {
  std::string store = "local";
  std::string data_dir = "replayrail-data";
  std::string fsync = "always";
  int fsync_interval_ms = 1000;
  std::string redis_url = "redis://127.0.0.1:6379/0";
  std::string redis_prefix = "rr";
  std::string listen = "127.0.0.1:8000";
  std::string start = "latest";
  bool redis_url_given = false;  // by --redis or REDIS_URL
  server::ServerOptions server;
};

// Settings a user of the seeds carries over that this server would otherwise ignore silently:
// an OpenStream deployment sets REDIS_URL and DATABASE_URL, and expects both to be used.
void warn_about_unused_settings(const ServeArgs& args) {
  if (args.redis_url_given && args.store != "redis") {
    std::fprintf(stderr,
                 "replayrail: warning: a Redis URL is set (--redis or REDIS_URL), but the store is "
                 "%s; add --store redis (or REPLAYRAIL_STORE=redis) to use Redis\n",
                 args.store.c_str());
  }
  if (const char* database = std::getenv("DATABASE_URL"); database && *database) {
    std::fprintf(stderr,
                 "replayrail: warning: DATABASE_URL is set, but this version has no PostgreSQL "
                 "archive yet; nothing is written there\n");
  }
}

int serve(ServeArgs& args) {
  auto colon = args.listen.rfind(':');
  if (colon == std::string::npos) {
    std::fprintf(stderr, "replayrail: --listen must be host:port, not '%s'\n", args.listen.c_str());
    return kUsage;
  }
  args.server.host = args.listen.substr(0, colon);
  if (args.server.host.starts_with('[')) args.server.host = args.server.host.substr(1);
  if (args.server.host.ends_with(']')) args.server.host.pop_back();
  try {
    args.server.port = static_cast<std::uint16_t>(std::stoul(args.listen.substr(colon + 1)));
  } catch (const std::exception&) {
    std::fprintf(stderr, "replayrail: bad port in --listen '%s'\n", args.listen.c_str());
    return kUsage;
  }
  args.server.rail.default_start_position =
      args.start == "earliest" ? StartPosition::earliest : StartPosition::latest;
  warn_about_unused_settings(args);

  server::StoreFactory factory =
      [&](asio::any_io_executor executor) -> result<std::shared_ptr<store::Store>> {
    if (args.store == "memory")
      return std::shared_ptr<store::Store>(std::make_shared<store::MemoryStore>());
    if (args.store == "redis") {
      resp::RedisUrl url;
      RR_TRY_ASSIGN(url, resp::parse_redis_url(args.redis_url));
      return std::shared_ptr<store::Store>(
          store::RedisStore::connect(executor, {.url = url, .prefix = args.redis_prefix}));
    }
    // --fsync is checked when parsed: always, batch or never.
    auto fsync = store::local::parse_fsync(args.fsync).value_or(store::local::Fsync::always);
    std::shared_ptr<store::LocalStore> local;
    RR_TRY_ASSIGN(local, store::LocalStore::open({.dir = args.data_dir,
                                                  .fsync = fsync,
                                                  .fsync_interval = std::chrono::milliseconds(
                                                      args.fsync_interval_ms)}));
    return std::shared_ptr<store::Store>(local);
  };
  auto server = server::Server::create(args.server, factory);
  if (!server) {
    std::fprintf(stderr, "replayrail: %s\n", server.error().message.c_str());
    return kRefused;
  }
  std::printf("replayrail: serving on http://%s:%u (store: %s)\n", args.server.host.c_str(),
              (*server)->port(), args.store.c_str());
  std::fflush(stdout);
  (*server)->run();
  std::printf("replayrail: stopped\n");
  return 0;
}

// --url http://host:port
struct Endpoint {
  std::string host;
  std::string port;
};

std::optional<Endpoint> parse_base_url(const std::string& text) {
  auto url = boost::urls::parse_absolute_uri(text);
  if (!url || url->scheme() != "http" || url->encoded_host().empty()) return std::nullopt;
  return Endpoint{std::string(url->host_address()),
                  url->has_port() ? std::string(url->port()) : "80"};
}

std::string path_segment(std::string_view s) {
  return boost::urls::encode(s, boost::urls::unreserved_chars);
}

// One HTTP request; prints the body. Exit code by status.
int http_call(const Endpoint& at, http::verb verb, const std::string& target, std::string body) {
  try {
    asio::io_context io;
    beast::tcp_stream stream(io);
    stream.expires_after(std::chrono::seconds(30));
    stream.connect(tcp::resolver(io).resolve(at.host, at.port));
    http::request<http::string_body> req{verb, target, 11};
    req.set(http::field::host, at.host);
    if (!body.empty()) {
      req.set(http::field::content_type, "application/json");
      req.body() = std::move(body);
      req.prepare_payload();
    }
    http::write(stream, req);
    beast::flat_buffer buffer;
    http::response<http::string_body> res;
    http::read(stream, buffer, res);
    std::printf("%s\n", res.body().c_str());
    return res.result_int() < 300 ? 0 : kRefused;
  } catch (const std::exception& e) {
    std::fprintf(stderr, "replayrail: cannot reach http://%s:%s: %s\n", at.host.c_str(),
                 at.port.c_str(), e.what());
    return kUnreachable;
  }
}

// Follows a channel over WebSocket, printing one JSON line per event; reconnects with the last
// cursor it printed, so nothing is missed or repeated across reconnects.
int tail(const Endpoint& at, const std::string& channel, std::string cursor) {
  auto backoff = std::chrono::milliseconds(100);
  for (;;) {
    try {
      asio::io_context io;
      websocket::stream<tcp::socket> ws(io);
      asio::connect(ws.next_layer(), tcp::resolver(io).resolve(at.host, at.port));
      std::string target = "/ws/" + path_segment(channel);
      if (!cursor.empty()) target += "?last_event_id=" + cursor;
      ws.handshake(at.host + ":" + at.port, target);
      backoff = std::chrono::milliseconds(100);
      beast::flat_buffer buffer;
      for (;;) {
        ws.read(buffer);
        std::string frame = beast::buffers_to_string(buffer.data());
        buffer.clear();
        std::printf("%s\n", frame.c_str());
        std::fflush(stdout);
        boost::system::error_code ec;
        auto value = boost::json::parse(frame, ec);
        if (!ec && value.is_object() && value.as_object().contains("id")) {
          cursor = value.as_object().at("id").as_string().c_str();
        }
      }
    } catch (const boost::system::system_error& e) {
      if (e.code() == websocket::error::closed) {
        // The server closed on purpose: a 44xx code is final (bad cursor, window expired).
        std::fprintf(stderr, "replayrail: closed by the server: %s\n", e.what());
        return kRefused;
      }
      std::fprintf(stderr, "replayrail: %s; reconnecting after %s\n", e.what(),
                   cursor.empty() ? "the start position" : cursor.c_str());
    }
    std::this_thread::sleep_for(backoff);
    backoff = std::min(backoff * 2, std::chrono::milliseconds(5000));
  }
}

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{"ReplayRail: durable, replayable, auditable realtime events"};
  app.require_subcommand(1);
  app.set_config("--config", "", "TOML file with settings (flags and environment win)");

  ServeArgs s;
  auto* serve_cmd = app.add_subcommand("serve", "Run the server");
  serve_cmd->add_option("--store", s.store, "memory | local | redis")
      ->check(CLI::IsMember({"memory", "local", "redis"}))
      ->envname("REPLAYRAIL_STORE")
      ->capture_default_str();
  serve_cmd->add_option("--data-dir", s.data_dir, "Local store directory")
      ->envname("REPLAYRAIL_DATA_DIR")
      ->capture_default_str();
  serve_cmd->add_option("--fsync", s.fsync, "Local store durability: always | batch | never")
      ->check(CLI::Validator(
          [](std::string& v) {
            return store::local::parse_fsync(v) ? "" : v + " is not always, batch or never";
          },
          "", "fsync"))
      ->capture_default_str();
  serve_cmd
      ->add_option("--fsync-interval-ms", s.fsync_interval_ms,
                   "With --fsync batch: the most time before a commit is fsynced")
      ->check(CLI::Range(1, 3'600'000))
      ->capture_default_str();
  auto* redis_option =
      serve_cmd->add_option("--redis", s.redis_url, "Redis URL (redis:// or rediss://)")
          ->envname("REDIS_URL")
          ->capture_default_str();
  serve_cmd->add_option("--redis-prefix", s.redis_prefix, "Redis key prefix")
      ->capture_default_str();
  serve_cmd->add_option("--listen", s.listen, "host:port to listen on")
      ->envname("REPLAYRAIL_LISTEN")
      ->capture_default_str();
  serve_cmd->add_option("--threads", s.server.threads, "Event-loop threads (0 = one per core)")
      ->capture_default_str();
  serve_cmd->add_flag("--insecure", s.server.insecure, "Allow a non-loopback address without auth");
  serve_cmd
      ->add_option("--default-start-position", s.start,
                   "Where a subscriber without a cursor starts: latest | earliest")
      ->check(CLI::IsMember({"latest", "earliest"}))
      ->capture_default_str();
  serve_cmd
      ->add_option("--max-stream-length", s.server.rail.max_stream_length,
                   "Retention: newest events kept per stream")
      ->capture_default_str();
  serve_cmd->add_option("--max-body-bytes", s.server.max_body_bytes, "Largest request body")
      ->capture_default_str();
  serve_cmd
      ->add_option("--auth-jwt-secret", s.server.jwt.secret,
                   "HS256 secret of the JWTs clients present; auth is off without it")
      ->envname("AUTH_JWT_SECRET");
  serve_cmd->add_option("--auth-jwt-issuer", s.server.jwt.issuer, "Required `iss` of tokens")
      ->envname("AUTH_JWT_ISSUER");
  serve_cmd->add_option("--auth-jwt-audience", s.server.jwt.audience, "Required `aud` of tokens")
      ->envname("AUTH_JWT_AUDIENCE");
  serve_cmd
      ->add_option("--auth-admin-secret", s.server.admin_secret,
                   "Enables POST /v1/auth/token (dev token minting) for who knows it")
      ->envname("AUTH_ADMIN_SECRET");
  serve_cmd
      ->add_option("--partitions-default", s.server.default_partitions,
                   "Partitions of a topic created without a count")
      ->check(CLI::Range(1u, kMaxPartitions))
      ->envname("PARTITIONS_DEFAULT")
      ->capture_default_str();
  serve_cmd
      ->add_option("--max-batch", s.server.max_batch,
                   "Events per POST /v1/topics/{topic}/events at most")
      ->check(CLI::Range(std::size_t{1}, std::size_t{100000}))
      ->capture_default_str();
  serve_cmd
      ->add_option("--cors-allow-origins", s.server.cors_origins,
                   "Origins browsers may call the API from, comma-separated (\"*\": any)")
      ->delimiter(',')
      ->envname("CORS_ALLOW_ORIGINS");
  auto& bp = s.server.backpressure;
  serve_cmd
      ->add_option("--backpressure-max-stream-len", bp.max_stream_length,
                   "Publishes get 429 while a stream (a topic partition) holds this many events "
                   "(0: no cap)")
      ->envname("BACKPRESSURE_MAX_STREAM_LEN")
      ->capture_default_str();
  serve_cmd
      ->add_option("--backpressure-max-group-lag", bp.max_group_lag,
                   "Publishes get 429 while a consumer group of the stream would fall more than "
                   "this many events behind (0: no threshold)")
      ->envname("BACKPRESSURE_MAX_GROUP_LAG")
      ->capture_default_str();
  serve_cmd
      ->add_option("--backpressure-max-group-pending", bp.max_group_pending,
                   "Publishes get 429 while a consumer group of the stream has this many "
                   "unacknowledged events (0: no threshold)")
      ->envname("BACKPRESSURE_MAX_GROUP_PENDING")
      ->capture_default_str();
  serve_cmd
      ->add_option("--backpressure-max-inflight", bp.max_inflight,
                   "Publishes get 429 while this many events are on their way to the store")
      ->check(CLI::Range(std::uint64_t{1}, std::uint64_t{1'000'000'000}))
      ->envname("BACKPRESSURE_MAX_INFLIGHT")
      ->capture_default_str();
  serve_cmd
      ->add_option_function<std::uint64_t>(
          "--backpressure-retry-after",
          [&bp](std::uint64_t seconds) { bp.retry_after = std::chrono::seconds(seconds); },
          "Retry-After (seconds) of a 429")
      ->check(CLI::Range(1, 3600))
      ->default_str("1");
  serve_cmd
      ->add_option("--max-frame-bytes", s.server.max_frame_bytes,
                   "Largest incoming WebSocket message")
      ->capture_default_str();
  serve_cmd->add_option("--max-connections", s.server.max_connections, "Connections at most")
      ->capture_default_str();
  serve_cmd
      ->add_option("--max-outbound-bytes", s.server.max_outbound_bytes,
                   "Bytes queued for one WebSocket/SSE client before it counts as slow")
      ->capture_default_str();
  serve_cmd
      ->add_option("--max-subscriptions", s.server.max_subscriptions,
                   "Subscriptions per replayrail.v1 connection")
      ->capture_default_str();
  serve_cmd
      ->add_option_function<std::uint64_t>(
          "--fanout-gather-ms",
          [&s](std::uint64_t ms) { s.server.fanout_gather = std::chrono::milliseconds(ms); },
          "Longest a busy stream's new events wait to reach each subscriber in one write (10 us "
          "per subscriber, up to this; a first event after a quiet spell never waits; 0: off)")
      ->check(CLI::Range(0, 1000))
      ->envname("FANOUT_GATHER_MS")
      ->default_str("10");
  serve_cmd
      ->add_option_function<std::uint64_t>(
          "--shutdown-grace-ms",
          [&s](std::uint64_t ms) { s.server.shutdown_grace = std::chrono::milliseconds(ms); },
          "SIGTERM: how long streaming sessions and requests in progress get to finish")
      ->check(CLI::Range(0, 600000))
      ->default_str("5000");

  std::string url = "http://127.0.0.1:8000";
  std::string channel, type, payload = "{}", actor, metadata, event_id, after = "0-0", from;
  std::size_t limit = 100;
  auto* publish_cmd = app.add_subcommand("publish", "Publish one event");
  publish_cmd->add_option("channel", channel, "Channel")->required();
  publish_cmd->add_option("type", type, "Event type, e.g. order.created")->required();
  publish_cmd->add_option("--payload", payload, "JSON object")->capture_default_str();
  publish_cmd->add_option("--actor", actor, "JSON object: who did it");
  publish_cmd->add_option("--metadata", metadata, "JSON object");
  publish_cmd->add_option("--event-id", event_id, "Idempotency key (a retry is not stored twice)");
  auto* replay_cmd = app.add_subcommand("replay", "Print a page of a channel's events");
  replay_cmd->add_option("channel", channel, "Channel")->required();
  replay_cmd->add_option("--after", after, "Cursor: events strictly after it")
      ->capture_default_str();
  replay_cmd->add_option("--limit", limit, "Events at most")->capture_default_str();
  auto* tail_cmd = app.add_subcommand("tail", "Follow a channel live (JSON lines)");
  tail_cmd->add_option("channel", channel, "Channel")->required();
  tail_cmd->add_option("--from", from, "Cursor to start after (default: the server's setting)");
  for (auto* cmd : {publish_cmd, replay_cmd, tail_cmd}) {
    cmd->add_option("--url", url, "Server")->envname("REPLAYRAIL_URL")->capture_default_str();
  }

  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    // Prints the help (exit 0) or what was wrong with the arguments.
    return app.exit(e) == 0 ? 0 : kUsage;
  }
  if (serve_cmd->parsed()) {
    s.redis_url_given = redis_option->count() > 0;
    return serve(s);
  }

  auto at = parse_base_url(url);
  if (!at) {
    std::fprintf(stderr, "replayrail: --url must look like http://host:port, not '%s'\n",
                 url.c_str());
    return kUsage;
  }
  if (publish_cmd->parsed()) {
    // The server validates everything; the JSON fields are passed through as given.
    auto json_or_exit = [](const std::string& name, const std::string& text) {
      auto v = replayrail::parse_json(text);
      if (!v) {
        std::fprintf(stderr, "replayrail: --%s %s\n", name.c_str(), v.error().message.c_str());
        std::exit(2);
      }
      return std::move(*v);
    };
    boost::json::object body{{"type", type}, {"payload", json_or_exit("payload", payload)}};
    if (!actor.empty()) body["actor"] = json_or_exit("actor", actor);
    if (!metadata.empty()) body["metadata"] = json_or_exit("metadata", metadata);
    if (!event_id.empty()) body["event_id"] = event_id;
    return http_call(*at, http::verb::post, "/events/" + path_segment(channel),
                     replayrail::to_json(body));
  }
  if (replay_cmd->parsed()) {
    return http_call(*at, http::verb::get,
                     "/events/" + path_segment(channel) + "?after=" + path_segment(after) +
                         "&limit=" + std::to_string(limit),
                     {});
  }
  return tail(*at, channel, from);
}
