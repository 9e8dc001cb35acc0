#include "replayrail/common/errc.h"

#include <boost/system/system_error.hpp>
#include <boost/throw_exception.hpp>

namespace replayrail {

std::string_view to_string(errc e) noexcept {
  switch (e) {
    case errc::invalid_argument:
      return "invalid_argument";
    case errc::invalid_json:
      return "invalid_json";
    case errc::invalid_channel:
      return "invalid_channel";
    case errc::invalid_event_type:
      return "invalid_event_type";
    case errc::invalid_event_id:
      return "invalid_event_id";
    case errc::invalid_payload:
      return "invalid_payload";
    case errc::invalid_actor:
      return "invalid_actor";
    case errc::invalid_metadata:
      return "invalid_metadata";
    case errc::invalid_created_at:
      return "invalid_created_at";
    case errc::invalid_cursor:
      return "invalid_cursor";
    case errc::payload_too_large:
      return "payload_too_large";
    case errc::replay_window_expired:
      return "replay_window_expired";
    case errc::stream_reset:
      return "stream_reset";
    case errc::duplicate_event:
      return "duplicate_event";
    case errc::duplicate_conflict:
      return "duplicate_conflict";
    case errc::stream_not_found:
      return "stream_not_found";
    case errc::group_not_found:
      return "group_not_found";
    case errc::group_exists:
      return "group_exists";
    case errc::topic_conflict:
      return "topic_conflict";
    case errc::not_found:
      return "not_found";
    case errc::unauthorized:
      return "unauthorized";
    case errc::forbidden:
      return "forbidden";
    case errc::method_not_allowed:
      return "method_not_allowed";
    case errc::backpressure:
      return "backpressure";
    case errc::slow_consumer:
      return "slow_consumer";
    case errc::store_unavailable:
      return "store_unavailable";
    case errc::auth_unavailable:
      return "auth_unavailable";
    case errc::internal:
      return "internal";
  }
  return "unknown";
}

namespace {

class RailCategory final : public boost::system::error_category {
 public:
  const char* name() const noexcept override { return "replayrail"; }
  std::string message(int ev) const override { return std::string(to_string(errc(ev))); }
};

}  // namespace

const boost::system::error_category& rail_category() noexcept {
  static const RailCategory category;
  return category;
}

Error make_error(errc code, std::string message) {
  if (message.empty()) message = std::string(to_string(code));
  return Error{code, std::move(message), std::nullopt};
}

void throw_exception_from_error(const Error& e, const boost::source_location& loc) {
  boost::throw_exception(boost::system::system_error(make_error_code(e.code), e.message), loc);
}

}  // namespace replayrail
