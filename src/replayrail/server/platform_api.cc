#include "replayrail/server/platform_api.h"

#include <spdlog/spdlog.h>

#include <algorithm>
#include <boost/json/serialize.hpp>
#include <boost/json/value.hpp>
#include <charconv>
#include <chrono>
#include <initializer_list>
#include <limits>
#include <map>

#include "replayrail/core/json_text.h"
#include "replayrail/server/errors.h"
#include "replayrail/server/group_json.h"

namespace replayrail::server {

namespace json = boost::json;
using store::task;

namespace {

constexpr std::int64_t kMaxReadCount = 1000;
constexpr std::int64_t kMaxBlockMs = 60'000;
// The channels the summary describes at most (the first by name; it counts them all).
constexpr std::size_t kSummaryChannels = 100;

ApiResponse error(const Error& e) { return {http_status(e.code), error_body(e), e.code}; }

// 405 for a path that takes only `allowed` (HEAD is served as GET, without the body).
ApiResponse not_allowed(const char* allowed) {
  auto res =
      error(make_error(errc::method_not_allowed, std::string(allowed) + " only on this path"));
  res.allow = allowed;
  return res;
}

ApiResponse ok(unsigned status, const json::value& body) { return {status, to_json(body)}; }

// The answer to a change of `type` (`topic.purged`), whose audit record holds what it answers.
ApiResponse changed(unsigned status, std::string type, json::object body) {
  ApiResponse res = ok(status, body);
  res.audit = AuditEntry{std::move(type), std::move(body)};
  return res;
}

// A group's start: `$` or an id (`0-0` = everything retained).
result<Cursor> parse_start(const Body& body) {
  std::string text;
  RR_TRY_ASSIGN(text, body.required_text("start_id"));
  return Cursor::parse(text);
}

// The answer to an ingest, each event's result in request order: {"topic", "partitions",
// "results": [{"partition", "redis_id", "event_id", "duplicate"}]}, written directly (a DOM of up
// to 5,000 results cost more than the rest of the answer). With a `failure` (some partitions
// failed), its "error" comes first, and the results of the events it kept out carry their
// partition's "error" in place of an id.
std::string ingest_json(const store::Topic& t, const std::vector<Ingested>& events,
                        const Error* failure) {
  std::string out;
  out.reserve(64 + t.name.size() + events.size() * 128);
  out.push_back('{');
  if (failure) out += R"("error":)" + json::serialize(error_json(*failure)) + ",";
  out += R"("topic":)";
  append_json_string(out, t.name);
  out += R"(,"partitions":)";
  out += std::to_string(t.partitions);
  out += R"(,"results":[)";
  char id[StreamId::kMaxTextSize];
  for (const auto& e : events) {
    if (&e != &events.front()) out.push_back(',');
    out += R"({"partition":)";
    out += std::to_string(e.partition);
    if (e.error) {
      out += R"(,"error":)" + json::serialize(error_json(*e.error)) + "}";
      continue;
    }
    out += R"(,"redis_id":")";
    out.append(id, e.event->id.format_to(id));
    out += R"(","event_id":)";
    append_json_string(out, e.event->event_id);
    out += e.duplicate ? R"(,"duplicate":true})" : R"(,"duplicate":false})";
  }
  out += "]}";
  return out;
}

// One stream's length, ids and groups, after the fields `head` names it by.
json::object stream_json(json::object head, const store::StreamInfo& info) {
  json::array groups;
  for (const auto& g : info.groups) {
    groups.push_back(json::object{{"group", g.name},
                                  {"consumers", g.consumers},
                                  {"pending", g.pending},
                                  {"lag", g.lag},
                                  {"last_delivered_id", g.last_delivered.to_string()}});
  }
  head["length"] = info.length;
  head["first_id"] = info.first_id.to_string();
  head["last_id"] = info.last_id.to_string();
  // The last id retention removed (0-0: none): a cursor at or after it resumes without a gap.
  head["trimmed_through"] = info.trimmed_through.to_string();
  head["groups"] = std::move(groups);
  return head;
}

