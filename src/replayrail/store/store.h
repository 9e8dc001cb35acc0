#pragma once

// The store contract (DESIGN §3): one interface, three backends (memory, local, redis), one
// conformance suite (store/testing/). It follows Redis Streams semantics exactly, so a behaviour
// the Redis store shows is the behaviour every store shows.
//
// Threading: a Store is shared by every event-loop thread; every operation may be called
// concurrently from any thread. Blocking reads suspend only the calling coroutine.

#include <boost/asio/awaitable.hpp>
#include <chrono>
#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "replayrail/common/errc.h"
#include "replayrail/common/stream_id.h"
#include "replayrail/core/cursor.h"
#include "replayrail/core/event.h"

namespace replayrail::store {

template <class T>
using task = boost::asio::awaitable<T>;

using Millis = std::chrono::milliseconds;

struct AppendOptions {
  // Keep at most this many newest entries after the append (XADD MAXLEN); 0 = unbounded.
  std::uint64_t maxlen = 0;
  // How long a publisher-chosen event_id is remembered for idempotency; 0 = not at all.
  std::chrono::seconds idempotency_ttl{24 * 60 * 60};
  // MAXLEN ~: the store may keep somewhat more than maxlen when that is cheaper (Redis trims in
  // steps, and the append does not wait). The memory and local stores trim exactly, which
  // satisfies it.
  bool approximate = false;
};

struct Appended {
  EventPtr event;          // as stored (on a duplicate: the event stored the first time)
  bool duplicate = false;  // the event_id was seen with the same content: nothing was written
};

// A stream to read and the id to read strictly after. A non-empty `epoch` must match the
// stream's, or the read fails with stream_reset.
struct StreamCursor {
  std::string stream;
  StreamId after;
  std::string epoch;
};

struct StreamEvents {
  std::string stream;
  std::vector<EventPtr> events;
};

struct ReadOptions {
  std::size_t count = 100;  // per stream
  // nullopt: return at once; otherwise wait up to this long for an event; 0 = without limit
  // (XREAD BLOCK 0).
  std::optional<Millis> block;
};

struct GroupInfo {
  std::string name;
  std::uint64_t consumers = 0;
  std::uint64_t pending = 0;
  StreamId last_delivered;
  // Retained entries after last_delivered: what the group has still to read.
  std::uint64_t lag = 0;
  std::uint64_t max_deliveries = 0;  // GroupOptions
};

// Settings stored with a group (set by group_create, kept by group_setid, gone with the group).
struct GroupOptions {
  // Deliveries after which a message is dead-lettered rather than delivered again (what
  // Topics::claim does with it); 0 = never.
  std::uint64_t max_deliveries = 0;
};

struct StreamInfo {
  std::uint64_t length = 0;
  StreamId first_id;         // 0-0 when empty
  StreamId last_id;          // last id ever generated, even if trimmed since
  StreamId trimmed_through;  // greatest id removed by trimming; 0-0 when nothing was
  std::string epoch;
  std::vector<GroupInfo> groups;
};

// One message delivered to a consumer group. `event` is null when the entry was trimmed
// while pending (Redis answers such history reads with a nil entry).
struct GroupMessage {
  StreamId id;
  EventPtr event;
  std::uint64_t delivery_count = 0;
};

struct GroupStreamMessages {
  std::string stream;
  std::vector<GroupMessage> messages;
};

// For read_group: `pending_after` nullopt = `>` (new messages); an id = re-read this consumer's
// own pending messages after it (never blocks).
struct GroupCursor {
  std::string stream;
  std::optional<StreamId> pending_after;
};

struct AutoclaimResult {
  StreamId next;  // where to continue scanning; 0-0 when the scan is complete
  std::vector<GroupMessage> claimed;
  std::vector<StreamId> deleted;  // pending ids whose entries were trimmed; removed from the PEL
};

struct PendingSummary {
  std::uint64_t count = 0;
  StreamId min_id;
  StreamId max_id;
  std::vector<std::pair<std::string, std::uint64_t>> consumers;  // sorted by name
};

struct PendingEntry {
  StreamId id;
  std::string consumer;
  std::uint64_t idle_ms = 0;
  std::uint64_t delivery_count = 0;
};

struct PendingQuery {
  StreamId start;                  // inclusive
  StreamId end = StreamId::max();  // inclusive
  std::size_t count = 100;
  std::optional<std::string> consumer;  // only this consumer's entries
  std::uint64_t min_idle_ms = 0;
};

struct ConsumerInfo {
  std::string name;
  std::uint64_t pending = 0;
  std::uint64_t idle_ms = 0;  // since the consumer last read or claimed
};

// A topic's own retention (Kafka's per-topic retention.ms, JetStream's per-stream MaxAge); an
// unset field: the server's (RailConfig's max_stream_length, max_stream_age).
struct TopicRetention {
  std::optional<std::uint64_t> max_length;  // newest events kept per partition; 0: no limit
  std::optional<Millis> max_age;            // events stored longer ago are removed; 0: no limit

