#pragma once

#include <boost/json/value.hpp>
#include <initializer_list>
#include <string>
#include <string_view>

#include "replayrail/core/event.h"

namespace replayrail {

// SHA-256 over the canonical JSON of {channel, type, payload, actor, metadata, created_at}:
// append_json() with object keys sorted, so two texts that parse to the same values have the
// same fingerprint.
// `created_at` is null when the server chose it, so a retry without one still matches.
Fingerprint compute_fingerprint(std::string_view channel, std::string_view type,
                                const boost::json::value& payload, const boost::json::value& actor,
                                const boost::json::value& metadata,
                                std::optional<std::string_view> client_created_at);

// SHA-256 of the concatenation of `parts` (OpenSSL; its algorithm fetched once).
Fingerprint sha256(std::initializer_list<std::string_view> parts);

std::string to_hex(const Fingerprint& f);

}  // namespace replayrail