// A topic's retention, each setting with where it comes from (as Kafka describes a topic's
// configs): {"max_length":{"value":…,"source":"topic"|"server"},"max_age_ms":{…}}; 0 is no limit.
json::object retention_json(const store::Topic& t, const store::TopicRetention& effective) {
  auto setting = [](auto value, bool own) {
    return json::object{{"value", value}, {"source", own ? "topic" : "server"}};
  };
  return {{"max_length", setting(*effective.max_length, t.retention.max_length.has_value())},
          {"max_age_ms", setting(effective.max_age->count(), t.retention.max_age.has_value())}};
}

// A topic as the registry has it: {"topic","partitions","created_at","retention"}.
json::object record_json(const store::Topic& t, const store::TopicRetention& effective) {
  return {{"topic", t.name},
          {"partitions", t.partitions},
          {"created_at", t.created_at},
          {"retention", retention_json(t, effective)}};
}

json::object topic_json(const TopicDescription& d, const store::TopicRetention& effective) {
  json::array streams;
  json::array groups;
  std::uint64_t total = 0;
  // Per group over all partitions: what the dashboard shows.
  struct GroupSum {
    std::uint64_t pending = 0, lag = 0, consumers = 0, max_deliveries = 0;
  };
  std::map<std::string, GroupSum> by_group;
  for (const auto& p : d.partitions) {
    for (const auto& g : p.info.groups) {
      auto& sum = by_group[g.name];
      sum.pending += g.pending;
      sum.lag += g.lag;
      sum.consumers = std::max(sum.consumers, g.consumers);
      sum.max_deliveries = g.max_deliveries;  // the same on every partition
    }
    total += p.info.length;
    streams.push_back(stream_json({{"partition", p.partition}, {"stream", p.stream}}, p.info));
  }
  for (const auto& [name, sum] : by_group) {
    groups.push_back(json::object{{"group", name},
                                  {"pending", sum.pending},
                                  {"lag", sum.lag},
                                  {"consumers", sum.consumers},
                                  {"max_deliveries", sum.max_deliveries}});
  }
  json::object out = record_json(d.topic, effective);
  out["length"] = total;
  out["streams"] = std::move(streams);
  out["groups"] = std::move(groups);
  return out;
}

}  // namespace

std::optional<Access> PlatformApi::access(std::string_view method,
                                          const std::vector<std::string>& path) {
  using auth::Role;
  if (path.size() == 2 && path[0] == "auth" && path[1] == "token") return std::nullopt;
  if (!path.empty() && path[0] == "archive") return Access{Role::admin, {}};         // every stream
  if (path.size() == 2 && path[0] == "topics") return Access{Role::admin, path[1]};  // PUT, DELETE
  if (path.size() < 3 || path[0] != "topics") return Access{};  // any valid token
  const std::string& topic = path[1];
  if (path.size() == 3 && path[2] == "events") return Access{Role::producer, topic};
  bool admin = (path.size() == 3 && (path[2] == "groups" || path[2] == "purge")) ||
               (path.size() == 4 && method == "DELETE") || (path.size() == 5 && path[4] == "reset");
  return Access{admin ? Role::admin : Role::consumer, topic};
}

ApiResponse PlatformApi::mint_token(std::string_view text) const {
  if (admin_secret_.empty() || jwt_.secret.empty()) {
    return error(make_error(
        errc::not_found, "token minting is off (it needs AUTH_ADMIN_SECRET and AUTH_JWT_SECRET)"));
  }
  auto body = Body::parse(text, {"sub", "role", "admin_secret", "channels", "ttl_seconds"});
  if (!body) return error(body.error());
  auto secret = body->required_text("admin_secret");
  if (!secret) return error(secret.error());
  if (!auth::secrets_equal(*secret, admin_secret_)) {
    return error(make_error(errc::forbidden, "admin_secret is not the configured one"));
  }
  auto sub = body->required_text("sub");
  if (!sub) return error(sub.error());
  auto role_name = body->required_text("role");
  if (!role_name) return error(role_name.error());
  auto role = auth::parse_role(*role_name);
  if (!role) {
    return error(make_error(errc::invalid_argument, "role must be producer, consumer or admin"));
  }
  auto ttl = body->integer("ttl_seconds", 3600, 1, 30 * 24 * 3600);
  if (!ttl) return error(ttl.error());
  auth::Claims claims{*sub, *role, {}, 0};
  if (const json::value* channels = body->get("channels")) {
    if (!channels->is_array()) {
      return error(make_error(errc::invalid_argument, "channels must be an array of globs"));
    }
    for (const auto& c : channels->get_array()) {
      if (!c.is_string()) {
        return error(make_error(errc::invalid_argument, "channels must be an array of globs"));
      }
      claims.channels.emplace_back(c.get_string());
    }
  }
  auto now = std::chrono::duration_cast<std::chrono::seconds>(
                 std::chrono::system_clock::now().time_since_epoch())
                 .count();
  claims.expires = now + *ttl;
  ApiResponse res = ok(200, json::object{{"token", auth::mint(claims, jwt_, now)},
                                         {"token_type", "bearer"},
                                         {"role", auth::to_string(*role)},
                                         {"expires_at", claims.expires}});
  // Whom a token was made for, never the token itself.
  json::object minted{{"sub", claims.subject}, {"role", auth::to_string(*role)}};
  if (const json::value* channels = body->get("channels")) minted["channels"] = *channels;
  minted["expires_at"] = claims.expires;
  res.audit = AuditEntry{"token.minted", std::move(minted), true};
  return res;
}

