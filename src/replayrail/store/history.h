#pragma once

// Replay across tiers (DESIGN §6): what the hot store has trimmed is read from a history (the
// PostgreSQL archive), then the hot store, in one ordered sequence with no gap and no
// duplicate. Every replay path (Rail::replay, Subscription, the server's catch-up) reads through
// range_across().

#include <cstddef>
#include <optional>
#include <string_view>
#include <vector>

#include "replayrail/store/store.h"

namespace replayrail::store {

// Events kept after the hot store trimmed them. Thread-safe.
class History {
 public:
  virtual ~History() = default;

  // The events of `stream` in (after, through], oldest first, at most `limit`, when the history
  // holds every event of that range; nullopt when it does not (it has not got that far yet, or
  // events after `after` were lost before it kept them). `after` = 0-0 means from the start of
  // what it holds with no loss up to `through`. An error when it cannot be asked (unreachable).
  virtual task<result<std::optional<std::vector<EventPtr>>>> range(std::string_view stream,
                                                                   StreamId after, StreamId through,
                                                                   std::size_t limit) = 0;
};

// Store::range() across both tiers: the events after `after`, at most `limit`, oldest first.
// With no history (null) it is hot.range(). Otherwise, where the hot store answers
// replay_window_expired, or `after` is 0-0 and the hot store has trimmed, the trimmed part comes
// from `history` and the rest from the hot store; when the history cannot give it without a gap,
// the hot store's own answer stands.
task<result<std::vector<EventPtr>>> range_across(Store& hot, History* history,
                                                 std::string_view stream, StreamId after,
                                                 std::size_t limit, std::string_view epoch = {});

// Whether a replay after `after` can start: `expired` is the hot store's replay_window_expired
// for it, and `trimmed_through` the hot store's. Success when `history` holds what was trimmed
// after the cursor; `expired` when it does not (or there is none).
task<result<void>> check_history(History* history, std::string_view stream, StreamId after,
                                 StreamId trimmed_through, Error expired);

}  // namespace replayrail::store
