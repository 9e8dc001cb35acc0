#pragma once

#include <array>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "replayrail/common/errc.h"
#include "replayrail/common/stream_id.h"

namespace boost::json {
class object;
}

namespace replayrail {

// One stored event (DESIGN §2). payload, actor and metadata hold the exact JSON text that was
// validated, so delivery re-encodes nothing. Immutable once stored: shared as EventPtr.
struct Event {
  StreamId id;           // assigned by the store; 0-0 until appended
  std::string event_id;  // idempotency key
  std::string channel;
  std::string type;
  std::string payload;     // JSON object text
  std::string actor;       // JSON object text, or "null"
  std::string metadata;    // JSON object text, "{}" by default
  std::string created_at;  // RFC 3339 UTC
};

using EventPtr = std::shared_ptr<const Event>;

// SHA-256 of the canonical JSON of an event's content (see fingerprint.h).
using Fingerprint = std::array<std::uint8_t, 32>;

// A validated event ready to append: its content and fingerprint.
struct NewEvent {
  Event event;
  Fingerprint fingerprint{};  // computed only for a chosen event_id (zero otherwise)
  // The publisher chose the event_id. Server-generated ids are never sent twice (a retry without
  // an event_id is a new event), so stores remember only chosen ones for idempotency.
  bool chosen_event_id = false;
};

// What a publisher supplies. Views must outlive the make_event() call only.
struct EventInput {
  std::string_view channel;
  std::string_view type;
  std::string_view payload = "{}";             // JSON object text
  std::optional<std::string_view> actor;       // JSON object or null text
  std::optional<std::string_view> metadata;    // JSON object text
  std::optional<std::string_view> event_id;    // generated (UUIDv4) when absent
  std::optional<std::string_view> created_at;  // now when absent
  // payload, actor and metadata were serialised from parsed JSON whose kinds were checked
  // (parse_publish_body): make_event need not parse them again unless it needs a fingerprint.
  bool json_checked = false;
};

// Validation rules of DESIGN §2.
inline constexpr std::size_t kMaxChannelSize = 256;
inline constexpr std::size_t kMaxTypeSize = 200;
inline constexpr std::size_t kMaxEventIdSize = 128;
inline constexpr std::uint32_t kMaxPartitions = 1024;

result<void> validate_channel(std::string_view channel);
result<void> validate_type(std::string_view type);
result<void> validate_event_id(std::string_view event_id);

// Validates every field and fills the defaults: the only way to make a NewEvent.
result<NewEvent> make_event(const EventInput& input);
// make_event, refusing (payload_too_large) payload + actor + metadata over `max_bytes`.
result<NewEvent> make_event_within(const EventInput& input, std::size_t max_bytes);

// The body of `POST /events/{channel}`: `{type, payload?, actor?, metadata?, event_id?,
// created_at?}`. Sub-objects are checked (payload an object, actor an object or null, metadata
// an object) and re-serialised once here, on ingest; the result is what is stored and delivered.
struct PublishBody {
  std::string type;
  std::string payload = "{}";
  std::optional<std::string> actor;
  std::optional<std::string> metadata;
  std::optional<std::string> event_id;
  std::optional<std::string> created_at;
  std::optional<std::string> partition_key;
  bool metadata_has_traceparent = false;
  // The body's `metadata.publisher`, as compact JSON text, when it has one.
  std::optional<std::string> metadata_publisher;

  EventInput input(std::string_view channel) const;
  // Keeps the publish request's W3C `traceparent` header in metadata (DESIGN §5), unless the
  // body's metadata has one: the body says what it means. `header` must pass is_traceparent().
  void keep_traceparent(std::string_view header);
  // Records who published, from the token that authorised the publish: metadata
  // `"publisher": {"sub": <the token's sub, null when it has none>}`, so the stored event (and
  // the archive's hash chain over it) says who did it. A body that names another publisher is
  // refused (forbidden); one that names this one (a retry built from a delivered event) is kept.
  result<void> stamp_publisher(std::string_view subject);
};
result<PublishBody> parse_publish_body(std::string_view json_text);
// The same, of a parsed object (a v1 `publish` message, its own fields taken out).
result<PublishBody> parse_publish_object(const boost::json::object& object);

// Whether `header` is a W3C Trace Context `traceparent` (https://www.w3.org/TR/trace-context/):
// version 00 is `00-<32 hex trace-id>-<16 hex parent-id>-<2 hex flags>`, lower-case, ids not all
// zeros; a later version is read by its first 55 characters (then "-" or the end). Anything else
// is ignored rather than refused, as the specification asks.
bool is_traceparent(std::string_view header);

// The body of `POST /v1/topics/{topic}/events`: `{"events":[…], "partitions"?: n}`, each event
// a publish body (with `event_type` accepted for `type`, as OpenStream names it).
struct IngestBody {
  std::vector<PublishBody> events;
  std::optional<std::uint32_t> partitions;
};
result<IngestBody> parse_ingest_body(std::string_view json_text);

// The wire envelope: `{"id":…,"event_id":…,"channel":…,"type":…,"payload":…,"actor":…,
// "metadata":…,"created_at":…}`. The one function that renders it, everywhere.
std::string render_envelope(const Event& e);
void append_envelope(std::string& out, const Event& e);

}  // namespace replayrail
