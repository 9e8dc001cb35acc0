#include "replayrail/cli/client_commands.h"

#include <boost/json/object.hpp>
#include <charconv>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <map>

#include "replayrail/cli/client.h"
#include "replayrail/cli/options.h"
#include "replayrail/common/stream_id.h"
#include "replayrail/core/event.h"
#include "replayrail/core/json_text.h"
#include "replayrail/loadgen/load.h"

namespace replayrail::cli {

namespace {

namespace http = boost::beast::http;
namespace json = boost::json;

// A JSON argument (`--payload`, `--actor`, `--metadata`), or exit with the usage code.
json::value json_argument(const std::string& name, const std::string& text) {
  auto v = replayrail::parse_json(text);
  if (!v) {
    std::fprintf(stderr, "replayrail: --%s %s\n", name.c_str(), v.error().message.c_str());
    std::exit(kUsage);
  }
  return std::move(*v);
}

// Signs and prints the token TokenArgs describes.
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

// One `groups` command: its request to the platform API.
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

// `replayrail bench`: runs the load and prints what it measured; 1 when an event was lost or
// duplicated or a request refused, 3 when the server cannot be reached.
int bench(const ServerAddress& at, const BenchArgs& b) {
  const std::string pace =
      b.rate > 0 ? std::to_string(b.rate) + " events/s" : "as fast as answered";
  std::printf(
      "replayrail bench: %d events to %s from %d publishers (%s, %s), %d subscribers, "
      "%zu-byte payloads\n",
      b.events, b.channel.c_str(), b.publishers, b.v1_publish ? "replayrail.v1" : "HTTP",
      pace.c_str(), b.subscribers, b.payload_bytes);
  std::fflush(stdout);
  const auto r = loadgen::run_load({.host = at.host,
                                    .port = at.port,
                                    .tls = at.tls,
                                    .token = at.token,
                                    .channel = b.channel,
                                    .publishers = b.publishers,
                                    .v1_publish = b.v1_publish,
                                    .events = b.events,
                                    .rate = b.rate,
                                    .subscribers = b.subscribers,
                                    .payload_bytes = b.payload_bytes,
                                    .threads = b.threads,
                                    .timeout = std::chrono::seconds(b.timeout_seconds)});
  for (const auto& e : r.errors) std::fprintf(stderr, "replayrail bench: %s\n", e.c_str());
  if (r.unreachable) return kUnreachable;
  const double secs = std::max(r.seconds, 1e-9);
  std::printf(
      "published %llu in %.2f s: %.0f events/s; publish latency p50 %.2f ms, p99 %.2f ms, "
      "max %.2f ms\n",
      static_cast<unsigned long long>(r.published), r.seconds,
      static_cast<double>(r.published) / secs, r.publish.p50, r.publish.p99, r.publish.max);
  if (b.subscribers > 0) {
    std::printf(
        "delivered %llu to %d subscribers: %.0f deliveries/s; end to end p50 %.2f ms, "
        "p99 %.2f ms, max %.2f ms; lost %llu, duplicates %llu\n",
        static_cast<unsigned long long>(r.delivered), b.subscribers,
        static_cast<double>(r.delivered) / secs, r.end_to_end.p50, r.end_to_end.p99,
        r.end_to_end.max, static_cast<unsigned long long>(r.lost),
        static_cast<unsigned long long>(r.duplicates));
  }
  const bool complete = r.published == static_cast<std::uint64_t>(b.events);
  return complete && r.lost == 0 && r.duplicates == 0 && r.errors.empty() ? 0 : kRefused;
}

}  // namespace

ClientCommands::ClientCommands(CLI::App& app) {
  auto* publish_cmd = publish_cmd_ = app.add_subcommand("publish", "Publish one event");
  publish_cmd->add_option("channel", channel_, "Channel (or topic)")->required();
  publish_cmd->add_option("type", type_, "Event type, e.g. order.created")->required();
  publish_cmd->add_option("--payload", payload_, "JSON object")->capture_default_str();
  publish_cmd->add_option("--actor", actor_, "JSON object: who did it");
  publish_cmd->add_option("--metadata", metadata_, "JSON object");
  publish_cmd->add_option("--event-id", event_id_, "Idempotency key (a retry is not stored twice)");
  publish_cmd->add_option("--partition-key", partition_key_,
                          "A partitioned topic's events with one key keep their order");
  auto* replay_cmd = replay_cmd_ =
      app.add_subcommand("replay", "Print a page of a channel's events");
  replay_cmd->add_option("channel", channel_, "Channel")->required();
  replay_cmd->add_option("--after", after_, "Cursor: events strictly after it")
      ->capture_default_str();
  replay_cmd->add_option("--limit", limit_, "Events at most")->capture_default_str();
  auto* tail_cmd = app.add_subcommand("tail", "Follow a channel live (JSON lines)");
  tail_cmd->add_option("channel", channel_, "Channel")->required();
  tail_cmd->add_option("--from", from_, "Cursor to start after (default: the server's setting)");
  auto topic_command = [&](const std::string& name, const std::string& what) {
    auto* cmd = app.add_subcommand(name, what);
    cmd->add_option("topic", channel_, "Topic (a channel is a topic of one partition)")->required();
    return cmd;
  };
  auto* purge_cmd = purge_cmd_ = topic_command(
      "purge",
      "Remove a topic's (or channel's) events: all, or those before an id; the topic, its "
      "groups and ids stay (admin)");
  purge_cmd->add_option("--before", before_,
                        "Only the events before this id (<ms>-<seq>; <ms>-0: stored before then)");
  purge_cmd->add_option("--partition", partitions_, "Only these partitions (repeatable)");
  auto* configure_cmd = configure_cmd_ = topic_command(
      "configure",
      "Create a topic, or find one, and set its own retention, whole: a setting left out is the "
      "server's (admin)");
  configure_cmd->add_option("--partitions", partition_count_, "Partitions of a new topic")
      ->check(CLI::Range(std::int64_t{1}, std::int64_t{kMaxPartitions}));
  configure_cmd
      ->add_option("--max-length", max_length_, "Newest events kept per partition (0: no limit)")
      ->check(CLI::NonNegativeNumber);
  add_age_option(configure_cmd, "--max-age", max_age_ms_,
                 "Events older than this are removed, with a unit: ms, s, m, h, d (0s: no limit)");
  auto* delete_cmd = delete_cmd_ = topic_command(
      "delete",
      "Delete a topic (or channel): its partitions' events and groups, and the topic, whose name "
      "may then be made again (admin)");
  auto* topics_cmd = topics_cmd_ = app.add_subcommand(
      "topics", "List the topics (those the token may use): partitions, retention");
  clients_ = {publish_cmd, replay_cmd, tail_cmd, purge_cmd, configure_cmd, delete_cmd, topics_cmd};

  auto& g = groups_;
  auto* groups_cmd = app.add_subcommand("groups", "Consumer groups of a topic (or channel)");
  groups_cmd->require_subcommand(1);
  auto group_cmd = [&](const std::string& name, const std::string& what, bool named_group) {
    auto* cmd = groups_cmd->add_subcommand(name, what);
    cmd->add_option("topic", g.topic, "Topic (a channel is a topic of one partition)")->required();
    if (named_group) cmd->add_option("group", g.group, "Group")->required();
    group_cmds_.emplace_back(name, cmd);
    clients_.push_back(cmd);
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

  auto& b = bench_;
  auto* bench_cmd = bench_cmd_ = app.add_subcommand(
      "bench",
      "Load a running server: HTTP publishers, WebSocket subscribers; prints rates and "
      "latencies, exits 1 if an event was lost or duplicated");
  bench_cmd->add_option("--channel", b.channel, "Channel to publish to")->capture_default_str();
  bench_cmd->add_option("--events", b.events, "Events to publish in all")
      ->check(CLI::Range(1, 100'000'000))
      ->capture_default_str();
  bench_cmd->add_option("--publishers", b.publishers, "Keep-alive connections publishing")
      ->check(CLI::Range(1, 10'000))
      ->capture_default_str();
  bench_cmd->add_flag("--v1-publish", b.v1_publish,
                      "Publish over replayrail.v1 WebSockets (publish ops, up to 16 unanswered on "
                      "each), not HTTP requests");
  bench_cmd
      ->add_option("--rate", b.rate,
                   "Events per second on one schedule (0: as fast as "
                   "answers come)")
      ->check(CLI::Range(0, 10'000'000))
      ->capture_default_str();
  bench_cmd->add_option("--subscribers", b.subscribers, "WebSocket subscribers of the channel")
      ->check(CLI::Range(0, 100'000))
      ->capture_default_str();
  bench_cmd->add_option("--payload-bytes", b.payload_bytes, "Bytes of each event's payload")
      ->check(CLI::Range(std::size_t{41}, std::size_t{1} << 20))
      ->capture_default_str();
  bench_cmd->add_option("--threads", b.threads, "Threads of the load generator")
      ->check(CLI::Range(1, 64))
      ->capture_default_str();
  bench_cmd->add_option("--timeout", b.timeout_seconds, "Seconds the whole run may take")
      ->check(CLI::Range(1, 24 * 3600))
      ->capture_default_str();
  clients_.push_back(bench_cmd);

  for (auto* cmd : clients_) {
    auto& c = connections_.emplace_back();
    cmd->add_option("--url", c.url, "Server")->envname("REPLAYRAIL_URL")->capture_default_str();
    cmd->add_option("--token", c.token, "JWT to present (replayrail token makes one)")
        ->envname("REPLAYRAIL_TOKEN");
  }

  auto& t = token_;
  auto* token_cmd = token_cmd_ = app.add_subcommand(
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
  token_cmd
      ->add_option("--auth-jwt-role-claim", t.jwt.role_claim,
                   "The claim the role goes in, when the server reads it from another")
      ->envname("AUTH_JWT_ROLE_CLAIM")
      ->capture_default_str();
}

int ClientCommands::run() {
  if (token_cmd_->parsed()) return token(token_);
  std::size_t which = 0;  // the client command given
  while (which + 1 < clients_.size() && !clients_[which]->parsed()) ++which;
  const std::string& url = connections_[which].url;
  auto at = parse_server_url(url, connections_[which].token);
  if (!at) {
    std::fprintf(stderr,
                 "replayrail: --url must look like http://host:port or https://host:port, not "
                 "'%s'\n",
                 url.c_str());
    return kUsage;
  }
  for (const auto& [name, cmd] : group_cmds_) {
    if (cmd->parsed()) return groups(*at, name, groups_);
  }
  if (publish_cmd_->parsed()) {
    // The server validates everything; the JSON fields are passed through as given.
    json::object body{{"type", type_}, {"payload", json_argument("payload", payload_)}};
    if (!actor_.empty()) body["actor"] = json_argument("actor", actor_);
    if (!metadata_.empty()) body["metadata"] = json_argument("metadata", metadata_);
    if (!event_id_.empty()) body["event_id"] = event_id_;
    if (!partition_key_.empty()) body["partition_key"] = partition_key_;
    return http_call(*at, http::verb::post, "/events/" + path_segment(channel_),
                     replayrail::to_json(body));
  }
  if (replay_cmd_->parsed()) {
    return http_call(*at, http::verb::get,
                     "/events/" + path_segment(channel_) + "?after=" + path_segment(after_) +
                         "&limit=" + std::to_string(limit_),
                     {});
  }
  if (topics_cmd_->parsed()) return http_call(*at, http::verb::get, "/v1/topics", {});
  if (delete_cmd_->parsed()) {
    return http_call(*at, http::verb::delete_, "/v1/topics/" + path_segment(channel_), {});
  }
  if (configure_cmd_->parsed()) {
    json::object body;
    if (partition_count_ >= 0) body["partitions"] = partition_count_;
    if (max_length_ >= 0) body["max_length"] = max_length_;
    if (max_age_ms_ >= 0) body["max_age_ms"] = max_age_ms_;
    return http_call(*at, http::verb::put, "/v1/topics/" + path_segment(channel_),
                     replayrail::to_json(body));
  }
  if (purge_cmd_->parsed()) {
    json::object body;
    if (!before_.empty()) body["before"] = before_;
    if (!partitions_.empty())
      body["partitions"] = json::array(partitions_.begin(), partitions_.end());
    return http_call(*at, http::verb::post, "/v1/topics/" + path_segment(channel_) + "/purge",
                     replayrail::to_json(body));
  }
  if (bench_cmd_->parsed()) return bench(*at, bench_);
  return tail(*at, channel_, from_);
}

}  // namespace replayrail::cli