task<std::optional<ApiResponse>> PlatformApi::handle(std::string_view method,
                                                     const std::vector<std::string>& path,
                                                     std::string_view body, const Params& params,
                                                     const Requester& who) {
  auto res = co_await route(method, path, body, params, who);
  if (res && res->audit) co_await audit_.record(*res->audit, who);
  co_return res;
}

task<std::optional<ApiResponse>> PlatformApi::route(std::string_view method,
                                                    const std::vector<std::string>& path,
                                                    std::string_view body, const Params& params,
                                                    const Requester& who) {
  const auth::Claims* caller = who.token;
  if (!path.empty() && path[0] == "archive") co_return co_await archive_route(method, path, params);
  if (path.size() == 2 && path[0] == "auth" && path[1] == "token") {
    if (method != "POST") co_return not_allowed("POST");
    co_return mint_token(body);
  }
  if (path.size() == 2 && path[0] == "metrics" && path[1] == "summary") {
    if (method != "GET") co_return not_allowed("GET, HEAD");
    co_return co_await summary(caller);
  }
  if (path.size() == 1 && path[0] == "topics") {
    if (method != "GET") co_return not_allowed("GET, HEAD");
    co_return co_await list(caller);
  }
  if (path.size() == 2 && path[0] == "topics") {
    if (method == "PUT") co_return co_await configure(path[1], body);
    if (method == "DELETE") co_return co_await remove(path[1], caller);
    co_return not_allowed("PUT, DELETE");
  }
  if (path.size() < 3 || path[0] != "topics") co_return std::nullopt;
  const std::string& topic = path[1];
  if (path.size() == 3 && path[2] == "events") {
    if (method != "POST") co_return not_allowed("POST");
    co_return co_await ingest(topic, body, who.traceparent, caller);
  }
  if (path.size() == 3 && path[2] == "describe") {
    if (method != "GET") co_return not_allowed("GET, HEAD");
    co_return co_await describe(topic);
  }
  if (path.size() == 3 && path[2] == "purge") {
    if (method != "POST") co_return not_allowed("POST");
    co_return co_await purge(topic, body, caller);
  }
  if (path.size() == 3 && path[2] == "groups") {
    if (method != "POST") co_return not_allowed("POST");
    co_return co_await create_group(topic, body);
  }
  if (path.size() == 4 && path[2] == "groups") {
    if (method != "DELETE") co_return not_allowed("DELETE");
    co_return co_await group_action(topic, path[3], "destroy", body);
  }
  if (path.size() == 5 && path[2] == "groups" &&
      (path[4] == "read" || path[4] == "ack" || path[4] == "claim" || path[4] == "reset")) {
    if (method != "POST") co_return not_allowed("POST");
    co_return co_await group_action(topic, path[3], path[4], body);
  }
  co_return std::nullopt;
}

