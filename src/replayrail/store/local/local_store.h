#pragma once

#include <chrono>
#include <cstdint>
#include <filesystem>
#include <functional>
#include <memory>

#include "replayrail/store/local/schema.h"
#include "replayrail/store/store.h"

namespace replayrail::store {

namespace local {
class Writer;
class ReaderPool;
}  // namespace local

// The embedded default store (DESIGN §3 "local"): one SQLite database in WAL mode in a data
// directory. Writes go through one writer thread that group-commits; an append is acknowledged
// only after its transaction committed with the configured fsync policy. Reads run on the
// calling thread with their own connections. Blocked readers are woken after commit.
//
// Lifecycle: open() locks the directory (a second process gets "data directory in use") and
// starts the writer; destroying the store fails queued writes, stops the writer and unlocks.
// Thread-safe.
class LocalStore final : public Store {
 public:
  struct Options {
    std::filesystem::path dir = "replayrail-data";
    local::Fsync fsync = local::Fsync::always;
    // With fsync=batch: the most time between a commit and the fsync that puts it on disk.
    std::chrono::milliseconds fsync_interval{1000};
    std::size_t max_batch = 4096;  // write operations per transaction at most
    // Entries one transaction deletes from a stream at most, beyond as many as it appended, when
    // trimming to a MAXLEN (~4 ms of deletes): a far lower limit is reached over several
    // transactions, so other writes go on meanwhile. An append with an exact MAXLEN returns
    // once its stream is down to it. trim_before() deletes this many per transaction too.
    std::uint64_t trim_chunk = 2000;
    // What the WAL file is cut back to once a transaction grew it past that and a checkpoint
    // has copied it all (journal_size_limit). The WAL normally cycles through about 4 MiB (a
    // checkpoint every 1000 pages); one large transaction (a batch of large events, say) would
    // otherwise leave the file at its size until the store closes.
    std::uint64_t wal_size_limit = 64 << 20;
    // Wall clock in Unix milliseconds, for new ids and idle times; injectable for tests.
    std::function<std::uint64_t()> now_ms;
  };

  static result<std::shared_ptr<LocalStore>> open(Options options);
  ~LocalStore() override;

  // The SQLite database file.
  std::filesystem::path database_path() const;

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
  explicit LocalStore(std::unique_ptr<State> state);

  std::unique_ptr<State> state_;
};

}  // namespace replayrail::store
