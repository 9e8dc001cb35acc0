#pragma once

// The server's log (DESIGN §5): spdlog, one record per line on stderr, as text
// (`2026-06-29T12:00:00.123Z warn message`) or as JSON lines for log shippers
// (`{"time":"…","level":"warn","msg":"message"}`). Code logs through spdlog's default logger
// (`spdlog::warn("…", …)`); configure() sets it up, once, when the server starts. Messages name
// what they are about as key=value pairs (`stream=orders code=store_unavailable`).

#include <spdlog/spdlog.h>

#include <optional>
#include <string_view>

namespace replayrail::logging {

enum class Format { text, json };

// trace, debug, info, warn, error, critical or off.
std::optional<spdlog::level::level_enum> parse_level(std::string_view name);
std::optional<Format> parse_format(std::string_view name);

// Replaces the default logger with one writing to stderr at `level`, times in UTC.
void configure(spdlog::level::level_enum level, Format format);

}  // namespace replayrail::logging
