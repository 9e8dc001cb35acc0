#include "replayrail/common/stream_id.h"

#include <charconv>
#include <chrono>
#include <ostream>

namespace replayrail {

namespace {

// std::from_chars already refuses signs, spaces and overflow; we only add "the whole part".
bool parse_part(std::string_view part, std::uint64_t& out) noexcept {
  if (part.empty()) return false;
  auto [end, ec] = std::from_chars(part.data(), part.data() + part.size(), out);
  return ec == std::errc{} && end == part.data() + part.size();
}

}  // namespace

std::optional<StreamId> StreamId::parse(std::string_view text) noexcept {
  auto dash = text.find('-');
  if (dash == std::string_view::npos) return std::nullopt;
  StreamId id;
  if (!parse_part(text.substr(0, dash), id.ms) || !parse_part(text.substr(dash + 1), id.seq)) {
    return std::nullopt;
  }
  return id;
}

char* StreamId::format_to(char* out) const noexcept {
  out = std::to_chars(out, out + 20, ms).ptr;
  *out++ = '-';
  return std::to_chars(out, out + 20, seq).ptr;
}

std::ostream& operator<<(std::ostream& os, const StreamId& id) { return os << id.to_string(); }

std::string StreamId::to_string() const {
  char buf[kMaxTextSize];
  return std::string(buf, format_to(buf));
}

std::uint64_t unix_now_ms() {
  using namespace std::chrono;
  return static_cast<std::uint64_t>(
      duration_cast<milliseconds>(system_clock::now().time_since_epoch()).count());
}

}  // namespace replayrail
