#pragma once

// Which parts of a benchmark run: those named on its command line, all when none are (e.g. one
// store, to profile it).

#include <algorithm>
#include <string>
#include <string_view>
#include <vector>

class Picked {
 public:
  Picked(int argc, char** argv) : names_(argv + 1, argv + argc) {}
  bool operator()(std::string_view name) const {
    return names_.empty() || std::find(names_.begin(), names_.end(), name) != names_.end();
  }

 private:
  std::vector<std::string> names_;
};
