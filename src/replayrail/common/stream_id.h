#pragma once

#include <compare>
#include <cstdint>
#include <iosfwd>
#include <optional>
#include <string>
#include <string_view>

namespace replayrail {

// A position in one stream: `<ms>-<seq>`, both unsigned 64-bit. Compared numerically (ms, then
// seq), never as text. The zero id `0-0` sorts before every event.
struct StreamId {
  std::uint64_t ms = 0;
  std::uint64_t seq = 0;

  // Longest text form: two 20-digit numbers and the dash.
  static constexpr std::size_t kMaxTextSize = 41;

  static constexpr StreamId max() noexcept { return {UINT64_MAX, UINT64_MAX}; }

  // Parses exactly `<digits>-<digits>`: no sign, no spaces, no missing part, no overflow.
  static std::optional<StreamId> parse(std::string_view text) noexcept;

  // The smallest id greater than this one (max() stays max()).
  constexpr StreamId next() const noexcept {
    if (seq != UINT64_MAX) return {ms, seq + 1};
    if (ms != UINT64_MAX) return {ms + 1, 0};
    return *this;
  }

  // The greatest id smaller than this one (0-0 stays 0-0): a range "after prev()" starts at
  // this id.
  constexpr StreamId prev() const noexcept {
    if (seq != 0) return {ms, seq - 1};
    if (ms != 0) return {ms - 1, UINT64_MAX};
    return *this;
  }

  constexpr bool is_zero() const noexcept { return ms == 0 && seq == 0; }

  // Writes the text form into `out` (at least kMaxTextSize bytes); returns one past the end.
  char* format_to(char* out) const noexcept;
  std::string to_string() const;

  friend constexpr auto operator<=>(const StreamId&, const StreamId&) = default;
};

// The wall clock in Unix milliseconds: the time part of the ids the stores generate.
std::uint64_t unix_now_ms();

// `<ms>-<seq>`, for logs and test failure messages.
std::ostream& operator<<(std::ostream& os, const StreamId& id);

}  // namespace replayrail
