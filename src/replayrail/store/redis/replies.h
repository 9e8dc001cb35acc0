#pragma once

// Turning Redis replies into the store's values and errors.

#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "replayrail/core/event.h"
#include "replayrail/resp/codec.h"
#include "replayrail/store/store.h"

namespace replayrail::store::redis {

// An error reply as the store's Error: NOGROUP → group_not_found, BUSYGROUP → group_exists,
// XGROUP on a missing key → stream_not_found, OOM / LOADING / BUSY / CLUSTERDOWN and cluster
// redirections → store_unavailable, anything else (WRONGTYPE …) → internal, with Redis's words
// in the message.
Error redis_error(const resp::Reply& reply, std::string_view command);

Error unexpected_reply(std::string_view command);

// Blocking commands (XREAD / XREADGROUP BLOCK) wait at most this long per round trip, below
// the connection's command timeout; longer waits loop.
inline constexpr Millis kMaxBlock{5000};

// A command's arguments: command("XACK", key, group, id). Built from plain arguments because
// GCC 12 miscompiles braced lists of string literals inside coroutines.
template <class... Args>
std::vector<std::string> command(Args&&... args) {
  std::vector<std::string> out;
  out.reserve(sizeof...(args));
  (out.emplace_back(std::forward<Args>(args)), ...);
  return out;
}

// A stream id reply; 0-0 for nil or empty.
StreamId parse_id_or_zero(const resp::Reply& reply);

// An XRANGE / XREAD entry `[id, [field, value, …]]` as an event; null when the entry's fields are
// nil (a pending message whose entry was trimmed). Missing fields get their defaults, so entries
// written by other producers read back.
result<EventPtr> parse_entry(const resp::Reply& entry);

// The value after `name` in a flat [name, value, …] reply (XINFO); a nil reply when absent.
const resp::Reply& field(const resp::Reply& map, std::string_view name);

// A topic registry value: "<partitions> <created_at>", then the topic's own retention, each
// setting as " max_length=N" / " max_age_ms=N" when set. Fields it does not know are skipped,
// so a later version may add some.
result<Topic> parse_topic(std::string_view name, std::string_view value);
std::string topic_value(const Topic& t);

}  // namespace replayrail::store::redis
