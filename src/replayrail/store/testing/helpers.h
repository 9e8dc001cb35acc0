#pragma once

// Helpers shared by the conformance test files.

#include <boost/json/parse.hpp>
#include <vector>

#include "replayrail/store/store.h"

namespace replayrail::testing {

inline std::vector<StreamId> ids_of(const std::vector<EventPtr>& events) {
  std::vector<StreamId> out;
  for (const auto& e : events) out.push_back(e->id);
  return out;
}

inline std::vector<StreamId> ids_of(const std::vector<store::GroupMessage>& messages) {
  std::vector<StreamId> out;
  for (const auto& m : messages) out.push_back(m.id);
  return out;
}

inline std::int64_t payload_n(const EventPtr& e) {
  return boost::json::parse(e->payload).at("n").as_int64();
}

}  // namespace replayrail::testing