  bool operator==(const TopicRetention&) const = default;
};

// The longest max_age a topic may set (a century): beyond it every id's time is younger anyway.
inline constexpr Millis kMaxRetentionAge{100LL * 366 * 24 * 3600 * 1000};

// A topic: a channel split into a fixed number of partitions, stream `T#p` each (P = 1: the
// stream is named T).
struct Topic {
  std::string name;
  std::uint32_t partitions = 1;
  std::string created_at;
  TopicRetention retention;
};

class Store {
 public:
  virtual ~Store() = default;

  // XADD with MAXLEN and idempotency: same event_id and fingerprint as a remembered event → that
  // event, duplicate = true; same event_id, other fingerprint → duplicate_conflict. Only
  // publisher-chosen event_ids (NewEvent::chosen_event_id) are looked up and remembered.
  virtual task<result<Appended>> append(std::string_view stream, NewEvent event,
                                        AppendOptions options) = 0;

  // append() of each event in order, in one round trip (one transaction on the local store):
  // what a batch ingest uses. An event may be a duplicate of an earlier one of the batch. All or
  // nothing on duplicate_conflict: every event is checked before any is written. On other errors
  // (the store failed or went away) a prefix of the batch may be stored; a retry with the same
  // event_ids is idempotent.
  virtual task<result<std::vector<Appended>>> append_batch(std::string_view stream,
                                                           std::vector<NewEvent> events,
                                                           AppendOptions options) = 0;

  // Events with id > after, ascending, at most `limit` (XRANGE with an exclusive start).
  // replay_window_expired when entries after `after` were trimmed (`0-0` never is);
  // stream_reset when `epoch` is given and differs (or the stream is gone).
  virtual task<result<std::vector<EventPtr>>> range(std::string_view stream, StreamId after,
                                                    std::size_t limit,
                                                    std::string_view epoch = {}) = 0;

  // XREAD [BLOCK] over several streams: the streams with events after their cursor (only those),
  // the same errors as range() per stream. Returns empty when `block` ran out.
  virtual task<result<std::vector<StreamEvents>>> read(std::span<const StreamCursor> cursors,
                                                       ReadOptions options) = 0;

  // XINFO STREAM + GROUPS; stream_not_found when the stream does not exist.
  virtual task<result<StreamInfo>> info(std::string_view stream) = 0;

  // Removes the stream, its groups and idempotency records (DEL). Returns whether it existed.
  // A stream created again gets a new epoch.
  virtual task<result<bool>> delete_stream(std::string_view stream) = 0;

  // XTRIM MINID: removes the entries with an id below `before` (time-based retention: an id's
  // first part is the time it was stored), records the greatest one removed as trimmed_through,
  // and returns how many it removed; 0 when the stream does not exist. The stream stays, empty
  // if need be, with its last id; a group's pending entries stay pending without their events,
  // as after a MAXLEN trim.
  virtual task<result<std::uint64_t>> trim_before(std::string_view stream, StreamId before) = 0;

  virtual task<result<std::vector<std::string>>> list_streams() = 0;

  // --- Consumer groups (XGROUP, XREADGROUP, XACK, XAUTOCLAIM, XPENDING, XINFO CONSUMERS) ---

