#pragma once

// Option shapes more than one command takes.

#include <CLI/CLI.hpp>
#include <cstdint>
#include <map>
#include <string>

namespace replayrail::cli {

// An age in milliseconds, given with a unit: ms, s, m, h, d (e.g. 24h, 7d); not negative.
inline CLI::Option* add_age_option(CLI::App* cmd, const std::string& name, std::int64_t& ms,
                                   const std::string& description) {
  return cmd->add_option(name, ms, description)
      ->transform(
          CLI::AsNumberWithUnit(
              std::map<std::string, std::int64_t>{
                  {"ms", 1}, {"s", 1000}, {"m", 60'000}, {"h", 3'600'000}, {"d", 86'400'000}},
              CLI::AsNumberWithUnit::UNIT_REQUIRED)
              .description(""))
      ->check(CLI::Validator(
          [](std::string& text) { return text.starts_with('-') ? "an age is not negative" : ""; },
          "", "age"))
      ->type_name("DURATION");
}

}  // namespace replayrail::cli
