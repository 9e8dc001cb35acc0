// Publish and ingest bodies (POST /events/{channel}, POST /v1/topics/{topic}/events): whatever
// the parsers accept and make_event() validates renders as a JSON envelope carrying the same
// fields, with payload and metadata objects and actor an object or null; a publish body's
// payload is stored with the very values it was sent with (numbers to the last bit).
#include <boost/json.hpp>
#include <cstdint>
#include <string_view>

#include "check.h"
#include "replayrail/core/event.h"
#include "replayrail/core/json_text.h"

namespace {

using namespace replayrail;
namespace json = boost::json;

void check_envelope(const NewEvent& made) {
  Event e = made.event;
  e.id = {1719367320123, 7};
  boost::system::error_code ec;
  json::value v = json::parse(render_envelope(e), ec);
  RR_FUZZ_CHECK(!ec && v.is_object());
  const json::object& o = v.get_object();
  RR_FUZZ_CHECK(o.size() == 8);
  RR_FUZZ_CHECK(o.at("id") == "1719367320123-7");
  RR_FUZZ_CHECK(o.at("event_id") == json::string_view(e.event_id));
  RR_FUZZ_CHECK(o.at("channel") == json::string_view(e.channel));
  RR_FUZZ_CHECK(o.at("type") == json::string_view(e.type));
  RR_FUZZ_CHECK(o.at("created_at") == json::string_view(e.created_at));
  RR_FUZZ_CHECK(o.at("payload").is_object());
  RR_FUZZ_CHECK(o.at("metadata").is_object());
  RR_FUZZ_CHECK(o.at("actor").is_object() || o.at("actor").is_null());
  RR_FUZZ_CHECK(validate_channel(e.channel) && validate_type(e.type) &&
                validate_event_id(e.event_id));
}

void check_body(const PublishBody& body, std::string_view channel) {
  auto made = make_event(body.input(channel));
  if (!made) return;
  check_envelope(*made);
  // The size limit (on what the publisher sent) refuses, never truncates.
  std::size_t sent =
      body.payload.size() + body.actor.value_or("").size() + body.metadata.value_or("").size();
  auto small = make_event_within(body.input(channel), 16);
  RR_FUZZ_CHECK(small.has_value() == (sent <= 16));
  if (small) RR_FUZZ_CHECK(small->event.payload == made->event.payload);
}

// The payload stored for an accepted publish body parses to the value the body held.
void check_payload_values(std::string_view text, const PublishBody& body) {
  auto sent = parse_json(text);
  RR_FUZZ_CHECK(sent && sent->is_object());
  auto stored = parse_json(body.payload);
  RR_FUZZ_CHECK(stored.has_value());
  const json::value* payload = sent->get_object().if_contains("payload");
  RR_FUZZ_CHECK(payload ? *stored == *payload : body.payload == "{}");
}

}  // namespace

// The first byte picks the body: even = a publish body, odd = an ingest body.
extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  if (size == 0) return 0;
  std::string_view text(reinterpret_cast<const char*>(data + 1), size - 1);
  if (data[0] % 2 == 0) {
    if (auto body = parse_publish_body(text)) {
      check_payload_values(text, *body);
      check_body(*body, "orders:1");
    }
  } else if (auto body = parse_ingest_body(text)) {
    for (const auto& event : body->events) check_body(event, "orders#0");
  }
  return 0;
}