task<ApiResponse> PlatformApi::ingest(const std::string& topic, std::string_view text,
                                      std::string_view traceparent, const auth::Claims* caller) {
  const auto started = std::chrono::steady_clock::now();
  if (auto allowed = audit_.may_publish(topic); !allowed) co_return error(allowed.error());
  auto body = parse_ingest_body(text);
  if (!body) co_return error(body.error());
  if (caller) {
    for (std::size_t i = 0; i < body->events.size(); ++i) {
      if (auto stamped = body->events[i].stamp_publisher(caller->subject); !stamped) {
        co_return error(make_error(
            stamped.error().code, "events[" + std::to_string(i) + "]: " + stamped.error().message));
      }
    }
  }
  if (is_traceparent(traceparent)) {
    for (auto& e : body->events) e.keep_traceparent(traceparent);
  }
  auto ingested = co_await topics_.ingest(topic, body->events, body->partitions);
  if (!ingested) co_return error(ingested.error());
  const auto& [t, events, created] = *ingested;
  const Error* failure = nullptr;
  std::size_t stored = 0;
  for (const auto& e : events) {
    if (e.error && !failure) failure = &*e.error;
    stored += e.event && !e.duplicate;
  }
  if (metrics_ && (!failure || stored > 0)) {
    metrics_->published(t.name, stored, text.size(), std::chrono::steady_clock::now() - started);
  }
  // Some partitions failed: the error's status, with what was stored (a retry can send just the
  // rest), as a bulk API answers.
  ApiResponse res = failure ? ApiResponse{http_status(failure->code),
                                          ingest_json(t, events, failure), failure->code}
                            : ApiResponse{201, ingest_json(t, events, nullptr)};
  // The topic it made stays, with its partition count, whatever became of the events.
  if (created)
    res.audit = AuditEntry{"topic.created", record_json(t, topics_.effective_retention(t))};
  co_return res;
}

task<ApiResponse> PlatformApi::describe(const std::string& topic) {
  auto d = co_await topics_.describe(topic);
  if (!d) co_return error(d.error());
  co_return ok(200, topic_json(*d, topics_.effective_retention(d->topic)));
}

task<ApiResponse> PlatformApi::list(const auth::Claims* caller) {
  auto all = co_await topics_.list();
  if (!all) co_return error(all.error());
  json::array out;
  for (const auto& t : *all) {
    if (caller && !audit_.may_read(*caller, t.name).has_value()) continue;  // as the summary does
    out.push_back(record_json(t, topics_.effective_retention(t)));
  }
  co_return ok(200, json::object{{"topics", std::move(out)}});
}

task<ApiResponse> PlatformApi::configure(const std::string& topic, std::string_view text) {
  auto body = Body::parse(text, {"partitions", "max_length", "max_age_ms"});
  if (!body) co_return error(body.error());
  // A field absent or null: the server's setting (partitions: the default, for a new topic).
  auto given = [&](std::string_view name, std::int64_t max) -> result<std::optional<std::int64_t>> {
    if (!body->get(name)) return std::nullopt;
    return body->integer(name, 0, 0, max);
  };
  auto partitions = given("partitions", kMaxPartitions);
  if (!partitions) co_return error(partitions.error());
  auto max_length = given("max_length", std::numeric_limits<std::int64_t>::max());
  if (!max_length) co_return error(max_length.error());
  auto max_age = given("max_age_ms", store::kMaxRetentionAge.count());
  if (!max_age) co_return error(max_age.error());
  store::TopicRetention retention;
  if (*max_length) retention.max_length = static_cast<std::uint64_t>(**max_length);
  if (*max_age) retention.max_age = store::Millis(**max_age);
  std::optional<std::uint32_t> count;
  if (*partitions) count = static_cast<std::uint32_t>(**partitions);
  if (auto allowed = audit_.may_partition(topic, count); !allowed) {
    co_return error(allowed.error());
  }
  auto configured = co_await topics_.configure(topic, count, retention);
  if (!configured) co_return error(configured.error());
  const auto& [t, created] = *configured;
  co_return changed(created ? 201 : 200, created ? "topic.created" : "topic.configured",
                    record_json(t, topics_.effective_retention(t)));
}

task<ApiResponse> PlatformApi::remove(const std::string& topic, const auth::Claims* caller) {
  auto removed = co_await topics_.remove(topic);
  if (!removed) co_return error(removed.error());
  spdlog::info("topic={} ({} partitions) deleted by {}", removed->name, removed->partitions,
               caller ? caller->subject : "(auth off)");
  co_return changed(
      200, "topic.deleted",
      json::object{
          {"topic", removed->name}, {"partitions", removed->partitions}, {"deleted", true}});
}

