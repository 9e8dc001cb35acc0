#pragma once

// Request bodies as JSON, one way for every endpoint: the same checks and the same errors.

#include <boost/json/storage_ptr.hpp>
#include <boost/json/value.hpp>
#include <string_view>

#include "replayrail/common/errc.h"

namespace replayrail {

// `text` parsed, with its values in `storage` (the default resource when none): invalid_json
// when it is not JSON or not a JSON object.
result<boost::json::value> parse_request_object(std::string_view text,
                                                boost::json::storage_ptr storage = {});

}  // namespace replayrail
