#include "replayrail/server/errors.h"

#include <boost/json/object.hpp>
#include <boost/json/serialize.hpp>

namespace replayrail::server {

unsigned http_status(errc code) {
  switch (code) {
    case errc::invalid_argument:
    case errc::invalid_json:
    case errc::invalid_channel:
    case errc::invalid_event_type:
    case errc::invalid_event_id:
    case errc::invalid_payload:
    case errc::invalid_actor:
    case errc::invalid_metadata:
    case errc::invalid_created_at:
    case errc::invalid_cursor:
      return 400;
    case errc::payload_too_large:
      return 413;
    case errc::replay_window_expired:
      return 410;
    case errc::stream_reset:
    case errc::duplicate_event:
    case errc::duplicate_conflict:
    case errc::group_exists:
    case errc::topic_conflict:
      return 409;
    case errc::stream_not_found:
    case errc::group_not_found:
    case errc::not_found:
      return 404;
    case errc::method_not_allowed:
      return 405;
    case errc::unauthorized:
      return 401;
    case errc::forbidden:
      return 403;
    case errc::backpressure:
    case errc::slow_consumer:
      return 429;
    case errc::store_unavailable:
    case errc::auth_unavailable:
      return 503;
    case errc::internal:
      return 500;
  }
  return 500;
}

boost::json::object error_json(const Error& e) {
  boost::json::object out{{"code", to_string(e.code)}, {"message", e.message}};
  if (e.first_available) out["first_available"] = e.first_available->to_string();
  return out;
}

std::string error_body(const Error& e) {
  return boost::json::serialize(boost::json::object{{"error", error_json(e)}});
}

unsigned short ws_close_code(errc code) {
  switch (http_status(code)) {
    case 400:
    case 413:
      return 4400;
    case 401:
      return 4401;
    case 403:
      return 4403;
    case 404:
      return 4404;
    case 410:
      return 4410;
    case 409:
      return 4409;
    case 429:
      return 4429;
    case 503:
      return 1013;
    default:
      return 1011;
  }
}

}  // namespace replayrail::server