task<ApiResponse> PlatformApi::purge(const std::string& topic, std::string_view text,
                                     const auth::Claims* caller) {
  auto body = Body::parse(text, {"before", "partitions"});
  if (!body) co_return error(body.error());
  std::optional<StreamId> before;
  if (const json::value* b = body->get("before")) {
    auto id = parse_id(*b, "before");
    if (!id) co_return error(id.error());
    before = *id;
  }
  auto partitions = body->partitions();
  if (!partitions) co_return error(partitions.error());
  auto purged = co_await topics_.purge(topic, before, std::move(*partitions));
  if (!purged) co_return error(purged.error());
  const auto& [t, parts] = *purged;
  std::uint64_t total = 0;
  json::array results;
  for (const auto& p : parts) {
    total += p.purged;
    results.push_back(json::object{{"partition", p.partition}, {"purged", p.purged}});
  }
  // Who removed events is kept in the audit trail (handle()) and the log; the archive keeps the
  // events themselves.
  spdlog::info("purge of topic={}{}{} by {}: {} events removed", t.name, before ? " before " : "",
               before ? before->to_string() : "", caller ? caller->subject : "(auth off)", total);
  json::object out{{"topic", t.name}, {"partitions", t.partitions}, {"purged", total}};
  if (before) out["before"] = before->to_string();
  out["results"] = std::move(results);
  co_return changed(200, "topic.purged", std::move(out));
}

task<ApiResponse> PlatformApi::create_group(const std::string& topic, std::string_view text) {
  auto body = Body::parse(text, {"group", "start_id", "max_deliveries"});
  if (!body) co_return error(body.error());
  auto group = body->required_text("group");
  if (!group) co_return error(group.error());
  auto start = parse_start(*body);
  if (!start) co_return error(start.error());
  auto max_deliveries = body->max_deliveries();
  if (!max_deliveries) co_return error(max_deliveries.error());
  store::GroupOptions options{max_deliveries->value_or(0)};
  auto t = co_await topics_.create_group(topic, *group, *start, options);
  if (!t) co_return error(t.error());
  co_return changed(201, "group.created",
                    json::object{{"topic", t->name},
                                 {"group", *group},
                                 {"start_id", start->to_string()},
                                 {"partitions", t->partitions},
                                 {"max_deliveries", options.max_deliveries}});
}

