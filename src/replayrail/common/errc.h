#pragma once

#include <boost/system/error_code.hpp>
#include <boost/system/result.hpp>
#include <optional>
#include <string>
#include <string_view>

#include "replayrail/common/stream_id.h"

namespace replayrail {

// Every expected failure in ReplayRail. The names are the wire error codes (`to_string`), so
// an HTTP error body, a WebSocket error message and a CLI message all say the same thing.
enum class errc {
  // Bad input from a client.
  invalid_argument = 1,
  invalid_json,
  invalid_channel,
  invalid_event_type,
  invalid_event_id,
  invalid_payload,
  invalid_actor,
  invalid_metadata,
  invalid_created_at,
  invalid_cursor,
  payload_too_large,
  // Replay could not be complete.
  replay_window_expired,
  stream_reset,
  // Idempotency.
  duplicate_event,
  duplicate_conflict,
  // Missing or clashing objects.
  stream_not_found,
  group_not_found,
  group_exists,
  topic_conflict,
  not_found,  // no such endpoint
  // Auth: no valid token (401), or a token that does not allow this (403).
  unauthorized,
  forbidden,
  method_not_allowed,  // the endpoint exists, not with this method
  // The store or the server cannot take more right now.
  backpressure,
  slow_consumer,  // a subscriber with the `disconnect` policy fell too far behind
  store_unavailable,
  // The identity provider's keys are not loaded yet: tokens cannot be checked (/readyz says so).
  auth_unavailable,
  internal,
};

// The wire code of `e`, e.g. "invalid_cursor".
std::string_view to_string(errc e) noexcept;

const boost::system::error_category& rail_category() noexcept;

inline boost::system::error_code make_error_code(errc e) noexcept {
  return {static_cast<int>(e), rail_category()};
}

// An expected failure: the code, a sentence for humans, and - when replay could not be complete
// (replay_window_expired, stream_reset) - the first id history is available from.
struct Error {
  errc code = errc::internal;
  std::string message;
  std::optional<StreamId> first_available;

  friend bool operator==(const Error& e, errc c) noexcept { return e.code == c; }
};

Error make_error(errc code, std::string message = {});

// Used by boost::system::result<T, Error>::value() when it holds an error: a bug at the call
// site, so it throws.
[[noreturn]] void throw_exception_from_error(const Error& e, const boost::source_location& loc);

// The result of an operation that can fail in an expected way.
template <class T>
using result = boost::system::result<T, Error>;

// Propagate a failed result<...> from a function (RR_TRY) or a coroutine (RR_CO_TRY):
//   RR_TRY(validate_channel(name));
//   RR_TRY_ASSIGN(body.type, string_field(v));
#define RR_TRY(expr)                                             \
  do {                                                           \
    if (auto rr_try_ = (expr); !rr_try_) return rr_try_.error(); \
  } while (0)
#define RR_CO_TRY(expr)                                             \
  do {                                                              \
    if (auto rr_try_ = (expr); !rr_try_) co_return rr_try_.error(); \
  } while (0)
#define RR_TRY_ASSIGN(lhs, expr)          \
  do {                                    \
    auto rr_try_ = (expr);                \
    if (!rr_try_) return rr_try_.error(); \
    lhs = std::move(*rr_try_);            \
  } while (0)
#define RR_CO_TRY_ASSIGN(lhs, expr)          \
  do {                                       \
    auto rr_try_ = (expr);                   \
    if (!rr_try_) co_return rr_try_.error(); \
    lhs = std::move(*rr_try_);               \
  } while (0)

}  // namespace replayrail

template <>
struct boost::system::is_error_code_enum<replayrail::errc> : std::true_type {};
