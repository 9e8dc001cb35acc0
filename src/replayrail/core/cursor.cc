#include "replayrail/core/cursor.h"

namespace replayrail {

result<Cursor> Cursor::parse(std::string_view text) {
  if (text == "$") return latest();
  if (auto id = StreamId::parse(text)) return after(*id);
  std::string shown(text.substr(0, 64));
  return make_error(
      errc::invalid_cursor,
      "cursor must be \"$\" or \"<ms>-<seq>\" (unsigned 64-bit numbers), got \"" + shown + "\"");
}

std::string Cursor::to_string() const { return latest_ ? "$" : id_.to_string(); }

}  // namespace replayrail
