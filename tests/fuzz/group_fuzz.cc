// Consumer-group request bodies (POST /v1/topics/{topic}/groups/…, and the same fields in
// `replayrail.v1` group subscriptions): every field read is what the JSON says, within its range,
// or an error; never a value the client did not send.
#include <cstdint>
#include <string_view>

#include "check.h"
#include "replayrail/server/group_json.h"

namespace {

using namespace replayrail;
namespace json = boost::json;

void check_fields(const server::Body& body) {
  if (auto count = body.integer("count", 100, 1, 1000)) {
    RR_FUZZ_CHECK(*count >= 1 && *count <= 1000);
    if (const json::value* v = body.get("count")) RR_FUZZ_CHECK(v->as_int64() == *count);
  }
  if (auto partitions = body.partitions(); partitions && !partitions->empty()) {
    const json::array& sent = body.get("partitions")->as_array();
    RR_FUZZ_CHECK(sent.size() == partitions->size());
    for (std::size_t i = 0; i < sent.size(); ++i) {
      RR_FUZZ_CHECK(sent[i].as_int64() == (*partitions)[i] && (*partitions)[i] < kMaxPartitions);
    }
  }
  if (auto items = body.ack_items()) {
    const json::array& sent = body.get("items")->as_array();
    RR_FUZZ_CHECK(sent.size() == items->size());
    for (std::size_t i = 0; i < sent.size(); ++i) {
      const json::object& item = sent[i].as_object();
      RR_FUZZ_CHECK(item.at("partition").as_int64() == (*items)[i].partition);
      RR_FUZZ_CHECK((*items)[i].partition < kMaxPartitions);
      RR_FUZZ_CHECK(item.at("redis_ids").as_array().size() == (*items)[i].ids.size());
    }
  }
  if (auto limit = body.max_deliveries(); limit && *limit) {
    RR_FUZZ_CHECK(body.get("max_deliveries")->as_int64() == static_cast<std::int64_t>(**limit));
  }
  if (const json::value* start = body.get("start_id")) {
    // An id that parses is one that formats back to itself and parses again the same.
    if (auto id = server::parse_id(*start, "start_id")) {
      RR_FUZZ_CHECK(server::parse_id(json::value(id->to_string()), "start_id").value() == *id);
    }
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  std::string_view text(reinterpret_cast<const char*>(data), size);
  auto body = server::Body::parse(text, {"consumer", "count", "block_ms", "partitions", "items",
                                         "min_idle_ms", "start_id", "max_deliveries", "group"});
  if (body) check_fields(*body);
  return 0;
}
