#include "replayrail/log/log.h"

#include <spdlog/pattern_formatter.h>
#include <spdlog/sinks/stdout_sinks.h>

#include <memory>
#include <string>

#include "replayrail/core/json_text.h"

namespace replayrail::logging {

namespace {

// `%*` in a pattern: the message as a JSON string (quoted and escaped).
class JsonMessage : public spdlog::custom_flag_formatter {
 public:
  void format(const spdlog::details::log_msg& msg, const std::tm&,
              spdlog::memory_buf_t& dest) override {
    std::string quoted;
    append_json_string(quoted, std::string_view(msg.payload.data(), msg.payload.size()));
    dest.append(quoted.data(), quoted.data() + quoted.size());
  }
  std::unique_ptr<custom_flag_formatter> clone() const override {
    return std::make_unique<JsonMessage>();
  }
};

}  // namespace

std::optional<spdlog::level::level_enum> parse_level(std::string_view name) {
  // from_str knows the names and the short ones ("warn", "err"), and answers `off` for a name
  // it does not know.
  if (name == "off") return spdlog::level::off;
  const auto level = spdlog::level::from_str(std::string(name));
  if (level == spdlog::level::off) return std::nullopt;
  return level;
}

std::optional<Format> parse_format(std::string_view name) {
  if (name == "text") return Format::text;
  if (name == "json") return Format::json;
  return std::nullopt;
}

void configure(spdlog::level::level_enum level, Format format) {
  auto formatter = std::make_unique<spdlog::pattern_formatter>(spdlog::pattern_time_type::utc);
  if (format == Format::json) {
    formatter->add_flag<JsonMessage>('*').set_pattern(
        R"({"time":"%Y-%m-%dT%H:%M:%S.%eZ","level":"%l","msg":%*})");
  } else {
    formatter->set_pattern("%Y-%m-%dT%H:%M:%S.%eZ %l %v");
  }
  auto logger = std::make_shared<spdlog::logger>("replayrail",
                                                 std::make_shared<spdlog::sinks::stderr_sink_mt>());
  logger->set_formatter(std::move(formatter));
  logger->set_level(level);
  logger->flush_on(spdlog::level::trace);  // every line reaches the log at once
  spdlog::set_default_logger(std::move(logger));
}

}  // namespace replayrail::logging
