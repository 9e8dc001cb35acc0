// `replayrail`: the server (`serve`), its command-line clients (`publish`, `replay`, `tail`,
// `groups …`) and `token`. Settings come from flags, then the environment, then a TOML file
// (`--config`), in that order of precedence (CLI11 reads all three).
#include <CLI/CLI.hpp>
#include <boost/asio/executor_work_guard.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/signal_set.hpp>
#include <boost/json/object.hpp>
#include <boost/url/parse.hpp>
#include <boost/url/url.hpp>
#include <charconv>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <deque>
#include <map>
#include <thread>

#include "replayrail/archive/loop.h"
#include "replayrail/cli/client.h"
#include "replayrail/common/stream_id.h"
#include "replayrail/core/json_text.h"
#include "replayrail/log/log.h"
#include "replayrail/resp/url.h"
#include "replayrail/server/server.h"
#include "replayrail/store/local/local_store.h"
#include "replayrail/store/memory/memory_store.h"
#include "replayrail/store/redis/redis_store.h"

namespace {

using namespace replayrail;
using namespace replayrail::cli;
namespace asio = boost::asio;
namespace http = boost::beast::http;
namespace json = boost::json;

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
  std::string log_level = "info";
  std::string log_format = "text";
  std::string database_url;  // the PostgreSQL archive; empty: none
  int archive_interval_ms = 1000;
  server::ServerOptions server;
};

// `url` without its password, for the log.
std::string redact_url(const std::string& url) {
  auto parsed = boost::urls::parse_uri(url);
  if (!parsed || !parsed->has_password()) return url;
  boost::urls::url copy(*parsed);
  copy.set_password("***");
  return std::string(copy.buffer());
}

// The store `args` name (--store, --data-dir, --fsync…, --redis…), its I/O on `executor`.
result<std::shared_ptr<store::Store>> open_store(const ServeArgs& args,
                                                 asio::any_io_executor executor) {
  if (args.store == "memory") {
    return std::shared_ptr<store::Store>(std::make_shared<store::MemoryStore>());
  }
  if (args.store == "redis") {
    resp::RedisUrl url;
    RR_TRY_ASSIGN(url, resp::parse_redis_url(args.redis_url));
    return std::shared_ptr<store::Store>(
        store::RedisStore::connect(executor, {.url = url, .prefix = args.redis_prefix}));
  }
  // --fsync is checked when parsed: always, batch or never.
  auto fsync = store::local::parse_fsync(args.fsync).value_or(store::local::Fsync::always);
  std::shared_ptr<store::LocalStore> local;
  RR_TRY_ASSIGN(local, store::LocalStore::open(
                           {.dir = args.data_dir,
                            .fsync = fsync,
                            .fsync_interval = std::chrono::milliseconds(args.fsync_interval_ms)}));
  return std::shared_ptr<store::Store>(local);
}

