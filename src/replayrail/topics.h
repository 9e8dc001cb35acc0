#pragma once

// Partitioned topics and their consumer groups (DESIGN §2, the OpenStream API of issue 6), over
// any store. A topic T with P partitions is the streams T#0 … T#(P-1) (P = 1: the stream T); an
// event's `channel` is the topic's name whichever partition holds it.

#include <atomic>
#include <chrono>
#include <cstdint>
#include <functional>
#include <mutex>
#include <optional>
#include <span>
#include <string>
#include <vector>

#include "replayrail/backpressure.h"
#include "replayrail/common/string_map.h"
#include "replayrail/core/cursor.h"
#include "replayrail/core/event.h"
#include "replayrail/store/store.h"

namespace replayrail {

struct TopicsConfig {
  std::uint32_t default_partitions = 1;  // PARTITIONS_DEFAULT
  std::size_t max_batch = 5000;          // events per ingest request
  std::size_t max_payload_bytes = 1 << 20;
  store::AppendOptions appends{.maxlen = 10000};  // retention and idempotency (RailConfig's)
  store::Millis max_age{0};                       // RailConfig's max_stream_age; 0: none
};

struct Ingested {
  std::uint32_t partition = 0;
  EventPtr event;  // as stored (a duplicate: as stored the first time); null when not stored
  bool duplicate = false;
  // Why the event was not stored: its partition's batch failed (the others may have been stored).
  std::optional<Error> error;
};

// What an ingest stored, in batch order, and in which topic.
struct IngestResult {
  store::Topic topic;
  std::vector<Ingested> events;
  bool created = false;  // the ingest made the topic
};

// A group message and the partition it came from.
struct PartitionMessage {
  std::uint32_t partition = 0;
  store::GroupMessage message;
};

struct PartitionIds {
  std::uint32_t partition = 0;
  std::vector<StreamId> ids;
};

struct PartitionInfo {
  std::uint32_t partition = 0;
  std::string stream;
  store::StreamInfo info;  // empty (length 0, no groups) when nothing was published yet
};

struct TopicDescription {
  store::Topic topic;
  std::vector<PartitionInfo> partitions;
};

// The channels that are no topic's partition: those only published to (`POST /events/{channel}`)
// and the topics' dead-letter streams.
struct ChannelsDescription {
  struct Channel {
    std::string name;
    store::StreamInfo info;
  };
  std::size_t total = 0;          // how many there are
  std::vector<Channel> channels;  // the first ones by name, described
};

struct ClaimResult {
  std::vector<PartitionMessage> claimed;
  std::vector<PartitionIds> deleted;  // pending ids whose entries were trimmed meanwhile
  // Moved to the dead-letter stream instead of being claimed (delivered too often).
  std::vector<PartitionIds> dead_lettered;
};

// What Topics::purge() removed from one partition.
struct PartitionPurge {
  std::uint32_t partition = 0;
  std::uint64_t purged = 0;
};

// The dead-letter stream of a topic: `T.dlq`, one stream whatever the partition count.
std::string dead_letter_stream(std::string_view topic);

// Thread-safe: every method may be called from any thread concurrently.
class Topics {
 public:
  // `backpressure` (optional): what may refuse an ingest before anything of it is written.
  Topics(std::shared_ptr<store::Store> store, TopicsConfig config,
         std::shared_ptr<Backpressure> backpressure = nullptr);

  // The partition of an event: rendezvous hashing of `key` (highest xxh64 of topic, key and
  // partition wins: a key keeps its partition), round-robin without a key.
  std::uint32_t partition_for(const store::Topic& topic, std::optional<std::string_view> key);

  // Validates every event, then appends each to its partition, in batch order per partition.
  // The topic is created on first use with `partitions` (else the default); later ingests may
  // leave `partitions` out, naming another count is topic_conflict. Nothing is written when any
  // event is invalid or any partition it goes to is refused by the backpressure (an error).
  // Each partition's batch is stored whole or not at all, but partitions are separate streams:
  // when one fails, the others may be stored. That is a success whose failed events carry
  // their Ingested::error, so the caller can say which were stored.
  store::task<result<IngestResult>> ingest(std::string_view topic,
                                           const std::vector<PublishBody>& events,
                                           std::optional<std::uint32_t> partitions);
  // One event to an existing topic, in the partition its partition_key picks (`POST
  // /events/{channel}` when the channel is a partitioned topic).
  store::task<result<Ingested>> publish(std::string_view topic, const PublishBody& event);

