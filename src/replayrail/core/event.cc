#include "replayrail/core/event.h"

#include <boost/json/monotonic_resource.hpp>
#include <boost/json/value.hpp>

#include "replayrail/core/fingerprint.h"
#include "replayrail/core/json_text.h"
#include "replayrail/core/random.h"
#include "replayrail/core/request_json.h"
#include "replayrail/core/timestamp.h"

namespace replayrail {

namespace json = boost::json;

namespace {

constexpr bool is_alnum(char c) noexcept {
  return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9');
}

// `extra` lists the punctuation allowed besides ASCII letters and digits.
result<void> check_name(std::string_view value, std::size_t max_size, std::string_view extra,
                        errc code, std::string_view what) {
  auto fail = [&](std::string why) { return make_error(code, std::string(what) + " " + why); };
  if (value.empty()) return fail("must not be empty");
  if (value.size() > max_size) {
    return fail("must be at most " + std::to_string(max_size) + " characters");
  }
  for (char c : value) {
    if (!is_alnum(c) && extra.find(c) == std::string_view::npos) {
      return fail("may contain only letters, digits and \"" + std::string(extra) + "\"");
    }
  }
  return {};
}

// Parses `text` as JSON into `out` (storage from `mr`); the error says which field was wrong.
result<void> parse_field(std::string_view text, json::monotonic_resource& mr, json::value& out,
                         errc code, std::string_view what) {
  auto parsed = parse_json(text, &mr);
  if (!parsed) return make_error(code, std::string(what) + " " + parsed.error().message);
  out = std::move(*parsed);
  return {};
}

}  // namespace

result<void> validate_channel(std::string_view channel) {
  return check_name(channel, kMaxChannelSize, "._-:/", errc::invalid_channel, "channel");
}

result<void> validate_type(std::string_view type) {
  return check_name(type, kMaxTypeSize, "._-:", errc::invalid_event_type, "type");
}

result<void> validate_event_id(std::string_view event_id) {
  return check_name(event_id, kMaxEventIdSize, "._-:", errc::invalid_event_id, "event_id");
}

namespace {

constexpr const char* kPayloadKind = "payload must be a JSON object";
constexpr const char* kActorKind = "actor must be a JSON object or null";
constexpr const char* kMetadataKind = "metadata must be a JSON object";

// Parses payload, actor and metadata, checks their kinds, and (for a chosen event_id) computes
// the fingerprint into `out`.
result<void> check_json_fields(const EventInput& in, std::string_view actor_text,
                               std::string_view metadata_text, NewEvent& out) {
  unsigned char buffer[4096];
  json::monotonic_resource mr(buffer, sizeof buffer);
  json::value payload(&mr), actor(&mr), metadata(&mr);  // parsed into mr: moved, not copied
  RR_TRY(parse_field(in.payload, mr, payload, errc::invalid_payload, "payload"));
  if (!payload.is_object()) return make_error(errc::invalid_payload, kPayloadKind);
  RR_TRY(parse_field(actor_text, mr, actor, errc::invalid_actor, "actor"));
  if (!actor.is_object() && !actor.is_null()) return make_error(errc::invalid_actor, kActorKind);
  RR_TRY(parse_field(metadata_text, mr, metadata, errc::invalid_metadata, "metadata"));
  if (!metadata.is_object()) return make_error(errc::invalid_metadata, kMetadataKind);
  // Only idempotency compares fingerprints, and only chosen event_ids are looked up.
  if (in.event_id) {
    // Each attempt of a retried publish is its own span, with its own traceparent: trace context
    // is not content, so a retry still matches the first attempt.
    metadata.as_object().erase("traceparent");
    out.fingerprint =
        compute_fingerprint(in.channel, in.type, payload, actor, metadata, in.created_at);
  }
  return {};
}

}  // namespace

result<NewEvent> make_event(const EventInput& in) {
  RR_TRY(validate_channel(in.channel));
  RR_TRY(validate_type(in.type));
  if (in.event_id) RR_TRY(validate_event_id(*in.event_id));
  if (in.created_at && !is_valid_timestamp(*in.created_at)) {
    return make_error(errc::invalid_created_at,
                      "created_at must be an RFC 3339 UTC timestamp ending in Z, e.g. "
                      "2026-06-29T12:00:00.123Z");
  }

  std::string_view actor_text = in.actor.value_or("null");
  std::string_view metadata_text = in.metadata.value_or("{}");
  NewEvent out;
  if (!in.json_checked || in.event_id) {
    RR_TRY(check_json_fields(in, actor_text, metadata_text, out));
  }
  Event& e = out.event;
  e.event_id = in.event_id ? std::string(*in.event_id) : make_uuid_v4();
  out.chosen_event_id = in.event_id.has_value();
  e.channel = in.channel;
  e.type = in.type;
  e.payload = in.payload;
  e.actor = actor_text;
  e.metadata = metadata_text;
  e.created_at = in.created_at ? std::string(*in.created_at) : now_timestamp();
  return out;
}

EventInput PublishBody::input(std::string_view channel) const {
  EventInput in;
  in.channel = channel;
  in.type = type;
  in.payload = payload;
  in.actor = actor;
  in.metadata = metadata;
  in.event_id = event_id;
  in.created_at = created_at;
  in.json_checked = true;  // by parse_publish_object
  return in;
}

namespace {

// `metadata` (compact object text, from to_json(), or none) with `"key":value` put first.
std::string with_member(const std::optional<std::string>& metadata, std::string_view key,
                        std::string_view value_json) {
  std::string out = "{";
  append_json_string(out, key);
  out.push_back(':');
  out.append(value_json);
  if (!metadata || *metadata == "{}") {
    out.push_back('}');
  } else {
    out.push_back(',');
    out.append(*metadata, 1);  // the members and the closing brace
  }
  return out;
}

}  // namespace

void PublishBody::keep_traceparent(std::string_view header) {
  if (metadata_has_traceparent) return;
  std::string value;
  append_json_string(value, header);
  metadata = with_member(metadata, "traceparent", value);
  metadata_has_traceparent = true;
}

result<void> PublishBody::stamp_publisher(std::string_view subject) {
  const std::string stamp = to_json(json::object{
      {"sub", subject.empty() ? json::value(nullptr) : json::value(json::string_view(subject))}});
  if (metadata_publisher) {
    if (*metadata_publisher == stamp) return {};
    std::string given = *metadata_publisher;
    if (given.size() > 200) {  // cut on a UTF-8 character's first byte: the message stays UTF-8
      std::size_t cut = 200;
      while ((static_cast<unsigned char>(given[cut]) & 0xC0) == 0x80) --cut;
      given.resize(cut);
      given += "…";
    }
    return make_error(errc::forbidden, "metadata.publisher " + given + " is not the token's " +
                                           stamp + ": the server records who publishes");
  }
  metadata = with_member(metadata, "publisher", stamp);
  metadata_publisher = stamp;
  return {};
}

bool is_traceparent(std::string_view header) {
  auto hex = [&](std::size_t from, std::size_t n) {
    bool zeros = true;
    for (char c : header.substr(from, n)) {
      if (!((c >= '0' && c <= '9') || (c >= 'a' && c <= 'f'))) return false;
      zeros = zeros && c == '0';
    }
    return n == 2 || !zeros;  // trace-id and parent-id must not be all zeros
  };
  if (header.size() < 55 || header[2] != '-' || header[35] != '-' || header[52] != '-') {
    return false;
  }
  if (!hex(0, 2) || header.substr(0, 2) == "ff" || !hex(3, 32) || !hex(36, 16) || !hex(53, 2)) {
    return false;
  }
  if (header.substr(0, 2) == "00") return header.size() == 55;
  return header.size() == 55 || header[55] == '-';
}

result<NewEvent> make_event_within(const EventInput& input, std::size_t max_bytes) {
  std::size_t size =
      input.payload.size() + input.actor.value_or("").size() + input.metadata.value_or("").size();
  if (size > max_bytes) {
    return make_error(errc::payload_too_large, "payload, actor and metadata are " +
                                                   std::to_string(size) + " bytes; the limit is " +
                                                   std::to_string(max_bytes));
  }
  return make_event(input);
}

// One publish body as a JSON object. `event_type` is OpenStream's name for `type`.
result<PublishBody> parse_publish_object(const json::object& object) {
  PublishBody body;
  bool has_type = false;
  auto string_field = [](const json::value& v, std::string_view name,
                         errc code) -> result<std::string> {
    if (!v.is_string()) return make_error(code, std::string(name) + " must be a string");
    return std::string(v.get_string());
  };
  for (const auto& kv : object) {
    std::string_view key = kv.key();
    const json::value& v = kv.value();
    if (key == "type" || key == "event_type") {
      if (has_type) return make_error(errc::invalid_event_type, "type is given twice");
      RR_TRY_ASSIGN(body.type, string_field(v, key, errc::invalid_event_type));
      has_type = true;
    } else if (key == "payload") {
      if (!v.is_object()) return make_error(errc::invalid_payload, kPayloadKind);
      body.payload = to_json(v);
    } else if (key == "actor") {
      if (!v.is_object() && !v.is_null()) return make_error(errc::invalid_actor, kActorKind);
      body.actor = to_json(v);
    } else if (key == "metadata") {
      if (!v.is_null() && !v.is_object()) {
        return make_error(errc::invalid_metadata, kMetadataKind);
      }
      if (!v.is_null()) {
        body.metadata = to_json(v);
        body.metadata_has_traceparent = v.get_object().contains("traceparent");
        if (const json::value* publisher = v.get_object().if_contains("publisher")) {
          body.metadata_publisher = to_json(*publisher);
        }
      }
    } else if (key == "event_id") {
      if (!v.is_null()) RR_TRY_ASSIGN(body.event_id, string_field(v, key, errc::invalid_event_id));
    } else if (key == "created_at") {
      if (!v.is_null()) {
        RR_TRY_ASSIGN(body.created_at, string_field(v, key, errc::invalid_created_at));
      }
    } else if (key == "partition_key") {
      if (!v.is_null()) {
        RR_TRY_ASSIGN(body.partition_key, string_field(v, key, errc::invalid_argument));
      }
    } else {
      // Refused rather than ignored: a misspelt "paylod" would otherwise publish an empty event.
      return make_error(errc::invalid_argument, "unknown field \"" + std::string(key) + "\"");
    }
  }
  if (!has_type) return make_error(errc::invalid_event_type, "type is required");
  return body;
}

result<json::value> parse_request_object(std::string_view text, json::storage_ptr storage) {
  auto doc = parse_json(text, std::move(storage));
  if (!doc) return make_error(errc::invalid_json, "request body " + doc.error().message);
  if (!doc->is_object()) {
    return make_error(errc::invalid_json, "request body must be a JSON object");
  }
  return doc;
}

// Publish and ingest bodies are parsed into an arena: they are read into PublishBody strings and
// dropped, so one arena for the whole document saves a malloc per value.
result<PublishBody> parse_publish_body(std::string_view text) {
  unsigned char buffer[4096];
  json::monotonic_resource mr(buffer, sizeof buffer);
  auto doc = parse_request_object(text, &mr);
  if (!doc) return doc.error();
  return parse_publish_object(doc->get_object());
}

result<IngestBody> parse_ingest_body(std::string_view text) {
  json::monotonic_resource mr(text.size() + 1024);  // about what the document needs
  auto doc = parse_request_object(text, &mr);
  if (!doc) return doc.error();
  const json::object& object = doc->get_object();
  IngestBody body;
  bool has_events = false;
  for (const auto& kv : object) {
    if (kv.key() == "events") {
      if (!kv.value().is_array())
        return make_error(errc::invalid_argument, "events must be an array");
      const auto& events = kv.value().get_array();
      body.events.reserve(events.size());
      for (std::size_t i = 0; i < events.size(); ++i) {
        auto prefix = [i] { return "events[" + std::to_string(i) + "]: "; };
        if (!events[i].is_object()) {
          return make_error(errc::invalid_argument, prefix() + "an event must be a JSON object");
        }
        auto e = parse_publish_object(events[i].get_object());
        if (!e) return make_error(e.error().code, prefix() + e.error().message);
        body.events.push_back(std::move(*e));
      }
      has_events = true;
    } else if (kv.key() == "partitions") {
      auto n = kv.value().if_int64();
      if (!n || *n < 1 || *n > kMaxPartitions) {
        return make_error(errc::invalid_argument, "partitions must be an integer from 1 to " +
                                                      std::to_string(kMaxPartitions));
      }
      body.partitions = static_cast<std::uint32_t>(*n);
    } else {
      return make_error(errc::invalid_argument, "unknown field \"" + std::string(kv.key()) + "\"");
    }
  }
  if (!has_events) return make_error(errc::invalid_argument, "events is required");
  return body;
}

void append_envelope(std::string& out, const Event& e) {
  char id[StreamId::kMaxTextSize];
  out += R"({"id":")";
  out.append(id, e.id.format_to(id));
  out += R"(","event_id":)";
  append_json_string(out, e.event_id);
  out += R"(,"channel":)";
  append_json_string(out, e.channel);
  out += R"(,"type":)";
  append_json_string(out, e.type);
  out += R"(,"payload":)";
  out += e.payload;
  out += R"(,"actor":)";
  out += e.actor;
  out += R"(,"metadata":)";
  out += e.metadata;
  out += R"(,"created_at":)";
  append_json_string(out, e.created_at);
  out.push_back('}');
}

std::string render_envelope(const Event& e) {
  std::string out;
  out.reserve(160 + e.event_id.size() + e.channel.size() + e.type.size() + e.payload.size() +
              e.actor.size() + e.metadata.size());
  append_envelope(out, e);
  return out;
}

}  // namespace replayrail
