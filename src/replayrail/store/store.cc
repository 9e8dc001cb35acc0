#include "replayrail/store/store.h"

namespace replayrail::store {

std::string partition_stream(std::string_view topic, std::uint32_t partitions, std::uint32_t p) {
  std::string name(topic);
  if (partitions > 1) {
    name.push_back('#');
    name += std::to_string(p);
  }
  return name;
}

}  // namespace replayrail::store
