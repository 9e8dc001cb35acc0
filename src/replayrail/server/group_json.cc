#include "replayrail/server/group_json.h"

#include <algorithm>

#include "replayrail/core/event.h"
#include "replayrail/core/request_json.h"

namespace replayrail::server {

namespace json = boost::json;

result<Body> Body::parse(std::string_view text, std::initializer_list<std::string_view> known) {
  auto doc = parse_request_object(text.empty() ? std::string_view("{}") : text);
  if (!doc) return doc.error();
  return of(std::move(doc->get_object()), known);
}

result<Body> Body::of(json::object object, std::initializer_list<std::string_view> known) {
  for (const auto& kv : object) {
    if (std::find(known.begin(), known.end(), kv.key()) == known.end()) {
      return make_error(errc::invalid_argument, "unknown field \"" + std::string(kv.key()) + "\"");
    }
  }
  return Body(std::move(object));
}

const json::value* Body::get(std::string_view name) const {
  const json::value* v = object_.if_contains(name);
  return v && !v->is_null() ? v : nullptr;
}

result<std::optional<std::string>> Body::text(std::string_view name) const {
  const json::value* v = get(name);
  if (!v) return std::optional<std::string>();
  if (!v->is_string() || v->get_string().empty()) {
    return make_error(errc::invalid_argument, std::string(name) + " must be a non-empty string");
  }
  return std::optional<std::string>(std::string(v->get_string()));
}

result<std::string> Body::required_text(std::string_view name) const {
  std::optional<std::string> v;
  RR_TRY_ASSIGN(v, text(name));
  if (!v) return make_error(errc::invalid_argument, std::string(name) + " is required");
  return std::move(*v);
}

result<std::int64_t> Body::integer(std::string_view name, std::int64_t fallback, std::int64_t min,
                                   std::int64_t max) const {
  const json::value* v = get(name);
  if (!v) return fallback;
  auto n = v->if_int64();
  if (!n || *n < min || *n > max) {
    return make_error(errc::invalid_argument, std::string(name) + " must be an integer from " +
                                                  std::to_string(min) + " to " +
                                                  std::to_string(max));
  }
  return *n;
}

result<std::vector<std::uint32_t>> Body::partitions() const {
  std::vector<std::uint32_t> out;
  const json::value* ps = get("partitions");
  if (!ps) return out;
  if (!ps->is_array()) return make_error(errc::invalid_argument, "partitions must be an array");
  for (const auto& p : ps->get_array()) {
    auto n = p.if_int64();
    if (!n || *n < 0 || *n >= kMaxPartitions) {
      return make_error(errc::invalid_argument, "partitions must hold partition numbers");
    }
    out.push_back(static_cast<std::uint32_t>(*n));
  }
  return out;
}

result<std::optional<std::uint64_t>> Body::max_deliveries() const {
  std::int64_t n;
  RR_TRY_ASSIGN(n, integer("max_deliveries", 0, 0, kMaxRequestNumber));
  if (!get("max_deliveries")) return std::optional<std::uint64_t>();
  return std::optional(static_cast<std::uint64_t>(n));
}

result<std::vector<PartitionIds>> Body::ack_items() const {
  const json::value* items = get("items");
  if (!items || !items->is_array()) {
    return make_error(errc::invalid_argument, "items must be an array of {partition, redis_ids}");
  }
  std::vector<PartitionIds> out;
  for (const auto& item : items->get_array()) {
    const json::object* o = item.if_object();
    const json::value* p = o ? o->if_contains("partition") : nullptr;
    const json::value* ids = o ? o->if_contains("redis_ids") : nullptr;
    // A partition number beyond any topic's is refused here, before it is narrowed to 32 bits.
    if (!p || !p->is_int64() || p->get_int64() < 0 || p->get_int64() >= kMaxPartitions || !ids ||
        !ids->is_array()) {
      return make_error(errc::invalid_argument,
                        "each item must be {\"partition\": n, \"redis_ids\": [...]}");
    }
    PartitionIds pi{static_cast<std::uint32_t>(p->get_int64()), {}};
    for (const auto& id : ids->get_array()) {
      StreamId parsed;
      RR_TRY_ASSIGN(parsed, parse_id(id, "redis_ids"));
      pi.ids.push_back(parsed);
    }
    out.push_back(std::move(pi));
  }
  return out;
}

result<StreamId> parse_id(const json::value& v, std::string_view what) {
  auto id = v.is_string() ? StreamId::parse(v.get_string()) : std::nullopt;
  if (!id) {
    return make_error(errc::invalid_cursor,
                      std::string(what) + " must be stream ids like \"1730000000000-0\"");
  }
  return *id;
}

void append_message_members(std::string& out, const PartitionMessage& m) {
  char id[StreamId::kMaxTextSize];
  out += R"("partition":)";
  out += std::to_string(m.partition);
  out += R"(,"redis_id":")";
  out.append(id, m.message.id.format_to(id));
  out += R"(","delivery_count":)";
  out += std::to_string(m.message.delivery_count);
  out += R"(,"event":)";
  if (m.message.event) {
    append_envelope(out, *m.message.event);
  } else {
    out += "null";
  }
}

void append_messages(std::string& out, const std::vector<PartitionMessage>& messages) {
  out.push_back('[');
  for (const auto& m : messages) {
    if (&m != &messages.front()) out.push_back(',');
    out.push_back('{');
    append_message_members(out, m);
    out.push_back('}');
  }
  out.push_back(']');
}

}  // namespace replayrail::server
