#pragma once

// Leases of the stores that belong to one process (memory, local): what Store::take_lease is
// there, with the semantics of Redis' `SET key value NX PX ttl`.

#include <chrono>
#include <mutex>
#include <string>
#include <string_view>

#include "replayrail/common/string_map.h"

namespace replayrail::store {

// Thread-safe.
class Leases {
 public:
  // Takes `name` for `ttl` unless it is held; whether it was taken.
  bool take(std::string_view name, std::chrono::milliseconds ttl) {
    const auto now = std::chrono::steady_clock::now();
    std::lock_guard lock(mu_);
    auto it = held_until_.find(name);
    if (it != held_until_.end() && it->second > now) return false;
    held_until_.insert_or_assign(std::string(name), now + ttl);
    return true;
  }

 private:
  std::mutex mu_;
  StringMap<std::chrono::steady_clock::time_point> held_until_;
};

}  // namespace replayrail::store
