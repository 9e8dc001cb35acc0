#include "replayrail/core/json_text.h"

#include <gtest/gtest.h>

#include <bit>
#include <cmath>
#include <limits>
#include <random>

namespace replayrail {
namespace {

namespace json = boost::json;

// parse_json then to_json.
std::string round_trip(std::string_view text) {
  auto v = parse_json(text);
  EXPECT_TRUE(v) << text << ": " << v.error().message;
  return v ? to_json(*v) : "";
}

TEST(JsonText, NumbersAreWrittenAsPeopleAndOtherLibrariesWriteThem) {
  EXPECT_EQ(round_trip(R"({"amount":12.34,"f":0.1,"n":100,"neg":-7})"),
            R"({"amount":12.34,"f":0.1,"n":100,"neg":-7})");
  // A float stays a float (Python reads 1.0 as float, 1 as int).
  EXPECT_EQ(round_trip("[1.0,1E2,-0.0,2.50]"), "[1.0,100.0,-0.0,2.5]");
  EXPECT_EQ(round_trip("[1e16,1e-7,5e-324]"), "[1e+16,1e-07,5e-324]");
  EXPECT_EQ(round_trip("[18446744073709551615,-9223372036854775808]"),
            "[18446744073709551615,-9223372036854775808]");
}

TEST(JsonText, DoublesReadExactly) {
  // Boost.JSON 1.81's own parser reads these one unit in the last place off.
  for (const char* text :
       {"474.59380568556355", "2.1829489720880483e+41", "-2.0516627292152302e-283",
        "3.668012599812919e-14", "25539519.964905206"}) {
    auto v = parse_json(text);
    ASSERT_TRUE(v && v->is_double()) << text;
    EXPECT_EQ(v->get_double(), std::strtod(text, nullptr)) << text;
    EXPECT_EQ(to_json(*v), text);
  }
  // More digits than a double holds: the nearest double, as strtod reads it.
  auto big = parse_json("123456789012345678901234");
  ASSERT_TRUE(big && big->is_double());
  EXPECT_EQ(big->get_double(), std::strtod("123456789012345678901234", nullptr));
}

TEST(JsonText, EveryDoubleSurvivesARoundTrip) {
  std::mt19937_64 random(20261123);
  int checked = 0;
  while (checked < 100'000) {
    double d = std::bit_cast<double>(random());
    if (!std::isfinite(d)) continue;
    ++checked;
    auto back = parse_json(to_json(json::value(d)));
    ASSERT_TRUE(back && back->is_double()) << to_json(json::value(d));
    ASSERT_EQ(std::bit_cast<std::uint64_t>(back->get_double()), std::bit_cast<std::uint64_t>(d))
        << to_json(json::value(d));
  }
}

TEST(JsonText, ANumberBeyondADoubleIsRefused) {
  for (const char* text : {R"({"e":1e400})", R"([-1e400])", "1.8e308"}) {
    auto v = parse_json(text);
    ASSERT_FALSE(v) << text;
    EXPECT_EQ(v.error().code, errc::invalid_json);
    EXPECT_NE(v.error().message.find("beyond the range of a double"), std::string::npos)
        << v.error().message;
  }
  // Too small is zero, as every reader takes it.
  EXPECT_EQ(round_trip("[1e-400,-1e-400]"), "[0.0,-0.0]");
  // Made by code rather than read: written as null, as JSON.stringify does.
  EXPECT_EQ(to_json(json::array{std::numeric_limits<double>::infinity(), std::nan("")}),
            "[null,null]");
}

TEST(JsonText, BadTextIsRefusedAndTheParserRecovers) {
  for (const char* text : {"{", "{} x", "[1,]", "nul", "\"\\x\"", "", "[1e]"}) {
    auto v = parse_json(text);
    ASSERT_FALSE(v) << text;
    EXPECT_EQ(v.error().code, errc::invalid_json);
    EXPECT_EQ(v.error().message.rfind("is not valid JSON: ", 0), 0u) << v.error().message;
  }
  // A document that failed inside a number leaves nothing behind for the next (found by
  // event_fuzz: the next document's first double was read with the digits prepended).
  for (const char* text : {"[888", "[-1.2", "[88888888888888888888", "[1e"}) {
    EXPECT_FALSE(parse_json(text)) << text;
    EXPECT_EQ(round_trip("[1.5,88888888888888888888]"), "[1.5,88888888888888885248.0]") << text;
  }
  EXPECT_EQ(round_trip(R"({"a":[true,false,null,{}],"b":"\u00e9\n\"q\""})"),
            "{\"a\":[true,false,null,{}],\"b\":\"\u00e9\\n\\\"q\\\"\"}");
}

TEST(JsonText, SortedKeysForACanonicalForm) {
  std::string out;
  append_json(out, *parse_json(R"({"b":{"y":1,"x":2},"a":[{"d":0.5,"c":null}]})"),
              KeyOrder::sorted);
  EXPECT_EQ(out, R"({"a":[{"c":null,"d":0.5}],"b":{"x":2,"y":1}})");
}

}  // namespace
}  // namespace replayrail
