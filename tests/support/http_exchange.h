#pragma once

// One HTTP/1.1 request and its answer on a connected stream (TCP or TLS), for the tests that
// talk to the real server binary.

#include <boost/beast/core/flat_buffer.hpp>
#include <boost/beast/http.hpp>
#include <string>
#include <utility>
#include <vector>

namespace replayrail::testing {

// `body` goes as application/json (a POST always carries one, empty or not); `headers` are set
// as given.
template <class Stream>
boost::beast::http::response<boost::beast::http::string_body> exchange(
    Stream& stream, boost::beast::http::verb verb, const std::string& target, std::string body = {},
    const std::vector<std::pair<std::string, std::string>>& headers = {}) {
  namespace http = boost::beast::http;
  http::request<http::string_body> req{verb, target, 11};
  req.set(http::field::host, "127.0.0.1");
  for (const auto& [name, value] : headers) req.set(name, value);
  if (!body.empty() || verb == http::verb::post) {
    req.set(http::field::content_type, "application/json");
    req.body() = std::move(body);
    req.prepare_payload();
  }
  http::write(stream, req);
  boost::beast::flat_buffer buffer;
  http::response_parser<http::string_body> parser;
  // The answer to HEAD has GET's Content-Length and no body.
  parser.skip(verb == http::verb::head);
  http::read(stream, buffer, parser);
  return parser.release();
}

}  // namespace replayrail::testing