task<ApiResponse> PlatformApi::group_action(const std::string& topic, const std::string& group,
                                            const std::string& action, std::string_view text) {
  if (action == "destroy") {
    auto existed = co_await topics_.destroy_group(topic, group);
    if (!existed) co_return error(existed.error());
    if (!*existed) {
      co_return error(make_error(errc::group_not_found, "no group " + group + " on " + topic));
    }
    co_return changed(200, "group.deleted",
                      json::object{{"topic", topic}, {"group", group}, {"destroyed", true}});
  }
  if (action == "reset") {
    auto body = Body::parse(text, {"start_id"});
    if (!body) co_return error(body.error());
    auto start = parse_start(*body);
    if (!start) co_return error(start.error());
    auto t = co_await topics_.reset_group(topic, group, *start);
    if (!t) co_return error(t.error());
    co_return changed(200, "group.reset",
                      json::object{{"topic", t->name},
                                   {"group", group},
                                   {"start_id", start->to_string()},
                                   {"partitions", t->partitions}});
  }
  if (action == "read") {
    auto body = Body::parse(text, {"consumer", "count", "block_ms", "partitions"});
    if (!body) co_return error(body.error());
    auto consumer = body->required_text("consumer");
    if (!consumer) co_return error(consumer.error());
    auto count = body->integer("count", 100, 1, kMaxReadCount);
    if (!count) co_return error(count.error());
    auto block_ms = body->integer("block_ms", -1, 0, kMaxBlockMs);
    if (!block_ms) co_return error(block_ms.error());
    auto partitions = body->partitions();
    if (!partitions) co_return error(partitions.error());
    // block_ms 0 waits as long as the request may (the server's cap), like XREADGROUP BLOCK 0.
    std::optional<store::Millis> block;
    if (*block_ms >= 0) block = store::Millis(*block_ms == 0 ? kMaxBlockMs : *block_ms);
    auto messages = co_await read_group(topic, group, *consumer, static_cast<std::size_t>(*count),
                                        block, std::move(*partitions));
    if (!messages) co_return error(messages.error());
    std::string out = R"({"messages":)";
    append_messages(out, *messages);
    out.push_back('}');
    co_return ApiResponse{200, std::move(out)};
  }
  if (action == "ack") {
    auto body = Body::parse(text, {"items"});
    if (!body) co_return error(body.error());
    auto items = body->ack_items();
    if (!items) co_return error(items.error());
    auto acked = co_await topics_.ack(topic, group, *items);
    if (!acked) co_return error(acked.error());
    co_return ok(200, json::object{{"acked", *acked}});
  }
  // claim
  auto body = Body::parse(
      text, {"consumer", "min_idle_ms", "count", "start_id", "max_deliveries", "partitions"});
  if (!body) co_return error(body.error());
  auto consumer = body->required_text("consumer");
  if (!consumer) co_return error(consumer.error());
  auto min_idle = body->integer("min_idle_ms", 0, 0, kMaxRequestNumber);
  if (!min_idle) co_return error(min_idle.error());
  auto count = body->integer("count", 100, 1, kMaxReadCount);
  if (!count) co_return error(count.error());
  StreamId start;
  if (const json::value* s = body->get("start_id")) {
    auto id = parse_id(*s, "start_id");
    if (!id) co_return error(id.error());
    start = *id;
  }
  auto limit = body->max_deliveries();
  if (!limit) co_return error(limit.error());
  auto partitions = body->partitions();
  if (!partitions) co_return error(partitions.error());
  auto claimed = co_await topics_.claim(topic, group, *consumer, store::Millis(*min_idle),
                                        static_cast<std::size_t>(*count), start, *limit,
                                        std::move(*partitions));
  if (!claimed) co_return error(claimed.error());
  auto ids_json = [](const std::vector<PartitionIds>& list) {
    json::array out;
    for (const auto& d : list) {
      json::array ids;
      for (const auto& id : d.ids) ids.push_back(json::string(id.to_string()));
      out.push_back(json::object{{"partition", d.partition}, {"redis_ids", std::move(ids)}});
    }
    return out;
  };
  std::string out = R"({"messages":)";
  append_messages(out, claimed->claimed);
  out += R"(,"deleted":)";
  append_json(out, ids_json(claimed->deleted));
  out += R"(,"dead_lettered":)";
  append_json(out, ids_json(claimed->dead_lettered));
  out += R"(,"dead_letter_stream":)";
  append_json_string(out, dead_letter_stream(topic));
  out.push_back('}');
  co_return ApiResponse{200, std::move(out)};
}

task<result<std::vector<PartitionMessage>>> PlatformApi::read_group(
    const std::string& topic, const std::string& group, const std::string& consumer,
    std::size_t count, std::optional<store::Millis> block, std::vector<std::uint32_t> partitions) {
  if (!block)
    co_return co_await topics_.read_group(topic, group, consumer, count, std::nullopt,
                                          std::move(partitions));
  auto deadline = std::chrono::steady_clock::now() + *block;
  for (;;) {
    auto left =
        std::chrono::duration_cast<store::Millis>(deadline - std::chrono::steady_clock::now());
    // At least 1 ms: a block of 0 would wait without limit.
    auto wait = std::clamp(left, store::Millis(1), blocking_.slice);
    auto read = co_await topics_.read_group(topic, group, consumer, count, wait, partitions);
    bool stopping = blocking_.stopping && blocking_.stopping->load();
    if (!read || !read->empty() || stopping || std::chrono::steady_clock::now() >= deadline) {
      co_return read;
    }
  }
}

task<ApiResponse> PlatformApi::summary(const auth::Claims* caller) {
  // A token limited to some channels sees only those (their names and lengths are not for others),
  // and the audit trail only when it may read it.
  auto visible = [this, caller](std::string_view name) {
    return !caller || audit_.may_read(*caller, name).has_value();
  };
  auto all = co_await topics_.describe_all();
  if (!all) co_return error(all.error());
  json::array topics;
  for (const auto& d : *all) {
    if (visible(d.topic.name)) {
      topics.push_back(topic_json(d, topics_.effective_retention(d.topic)));
    }
  }
  auto plain = co_await topics_.describe_channels(*all, kSummaryChannels, visible);
  if (!plain) co_return error(plain.error());
  json::array channels;
  for (const auto& c : plain->channels)
    channels.push_back(stream_json({{"channel", c.name}}, c.info));
  ServerCounters c = counters_();
  json::value archive = nullptr;
  if (c.archive) {
    archive = json::object{{"lag_seconds", c.archive->lag_seconds},
                           {"last_success", c.archive->last_success},
                           {"events", c.archive->events},
                           {"failed_passes", c.archive->failed_passes}};
  }
  co_return ok(200, json::object{{"topics", std::move(topics)},
                                 {"channels", std::move(channels)},
                                 {"channels_total", plain->total},
                                 {"connections", c.connections},
                                 {"streaming_sessions", c.streaming},
                                 {"subscriptions", c.subscriptions},
                                 {"rates",
                                  {{"published_per_second", c.published_per_second},
                                   {"delivered_per_second", c.delivered_per_second}}},
                                 {"archive", std::move(archive)}});
}

