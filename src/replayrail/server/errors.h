#pragma once

// How an Error goes on the wire (DESIGN §4): HTTP status, JSON error body, WebSocket close code.

#include <boost/json/object.hpp>
#include <string>

#include "replayrail/common/errc.h"

namespace replayrail::server {

// The HTTP status for an error code, e.g. invalid_cursor -> 400, replay_window_expired -> 410.
unsigned http_status(errc code);

// `{"code":"…","message":"…"}`, plus `"first_available":"<id>"` when replay could not be
// complete.
boost::json::object error_json(const Error& e);
// `{"error":<error_json>}`.
std::string error_body(const Error& e);

// The WebSocket close code: 4400 bad request, 4401 / 4403 auth, 4404 not found, 4409 stream reset,
// 4410 window expired, 4429 slow consumer or backpressure, 1013 store unavailable (try again
// later), 1011 anything else.
unsigned short ws_close_code(errc code);

}  // namespace replayrail::server
