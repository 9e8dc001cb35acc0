#include "replayrail/core/event.h"

#include <gtest/gtest.h>

#include <boost/json/parse.hpp>
#include <regex>
#include <set>

#include "replayrail/core/fingerprint.h"
#include "replayrail/core/json_text.h"
#include "replayrail/core/random.h"
#include "replayrail/core/timestamp.h"

namespace replayrail {
namespace {

namespace json = boost::json;

EventInput valid() {
  EventInput in;
  in.channel = "restaurant:123:orders";
  in.type = "order.created";
  in.payload = R"({"order_id":"ord_123"})";
  return in;
}

errc error_of(const EventInput& in) {
  auto r = make_event(in);
  return r ? errc{} : r.error().code;
}

TEST(Event, ChannelRules) {
  for (const char* ok : {"a", "restaurant:123:orders", "a.b-c_d/e:f", "A0"}) {
    EXPECT_TRUE(validate_channel(ok)) << ok;
  }
  EXPECT_TRUE(validate_channel(std::string(256, 'c')));
  for (std::string bad : {std::string(), std::string(257, 'c'), std::string("a#1"),
                          std::string("a b"), std::string("a*"), std::string("é"),
                          std::string("a\nb"), std::string("a\0b", 3), std::string("a?b")}) {
    auto r = validate_channel(bad);
    ASSERT_FALSE(r) << bad;
    EXPECT_EQ(r.error().code, errc::invalid_channel);
  }
}

TEST(Event, TypeAndEventIdRules) {
  EXPECT_TRUE(validate_type("order.created"));
  EXPECT_TRUE(validate_type(std::string(200, 't')));
  EXPECT_EQ(validate_type(std::string(201, 't')).error().code, errc::invalid_event_type);
  EXPECT_EQ(validate_type("a/b").error().code, errc::invalid_event_type) << "no / in types";
  EXPECT_EQ(validate_type("").error().code, errc::invalid_event_type);

  EXPECT_TRUE(validate_event_id("evt_1:2.3-4"));
  EXPECT_TRUE(validate_event_id(std::string(128, 'e')));
  EXPECT_EQ(validate_event_id(std::string(129, 'e')).error().code, errc::invalid_event_id);
  EXPECT_EQ(validate_event_id("a/b").error().code, errc::invalid_event_id);
  EXPECT_EQ(validate_event_id("").error().code, errc::invalid_event_id);
  EXPECT_EQ(validate_event_id("a b").error().code, errc::invalid_event_id);
}

TEST(Event, FillsDefaults) {
  auto r = make_event(valid());
  ASSERT_TRUE(r) << r.error().message;
  const Event& e = r->event;
  EXPECT_EQ(e.id, StreamId{});
  EXPECT_TRUE(std::regex_match(
      e.event_id,
      std::regex("[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}")))
      << e.event_id;
  EXPECT_EQ(e.actor, "null");
  EXPECT_EQ(e.metadata, "{}");
  EXPECT_TRUE(is_valid_timestamp(e.created_at)) << e.created_at;
  EXPECT_NE(make_event(valid())->event.event_id, e.event_id);
}

TEST(Event, KeepsTheValidatedTextExactly) {
  EventInput in = valid();
  in.payload = R"({ "b" : 2, "a" : [1, 2.50, "x"] })";
  in.actor = R"({"type":"waiter","id":"usr_123"})";
  in.metadata = R"({"correlation_id":"req_abc123"})";
  in.event_id = "evt-1";
  in.created_at = "2026-06-29T12:00:00.123Z";
  auto r = make_event(in);
  ASSERT_TRUE(r);
  EXPECT_EQ(r->event.payload, in.payload);
  EXPECT_EQ(r->event.actor, *in.actor);
  EXPECT_EQ(r->event.metadata, *in.metadata);
  EXPECT_EQ(r->event.event_id, "evt-1");
  EXPECT_EQ(r->event.created_at, "2026-06-29T12:00:00.123Z");
}

TEST(Event, RefusesBadJsonFields) {
  auto with = [](auto field, std::string_view text) {
    EventInput in = valid();
    field(in, text);
    return error_of(in);
  };
  auto payload = [](EventInput& in, std::string_view t) { in.payload = t; };
  auto actor = [](EventInput& in, std::string_view t) { in.actor = t; };
  auto metadata = [](EventInput& in, std::string_view t) { in.metadata = t; };
  // {"e":1e400}: readers would get infinity.
  for (const char* bad :
       {"", "[]", "1", "\"x\"", "null", "{", "{\"a\":}", "{} {}", "{'a':1}", "{\"e\":1e400}"}) {
    EXPECT_EQ(with(payload, bad), errc::invalid_payload) << bad;
    EXPECT_EQ(with(metadata, bad), errc::invalid_metadata) << bad;
  }
  EXPECT_EQ(with(actor, "null"), errc{});
  EXPECT_EQ(with(actor, "[]"), errc::invalid_actor);
  EXPECT_EQ(with(actor, "\"waiter\""), errc::invalid_actor);
  EXPECT_EQ(with(actor, "{"), errc::invalid_actor);
  EXPECT_EQ(with(actor, R"({"n":-1e999})"), errc::invalid_actor);

  EventInput deep = valid();
  std::string nested = std::string(100, '[') + std::string(100, ']');
  std::string payload_text = R"({"a":)" + nested + "}";
  deep.payload = payload_text;
  EXPECT_EQ(error_of(deep), errc::invalid_payload) << "nesting is bounded";

  EventInput bad_time = valid();
  bad_time.created_at = "yesterday";
  EXPECT_EQ(error_of(bad_time), errc::invalid_created_at);
  EventInput bad_channel = valid();
  bad_channel.channel = "a#b";
  EXPECT_EQ(error_of(bad_channel), errc::invalid_channel);
  EventInput bad_id = valid();
  bad_id.event_id = "has space";
  EXPECT_EQ(error_of(bad_id), errc::invalid_event_id);
}

// An event with a publisher-chosen event_id: the only kind whose fingerprint is computed.
EventInput chosen() {
  EventInput in = valid();
  in.event_id = "evt-1";
  return in;
}

TEST(Event, FingerprintIgnoresKeyOrderAndSpacing) {
  EventInput a = chosen(), b = chosen();
  a.payload = R"({"x":1,"y":{"b":true,"a":null}})";
  b.payload = R"({ "y" : { "a" : null , "b" : true } , "x" : 1 })";
  EXPECT_EQ(make_event(a)->fingerprint, make_event(b)->fingerprint);
}

TEST(Event, FingerprintCoversEveryContentField) {
  Fingerprint base = make_event(chosen())->fingerprint;
  std::vector<EventInput> changed(6, chosen());
  changed[0].payload = R"({"order_id":"ord_124"})";
  changed[1].type = "order.updated";
  changed[2].channel = "restaurant:124:orders";
  changed[3].actor = R"({"id":"u"})";
  changed[4].metadata = R"({"k":"v"})";
  changed[5].created_at = "2026-06-29T12:00:00Z";
  for (const auto& in : changed) EXPECT_NE(make_event(in)->fingerprint, base);
  // Not the event_id, and not a created_at the server chose: a retry must match.
  EventInput retry = chosen();
  retry.event_id = "evt-9";
  EXPECT_EQ(make_event(retry)->fingerprint, base);
}

TEST(Event, GeneratedEventIdsNeedNoFingerprint) {
  auto e = make_event(valid());
  ASSERT_TRUE(e);
  EXPECT_FALSE(e->chosen_event_id);
  EXPECT_EQ(e->fingerprint, Fingerprint{});
}

TEST(Event, TraceparentFollowsTheW3CFormat) {
  EXPECT_TRUE(is_traceparent("00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"));
  EXPECT_TRUE(is_traceparent("00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-00"));
  // A later version: its first 55 characters, then "-" and what that version adds.
  EXPECT_TRUE(is_traceparent("01-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-xyz"));
  for (const char* bad : {"", "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7",
                          "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-",
                          "00-00000000000000000000000000000000-00f067aa0ba902b7-01",
                          "00-4bf92f3577b34da6a3ce929d0e0e4736-0000000000000000-01",
                          "00-4BF92F3577B34DA6A3CE929D0E0E4736-00f067aa0ba902b7-01",
                          "ff-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
                          "01-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01x",
                          "00_4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"}) {
    EXPECT_FALSE(is_traceparent(bad)) << bad;
  }
}

TEST(Event, KeepTraceparentAddsItToMetadataUnlessTheBodyHasOne) {
  const std::string tp = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";
  auto kept = [&](const char* body) {
    auto b = parse_publish_body(body).value();
    b.keep_traceparent(tp);
    return b.metadata.value_or("(none)");
  };
  EXPECT_EQ(kept(R"({"type":"t"})"), R"({"traceparent":")" + tp + R"("})");
  EXPECT_EQ(kept(R"({"type":"t","metadata":{}})"), R"({"traceparent":")" + tp + R"("})");
  EXPECT_EQ(kept(R"({"type":"t","metadata":{"a":[1]}})"),
            R"({"traceparent":")" + tp + R"(","a":[1]})");
  EXPECT_EQ(kept(R"({"type":"t","metadata":{"traceparent":"x"}})"), R"({"traceparent":"x"})");
}

TEST(Event, StampPublisherRecordsTheTokensSubjectAndRefusesAnother) {
  auto stamped = [](const char* body, std::string_view sub) -> result<std::string> {
    auto b = parse_publish_body(body).value();
    RR_TRY(b.stamp_publisher(sub));
    return b.metadata.value_or("(none)");
  };
  EXPECT_EQ(stamped(R"({"type":"t"})", "svc-1").value(), R"({"publisher":{"sub":"svc-1"}})");
  EXPECT_EQ(stamped(R"({"type":"t","metadata":{"a":[1]}})", "svc-1").value(),
            R"({"publisher":{"sub":"svc-1"},"a":[1]})");
  EXPECT_EQ(stamped(R"({"type":"t","metadata":null})", "").value(),
            R"({"publisher":{"sub":null}})");
  // Quotes and non-ASCII in a subject are escaped, never spliced raw.
  EXPECT_EQ(stamped(R"({"type":"t"})", "a\"b\xc3\xa9").value(),
            "{\"publisher\":{\"sub\":\"a\\\"b\xc3\xa9\"}}");
  // The same publisher (a retry built from a delivered event) is kept as it is.
  EXPECT_EQ(
      stamped(R"({"type":"t","metadata":{"a":1,"publisher":{"sub":"svc-1"}}})", "svc-1").value(),
      R"({"a":1,"publisher":{"sub":"svc-1"}})");
  // Another one, or anything else under that name, is someone claiming to be someone else.
  for (const char* body : {R"({"type":"t","metadata":{"publisher":{"sub":"admin"}}})",
                           R"({"type":"t","metadata":{"publisher":"svc-1"}})",
                           R"({"type":"t","metadata":{"publisher":{"sub":"svc-1","x":1}}})",
                           R"({"type":"t","metadata":{"publisher":null}})"}) {
    auto refused = stamped(body, "svc-1");
    ASSERT_FALSE(refused) << body;
    EXPECT_EQ(refused.error().code, errc::forbidden);
    EXPECT_NE(refused.error().message.find(R"(is not the token's {"sub":"svc-1"})"),
              std::string::npos)
        << refused.error().message;
  }
  // A long claim is cut in the message, between characters.
  std::string long_claim = R"({"type":"t","metadata":{"publisher":{"sub":"x)";  // é at odd bytes
  for (int i = 0; i < 150; ++i) long_claim += "\xc3\xa9";
  auto cut = stamped((long_claim + "\"}}}").c_str(), "svc-1");
  ASSERT_FALSE(cut);
  EXPECT_LT(cut.error().message.size(), 300u);
  EXPECT_NE(cut.error().message.find("\xc3\xa9… is not"), std::string::npos) << cut.error().message;
  // Stamped, the metadata still takes a traceparent, and is what the fingerprint covers.
  auto b = parse_publish_body(R"({"type":"t","event_id":"e1"})").value();
  ASSERT_TRUE(b.stamp_publisher("svc-1"));
  b.keep_traceparent("00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01");
  auto other = parse_publish_body(R"({"type":"t","event_id":"e1"})").value();
  ASSERT_TRUE(other.stamp_publisher("svc-2"));
  EXPECT_NE(make_event(b.input("c")).value().fingerprint,
            make_event(other.input("c")).value().fingerprint);
}

TEST(Event, FingerprintLeavesTraceContextOut) {
  auto fingerprint = [](const char* metadata) {
    EventInput in = valid();
    in.event_id = "e";
    in.metadata = metadata;
    return make_event(in).value().fingerprint;
  };
  EXPECT_EQ(fingerprint(R"({"a":1,"traceparent":"00-aa"})"),
            fingerprint(R"({"traceparent":"00-bb","a":1})"));
  EXPECT_EQ(fingerprint(R"({"a":1})"), fingerprint(R"({"a":1,"traceparent":"00-bb"})"));
  EXPECT_NE(fingerprint(R"({"a":1})"), fingerprint(R"({"a":2})"));
}

TEST(Event, CanonicalJsonSortsKeysRecursively) {
  std::string out;
  append_json(out, json::parse(R"({"b":[{"d":1,"c":2}],"a":"\u00e9\n"})"), KeyOrder::sorted);
  EXPECT_EQ(out, "{\"a\":\"\u00e9\\n\",\"b\":[{\"c\":2,\"d\":1}]}");
  EXPECT_EQ(to_hex(Fingerprint{}), std::string(64, '0'));
}

TEST(Event, RenderedEnvelopeIsTheWireFormat) {
  EventInput in = valid();
  in.actor = R"({"type":"waiter","id":"usr_123"})";
  in.event_id = "evt-1";
  in.created_at = "2026-06-29T12:00:00.123Z";
  Event e = make_event(in)->event;
  e.id = {1719367320123, 0};
  std::string text = render_envelope(e);
  EXPECT_EQ(text, R"({"id":"1719367320123-0","event_id":"evt-1","channel":"restaurant:123:orders",)"
                  R"("type":"order.created","payload":{"order_id":"ord_123"},)"
                  R"("actor":{"type":"waiter","id":"usr_123"},"metadata":{},)"
                  R"("created_at":"2026-06-29T12:00:00.123Z"})");
  EXPECT_NO_THROW(json::parse(text));
}

TEST(Event, RenderEscapesForeignStrings) {
  Event e;
  e.event_id = "a\"b";
  e.channel = "c\\d";
  e.type = "t\n";
  e.payload = "{}";
  e.actor = "null";
  e.metadata = "{}";
  e.created_at = "2026-06-29T12:00:00Z";
  auto doc = json::parse(render_envelope(e)).as_object();
  EXPECT_EQ(doc.at("event_id").as_string(), "a\"b");
  EXPECT_EQ(doc.at("channel").as_string(), "c\\d");
  EXPECT_EQ(doc.at("type").as_string(), "t\n");
}

TEST(PublishBody, ParsesEveryField) {
  auto r = parse_publish_body(
      R"({"type":"order.created","payload":{"a":1},"actor":{"id":"u"},"metadata":{"m":2},)"
      R"("event_id":"e1","created_at":"2026-06-29T12:00:00Z","partition_key":"k"})");
  ASSERT_TRUE(r) << r.error().message;
  EXPECT_EQ(r->type, "order.created");
  EXPECT_EQ(r->payload, R"({"a":1})");
  EXPECT_EQ(r->actor, R"({"id":"u"})");
  EXPECT_EQ(r->metadata, R"({"m":2})");
  EXPECT_EQ(r->event_id, "e1");
  EXPECT_EQ(r->created_at, "2026-06-29T12:00:00Z");
  EXPECT_EQ(r->partition_key, "k");
  auto event = make_event(r->input("ch"));
  ASSERT_TRUE(event);
  EXPECT_EQ(event->event.channel, "ch");
}

TEST(PublishBody, MinimalBodyGetsDefaults) {
  auto r = parse_publish_body(R"({"type":"t"})");
  ASSERT_TRUE(r);
  auto event = make_event(r->input("ch"));
  ASSERT_TRUE(event);
  EXPECT_EQ(event->event.payload, "{}");
  EXPECT_EQ(event->event.actor, "null");
}

TEST(PublishBody, RefusesBadBodies) {
  struct Case {
    const char* body;
    errc code;
  };
  for (auto [body, code] : std::initializer_list<Case>{
           {"", errc::invalid_json},
           {"{", errc::invalid_json},
           {"[]", errc::invalid_json},
           {"{}", errc::invalid_event_type},
           {R"({"type":1})", errc::invalid_event_type},
           {R"({"type":"t","event_id":5})", errc::invalid_event_id},
           {R"({"type":"t","created_at":5})", errc::invalid_created_at},
           {R"({"type":"t","paylod":{}})", errc::invalid_argument},
           {R"({"type":"t","partition_key":[]})", errc::invalid_argument},
           // The kinds of the JSON fields are checked here (make_event trusts them).
           {R"({"type":"t","payload":[1]})", errc::invalid_payload},
           {R"({"type":"t","payload":null})", errc::invalid_payload},
           {R"({"type":"t","actor":"me"})", errc::invalid_actor},
           {R"({"type":"t","metadata":[]})", errc::invalid_metadata},
       }) {
    auto r = parse_publish_body(body);
    ASSERT_FALSE(r) << body;
    EXPECT_EQ(r.error().code, code) << body << ": " << r.error().message;
  }
}

TEST(PublishBody, ItsEventsAreTheSameWithAndWithoutTheJsonCheck) {
  auto body = parse_publish_body(
      R"({"type":"t","payload":{"b":1,"a":[true]},"actor":null,"metadata":{"k":"v"}})");
  ASSERT_TRUE(body);
  EventInput trusted = body->input("ch");
  ASSERT_TRUE(trusted.json_checked);
  EventInput checked = trusted;
  checked.json_checked = false;
  auto a = make_event(trusted), b = make_event(checked);
  ASSERT_TRUE(a && b);
  EXPECT_EQ(a->event.payload, b->event.payload);
  EXPECT_EQ(a->event.actor, b->event.actor);
  EXPECT_EQ(a->event.metadata, b->event.metadata);
  // With a chosen event_id the fingerprint is needed, so the JSON is parsed either way.
  trusted.event_id = checked.event_id = "evt-1";
  EXPECT_EQ(make_event(trusted)->fingerprint, make_event(checked)->fingerprint);
  EXPECT_NE(make_event(trusted)->fingerprint, Fingerprint{});
}

TEST(Random, UuidsAndEpochsAreWellFormedAndDistinct) {
  std::set<std::string> seen;
  for (int i = 0; i < 1000; ++i) {
    auto u = make_uuid_v4();
    ASSERT_EQ(u.size(), 36u);
    EXPECT_EQ(u[14], '4');
    EXPECT_TRUE(seen.insert(u).second);
  }
  auto e = make_epoch();
  EXPECT_EQ(e.size(), 16u);
  EXPECT_NE(e, make_epoch());
}

}  // namespace
}  // namespace replayrail
