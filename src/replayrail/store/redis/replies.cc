#include "replayrail/store/redis/replies.h"

#include <algorithm>
#include <charconv>
#include <vector>

namespace replayrail::store::redis {

using resp::Reply;

Error redis_error(const Reply& reply, std::string_view command) {
  std::string what = std::string(command) + ": " + reply.str;
  if (reply.error_is("NOGROUP")) return make_error(errc::group_not_found, what);
  if (reply.error_is("BUSYGROUP")) return make_error(errc::group_exists, what);
  if (reply.str.find("requires the key to exist") != std::string::npos) {
    return make_error(errc::stream_not_found, what);
  }
  if (reply.error_is("OOM") || reply.error_is("LOADING") || reply.error_is("BUSY") ||
      reply.error_is("MASTERDOWN") || reply.error_is("READONLY") || reply.error_is("CLUSTERDOWN") ||
      reply.error_is("TRYAGAIN")) {
    return make_error(errc::store_unavailable, "Redis cannot take it now: " + what);
  }
  if (reply.error_is("MOVED") || reply.error_is("ASK")) {
    // A cluster node answering a client that does not know it is one (or a slot that kept
    // moving: resp::Cluster follows redirections).
    return make_error(errc::store_unavailable,
                      "Redis redirected " + what +
                          " (a Redis Cluster: start with --redis-cluster, or REDIS_CLUSTER=1)");
  }
  return make_error(errc::internal, "Redis refused " + what);
}

Error unexpected_reply(std::string_view command) {
  return make_error(errc::internal, "unexpected reply from Redis to " + std::string(command));
}

StreamId parse_id_or_zero(const Reply& reply) {
  if (reply.type != Reply::Type::string && reply.type != Reply::Type::status) return {};
  return StreamId::parse(reply.str).value_or(StreamId{});
}

result<EventPtr> parse_entry(const Reply& entry) {
  if (entry.elements.size() != 2) return unexpected_reply("a stream read");
  auto id = StreamId::parse(entry.elements[0].str);
  if (!id) return unexpected_reply("a stream read");
  const Reply& fields = entry.elements[1];
  if (fields.is_nil()) return EventPtr();
  auto e = std::make_shared<Event>();
  e->id = *id;
  e->actor = "null";
  e->metadata = "{}";
  e->payload = "{}";
  for (std::size_t i = 0; i + 1 < fields.elements.size(); i += 2) {
    std::string_view name = fields.elements[i].str;
    const std::string& value = fields.elements[i + 1].str;
    if (name == "event_id")
      e->event_id = value;
    else if (name == "channel")
      e->channel = value;
    else if (name == "type")
      e->type = value;
    else if (name == "payload")
      e->payload = value;
    else if (name == "actor")
      e->actor = value;
    else if (name == "metadata")
      e->metadata = value;
    else if (name == "created_at")
      e->created_at = value;
  }
  return EventPtr(std::move(e));
}

const Reply& field(const Reply& map, std::string_view name) {
  static const Reply kNil;
  for (std::size_t i = 0; i + 1 < map.elements.size(); i += 2) {
    if (map.elements[i].str == name) return map.elements[i + 1];
  }
  return kNil;
}

result<Topic> parse_topic(std::string_view name, std::string_view value) {
  auto bad = [&] {
    return make_error(errc::internal, "bad topic record for " + std::string(name));
  };
  // Space-separated fields.
  std::vector<std::string_view> fields;
  for (std::size_t at = 0; at <= value.size();) {
    auto end = std::min(value.find(' ', at), value.size());
    fields.push_back(value.substr(at, end - at));
    at = end + 1;
  }
  auto number = [](std::string_view text, auto& out) {
    auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), out);
    return ec == std::errc{} && end == text.data() + text.size();
  };
  Topic t{std::string(name), 0, {}, {}};
  if (fields.size() < 2 || !number(fields[0], t.partitions) || t.partitions == 0) return bad();
  t.created_at = fields[1];
  for (std::size_t i = 2; i < fields.size(); ++i) {
    const auto eq = fields[i].find('=');
    if (eq == std::string_view::npos) continue;
    const auto key = fields[i].substr(0, eq);
    const auto text = fields[i].substr(eq + 1);
    if (key == "max_length") {
      if (!number(text, t.retention.max_length.emplace())) return bad();
    } else if (key == "max_age_ms") {
      std::int64_t ms = 0;
      if (!number(text, ms)) return bad();
      t.retention.max_age = Millis(ms);
    }
  }
  return t;
}

std::string topic_value(const Topic& t) {
  std::string out = std::to_string(t.partitions) + " " + t.created_at;
  if (t.retention.max_length) out += " max_length=" + std::to_string(*t.retention.max_length);
  if (t.retention.max_age) out += " max_age_ms=" + std::to_string(t.retention.max_age->count());
  return out;
}

}  // namespace replayrail::store::redis