  // The topic `channel` names; nullopt for a channel that is no topic (yet). Answered from a
  // copy of the store's topic registry at most registry_refresh old: other server nodes on the
  // same Redis create topics and change their retention too, and a channel is not looked up in
  // the store on every publish.
  store::task<result<std::optional<store::Topic>>> find(std::string_view channel);
  static constexpr std::chrono::milliseconds registry_refresh{1000};

  // Creates the topic (with `partitions`, else the default) or finds it (a channel with events
  // is registered as a topic of one partition), then gives it `retention` as its own, whole (a
  // field left unset: the server's). topic_conflict when `partitions` names another count than
  // it has; nothing is created when an argument is invalid. Returns it, and whether it was new.
  store::task<result<std::pair<store::Topic, bool>>> configure(
      std::string_view topic, std::optional<std::uint32_t> partitions,
      store::TopicRetention retention);
  // The retention `t` has: its own, and the server's where it sets none.
  store::TopicRetention effective_retention(const store::Topic& t) const;
  // The streams (partitions) of the topics that set their own max age, with that age; what
  // Rail::expire_old_events takes.
  store::task<result<StringMap<store::Millis>>> own_max_ages();

  // Deletes the topic: every partition's stream (its events, groups and idempotency records),
  // then its registry entry, so that the name may be made again, with another partition count.
  // A channel with events and no entry is deleted as a topic of one partition. Returns what was
  // deleted; stream_not_found when there was nothing. Subscribers of a partition get
  // stream_reset at the next event of the stream made again (its epoch differs). Partitions are
  // separate streams: a delete that fails part-way has deleted those before it, and can be sent
  // again. The dead-letter stream (T.dlq) is a channel of its own and stays.
  store::task<result<store::Topic>> remove(std::string_view topic);

  // Every registered topic, by name (the store's registry, not this process's copy).
  store::task<result<std::vector<store::Topic>>> list();
  store::task<result<TopicDescription>> describe(std::string_view topic);
  store::task<result<std::vector<TopicDescription>>> describe_all();
  // The first `limit` channels by name (each an info() call: a dashboard refresh stays bounded
  // however many channels there are), and how many there are; only those `visible` takes, when
  // given. `topics` (describe_all()'s): the streams that are partitions, not channels.
  store::task<result<ChannelsDescription>> describe_channels(
      const std::vector<TopicDescription>& topics, std::size_t limit,
      std::function<bool(std::string_view)> visible = {});

  // Consumer groups, on every partition. `start`: `$` (each partition's last id) or an id.
  // `options` (max_deliveries) are stored with the group on every partition.
  store::task<result<store::Topic>> create_group(std::string_view topic, std::string_view group,
                                                 Cursor start, store::GroupOptions options = {});
  store::task<result<store::Topic>> reset_group(std::string_view topic, std::string_view group,
                                                Cursor start);
  store::task<result<bool>> destroy_group(std::string_view topic, std::string_view group);
  // New messages for `consumer` (XREADGROUP `>`) from the given partitions (all when empty),
  // at most `count` per partition, waiting up to `block` when there are none.
  store::task<result<std::vector<PartitionMessage>>> read_group(
      std::string_view topic, std::string_view group, std::string_view consumer, std::size_t count,
      std::optional<store::Millis> block, std::vector<std::uint32_t> partitions);
  store::task<result<std::uint64_t>> ack(std::string_view topic, std::string_view group,
                                         const std::vector<PartitionIds>& items);
  // XAUTOCLAIM on the given partitions (all when empty) from `start`: pending messages idle at
  // least `min_idle` move to `consumer`; at most `count` in all. A message that would be delivered
  // more often than
  // `max_deliveries` (nullopt: the group's stored setting; 0: never) is appended to the
  // dead-letter stream instead (its metadata gains `dead_letter`: reason, topic, partition,
  // group, original_id, deliveries) and acknowledged.
  store::task<result<ClaimResult>> claim(std::string_view topic, std::string_view group,
                                         std::string_view consumer, store::Millis min_idle,
                                         std::size_t count, StreamId start,
                                         std::optional<std::uint64_t> max_deliveries = {},
                                         std::vector<std::uint32_t> partitions = {});

