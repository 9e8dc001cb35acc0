// Stream ids, cursors and timestamps, as clients send them (`after=`, `last_event_id=`,
// `created_at`): whatever parses formats to a text that parses again to the same value.
#include <cstdint>
#include <string_view>

#include "check.h"
#include "replayrail/core/cursor.h"
#include "replayrail/core/timestamp.h"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  using namespace replayrail;
  std::string_view text(reinterpret_cast<const char*>(data), size);
  if (auto id = StreamId::parse(text)) {
    auto again = StreamId::parse(id->to_string());
    RR_FUZZ_CHECK(again && *again == *id);
    RR_FUZZ_CHECK(id->next() > *id || *id == StreamId::max());
  }
  if (auto cursor = Cursor::parse(text)) {
    auto again = Cursor::parse(cursor->to_string());
    RR_FUZZ_CHECK(again && *again == *cursor);
  }
  (void)is_valid_timestamp(text);
  return 0;
}
