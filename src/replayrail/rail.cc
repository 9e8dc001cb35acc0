#include "replayrail/rail.h"

#include <algorithm>

#include "replayrail/store/rules.h"

namespace replayrail {

Rail::Rail(std::shared_ptr<store::Store> store, RailConfig config,
           std::shared_ptr<Backpressure> backpressure, std::shared_ptr<store::History> history)
    : store_(std::move(store)),
      config_(config),
      backpressure_(std::move(backpressure)),
      history_(std::move(history)) {}

store::task<result<store::Appended>> Rail::publish(const EventInput& input) {
  NewEvent event;
  RR_CO_TRY_ASSIGN(event, make_event_within(input, config_.max_payload_bytes));
  std::string stream = event.event.channel;
  std::optional<Backpressure::Ticket> admitted;
  if (backpressure_ && backpressure_->checks_stream()) {
    RR_CO_TRY_ASSIGN(admitted, co_await backpressure_->admit(stream, 1));
  } else if (backpressure_) {
    RR_CO_TRY_ASSIGN(admitted, backpressure_->reserve(1));
  }
  auto stored = co_await store_->append(stream, std::move(event), config_.append_options());
  if (backpressure_ && stored && !stored->duplicate) backpressure_->appended(stream, 1);
  co_return stored;
}

store::task<result<Expired>> Rail::expire_old_events(std::uint64_t now_ms,
                                                     const StringMap<store::Millis>& own) {
  // Every stream when there is a server-wide age (listing them all); else only those of `own`.
  std::vector<std::string> streams;
  if (config_.max_stream_age.count() > 0) {
    RR_CO_TRY_ASSIGN(streams, co_await store_->list_streams());
  } else {
    for (const auto& [stream, age] : own) streams.push_back(stream);
  }
  Expired out;
  for (const auto& stream : streams) {
    auto it = own.find(stream);
    const auto age =
        static_cast<std::uint64_t>((it == own.end() ? config_.max_stream_age : it->second).count());
    if (age == 0 || now_ms <= age) continue;
    std::uint64_t removed;
    RR_CO_TRY_ASSIGN(removed, co_await store_->trim_before(stream, StreamId{now_ms - age, 0}));
    out.events += removed;
    ++out.streams;
  }
  co_return out;
}

store::task<result<StreamId>> Rail::resolve(std::string_view channel, Cursor cursor) {
  RR_CO_TRY(validate_channel(channel));
  if (!cursor.is_latest()) co_return cursor.id();
  auto info = co_await store_->info(channel);
  if (info) co_return info->last_id;
  if (info.error() == errc::stream_not_found) co_return StreamId{};
  co_return info.error();
}

store::task<result<std::vector<EventPtr>>> Rail::replay(std::string_view channel, Cursor after,
                                                        std::optional<std::size_t> limit) {
  RR_CO_TRY(validate_channel(channel));
  if (after.is_latest()) co_return std::vector<EventPtr>{};
  std::size_t n = std::min(limit.value_or(config_.default_replay_limit), config_.max_replay_limit);
  co_return co_await store::range_across(*store_, history_.get(), channel, after.id(), n);
}

store::task<result<std::vector<EventPtr>>> Rail::read(std::string_view channel, Cursor after,
                                                      std::optional<store::Millis> block,
                                                      std::optional<std::size_t> limit) {
  StreamId from;  // resolve() checks the channel
  RR_CO_TRY_ASSIGN(from, co_await resolve(channel, after));
  store::StreamCursor cursor{std::string(channel), from, {}};
  std::size_t n = std::min(limit.value_or(config_.default_replay_limit), config_.max_replay_limit);
  std::vector<store::StreamEvents> batches;
  RR_CO_TRY_ASSIGN(batches, co_await store_->read({&cursor, 1}, {n, block}));
  co_return batches.empty() ? std::vector<EventPtr>{} : std::move(batches.front().events);
}

store::task<result<Subscription>> Rail::subscribe(std::string_view channel,
                                                  std::optional<Cursor> from, std::string epoch) {
  RR_CO_TRY(validate_channel(channel));
  Cursor start =
      from.value_or(config_.default_start_position == StartPosition::latest ? Cursor::latest()
                                                                            : Cursor::beginning());
  StreamId position = start.is_latest() ? StreamId{} : start.id();
  // One info() both resolves `$` and learns the epoch, so later reads notice a re-created stream.
  auto info = co_await store_->info(channel);
  if (!info && info.error() != errc::stream_not_found) co_return info.error();
  // The cursor is checked now rather than at the first replay page, so that a server can refuse
  // before its response starts: an SSE client answered 410 stops, while one told in the stream
  // reconnects with the same cursor every second, forever.
  std::optional<store::StreamPosition> at;
  if (info) at = store::StreamPosition{info->epoch, info->first_id, info->trimmed_through};
  if (auto checked = store::check_cursor(channel, at ? &*at : nullptr, position, epoch); !checked) {
    if (checked.error().code != errc::replay_window_expired) co_return checked.error();
    RR_CO_TRY(co_await store::check_history(history_.get(), channel, position,
                                            info->trimmed_through, checked.error()));
  }
  if (info) {
    if (start.is_latest()) position = info->last_id;
    if (epoch.empty()) epoch = info->epoch;
  }
  co_return Subscription(*store_, history_.get(), std::string(channel), position, std::move(epoch),
                         std::max<std::size_t>(1, config_.subscribe_batch_size));
}

store::task<result<std::vector<EventPtr>>> Subscription::next(
    std::optional<store::Millis> timeout) {
  if (!caught_up_) {
    std::vector<EventPtr> page;
    RR_CO_TRY_ASSIGN(
        page, co_await store::range_across(*store_, history_, channel_, position_, batch_, epoch_));
    // A short page means replay reached the end of what was stored when it ran.
    if (page.size() < batch_) caught_up_ = true;
    if (!page.empty()) {
      position_ = page.back()->id;
      co_return page;
    }
  }
  // Live: a blocking read strictly after the last id yielded, so nothing published after that
  // id is skipped and nothing yielded is repeated.
  store::StreamCursor cursor{channel_, position_, epoch_};
  std::vector<store::StreamEvents> batches;
  RR_CO_TRY_ASSIGN(
      batches, co_await store_->read({&cursor, 1}, {batch_, timeout.value_or(store::Millis(0))}));
  if (batches.empty()) co_return std::vector<EventPtr>{};
  position_ = batches.front().events.back()->id;
  co_return std::move(batches.front().events);
}

}  // namespace replayrail
