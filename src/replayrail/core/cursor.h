#pragma once

#include <string>
#include <string_view>

#include "replayrail/common/errc.h"
#include "replayrail/common/stream_id.h"

namespace replayrail {

// Where a reader starts: strictly after an id (`0-0` = from the beginning), or `$` = only events
// published from now on. `$` must be resolved to the stream's last id once, when the reader
// starts; re-sending `$` to a store in a loop loses the events published in between.
class Cursor {
 public:
  static constexpr Cursor beginning() noexcept { return Cursor(StreamId{}, false); }
  static constexpr Cursor latest() noexcept { return Cursor(StreamId{}, true); }
  static constexpr Cursor after(StreamId id) noexcept { return Cursor(id, false); }

  // "$", or `<ms>-<seq>`; anything else is errc::invalid_cursor.
  static result<Cursor> parse(std::string_view text);

  constexpr bool is_latest() const noexcept { return latest_; }
  // The id to read after; meaningless when is_latest().
  constexpr StreamId id() const noexcept { return id_; }

  std::string to_string() const;

  friend constexpr bool operator==(const Cursor&, const Cursor&) = default;

 private:
  constexpr Cursor(StreamId id, bool latest) noexcept : id_(id), latest_(latest) {}

  StreamId id_;
  bool latest_;
};

}  // namespace replayrail
