#pragma once

// JSON of the consumer-group API, shared by its two transports: HTTP (`/v1/topics/…`, see
// platform_api.h) and the `replayrail.v1` WebSocket protocol (group subscriptions). One parser
// per field, so both say the same thing about the same mistake.

#include <boost/json/object.hpp>
#include <boost/json/value.hpp>
#include <cstdint>
#include <initializer_list>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "replayrail/common/errc.h"
#include "replayrail/topics.h"

namespace replayrail::server {

// The largest millisecond duration or delivery count a request may name.
inline constexpr std::int64_t kMaxRequestNumber = std::int64_t{1} << 40;

// A JSON object whose fields are read one by one, each with a clear error; a field the request
// does not know is refused (a misspelt "min_idle" would otherwise be silently 0).
class Body {
 public:
  // `text` empty: an empty object.
  static result<Body> parse(std::string_view text, std::initializer_list<std::string_view> known);
  static result<Body> of(boost::json::object object, std::initializer_list<std::string_view> known);

  // The field, or null when absent or JSON null.
  const boost::json::value* get(std::string_view name) const;
  result<std::optional<std::string>> text(std::string_view name) const;
  result<std::string> required_text(std::string_view name) const;
  result<std::int64_t> integer(std::string_view name, std::int64_t fallback, std::int64_t min,
                               std::int64_t max) const;
  // `partitions`: an array of partition numbers; empty when absent (all of them).
  result<std::vector<std::uint32_t>> partitions() const;
  // `max_deliveries`: nullopt when absent (the group's setting applies), 0 = never.
  result<std::optional<std::uint64_t>> max_deliveries() const;
  // `items`: [{"partition": n, "redis_ids": [...]}, …], what an ack names.
  result<std::vector<PartitionIds>> ack_items() const;

 private:
  explicit Body(boost::json::object object) : object_(std::move(object)) {}
  boost::json::object object_;
};

// A stream id given as a JSON string; invalid_cursor naming `what` otherwise.
result<StreamId> parse_id(const boost::json::value& v, std::string_view what);

// One delivered group message's members, `"partition":…,"redis_id":…,"delivery_count":…,
// "event":…`, without the braces (the v1 protocol adds its own members). Written as text: the
// event is its rendered envelope, as every other endpoint sends it.
void append_message_members(std::string& out, const PartitionMessage& m);
// `[{<members>}, …]`.
void append_messages(std::string& out, const std::vector<PartitionMessage>& messages);

}  // namespace replayrail::server
