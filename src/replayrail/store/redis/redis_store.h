#pragma once

#include <boost/asio/any_io_executor.hpp>
#include <boost/asio/strand.hpp>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <string_view>
#include <tuple>
#include <unordered_set>
#include <vector>

#include "replayrail/common/string_map.h"
#include "replayrail/resp/cluster.h"
#include "replayrail/resp/connection.h"
#include "replayrail/store/redis/blocking_reads.h"
#include "replayrail/store/redis/replicated_writes.h"
#include "replayrail/store/store.h"

namespace replayrail::store {

// The production store (DESIGN §3 "redis"): Redis Streams through our RESP client.
// Layout, shared with the Python ReplayRail library: stream `<prefix>:<stream>` with entry fields
// event_id, channel, type, payload, actor, metadata, created_at; per-stream metadata (epoch,
// last trimmed id) in the hash `<prefix>:@meta:<stream>`; idempotency records
// `<prefix>:@idem:<stream>:<event_id>` with a TTL; topics in the hash `<prefix>:@topics`.
// On a Redis Cluster (Options::cluster) the stream's name is a hash tag in each of its keys
// (`<prefix>:{<stream>}`, `<prefix>:@meta:{<stream>}`, …), so the keys one script touches share
// a slot; commands go to the slot's primary through resp::Cluster.
//
// Appends of server-generated ids are a plain pipelined XADD; MAXLEN trimming runs after them in
// a script that records the last trimmed id, one run for all the appends queued before it.
// Commands share one pipelined connection. Blocking reads (XREAD BLOCK, what the fanout hub
// uses) share a few dedicated connections, each with one XREAD over many streams (see
// BlockingReads); a blocking XREADGROUP leases a connection of its own, since its position is
// the group's and cannot be merged with others'.
// Lifecycle: connect() returns at once, connecting in the background (operations fail with
// store_unavailable until Redis answers). Thread-safe.
class RedisStore final : public Store, public std::enable_shared_from_this<RedisStore> {
 public:
  struct Options {
    resp::RedisUrl url;
    std::string prefix = "rr";
    // Connections that carry the blocking reads of every stream (on a cluster: one per slot
    // watched, since one XREAD cannot span slots).
    std::size_t blocking_connections = 4;
    // A Redis Cluster: `url` is one of its nodes, and the keys carry hash tags.
    bool cluster = false;
    // A publish is acknowledged only once this many replicas confirmed it (WAIT, in the same
    // pipeline as the write: see ReplicatedWrites), so that a failover cannot lose it; when
    // fewer confirm within `wait_timeout` it fails as store_unavailable (the event is stored on
    // the primary: a retry with the same event_id stores it once). 0: Redis' asynchronous
    // replication, no WAIT. On a cluster, each primary's replicas confirm what ran there (a
    // write redirected during a slot migration is confirmed where it was sent on to).
    int wait_replicas = 0;
    Millis wait_timeout{1000};
  };

  static std::shared_ptr<RedisStore> connect(boost::asio::any_io_executor executor,
                                             Options options);
  ~RedisStore() override;

  // Waits until the main connection is ready (for start-up and tests).
  task<bool> wait_ready(Millis timeout);

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
  struct Page;
  struct TrimRound;
  RedisStore(boost::asio::any_io_executor executor, Options options);
  // How a connection to the single Redis (or the primary the Sentinels name) is made.
  resp::Connection::Options server() const {
    return {.url = options_.url, .sentinels = sentinels_};
  }
  // With Options::wait_replicas: the publishes to one primary and their WAITs, on a connection
  // of their own (a WAIT holds up what follows it on its connection until the replicas
  // confirm: on the shared one, one slow replica would hold up every read).
  struct Publishes {
    std::shared_ptr<resp::Connection> connection;
    std::shared_ptr<redis::ReplicatedWrites> writes;
  };
  // Publishes to the server `where` leads to.
  Publishes start_publishes(resp::Connection::Options where) const;
  // Sends waited writes through `to`, giving its connection a moment if it is being
  // (re)established; answers as ReplicatedWrites::send.
  static task<result<resp::Reply>> send_published(Publishes to, resp::Encoded encoded);

