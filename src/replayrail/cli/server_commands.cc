#include "replayrail/cli/server_commands.h"

#include <spdlog/spdlog.h>

#include <boost/asio/executor_work_guard.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/signal_set.hpp>
#include <boost/url/parse.hpp>
#include <boost/url/url.hpp>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <map>
#include <optional>
#include <thread>

#include "replayrail/archive/loop.h"
#include "replayrail/cli/client.h"
#include "replayrail/cli/options.h"
#include "replayrail/common/http_url.h"
#include "replayrail/log/log.h"
#include "replayrail/resp/url.h"
#include "replayrail/store/local/local_store.h"
#include "replayrail/store/memory/memory_store.h"
#include "replayrail/store/redis/redis_store.h"

namespace replayrail::cli {

namespace {

namespace asio = boost::asio;

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
    if (args.redis_cluster && url.uses_sentinels()) {
      return make_error(errc::invalid_argument,
                        "a Redis Cluster has no Sentinels: give one of its nodes as redis://");
    }
    if (args.redis_cluster && url.db != 0) {
      return make_error(errc::invalid_argument,
                        "a Redis Cluster has database 0 only; the Redis URL names database " +
                            std::to_string(url.db));
    }
    return std::shared_ptr<store::Store>(store::RedisStore::connect(
        executor, {.url = url,
                   .prefix = args.redis_prefix,
                   .cluster = args.redis_cluster,
                   .wait_replicas = args.redis_wait_replicas,
                   .wait_timeout = std::chrono::milliseconds(args.redis_wait_timeout_ms)}));
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

// The start line's word on auth: "off", "on (JWT HS256, RS256)", "on (JWT keys of URL)".
std::string auth_summary(const auth::JwtConfig& jwt) {
  if (!jwt.enabled()) return "off";
  std::string how = jwt.algorithms();
  if (!jwt.jwks_url.empty()) how += (how.empty() ? "keys of " : ", keys of ") + jwt.jwks_url;
  if (!jwt.oidc_issuer.empty()) {
    how +=
        (how.empty() ? "keys of OpenID provider " : ", keys of OpenID provider ") + jwt.oidc_issuer;
  }
  return "on (JWT " + how + ")";
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
  auto keys = auth::load_public_keys(args.server.jwt_public_key_files);
  if (!keys) {
    std::fprintf(stderr, "replayrail: --auth-jwt-public-key %s\n", keys.error().message.c_str());
    return kUsage;
  }
  args.server.jwt.public_keys = std::move(*keys);
  if (auto url = args.server.jwt.jwks_url; !url.empty()) {
    if (auto checked = parse_http_url(url); !checked) {  // what fetch_jwks takes
      std::fprintf(stderr, "replayrail: --auth-jwks-url %s\n", checked.error().message.c_str());
      return kUsage;
    }
  }
  if (auto& jwt = args.server.jwt; !jwt.oidc_issuer.empty()) {
    if (auto checked = parse_http_url(jwt.oidc_issuer); !checked) {
      std::fprintf(stderr, "replayrail: --auth-oidc-issuer %s\n", checked.error().message.c_str());
      return kUsage;
    }
    if (!jwt.jwks_url.empty()) {
      std::fprintf(stderr,
                   "replayrail: --auth-oidc-issuer finds the JWK set URL itself: leave out "
                   "--auth-jwks-url\n");
      return kUsage;
    }
    // The provider's tokens name it as their issuer; no other is taken.
    if (jwt.issuer.empty()) jwt.issuer = jwt.oidc_issuer;
    if (jwt.issuer != jwt.oidc_issuer) {
      std::fprintf(stderr, "replayrail: --auth-jwt-issuer %s is not --auth-oidc-issuer %s\n",
                   jwt.issuer.c_str(), jwt.oidc_issuer.c_str());
      return kUsage;
    }
  }
  args.server.jwks_refresh = std::chrono::milliseconds(args.jwks_refresh_ms);
  args.server.database_url = args.database_url;
  args.server.archive_interval = std::chrono::milliseconds(args.archive_interval_ms);
  args.server.rail.max_stream_age = std::chrono::milliseconds(args.max_stream_age_ms);
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
  const char* scheme = args.server.tls_cert.empty() ? "http" : "https";
  std::printf("replayrail: serving on %s://%s:%u (store: %s)\n", scheme, args.server.host.c_str(),
              (*server)->port(), args.store.c_str());
  std::fflush(stdout);
  std::string where;  // where the store keeps the events
  if (args.store == "local") where = " in " + args.data_dir + ", fsync " + args.fsync;
  if (args.store == "redis") {
    auto url = resp::parse_redis_url(args.redis_url);  // it parsed when the store opened
    where = " at " + (url ? url->redacted() : redact_url(args.redis_url));
  }
  spdlog::info("listening on {}:{}{}; store {}{}; auth {}; {} event-loop threads", args.server.host,
               (*server)->port(),
               args.server.tls_cert.empty()        ? ""
               : args.server.tls_client_ca.empty() ? " (TLS)"
                                                   : " (TLS, client certificates required)",
               args.store, where, auth_summary(args.server.jwt), (*server)->threads());
  if (!args.server.database_url.empty()) {
    spdlog::info("archiving every stream to PostgreSQL at {}, a pass every {} ms",
                 redact_url(args.server.database_url), args.server.archive_interval.count());
  }
  if (const auto& rail = args.server.rail; rail.max_stream_age.count() > 0) {
    spdlog::info("retention: events older than {} ms are removed, a pass every {} ms",
                 rail.max_stream_age.count(), rail.expiry_interval().count());
  }
  (*server)->run();
  std::printf("replayrail: stopped\n");
  return 0;
}

// `replayrail archive`: archive passes over the store outside a server (a Redis store, or a
// local one no server has open).
int archive_command(const ServeArgs& args, bool once) {
  logging::configure(logging::parse_level(args.log_level).value_or(spdlog::level::info),
                     logging::Format::text);
  asio::io_context io;  // the store's I/O (Redis connections)
  auto work = asio::make_work_guard(io);
  std::thread io_thread([&io] { io.run(); });
  int code = 0;
  {
    auto store = open_store(args, io.get_executor());
    std::optional<archive::ArchiveLoop> loop;  // without --once; stopped after the store closes
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
      loop.emplace(*store, archive::ArchiveOptions{.database_url = args.database_url},
                   std::chrono::milliseconds(args.archive_interval_ms));
      spdlog::info("archiving to PostgreSQL at {}, a pass every {} ms; SIGTERM stops",
                   redact_url(args.database_url), args.archive_interval_ms);
      signals.async_wait([](boost::system::error_code, int) {});
      signals_io.run();
      // As `serve` does: the pass in progress gets the grace; one hung on PostgreSQL is cut off
      // after it, and one waiting on a store that does not answer ends when the store closes.
      if (!loop->stop_within(args.server.shutdown_grace)) {
        spdlog::warn("archive: the pass in progress did not end within {} ms; cutting it off",
                     args.server.shutdown_grace.count());
        loop->cut_off();
      }
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
  auto* redis = cmd->add_option("--redis", s.redis_url,
                                "Redis URL: redis://, rediss:// (TLS), or "
                                "redis+sentinel://host:26379[,host…]/service[/db] (Sentinel)")
                    ->envname("REDIS_URL")
                    ->capture_default_str();
  cmd->add_option("--redis-prefix", s.redis_prefix, "Redis key prefix")->capture_default_str();
  cmd->add_flag("--redis-cluster", s.redis_cluster,
                "The Redis URL is a node of a Redis Cluster (keys carry the stream as a hash tag)")
      ->envname("REDIS_CLUSTER");
  cmd->add_option("--redis-wait-replicas", s.redis_wait_replicas,
                  "Acknowledge a publish only once this many Redis replicas have it (WAIT), so "
                  "that a failover cannot lose it (on a cluster: replicas of the primary that "
                  "stored it); 0: Redis' asynchronous replication")
      ->envname("REDIS_WAIT_REPLICAS")
      ->check(CLI::Range(0, 100))
      ->capture_default_str();
  cmd->add_option("--redis-wait-timeout-ms", s.redis_wait_timeout_ms,
                  "How long a publish waits for those replicas before it fails with 503")
      ->check(CLI::Range(1, 60'000))
      ->capture_default_str();
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

void add_shutdown_grace(CLI::App* cmd, ServeArgs& s, const std::string& what) {
  cmd->add_option_function<std::uint64_t>(
         "--shutdown-grace-ms",
         [&s](std::uint64_t ms) { s.server.shutdown_grace = std::chrono::milliseconds(ms); }, what)
      ->check(CLI::Range(0, 600000))
      ->default_str("5000");
}

}  // namespace

ServerCommands::ServerCommands(CLI::App& app) {
  auto& s = serve_;
  auto* serve_cmd = serve_cmd_ = app.add_subcommand("serve", "Run the server");
  serve_cmd->fallthrough();  // `serve --config FILE` is the top-level --config
  serve_cmd->footer(
      "Each setting comes from its flag, else its environment variable, else the TOML file given "
      "with --config (keys named as the flags, without the dashes in front: store = \"redis\"; at "
      "the top of the file or under [serve]), else its default.");
  redis_option_ = add_store_options(serve_cmd, s);
  serve_cmd->add_option("--listen", s.listen, "host:port to listen on")
      ->envname("REPLAYRAIL_LISTEN")
      ->capture_default_str();
  serve_cmd->add_option("--threads", s.server.threads, "Event-loop threads (0 = one per core)")
      ->capture_default_str();
  serve_cmd->add_flag("--insecure", s.server.insecure, "Allow a non-loopback address without auth");
  serve_cmd
      ->add_option(
          "--tls-cert", s.server.tls_cert,
          "PEM certificate (then its chain): serve HTTPS and WSS only (with --tls-key); SIGHUP "
          "loads both files again")
      ->envname("REPLAYRAIL_TLS_CERT");
  serve_cmd->add_option("--tls-key", s.server.tls_key, "PEM private key of --tls-cert")
      ->envname("REPLAYRAIL_TLS_KEY");
  serve_cmd
      ->add_option("--tls-client-ca", s.server.tls_client_ca,
                   "PEM authorities: every client must show a certificate one of them signed "
                   "(mutual TLS; with --tls-cert)")
      ->envname("REPLAYRAIL_TLS_CLIENT_CA");
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
  add_age_option(serve_cmd, "--max-stream-age", s.max_stream_age_ms,
                 "Retention by age: events older than this are removed from every stream, "
                 "whatever --max-stream-length, within a tenth of it (1 s to 1 min) more; "
                 "with a unit: ms, s, m, h, d (e.g. 24h, 7d); 0s: no age limit (a topic may set "
                 "its own: PUT /v1/topics/{t}, replayrail configure)")
      ->envname("REPLAYRAIL_MAX_STREAM_AGE");
  serve_cmd->add_flag(
      "--approximate-trim", s.server.rail.approximate_trim,
      "Retention as Redis' MAXLEN ~: on Redis, trim a stream once it is 100 events past "
      "--max-stream-length, not waited for, so it keeps up to ~100 more, for much less work in "
      "Redis (the local store trims exactly)");
  serve_cmd->add_option("--max-body-bytes", s.server.max_body_bytes, "Largest request body")
      ->capture_default_str();
  serve_cmd
      ->add_option("--auth-jwt-secret", s.server.jwt.secret,
                   "HS256 secret of the JWTs clients present; auth is off without it")
      ->envname("AUTH_JWT_SECRET");
  serve_cmd
      ->add_option("--auth-jwt-public-key", s.server.jwt_public_key_files,
                   "Public keys of an identity provider whose RS256 / ES256 / EdDSA tokens clients "
                   "present: a PEM key or certificate, or a JWK set (its jwks_uri's JSON); repeat "
                   "it, or separate files with commas, to take several; SIGHUP reads them again; "
                   "auth is on with it")
      ->envname("AUTH_JWT_PUBLIC_KEY")
      ->delimiter(',');
  serve_cmd
      ->add_option("--auth-jwks-url", s.server.jwt.jwks_url,
                   "An identity provider's JWK set URL (its jwks_uri, http or https): its keys "
                   "check RS256 / ES256 / EdDSA tokens, fetched at start, every "
                   "--auth-jwks-refresh-ms, and sooner for a token whose kid the set lacks; auth "
                   "is on with it")
      ->envname("AUTH_JWKS_URL");
  serve_cmd
      ->add_option("--auth-oidc-issuer", s.server.jwt.oidc_issuer,
                   "An OpenID provider (http or https): its JWK set URL is read from "
                   "<issuer>/.well-known/openid-configuration, its keys then kept as with "
                   "--auth-jwks-url, and tokens must name it as their iss; auth is on with it")
      ->envname("AUTH_OIDC_ISSUER");
  serve_cmd
      ->add_option("--auth-jwks-refresh-ms", s.jwks_refresh_ms,
                   "How often the keys of --auth-jwks-url (or --auth-oidc-issuer) are fetched "
                   "again")
      ->check(CLI::Range(100u, 86'400'000u))
      ->capture_default_str();
  serve_cmd
      ->add_option("--auth-jwt-role-claim", s.server.jwt.role_claim,
                   "Where tokens carry their role: a claim of this name, or else this dot path "
                   "(e.g. Keycloak's realm_access.roles); a role, or an array of names in which "
                   "producer, consumer and admin are taken")
      ->envname("AUTH_JWT_ROLE_CLAIM")
      ->capture_default_str();
  serve_cmd->add_option("--auth-jwt-issuer", s.server.jwt.issuer, "Required `iss` of tokens")
      ->envname("AUTH_JWT_ISSUER");
  serve_cmd->add_option("--auth-jwt-audience", s.server.jwt.audience, "Required `aud` of tokens")
      ->envname("AUTH_JWT_AUDIENCE");
  serve_cmd
      ->add_option("--auth-admin-secret", s.server.admin_secret,
                   "Enables POST /v1/auth/token (dev token minting) for who knows it")
      ->envname("AUTH_ADMIN_SECRET");
  serve_cmd
      ->add_option("--audit-channel", s.server.audit_channel,
                   "Where each change made through the API (topics, groups, tokens) is recorded, "
                   "with who made it: a channel only the server writes to, read with an admin "
                   "token (or one whose channels claim names it); \"\": no record")
      ->envname("AUDIT_CHANNEL")
      ->capture_default_str();
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
  add_shutdown_grace(serve_cmd, s,
                     "SIGTERM: how long streaming sessions and requests in progress get to finish");

  archive_cmd_ =
      app.add_subcommand("archive",
                         "Copy every stream's events into PostgreSQL, with a hash chain (serve "
                         "--database-url does this inside a server)");
  add_store_options(archive_cmd_, archive_);
  add_archive_options(archive_cmd_, archive_, "PostgreSQL URL")->required();
  archive_cmd_->add_flag("--once", once_, "One pass, then exit");
  add_shutdown_grace(archive_cmd_, archive_,
                     "SIGTERM: how long the pass in progress gets to finish before it is cut off");
  auto* audit_cmd = app.add_subcommand("audit", "Check the PostgreSQL archive");
  audit_cmd->require_subcommand(1);
  verify_cmd_ = audit_cmd->add_subcommand(
      "verify", "Recompute each archived stream's hash chain; exit 1 at a broken link");
  verify_cmd_->add_option("--database-url", audit_url_, "PostgreSQL URL")
      ->envname("DATABASE_URL")
      ->required();
  verify_cmd_->add_option("--stream", audit_stream_, "Only this stream (default: every one)");
}

std::optional<int> ServerCommands::run() {
  if (serve_cmd_->parsed()) {
    serve_.redis_url_given = redis_option_->count() > 0;
    return serve(serve_);
  }
  if (archive_cmd_->parsed()) return archive_command(archive_, once_);
  if (verify_cmd_->parsed()) return audit_verify(audit_url_, audit_stream_);
  return std::nullopt;
}

}  // namespace replayrail::cli
