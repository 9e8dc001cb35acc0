#pragma once

#include <cstdint>
#include <functional>
#include <memory>

#include "replayrail/store/store.h"

namespace replayrail::store {

// The whole store contract in process, without persistence: for tests and ephemeral demos.
// Same semantics as the Redis store (the conformance suite checks it).
//
// Lifecycle: create, share, destroy after every caller is done. Thread-safe: one mutex guards
// all state and is never held across a suspension point.
class MemoryStore final : public Store {
 public:
  struct Options {
    // Wall clock in Unix milliseconds, for new ids; injectable so tests can step it back.
    std::function<std::uint64_t()> now_ms;
  };

  MemoryStore();
  explicit MemoryStore(Options options);
  ~MemoryStore() override;

  task<result<Appended>> append(std::string_view stream, NewEvent event,
                                AppendOptions options) override;
  task<result<std::vector<Appended>>> append_batch(std::string_view stream,
                                                   std::vector<NewEvent> events,
                                                   AppendOptions options) override;
  task<result<std::vector<EventPtr>>> range(std::string_view stream, StreamId after,
                                            std::size_t limit, std::string_view epoch) override;
  task<result<std::vector<StreamEvents>>> read(std::span<const StreamCursor> cursors,
                                               ReadOptions options) override;
  task<result<StreamInfo>> info(std::string_view stream) override;
  task<result<bool>> delete_stream(std::string_view stream) override;
  task<result<std::uint64_t>> trim_before(std::string_view stream, StreamId before) override;
  task<result<std::vector<std::string>>> list_streams() override;

  task<result<void>> group_create(std::string_view stream, std::string_view group, Cursor start,
                                  bool mkstream, GroupOptions options = {}) override;
  task<result<void>> group_setid(std::string_view stream, std::string_view group,
                                 Cursor id) override;
  task<result<bool>> group_destroy(std::string_view stream, std::string_view group) override;
  task<result<std::vector<GroupStreamMessages>>> read_group(std::string_view group,
                                                            std::string_view consumer,
                                                            std::span<const GroupCursor> cursors,
                                                            ReadOptions options) override;
  task<result<std::uint64_t>> ack(std::string_view stream, std::string_view group,
                                  std::span<const StreamId> ids) override;
  task<result<AutoclaimResult>> autoclaim(std::string_view stream, std::string_view group,
                                          std::string_view consumer, Millis min_idle,
                                          StreamId start, std::size_t count) override;
  task<result<PendingSummary>> pending(std::string_view stream, std::string_view group) override;
  task<result<std::vector<PendingEntry>>> pending_entries(std::string_view stream,
                                                          std::string_view group,
                                                          PendingQuery query) override;
  task<result<std::vector<ConsumerInfo>>> consumers(std::string_view stream,
                                                    std::string_view group) override;

  task<result<Topic>> create_topic(std::string_view name, std::uint32_t partitions) override;
  task<result<std::optional<Topic>>> get_topic(std::string_view name) override;
  task<result<std::vector<Topic>>> list_topics() override;
  task<result<Topic>> set_topic_retention(std::string_view name, TopicRetention retention) override;
  task<result<bool>> delete_topic(std::string_view name) override;
  task<result<bool>> take_lease(std::string_view name, Millis ttl) override;

  task<result<void>> health() override;
  void close() override;

 private:
  struct State;
  std::unique_ptr<State> state_;
};

}  // namespace replayrail::store