  // The stream's name inside its keys: a hash tag on a cluster.
  std::string tag(std::string_view stream) const;
  std::string key(std::string_view stream) const;
  std::string meta_key(std::string_view stream) const;
  std::string topics_key() const { return options_.prefix + ":@topics"; }
  // The hash slot of a key (0 on a single Redis, where it does not matter); every key of a
  // stream has the slot of key(stream).
  std::uint16_t slot(std::string_view redis_key) const;
  std::uint16_t stream_slot(std::string_view stream) const {
    return cluster_ ? slot(key(stream)) : 0;
  }
  // The meta hash field holding a group's max_deliveries (GroupOptions).
  static std::string group_options_field(std::string_view group);

  // A command on the shared connection (on a cluster: of the primary serving `slot`, the slot
  // of the keys it names); error replies become Errors (see redis_error()).
  task<result<resp::Reply>> call(std::uint16_t slot, std::vector<std::string> args);
  // Commands already encoded, one or several (their replies as an array, and any error reply is
  // an Error), all on keys of `slot`; `name` for errors. `waited` (with Options::wait_replicas):
  // writes that replicas must confirm, through ReplicatedWrites; WAIT's answer ends the reply.
  task<result<resp::Reply>> send(std::uint16_t slot, std::string_view name, resp::Encoded encoded,
                                 bool waited = false);
  // send() with error replies as values.
  task<result<resp::Reply>> send_raw(std::uint16_t slot, resp::Encoded encoded,
                                     bool waited = false);
  // send_raw() of waited writes on a cluster: through the ReplicatedWrites of each primary a
  // round goes to (see Cluster::send); WAIT's answer, the fewest any of them confirmed, ends the
  // reply.
  task<result<resp::Reply>> send_waited_on_cluster(std::uint16_t slot, resp::Encoded encoded);
  // One round of it, to the primary at `address`; lowers `confirmed` to what its WAIT said.
  task<result<resp::Reply>> send_waited_to(std::string address, resp::Encoded encoded,
                                           std::int64_t* confirmed);
  // A command on one given connection (SCAN, PING: node by node).
  task<result<resp::Reply>> call_on(std::shared_ptr<resp::Connection> connection,
                                    std::vector<std::string> args);
  // The shared connections of every primary (one on a single Redis).
  std::vector<std::shared_ptr<resp::Connection>> primaries() const;
  // Keys matching `pattern` (and of `type` unless empty), SCANned on every primary, or on the
  // node serving `slot` only.
  task<result<std::vector<std::string>>> scan(std::string pattern, std::string type,
                                              std::optional<std::uint16_t> slot);
  // A blocking command (XREADGROUP) on keys of `slot`, on a leased connection of its own. On a
  // cluster slot being migrated, which refuses it (ASK, TRYAGAIN, UNBLOCKED), `unblocked` (the
  // same read without BLOCK) runs instead, following the redirection, and a short pause follows
  // when it found nothing.
  task<result<resp::Reply>> call_blocking(std::uint16_t slot, std::vector<std::string> args,
                                          std::vector<std::string> unblocked);
  // read_group() of cursors whose streams lie in different slots of a cluster, which no one
  // XREADGROUP can name: a non-blocking one per slot, then XREAD BLOCK as the wake-up.
  task<result<std::vector<GroupStreamMessages>>> read_group_across_slots(
      std::string_view group, std::string_view consumer, std::span<const GroupCursor> cursors,
      std::size_t count, std::optional<Millis> block);
  // XREADGROUP of `cursors`, with BLOCK when `block` is set.
  std::vector<std::string> group_read_command(std::string_view group, std::string_view consumer,
                                              std::span<const GroupCursor> cursors,
                                              std::size_t count, std::optional<Millis> block) const;
  // The messages of an XREADGROUP reply, by stream, with delivery counts for re-reads.
  task<result<std::vector<GroupStreamMessages>>> group_messages(
      std::string_view group, std::span<const GroupCursor> cursors, const resp::Reply& reply);
  // EVALSHA, loading the script when Redis does not know it (NOSCRIPT).
  task<result<resp::Reply>> eval(const char* script, std::vector<std::string> keys,
                                 std::vector<std::string> args);
  // eval() of keys and arguments the caller keeps alive (the first `keys` are the keys);
  // `waited` as for send().
  task<result<resp::Reply>> eval_views(const char* script, std::size_t keys,
                                       std::span<const std::string_view> keys_and_args,
                                       bool waited = false);
  // With Options::wait_replicas: takes WAIT's answer off the end of a waited send()'s reply (one
  // reply left is unwrapped), and fails when too few replicas confirmed.
  result<void> check_wait(resp::Reply& reply) const;
  std::string idempotency_key(std::string_view stream, std::string_view event_id) const;
  // append_batch() of events without a chosen event_id: one XADD, a MULTI / EXEC of several, or
  // on a cluster kAppendGeneratedScript.
  task<result<std::vector<Appended>>> append_generated(std::string_view stream,
                                                       std::vector<NewEvent> events,
                                                       AppendOptions options);
  // Whether an append that left the stream `length` long should trim it.
  static bool over_maxlen(const AppendOptions& options, std::int64_t length);
  // Whether the last append to `stream` with an exact MAXLEN found it past the limit (a hint:
  // see append()), and noting what an append found.
  bool at_limit(std::string_view stream);
  void note_at_limit(std::string_view stream, bool at);
  // Trims after an append past MAXLEN: waits for it unless MAXLEN is approximate.
  task<void> trim_after_append(std::string_view stream, const AppendOptions& options);
  // The range script: cursor check data and a page after `after`.
  task<result<Page>> page(std::string_view stream, StreamId after, std::size_t limit);
  task<result<std::vector<EventPtr>>> checked_page(std::string_view stream, StreamId after,
                                                   std::size_t limit, std::string_view epoch);
  // Trims `stream` to `maxlen` after every append already sent; concurrent callers share a run.
  task<result<void>> trim(std::string stream, std::uint64_t maxlen, bool approximate);
  task<result<void>> trim_on_strand(std::string stream, std::uint64_t maxlen, bool approximate);
  using TrimSlot = std::tuple<std::string, std::uint64_t, bool>;  // stream, maxlen, approximate
  task<void> run_trims(TrimSlot slot);
  // One round of trims: the trim script, run as many times as a large excess needs.
  task<result<void>> trim_excess(const std::string& stream, std::uint64_t maxlen, bool approximate);
  // Delivery counts of a consumer's pending ids (XREADGROUP / XAUTOCLAIM do not report them).
  task<result<void>> fill_delivery_counts(std::string_view stream, std::string_view group,
                                          std::vector<GroupMessage>& messages);

