#pragma once

// JSON text in and out, with numbers kept exactly. Every JSON document the server reads from a
// client or a store, and every one it writes, goes through these.
//
// Hand-written around Boost.JSON rather than boost::json::parse/serialize because Boost 1.81
// (Debian 12) gets numbers wrong in three ways that change what a subscriber receives:
// - its parser rounds about one double in ten to a neighbouring value (474.59380568556355 reads
//   as 474.5938056855635); the exact parser is an option only from Boost 1.83;
// - its serializer writes every double in exponent form (12.34 as 1.234E1, 0.1 as 1E-1);
// - a number beyond a double's range (1e400) reads as infinity and is written as `Infinity`,
//   which no JSON parser accepts.
// Here the parser is Boost's own (basic_parser), with each double read again from its text by
// std::from_chars, which rounds correctly; the writer is Boost's for strings and std::to_chars
// (the shortest text that reads back as the same double) for numbers.

#include <boost/json/storage_ptr.hpp>
#include <boost/json/value.hpp>
#include <string>
#include <string_view>

#include "replayrail/common/errc.h"

namespace replayrail {

// `text` as one JSON value, numbers exact, allocated from `storage` (the default resource when
// none). Refused (invalid_json) when it is not JSON, or when a number is beyond the range of a
// double: readers would get infinity, and I-JSON (RFC 7493) rules such numbers out. The error's
// message completes "<what> …", e.g. "is not valid JSON: syntax error".
result<boost::json::value> parse_json(std::string_view text, boost::json::storage_ptr storage = {});

enum class KeyOrder { as_given, sorted };

// Appends `v` as compact JSON text. A double is written as the shortest text that reads back as
// it, with ".0" when that text looks like an integer, so a float stays a float for readers that
// tell them apart (Python); an infinity or NaN (only code makes them) as null, as
// JSON.stringify does. `sorted`: object members in the order of their keys' UTF-8 bytes, for a
// canonical form.
void append_json(std::string& out, const boost::json::value& v,
                 KeyOrder order = KeyOrder::as_given);
std::string to_json(const boost::json::value& v);

// `s` as a JSON string literal. Channel, type and event_id are validated to need no escaping,
// but events written by another producer into a shared Redis may not be, so this escapes
// whenever a character needs it.
void append_json_string(std::string& out, std::string_view s);

}  // namespace replayrail