  // Removes from the given partitions (all when empty) the events stored before `before`, or,
  // without it, every event stored now (what is appended meanwhile is kept): JetStream's purge,
  // Kafka's DeleteRecords. As retention does (XTRIM MINID): the topic, its partition count and
  // groups stay, ids go on from where they were, and a cursor into what went is
  // replay_window_expired (or reads on from the archive, which keeps its copy).
  store::task<result<std::pair<store::Topic, std::vector<PartitionPurge>>>> purge(
      std::string_view topic, std::optional<StreamId> before,
      std::vector<std::uint32_t> partitions);

  // invalid_argument when one of `ps` is not a partition of `t`.
  static result<void> check_partitions(const store::Topic& t, const std::vector<std::uint32_t>& ps);

 private:
  // The topic an ingest writes to: created with `partitions` (else the default) when new;
  // topic_conflict when `partitions` names another count than it has.
  // `created_here` (optional): set to whether it had to be created.
  store::task<result<store::Topic>> open_for_ingest(std::string_view topic,
                                                    std::optional<std::uint32_t> partitions,
                                                    bool* created_here = nullptr);
  // The topic: from the registry copy (find()), else the store's registry, else a channel with
  // events adopted as a topic of one partition; nullopt when none of them has it.
  store::task<result<std::optional<store::Topic>>> look_up(std::string_view topic);
  // Puts a topic into the registry copy.
  void remember(const store::Topic& t);
  // What an append to `t`'s partitions is given: its own max length, or the server's.
  store::AppendOptions appends_for(const store::Topic& t) const;
  // Validated events to the topic's partitions (created as open_for_ingest does); `events` gives
  // each one's partition_key.
  store::task<result<IngestResult>> store_events(std::string_view topic,
                                                 std::span<const PublishBody> events,
                                                 std::vector<NewEvent> made,
                                                 std::optional<std::uint32_t> partitions);
  // The existing topic; stream_not_found (404) when there is none. A channel with events but no
  // topic (published to with `POST /events/{channel}`) is a topic of one partition, its own
  // stream (DESIGN §2), and is registered as one here.
  store::task<result<store::Topic>> existing(std::string_view topic);
  // When the stream `channel` exists: the channel registered as a topic of one partition.
  store::task<result<std::optional<store::Topic>>> adopt_channel(std::string_view channel);
  // `op` on the stream of every partition of an existing topic, stopping at the first error.
  store::task<result<store::Topic>> on_every_partition(
      std::string_view topic, std::function<store::task<result<void>>(std::string stream)> op);
  // The group's stored max_deliveries on `stream` (0: none).
  store::task<result<std::uint64_t>> stored_max_deliveries(const std::string& stream,
                                                           std::string_view group);
  // Appends `m` (of partition `p`) to the dead-letter stream, then acks it in the group.
  store::task<result<void>> dead_letter(const store::Topic& t, std::uint32_t p,
                                        std::string_view group, const store::GroupMessage& m);

  // A group operation on `stream` changed its lag or pending, or a purge its length.
  void stream_changed(std::string_view stream) {
    if (backpressure_) backpressure_->forget(stream);
  }

  std::shared_ptr<store::Store> store_;
  TopicsConfig config_;
  std::shared_ptr<Backpressure> backpressure_;
  std::atomic<std::uint64_t> round_robin_ = 0;
  // The copy of the registry, and the topics this process made or found since it was loaded,
  // each with when it was last seen so. Another node may change a topic's retention, or delete
  // it and make it again with another partition count, so the copy is loaded again once it is
  // registry_refresh old; a topic the registry no longer has is dropped then, unless this
  // process made it while the registry was being read.
  struct Known {
    store::Topic topic;
    std::chrono::steady_clock::time_point seen;
  };
  std::mutex known_mu_;
  StringMap<Known> known_;
  // When known_ last took in the whole registry (never: the epoch), and whether a coroutine is
  // taking it in now (the others answer from known_ meanwhile).
  std::chrono::steady_clock::time_point registry_loaded_;
  bool registry_loading_ = false;
};

}  // namespace replayrail
