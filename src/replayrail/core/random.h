#pragma once

#include <string>

namespace replayrail {

// A random (version 4) UUID in its 36-character text form; used as the event_id of events
// published without one.
std::string make_uuid_v4();

// A random 16-hex-digit token identifying one incarnation of a stream (DESIGN §2 "Epochs").
std::string make_epoch();

}  // namespace replayrail