// A setting a user of the seeds carries over that this server would otherwise ignore silently:
// an OpenStream deployment sets REDIS_URL, and expects it to be used.
void warn_about_unused_settings(const ServeArgs& args) {
  if (args.redis_url_given && args.store != "redis") {
    spdlog::warn(
        "a Redis URL is set (--redis or REDIS_URL), but the store is {}; add --store redis (or "
        "REPLAYRAIL_STORE=redis) to use Redis",
        args.store);
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
  args.server.database_url = args.database_url;
  args.server.archive_interval = std::chrono::milliseconds(args.archive_interval_ms);
  // Both are checked when parsed.
  logging::configure(logging::parse_level(args.log_level).value_or(spdlog::level::info),
                     logging::parse_format(args.log_format).value_or(logging::Format::text));
  warn_about_unused_settings(args);

  server::StoreFactory factory = [&](asio::any_io_executor executor) {
    return open_store(args, std::move(executor));
  };
  auto server = server::Server::create(args.server, factory);
  if (!server) {
    std::fprintf(stderr, "replayrail: %s\n", server.error().message.c_str());
    return kRefused;
  }
  std::printf("replayrail: serving on http://%s:%u (store: %s)\n", args.server.host.c_str(),
              (*server)->port(), args.store.c_str());
  std::fflush(stdout);
  std::string where;  // where the store keeps the events
  if (args.store == "local") where = " in " + args.data_dir + ", fsync " + args.fsync;
  if (args.store == "redis") {
    auto url = resp::parse_redis_url(args.redis_url);  // parsed before: the store connected
    where = " at " + (url ? url->redacted() : std::string("?"));
  }
  spdlog::info("listening on {}:{}; store {}{}; auth {}; {} event-loop threads", args.server.host,
               (*server)->port(), args.store, where,
               args.server.jwt.secret.empty() ? "off" : "on (JWT HS256)", (*server)->threads());
  if (!args.server.database_url.empty()) {
    spdlog::info("archiving every stream to PostgreSQL at {}, a pass every {} ms",
                 redact_url(args.server.database_url), args.server.archive_interval.count());
  }
  (*server)->run();
  std::printf("replayrail: stopped\n");
  return 0;
}

// `replayrail archive`: archive passes over the store outside a server (a Redis store, or a
// local one no server has open).
int archive_command(ServeArgs& args, bool once) {
  logging::configure(logging::parse_level(args.log_level).value_or(spdlog::level::info),
                     logging::Format::text);
  asio::io_context io;  // the store's I/O (Redis connections)
  auto work = asio::make_work_guard(io);
  std::thread io_thread([&io] { io.run(); });
  int code = 0;
  {
    auto store = open_store(args, io.get_executor());
    if (!store) {
      std::fprintf(stderr, "replayrail: %s\n", store.error().message.c_str());
      code = kRefused;
    } else if (once) {
      auto archiver = archive::Archiver::open(*store, {.database_url = args.database_url});
      auto pass =
          archiver ? archive::run_pass(**archiver) : result<archive::Pass>(archiver.error());
      if (!pass) {
        std::fprintf(stderr, "replayrail: %s\n", pass.error().message.c_str());
        code = pass.error().code == errc::store_unavailable ? kUnreachable : kRefused;
      } else {
        std::printf(
            "archived %llu events from %llu streams (%llu gaps noted, %llu streams busy "
            "elsewhere)\n",
            static_cast<unsigned long long>(pass->events),
            static_cast<unsigned long long>(pass->streams),
            static_cast<unsigned long long>(pass->gaps),
            static_cast<unsigned long long>(pass->busy));
      }
    } else {
      asio::io_context signals_io;
      asio::signal_set signals(signals_io, SIGINT, SIGTERM);
      archive::ArchiveLoop loop(*store, {.database_url = args.database_url},
                                std::chrono::milliseconds(args.archive_interval_ms));
      spdlog::info("archiving to PostgreSQL at {}, a pass every {} ms; SIGTERM stops",
                   redact_url(args.database_url), args.archive_interval_ms);
      signals.async_wait([](boost::system::error_code, int) {});
      signals_io.run();
    }
    if (store) (*store)->close();
  }
  work.reset();
  io.stop();
  io_thread.join();
  return code;
}

// `replayrail audit verify`: every archived stream's chain (or one's), recomputed.
int audit_verify(const std::string& database_url, const std::string& stream) {
  auto reports = archive::verify(
      database_url, stream.empty() ? std::nullopt : std::optional<std::string>(stream));
  if (!reports) {
    std::fprintf(stderr, "replayrail: %s\n", reports.error().message.c_str());
    return reports.error().code == errc::store_unavailable ? kUnreachable : kRefused;
  }
  int code = 0;
  for (const auto& r : *reports) {
    if (r.broken) {
      std::printf("%s: BROKEN at %s (%llu events before it are intact)\n", r.stream.c_str(),
                  r.broken->c_str(), static_cast<unsigned long long>(r.events));
      code = kRefused;
    } else {
      const std::string gaps =
          r.gaps ? ", " + std::to_string(r.gaps) + " gaps noted (trimmed before archived)" : "";
      std::printf("%s: %llu events, chain intact, head %s%s\n", r.stream.c_str(),
                  static_cast<unsigned long long>(r.events), r.head.c_str(), gaps.c_str());
    }
  }
  if (reports->empty()) std::printf("nothing archived yet\n");
  return code;
}

// A JSON argument (`--payload`, `--actor`, `--metadata`), or exit with the usage code.
json::value json_argument(const std::string& name, const std::string& text) {
  auto v = replayrail::parse_json(text);
  if (!v) {
    std::fprintf(stderr, "replayrail: --%s %s\n", name.c_str(), v.error().message.c_str());
    std::exit(kUsage);
  }
  return std::move(*v);
}

// `replayrail token`: a JWT signed here with the server's secret, like the ones
// `POST /v1/auth/token` mints, for operators who hold the secret (no server needed).
struct TokenArgs {
  std::string subject;
  std::string role;
  std::vector<std::string> channels;
  std::int64_t ttl_seconds = 3600;
  auth::JwtConfig jwt;
};

int token(const TokenArgs& args) {
  if (args.jwt.secret.empty()) {
    std::fprintf(stderr,
                 "replayrail: token needs the server's secret: --auth-jwt-secret or "
                 "AUTH_JWT_SECRET\n");
    return kUsage;
  }
  // --role is checked when parsed.
  auth::Claims claims{args.subject, auth::parse_role(args.role).value_or(auth::Role::consumer),
                      args.channels, 0};
  const auto now = std::chrono::duration_cast<std::chrono::seconds>(
                       std::chrono::system_clock::now().time_since_epoch())
                       .count();
  claims.expires = now + args.ttl_seconds;
  std::printf("%s\n", auth::mint(claims, args.jwt, now).c_str());
  return 0;
}

// `replayrail groups …`: the consumer-group requests of the platform API (docs/platform-api.md).
struct GroupArgs {
  std::string topic, group, consumer, start;
  std::size_t count = 100;
  std::int64_t block_ms = -1;  // -1: not sent (the server's default)
  std::int64_t min_idle_ms = 60000;
  std::int64_t max_deliveries = -1;  // -1: not sent
  std::vector<std::uint32_t> partitions;
  std::vector<std::string> ids;  // `P:ID`, or `ID` for partition 0
};

// `{"items":[{"partition":P,"redis_ids":[…]}]}` from `P:ID` / `ID` arguments; nullopt (after
// saying why) when one is neither.
std::optional<json::object> ack_body(const std::vector<std::string>& ids) {
  std::map<std::uint32_t, json::array> by_partition;
  for (const auto& text : ids) {
    std::uint32_t partition = 0;
    std::string_view id = text;
    if (auto colon = id.find(':'); colon != std::string_view::npos) {
      auto p = id.substr(0, colon);
      auto [end, ec] = std::from_chars(p.data(), p.data() + p.size(), partition);
      if (ec != std::errc() || end != p.data() + p.size() || p.empty()) {
        std::fprintf(stderr, "replayrail: '%s' is not PARTITION:ID\n", text.c_str());
        return std::nullopt;
      }
      id = id.substr(colon + 1);
    }
    if (!StreamId::parse(id)) {
      std::fprintf(stderr, "replayrail: '%s' is not an id (<ms>-<seq>, or PARTITION:<ms>-<seq>)\n",
                   text.c_str());
      return std::nullopt;
    }
    by_partition[partition].emplace_back(id);
  }
  json::array items;
  for (auto& [p, redis_ids] : by_partition) {
    items.push_back(json::object{{"partition", p}, {"redis_ids", std::move(redis_ids)}});
  }
  return json::object{{"items", std::move(items)}};
}

int groups(const ServerAddress& at, std::string_view command, const GroupArgs& a) {
  const std::string topic = "/v1/topics/" + path_segment(a.topic);
  const std::string group = topic + "/groups/" + path_segment(a.group);
  auto partitions = [&](json::object& body) {
    if (!a.partitions.empty())
      body["partitions"] = json::array(a.partitions.begin(), a.partitions.end());
  };
  if (command == "list") return http_call(at, http::verb::get, topic + "/describe", {});
  if (command == "delete") return http_call(at, http::verb::delete_, group, {});
  json::object body;
  std::string path = group + "/" + std::string(command);
  if (command == "create") {
    path = topic + "/groups";
    body = {{"group", a.group}, {"start_id", a.start.empty() ? "$" : a.start}};
    if (a.max_deliveries >= 0) body["max_deliveries"] = a.max_deliveries;
  } else if (command == "read") {
    body = {{"consumer", a.consumer}, {"count", a.count}};
    if (a.block_ms >= 0) body["block_ms"] = a.block_ms;
    partitions(body);
  } else if (command == "ack") {
    auto items = ack_body(a.ids);
    if (!items) return kUsage;
    body = std::move(*items);
  } else if (command == "claim") {
    body = {{"consumer", a.consumer},
            {"min_idle_ms", a.min_idle_ms},
            {"count", a.count},
            {"start_id", a.start.empty() ? "0-0" : a.start}};
    if (a.max_deliveries >= 0) body["max_deliveries"] = a.max_deliveries;
    partitions(body);
  } else if (command == "reset") {
    body = {{"start_id", a.start}};
  }
  return http_call(at, http::verb::post, path, replayrail::to_json(body));
}
// The options that choose and open a store (serve and archive); returns --redis's.
CLI::Option* add_store_options(CLI::App* cmd, ServeArgs& s) {
  cmd->add_option("--store", s.store, "memory | local | redis")
      ->check(CLI::IsMember({"memory", "local", "redis"}))
      ->envname("REPLAYRAIL_STORE")
      ->capture_default_str();
  cmd->add_option("--data-dir", s.data_dir, "Local store directory")
      ->envname("REPLAYRAIL_DATA_DIR")
      ->capture_default_str();
  cmd->add_option("--fsync", s.fsync, "Local store durability: always | batch | never")
      ->check(CLI::Validator(
          [](std::string& v) {
            return store::local::parse_fsync(v) ? "" : v + " is not always, batch or never";
          },
          "", "fsync"))
      ->capture_default_str();
  cmd->add_option("--fsync-interval-ms", s.fsync_interval_ms,
                  "With --fsync batch: the most time before a commit is fsynced")
      ->check(CLI::Range(1, 3'600'000))
      ->capture_default_str();
  auto* redis = cmd->add_option("--redis", s.redis_url, "Redis URL (redis:// or rediss://)")
                    ->envname("REDIS_URL")
                    ->capture_default_str();
  cmd->add_option("--redis-prefix", s.redis_prefix, "Redis key prefix")->capture_default_str();
  return redis;
}

// The options of the PostgreSQL archive (serve and archive).
CLI::Option* add_archive_options(CLI::App* cmd, ServeArgs& s, const std::string& what) {
  cmd->add_option("--archive-interval-ms", s.archive_interval_ms,
                  "Time between archive passes (each copies what is new)")
      ->check(CLI::Range(10, 3'600'000))
      ->capture_default_str();
  return cmd->add_option("--database-url", s.database_url, what)->envname("DATABASE_URL");
}

// Reads `--config` TOML files for CLI11 so that the precedence is the one DESIGN §4 names:
// flags, then the environment, then the file. (CLI11 on its own lets the file beat the
// environment: it fills options from the file first and from the environment only when still
// unset.) A setting whose environment variable is set is left out of the file's items. Keys at
// the top of the file are `serve`'s, so a server's file needs no `[serve]` section.
class LayeredConfig : public CLI::ConfigTOML {
 public:
  explicit LayeredConfig(const CLI::App& app) : app_(app) {}

  std::vector<CLI::ConfigItem> from_config(std::istream& input) const override {
    std::vector<CLI::ConfigItem> out;
    for (auto& item : CLI::ConfigTOML::from_config(input)) {
      const bool section_mark = item.name == "++" || item.name == "--";
      if (item.parents.empty() && !section_mark) item.parents = {"serve"};
      if (!section_mark && set_in_environment(item)) continue;
      out.push_back(std::move(item));
    }
    return out;
  }

 private:
  bool set_in_environment(const CLI::ConfigItem& item) const {
    const CLI::App* command = &app_;
    for (const auto& name : item.parents) {
      try {
        command = command->get_subcommand(name);
      } catch (const CLI::OptionNotFound&) {
        return false;  // not a command: refused as unknown when applied
      }
    }
    const CLI::Option* option = command->get_option_no_throw("--" + item.name);
    if (!option || option->get_envname().empty()) return false;
    const char* value = std::getenv(option->get_envname().c_str());
    return value && *value;
  }

  const CLI::App& app_;
};

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{"ReplayRail: durable, replayable, auditable realtime events"};
  app.require_subcommand(1);
  app.set_config("--config", "", "TOML file with settings (flags and environment win)");
  app.config_formatter(std::make_shared<LayeredConfig>(app));
  // A misspelt setting in the file is an error, not a setting silently left at its default.
  app.allow_config_extras(CLI::config_extras_mode::error);

  ServeArgs s;
  auto* serve_cmd = app.add_subcommand("serve", "Run the server");
  serve_cmd->fallthrough();  // `serve --config FILE` is the top-level --config
  serve_cmd->footer(
      "Each setting comes from its flag, else its environment variable, else the TOML file given "
      "with --config (keys named as the flags, without the dashes in front: store = \"redis\"; at "
      "the top of the file or under [serve]), else its default.");
  auto* redis_option = add_store_options(serve_cmd, s);
  serve_cmd->add_option("--listen", s.listen, "host:port to listen on")
      ->envname("REPLAYRAIL_LISTEN")
      ->capture_default_str();
  serve_cmd->add_option("--threads", s.server.threads, "Event-loop threads (0 = one per core)")
      ->capture_default_str();
  serve_cmd->add_flag("--insecure", s.server.insecure, "Allow a non-loopback address without auth");
  add_archive_options(serve_cmd, s,
                      "PostgreSQL URL: archive every stream there, with a hash chain (optional)");
  serve_cmd
      ->add_option("--log-level", s.log_level,
                   "trace | debug (each request) | info | warn | error | critical | off")
      ->check(CLI::Validator(
          [](std::string& v) { return logging::parse_level(v) ? "" : v + " is not a log level"; },
          "", "level"))
      ->envname("REPLAYRAIL_LOG_LEVEL")
      ->capture_default_str();
  serve_cmd->add_option("--log-format", s.log_format, "text | json (one JSON object per line)")
      ->check(CLI::IsMember({"text", "json"}))
      ->envname("REPLAYRAIL_LOG_FORMAT")
      ->capture_default_str();
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

  // --url and --token, per client command (see ServeArgs a below for why not shared).
  struct Connection {
    std::string url = "http://127.0.0.1:8000";
    std::string token;
  };
  std::deque<Connection> connections;  // stable addresses: CLI11 keeps pointers to them
  std::string channel, type, payload = "{}", actor, metadata, event_id, after = "0-0", from;
  std::size_t limit = 100;
  auto* publish_cmd = app.add_subcommand("publish", "Publish one event");
  publish_cmd->add_option("channel", channel, "Channel (or topic)")->required();
  publish_cmd->add_option("type", type, "Event type, e.g. order.created")->required();
  publish_cmd->add_option("--payload", payload, "JSON object")->capture_default_str();
  publish_cmd->add_option("--actor", actor, "JSON object: who did it");
  publish_cmd->add_option("--metadata", metadata, "JSON object");
  publish_cmd->add_option("--event-id", event_id, "Idempotency key (a retry is not stored twice)");
  std::string partition_key;
  publish_cmd->add_option("--partition-key", partition_key,
                          "A partitioned topic's events with one key keep their order");
  auto* replay_cmd = app.add_subcommand("replay", "Print a page of a channel's events");
  replay_cmd->add_option("channel", channel, "Channel")->required();
  replay_cmd->add_option("--after", after, "Cursor: events strictly after it")
      ->capture_default_str();
  replay_cmd->add_option("--limit", limit, "Events at most")->capture_default_str();
  auto* tail_cmd = app.add_subcommand("tail", "Follow a channel live (JSON lines)");
  tail_cmd->add_option("channel", channel, "Channel")->required();
  tail_cmd->add_option("--from", from, "Cursor to start after (default: the server's setting)");
  std::vector<CLI::App*> clients{publish_cmd, replay_cmd, tail_cmd};

  GroupArgs g;
  std::vector<std::pair<std::string, CLI::App*>> group_cmds;
  auto* groups_cmd = app.add_subcommand("groups", "Consumer groups of a topic (or channel)");
  groups_cmd->require_subcommand(1);
  auto group_cmd = [&](const std::string& name, const std::string& what, bool named_group) {
    auto* cmd = groups_cmd->add_subcommand(name, what);
    cmd->add_option("topic", g.topic, "Topic (a channel is a topic of one partition)")->required();
    if (named_group) cmd->add_option("group", g.group, "Group")->required();
    group_cmds.emplace_back(name, cmd);
    clients.push_back(cmd);
    return cmd;
  };
  group_cmd("list", "Describe the topic: partitions, groups with lag and pending", false);
  auto* create = group_cmd("create", "Create a group on every partition", true);
  create->add_option("--start", g.start, "$ (only new events), 0-0 (everything retained) or an id")
      ->default_str("$");
  auto* read = group_cmd("read", "New messages for a consumer (XREADGROUP >)", true);
  auto* ack = group_cmd("ack", "Acknowledge messages", true);
  ack->add_option("ids", g.ids, "PARTITION:ID, or ID for partition 0")->required();
  auto* claim = group_cmd("claim", "Take over messages idle too long (XAUTOCLAIM)", true);
  auto* reset = group_cmd("reset", "Move the group to another position (XGROUP SETID)", true);
  reset->add_option("--start", g.start, "$, 0-0 or an id")->required();
  group_cmd("delete", "Destroy the group", true);
  for (auto* cmd : {read, claim}) {
    cmd->add_option("--consumer", g.consumer, "Consumer name")->required();
    cmd->add_option("--count", g.count, "Messages at most (per partition for read)")
        ->check(CLI::Range(std::size_t{1}, std::size_t{1000}))
        ->capture_default_str();
    cmd->add_option("--partition", g.partitions, "Only these partitions (repeatable)");
  }
  read->add_option("--block-ms", g.block_ms, "Wait up to this long for a message (0: longest)")
      ->check(CLI::Range(std::int64_t{0}, std::int64_t{60000}));
  claim->add_option("--min-idle-ms", g.min_idle_ms, "Only messages idle this long")
      ->check(CLI::NonNegativeNumber)
      ->capture_default_str();
  claim->add_option("--start", g.start, "Claim pending messages from this id")->default_str("0-0");
  for (auto* cmd : {create, claim}) {
    cmd->add_option("--max-deliveries", g.max_deliveries,
                    "Deliveries before a message goes to T.dlq (0: never)")
        ->check(CLI::NonNegativeNumber);
  }

  for (auto* cmd : clients) {
    auto& c = connections.emplace_back();
    cmd->add_option("--url", c.url, "Server")->envname("REPLAYRAIL_URL")->capture_default_str();
    cmd->add_option("--token", c.token, "JWT to present (replayrail token makes one)")
        ->envname("REPLAYRAIL_TOKEN");
  }

  // Each command binds its own variables: CLI11 reads an option's environment variable even for
  // a command that was not given, and would overwrite what another command's flag set.
  ServeArgs a;
  bool once = false;
  auto* archive_cmd =
      app.add_subcommand("archive",
                         "Copy every stream's events into PostgreSQL, with a hash chain (serve "
                         "--database-url does this inside a server)");
  add_store_options(archive_cmd, a);
  add_archive_options(archive_cmd, a, "PostgreSQL URL")->required();
  archive_cmd->add_flag("--once", once, "One pass, then exit");
  std::string audit_url, audit_stream;
  auto* audit_cmd = app.add_subcommand("audit", "Check the PostgreSQL archive");
  audit_cmd->require_subcommand(1);
  auto* verify_cmd = audit_cmd->add_subcommand(
      "verify", "Recompute each archived stream's hash chain; exit 1 at a broken link");
  verify_cmd->add_option("--database-url", audit_url, "PostgreSQL URL")
      ->envname("DATABASE_URL")
      ->required();
  verify_cmd->add_option("--stream", audit_stream, "Only this stream (default: every one)");

  TokenArgs t;
  auto* token_cmd = app.add_subcommand(
      "token", "Sign a JWT with the server's secret (prints it; no server needed)");
  token_cmd->add_option("--sub", t.subject, "Who the token is for (`sub`)")->required();
  token_cmd->add_option("--role", t.role, "producer | consumer | admin")
      ->check(CLI::IsMember({"producer", "consumer", "admin"}))
      ->required();
  token_cmd
      ->add_option("--channels", t.channels,
                   "Glob patterns of the channels it may use, comma-separated (default: all)")
      ->delimiter(',');
  token_cmd->add_option("--ttl", t.ttl_seconds, "Seconds until it expires")
      ->check(CLI::Range(std::int64_t{1}, std::int64_t{366} * 24 * 3600))
      ->capture_default_str();
  token_cmd->add_option("--auth-jwt-secret", t.jwt.secret, "The server's HS256 secret")
      ->envname("AUTH_JWT_SECRET");
  token_cmd->add_option("--auth-jwt-issuer", t.jwt.issuer, "`iss`, when the server requires one")
      ->envname("AUTH_JWT_ISSUER");
  token_cmd
      ->add_option("--auth-jwt-audience", t.jwt.audience, "`aud`, when the server requires one")
      ->envname("AUTH_JWT_AUDIENCE");

  try {
    app.parse(argc, argv);
  } catch (const CLI::ConfigError& e) {
    std::fprintf(stderr,
                 "replayrail: --config: %s (each key is a setting of `replayrail serve --help`)\n",
                 e.what());
    return kUsage;
  } catch (const CLI::ParseError& e) {
    // Prints the help (exit 0) or what was wrong with the arguments.
    return app.exit(e) == 0 ? 0 : kUsage;
  }
  if (serve_cmd->parsed()) {
    s.redis_url_given = redis_option->count() > 0;
    return serve(s);
  }
  if (token_cmd->parsed()) return token(t);
  if (archive_cmd->parsed()) return archive_command(a, once);
  if (verify_cmd->parsed()) return audit_verify(audit_url, audit_stream);

  std::size_t which = 0;  // the client command given
  while (which + 1 < clients.size() && !clients[which]->parsed()) ++which;
  const std::string& url = connections[which].url;
  auto at = parse_server_url(url, connections[which].token);
  if (!at) {
    std::fprintf(stderr, "replayrail: --url must look like http://host:port, not '%s'\n",
                 url.c_str());
    return kUsage;
  }
  for (const auto& [name, cmd] : group_cmds) {
    if (cmd->parsed()) return groups(*at, name, g);
  }
  if (publish_cmd->parsed()) {
    // The server validates everything; the JSON fields are passed through as given.
    json::object body{{"type", type}, {"payload", json_argument("payload", payload)}};
    if (!actor.empty()) body["actor"] = json_argument("actor", actor);
    if (!metadata.empty()) body["metadata"] = json_argument("metadata", metadata);
    if (!event_id.empty()) body["event_id"] = event_id;
    if (!partition_key.empty()) body["partition_key"] = partition_key;
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
