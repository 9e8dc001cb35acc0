#pragma once

#include <boost/json/value.hpp>
#include <string>

#include "replayrail/core/event.h"

namespace replayrail {

// Canonical JSON: object keys sorted by their UTF-8 bytes, no whitespace, numbers and strings as
// Boost.JSON serialises them. Two texts that parse to the same value have the same canonical form.
// Hand-written because no Debian package offers RFC 8785-style canonicalisation for Boost.JSON.
void append_canonical_json(std::string& out, const boost::json::value& v);

// SHA-256 over the canonical JSON of {channel, type, payload, actor, metadata, created_at}.
// `created_at` is null when the server chose it, so a retry without one still matches.
Fingerprint compute_fingerprint(std::string_view channel, std::string_view type,
                                const boost::json::value& payload, const boost::json::value& actor,
                                const boost::json::value& metadata,
                                std::optional<std::string_view> client_created_at);

std::string to_hex(const Fingerprint& f);

}  // namespace replayrail
