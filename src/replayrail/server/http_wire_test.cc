#include "replayrail/server/http_wire.h"

#include <gtest/gtest.h>

#include <boost/beast/http/write.hpp>
#include <sstream>

namespace replayrail::server {
namespace {

namespace http = boost::beast::http;
using Response = http::response<http::string_body>;

// What Beast's own serializer writes for `res`.
std::string beast_bytes(const Response& res) {
  std::ostringstream out;
  out << res;
  return out.str();
}

Response made(http::status status, unsigned version, std::string body) {
  Response res{status, version};
  res.body() = std::move(body);
  res.prepare_payload();
  return res;
}

TEST(HttpWire, WritesWhatBeastsSerializerWrites) {
  std::vector<Response> cases;
  auto created = made(http::status::created, 11, R"({"event":{"id":"1-0"}})");
  created.set(http::field::content_type, "application/json");
  created.set(http::field::access_control_allow_origin, "https://app.example");
  created.insert("X-Custom", "a value: with a colon");
  cases.push_back(created);
  auto closing = made(http::status::too_many_requests, 11, R"({"error":{}})");
  closing.set(http::field::retry_after, "1");
  closing.keep_alive(false);  // Connection: close
  cases.push_back(closing);
  cases.push_back(made(http::status::no_content, 11, ""));
  cases.push_back(made(http::status::ok, 10, "old client"));
  auto unknown = made(static_cast<http::status>(599), 11, "");
  unknown.reason("Made Up");
  cases.push_back(unknown);
  for (const auto& res : cases) EXPECT_EQ(wire_bytes(res), beast_bytes(res));
  EXPECT_EQ(wire_bytes(cases[2]), "HTTP/1.1 204 No Content\r\nContent-Length: 0\r\n\r\n");
}

}  // namespace
}  // namespace replayrail::server