namespace {

std::optional<std::string> param(const PlatformApi::Params& params, std::string_view name) {
  for (const auto& [k, v] : params) {
    if (k == name) return v;
  }
  return std::nullopt;
}

json::object chain_json(const archive::ChainReport& r) {
  return {
      {"stream", r.stream},  {"events", r.events},
      {"gaps", r.gaps},      {"head", r.head},
      {"intact", !r.broken}, {"broken", r.broken ? json::value(*r.broken) : json::value(nullptr)}};
}

}  // namespace

task<std::optional<ApiResponse>> PlatformApi::archive_route(std::string_view method,
                                                            const std::vector<std::string>& path,
                                                            const Params& params) {
  const bool streams = path.size() == 2 && path[1] == "streams";
  const bool events = path.size() == 4 && path[1] == "streams" && path[3] == "events";
  const bool verify = path.size() == 4 && path[1] == "streams" && path[3] == "verify";
  if (!streams && !events && !verify) co_return std::nullopt;
  if (method != "GET") {
    co_return not_allowed("GET, HEAD");
  }
  if (!archive_) {
    co_return error(
        make_error(errc::not_found, "no archive: the server runs without --database-url"));
  }
  if (streams) {
    auto all = co_await archive_->streams();
    if (!all) co_return error(all.error());
    json::array out;
    for (const auto& s : *all) {
      out.push_back(json::object{{"stream", s.stream},
                                 {"events", s.events},
                                 {"last_id", s.last_id.to_string()},
                                 {"head", s.head},
                                 {"gaps", s.gaps},
                                 {"updated_at", s.updated_at}});
    }
    co_return ok(200, json::object{{"streams", std::move(out)}});
  }
  const std::string& stream = path[2];
  if (verify) {
    auto report = co_await archive_->verify(stream);
    if (!report) co_return error(report.error());
    if (!*report) {
      co_return error(
          make_error(errc::stream_not_found, "nothing of stream \"" + stream + "\" is archived"));
    }
    co_return ok(200, chain_json(**report));
  }
  archive::ArchiveQuery query{.stream = stream,
                              .type = param(params, "type").value_or(""),
                              .event_id = param(params, "event_id").value_or(""),
                              .publisher = param(params, "publisher").value_or("")};
  if (auto after = param(params, "after"); after && !after->empty()) {
    auto id = StreamId::parse(*after);
    if (!id) {
      co_return error(
          make_error(errc::invalid_cursor, "after must be an id <ms>-<seq>, not '" + *after + "'"));
    }
    query.after = *id;
  }
  if (auto limit = param(params, "limit")) {
    std::size_t n = 0;
    auto [end, ec] = std::from_chars(limit->data(), limit->data() + limit->size(), n);
    if (ec != std::errc() || end != limit->data() + limit->size() || n == 0 || n > 1000) {
      co_return error(make_error(errc::invalid_argument, "limit must be 1-1000"));
    }
    query.limit = n;
  }
  const StreamId after = query.after;  // `next` when nothing more was found
  auto found = co_await archive_->search(std::move(query));
  if (!found) co_return error(found.error());
  std::string body = R"({"events":[)";
  for (std::size_t i = 0; i < found->size(); ++i) {
    const auto& a = (*found)[i];
    if (i) body += ',';
    append_envelope(body, *a.event);
    body.pop_back();  // the envelope's '}': the chain's links go inside it
    body += R"(,"prev_hash":")" + a.prev_hash + R"(","hash":")" + a.hash + "\"}";
  }
  body += R"(],"next":")" + (found->empty() ? after : found->back().event->id).to_string() + "\"}";
  co_return ApiResponse{200, std::move(body)};
}

}  // namespace replayrail::server
