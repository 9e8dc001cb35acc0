#pragma once

#include <boost/beast/http/message.hpp>
#include <boost/beast/http/string_body.hpp>
#include <string>

namespace replayrail::server {

// The bytes of `res` as HTTP/1.x puts them on the wire: the status line, the fields in their
// order, a blank line, the body (unless `with_body` is false: the answer to a HEAD request);
// the same bytes Beast's serializer (http::async_write) writes.
//
// Hand-written because of what the serializer costs for the small responses this server sends:
// its buffer-sequence machinery took ~15,000 instructions per response, a quarter of all the
// server's instructions for an HTTP publish (callgrind); this is one string, written with one
// asio::async_write. Defined in server.cc, the server's one Beast translation unit.
std::string wire_bytes(const boost::beast::http::response<boost::beast::http::string_body>& res,
                       bool with_body = true);

}  // namespace replayrail::server
