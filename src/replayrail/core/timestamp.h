#pragma once

#include <chrono>
#include <string>
#include <string_view>

namespace replayrail {

// `2026-06-29T12:00:00.123Z`: RFC 3339, UTC, millisecond precision.
std::string format_timestamp(std::chrono::system_clock::time_point t);

// The current time in that form.
std::string now_timestamp();

// True for an RFC 3339 UTC timestamp with a `Z` suffix, an optional fraction of 1-9 digits, and
// a real calendar date (`2026-02-30T00:00:00Z` is refused). Offsets such as `+02:00` are refused:
// every stored timestamp is UTC so they sort and compare as text.
bool is_valid_timestamp(std::string_view text) noexcept;

}  // namespace replayrail