  // `start`: `$` = the stream's last id, or an id. stream_not_found unless the stream exists or
  // `mkstream`; group_exists when it does.
  virtual task<result<void>> group_create(std::string_view stream, std::string_view group,
                                          Cursor start, bool mkstream,
                                          GroupOptions options = {}) = 0;
  virtual task<result<void>> group_setid(std::string_view stream, std::string_view group,
                                         Cursor id) = 0;
  // Returns whether the group existed; stream_not_found when the stream does not.
  virtual task<result<bool>> group_destroy(std::string_view stream, std::string_view group) = 0;

  // group_not_found when the group (or stream) does not exist. `>` cursors deliver new entries,
  // advance the group and record them as pending for `consumer` (delivery count 1); history
  // cursors re-deliver the consumer's pending entries and count the delivery. Blocks only when
  // every cursor is `>`.
  virtual task<result<std::vector<GroupStreamMessages>>> read_group(
      std::string_view group, std::string_view consumer, std::span<const GroupCursor> cursors,
      ReadOptions options) = 0;

  // Removes the ids from the group's pending list; returns how many were pending. 0 (not an
  // error) when the stream or group does not exist, as XACK.
  virtual task<result<std::uint64_t>> ack(std::string_view stream, std::string_view group,
                                          std::span<const StreamId> ids) = 0;

  // XAUTOCLAIM: gives `consumer` the pending entries idle for at least `min_idle`, scanning from
  // `start` (inclusive), up to `count` claimed; each claim counts a delivery.
  virtual task<result<AutoclaimResult>> autoclaim(std::string_view stream, std::string_view group,
                                                  std::string_view consumer, Millis min_idle,
                                                  StreamId start, std::size_t count) = 0;

  virtual task<result<PendingSummary>> pending(std::string_view stream, std::string_view group) = 0;
  virtual task<result<std::vector<PendingEntry>>> pending_entries(std::string_view stream,
                                                                  std::string_view group,
                                                                  PendingQuery query) = 0;
  virtual task<result<std::vector<ConsumerInfo>>> consumers(std::string_view stream,
                                                            std::string_view group) = 0;

  // --- Topics ---

  // Creates the topic, or returns the existing one; topic_conflict when it exists with another
  // partition count (fixed at creation).
  virtual task<result<Topic>> create_topic(std::string_view name, std::uint32_t partitions) = 0;
  virtual task<result<std::optional<Topic>>> get_topic(std::string_view name) = 0;
  virtual task<result<std::vector<Topic>>> list_topics() = 0;
  // Replaces the topic's own retention (a field left unset: the server's); returns the topic.
  // stream_not_found when there is no such topic, invalid_argument for an age past
  // kMaxRetentionAge or below 0, or a length past 2^63 - 1.
  virtual task<result<Topic>> set_topic_retention(std::string_view name,
                                                  TopicRetention retention) = 0;
  // Removes the topic from the registry (not its streams: delete_stream does); whether it was
  // there.
  virtual task<result<bool>> delete_topic(std::string_view name) = 0;

  // --- Server nodes sharing the store ---

  // Takes the lease `name` for `ttl` (positive) unless it is held (Redis' SET NX PX): whether
  // this caller holds it now. Nodes on one Redis take one before a periodic job (the retention
  // pass), so that one of them runs it each time rather than all. A lease is not released: it
  // lapses. The memory and local stores belong to one process and keep theirs in memory.
  virtual task<result<bool>> take_lease(std::string_view name, Millis ttl) = 0;

  // Whether the store can serve requests now (store_unavailable otherwise).
  virtual task<result<void>> health() = 0;

  // For a shutdown: ends every wait in the store, so nothing stays suspended in it. Blocking
  // reads in progress return at once, as does a call waiting for an outside server (a Redis that
  // does not answer), with store_unavailable; every later call fails the same way. Writes
  // already handed to the store complete as usual (or fail, on Redis). Thread-safe; idempotent.
  virtual void close() = 0;
};

// Stream name of partition `p` of topic `topic` with `partitions` partitions (DESIGN §2).
std::string partition_stream(std::string_view topic, std::uint32_t partitions, std::uint32_t p);

}  // namespace replayrail::store
