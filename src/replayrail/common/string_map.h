#pragma once

#include <functional>
#include <map>
#include <string>
#include <string_view>
#include <unordered_map>

namespace replayrail {

// Hash that lets string-keyed unordered maps be searched with a string_view, without building a
// std::string per lookup.
struct StringHash {
  using is_transparent = void;
  std::size_t operator()(std::string_view s) const noexcept {
    return std::hash<std::string_view>{}(s);
  }
};

template <class V>
using StringMap = std::unordered_map<std::string, V, StringHash, std::equal_to<>>;

// Ordered, also searchable with a string_view.
template <class V>
using SortedStringMap = std::map<std::string, V, std::less<>>;

}  // namespace replayrail