  boost::asio::any_io_executor executor_;
  Options options_;
  std::shared_ptr<resp::Connection> main_;      // a single Redis
  std::shared_ptr<resp::Sentinels> sentinels_;  // its Sentinels, shared by its connections
  Publishes publishes_;                         // with Options::wait_replicas, on a single Redis
  std::shared_ptr<resp::Cluster> cluster_;      // or a cluster
  std::shared_ptr<redis::BlockingReads> blocking_;
  // Slots with a trim in flight, and the round that will follow it; used on trim_strand_.
  struct TrimQueue {
    std::shared_ptr<TrimRound> next;
  };
  boost::asio::strand<boost::asio::any_io_executor> trim_strand_;
  std::map<TrimSlot, TrimQueue> trims_;
  std::mutex at_limit_mu_;  // guards at_limit_
  std::unordered_set<std::string, StringHash, std::equal_to<>> at_limit_;
  std::mutex idle_mu_;  // guards the four below
  // With Options::wait_replicas on a cluster: Publishes per primary (by "host:port"), made when
  // a write first goes there.
  std::map<std::string, Publishes> cluster_publishes_;
  // Idle blocking connections by node ("host:port"; "" on a single Redis).
  std::map<std::string, std::vector<std::shared_ptr<resp::Connection>>> idle_blocking_;
  // Every blocking connection, idle or leased, so close() can stop them all: a leased one holds
  // its caller's handler, which holds the connection.
  std::vector<std::weak_ptr<resp::Connection>> all_blocking_;
  bool closed_ = false;  // close(): no new blocking nor publishes connection
};

}  // namespace replayrail::store
