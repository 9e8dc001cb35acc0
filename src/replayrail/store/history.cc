#include "replayrail/store/history.h"

namespace replayrail::store {

namespace {

// How often range_across() starts again when the hot store trims past the history's part while
// it reads (each time, what it has read stays read).
constexpr int kAttempts = 3;

void append(std::vector<EventPtr>& out, std::vector<EventPtr>&& more) {
  out.insert(out.end(), std::make_move_iterator(more.begin()), std::make_move_iterator(more.end()));
}

}  // namespace

namespace {

// range_across() with a history: a coroutine frame only where one is configured.
task<result<std::vector<EventPtr>>> range_with_history(Store& hot, History* history,
                                                       std::string_view stream, StreamId after,
                                                       std::size_t limit, std::string_view epoch) {
  auto page = co_await hot.range(stream, after, limit, epoch);
  const bool expired = !page && page.error().code == errc::replay_window_expired;
  // A read from the start begins before what the hot store kept, if it trimmed.
  if (!expired && !(page && after.is_zero())) co_return page;

  std::vector<EventPtr> out;
  StreamId from = after;
  for (int attempt = 0; attempt < kAttempts; ++attempt) {
    auto info = co_await hot.info(stream);
    if (!info || (!epoch.empty() && info->epoch != epoch)) break;  // gone or re-created: hot says
    const StreamId through = info->trimmed_through;
    if (through <= from) break;  // nothing trimmed after the cursor: the hot store has it all
    auto kept = co_await history->range(stream, from, through, limit - out.size());
    if (!kept) co_return kept.error();
    if (!*kept) break;  // the history cannot give it without a gap
    append(out, std::move(**kept));
    if (out.size() == limit) co_return out;
    // The history gave everything up to `through`; the hot store holds what follows.
    from = through;
    auto rest = co_await hot.range(stream, from, limit - out.size(), epoch);
    if (rest) {
      append(out, std::move(*rest));
      co_return out;
    }
    if (rest.error().code != errc::replay_window_expired) {
      if (!out.empty()) co_return out;  // what was read stands; the next read meets the error
      co_return rest.error();
    }
    // The hot store trimmed past `through` meanwhile: the history has those now, or soon.
  }
  if (!out.empty()) co_return out;
  // The hot store's answer: from the start, what it kept; otherwise replay_window_expired.
  if (!expired) co_return page;
  co_return page.error();
}

}  // namespace

task<result<std::vector<EventPtr>>> range_across(Store& hot, History* history,
                                                 std::string_view stream, StreamId after,
                                                 std::size_t limit, std::string_view epoch) {
  if (!history) return hot.range(stream, after, limit, epoch);
  return range_with_history(hot, history, stream, after, limit, epoch);
}

task<result<void>> check_history(History* history, std::string_view stream, StreamId after,
                                 StreamId trimmed_through, Error expired) {
  if (!history) co_return expired;
  auto kept = co_await history->range(stream, after, trimmed_through, 1);
  if (!kept) co_return kept.error();
  if (!*kept) co_return expired;
  co_return result<void>{};
}

}  // namespace replayrail::store
