#include "replayrail/store/redis/redis_store.h"

#include <openssl/evp.h>

#include <algorithm>
#include <boost/asio/as_tuple.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <limits>
#include <set>

#include "replayrail/core/fingerprint.h"
#include "replayrail/core/random.h"
#include "replayrail/core/timestamp.h"
#include "replayrail/store/redis/replies.h"
#include "replayrail/store/redis/scripts.h"
#include "replayrail/store/rules.h"

namespace replayrail::store {

namespace asio = boost::asio;
using resp::Reply;
using namespace redis;

namespace {

// How long a command waits for a connection being (re)established before store_unavailable.
constexpr Millis kConnectWait{500};

// How long a Sentinel has to accept a connection, and then to answer.
constexpr Millis kSentinelTimeout{1000};

// The pause after a blocking read a slot in migration refused and a read that found nothing.
constexpr Millis kMigrationPause{20};

// MAXLEN ~ (approximate): a stream is trimmed once it is this many entries past its limit, back
// to the limit, and the append does not wait for it. (Redis' own MAXLEN ~ frees stream nodes of
// up to 100 entries, stream-node-max-entries: the same slack.)
constexpr std::uint64_t kApproximateSlack = 100;

// The excess at which a trim starts (see kTrimScript).
std::uint64_t trim_slack(bool approximate) { return approximate ? kApproximateSlack : 1; }

// The most streams RedisStore::at_limit remembers.
constexpr std::size_t kAtLimitHints = 4096;

// The most entries one run of the trim script removes (see kTrimScript): a few milliseconds of
// Redis time.
constexpr std::uint64_t kTrimChunk = 1000;

std::string sha1_hex(std::string_view text) {
  unsigned char digest[EVP_MAX_MD_SIZE];
  unsigned int size = 0;
  EVP_Digest(text.data(), text.size(), digest, &size, EVP_sha1(), nullptr);
  static constexpr char kHex[] = "0123456789abcdef";
  std::string out;
  for (unsigned i = 0; i < size; ++i) {
    out.push_back(kHex[digest[i] >> 4]);
    out.push_back(kHex[digest[i] & 0xf]);
  }
  return out;
}

}  // namespace

// What the range script saw of a stream.
struct RedisStore::Page {
  bool exists = false;
  std::string epoch;
  StreamPosition position() const { return {epoch, first_id, trimmed_through}; }
  StreamId first_id, last_id, trimmed_through;
  std::uint64_t length = 0;
  std::vector<EventPtr> events;
};

// One run of the trim script, shared by every append that joined it before it was sent.
struct RedisStore::TrimRound {
  explicit TrimRound(asio::strand<asio::any_io_executor>& strand)
      : done(strand, asio::steady_timer::time_point::max()) {}
  asio::steady_timer done;  // cancelled when `outcome` is set
  std::optional<result<void>> outcome;
};

RedisStore::RedisStore(asio::any_io_executor executor, Options options)
    : executor_(std::move(executor)),
      options_(std::move(options)),
      trim_strand_(asio::make_strand(executor_)) {
  if (options_.cluster) {
    cluster_ = resp::Cluster::start(executor_, {.url = options_.url, .connect_wait = kConnectWait});
  } else {
    if (options_.url.uses_sentinels()) {
      sentinels_ = resp::Sentinels::start(executor_, options_.url, kSentinelTimeout);
    }
    main_ = resp::Connection::start(executor_, server());
    if (options_.wait_replicas > 0) publishes_ = start_publishes(server());
  }
  blocking_ = redis::BlockingReads::start(executor_, server(), main_, cluster_,
                                          options_.blocking_connections);
}

std::shared_ptr<RedisStore> RedisStore::connect(asio::any_io_executor executor, Options options) {
  return std::shared_ptr<RedisStore>(new RedisStore(std::move(executor), std::move(options)));
}

RedisStore::~RedisStore() { close(); }

// Stopped connections fail what they hold, and every later command, with store_unavailable.
void RedisStore::close() {
  blocking_->stop();
  if (main_) main_->stop();
  if (publishes_.connection) publishes_.connection->stop();
  if (cluster_) cluster_->stop();
  if (sentinels_) sentinels_->stop();
  std::lock_guard lock(idle_mu_);
  closed_ = true;
  for (auto& [address, to] : cluster_publishes_) to.connection->stop();
  for (auto& weak : all_blocking_) {
    if (auto c = weak.lock()) c->stop();
  }
}

task<bool> RedisStore::wait_ready(Millis timeout) {
  return cluster_ ? cluster_->wait_ready(timeout) : main_->wait_ready(timeout);
}

std::string RedisStore::tag(std::string_view stream) const {
  return options_.cluster ? "{" + std::string(stream) + "}" : std::string(stream);
}

std::string RedisStore::key(std::string_view stream) const {
  return options_.prefix + ":" + tag(stream);
}

std::string RedisStore::meta_key(std::string_view stream) const {
  return options_.prefix + ":@meta:" + tag(stream);
}

std::uint16_t RedisStore::slot(std::string_view redis_key) const {
  return cluster_ ? resp::key_slot(redis_key) : 0;
}

std::string RedisStore::group_options_field(std::string_view group) {
  return "group:" + std::string(group) + ":max_deliveries";
}

task<result<Reply>> RedisStore::call(std::uint16_t slot, std::vector<std::string> args) {
  resp::Encoded encoded;
  encoded.add(std::vector<std::string_view>(args.begin(), args.end()));
  co_return co_await send(slot, args.front(), std::move(encoded));
}

// Not a coroutine itself, so the usual case (a single Redis, connected) costs no coroutine frame
// on the append path.
task<result<Reply>> RedisStore::send_raw(std::uint16_t slot, resp::Encoded encoded, bool waited) {
  if (cluster_) {
    if (waited && options_.wait_replicas > 0) {
      return send_waited_on_cluster(slot, std::move(encoded));
    }
    return cluster_->send(slot, std::move(encoded));
  }
  if (waited && publishes_.writes) {
    if (publishes_.connection->ready()) return publishes_.writes->send(std::move(encoded));
    return send_published(publishes_, std::move(encoded));
  }
  if (main_->ready()) return main_->send(std::move(encoded));
  // Give a connection that is being (re)established a moment before failing.
  return [](std::shared_ptr<resp::Connection> main, resp::Encoded encoded) -> task<result<Reply>> {
    co_await main->wait_ready(kConnectWait);
    co_return co_await main->send(std::move(encoded));
  }(main_, std::move(encoded));
}

RedisStore::Publishes RedisStore::start_publishes(resp::Connection::Options where) const {
  // A WAIT may take its whole timeout: that is not a connection that stopped answering.
  where.command_timeout += options_.wait_timeout;
  Publishes out;
  out.connection = resp::Connection::start(executor_, std::move(where));
  out.writes = std::make_shared<redis::ReplicatedWrites>(
      executor_, out.connection, options_.wait_replicas, options_.wait_timeout);
  return out;
}

task<result<Reply>> RedisStore::send_published(Publishes to, resp::Encoded encoded) {
  if (!to.connection->ready()) co_await to.connection->wait_ready(kConnectWait);
  co_return co_await to.writes->send(std::move(encoded));
}

task<result<Reply>> RedisStore::send_waited_on_cluster(std::uint16_t slot, resp::Encoded encoded) {
  const std::size_t commands = encoded.commands;
  std::int64_t confirmed = std::numeric_limits<std::int64_t>::max();
  auto reply = co_await cluster_->send(
      slot, std::move(encoded), [this, &confirmed](const std::string& address, resp::Encoded part) {
        return send_waited_to(address, std::move(part), &confirmed);
      });
  if (!reply) co_return reply;
  // As ReplicatedWrites answers: the replies as an array, then WAIT's answer.
  Reply out;
  if (commands == 1) {
    out.type = Reply::Type::array;
    out.elements.push_back(std::move(*reply));
  } else {
    out = std::move(*reply);
  }
  Reply count;
  count.type = Reply::Type::integer;
  count.integer = confirmed;
  out.elements.push_back(std::move(count));
  co_return out;
}

task<result<Reply>> RedisStore::send_waited_to(std::string address, resp::Encoded encoded,
                                               std::int64_t* confirmed) {
  Publishes to;
  {
    std::lock_guard lock(idle_mu_);
    if (!cluster_publishes_.contains(address)) {
      // A primary new here (a failover, a slot moved): the connections to nodes that serve no
      // slot any more are closed, as Cluster closes its own, so a dead one is not reconnected
      // to for ever.
      std::set<std::string> serving;
      for (const auto& primary : cluster_->primaries()) serving.insert(primary.address);
      std::erase_if(cluster_publishes_, [&](const auto& entry) {
        if (serving.contains(entry.first)) return false;
        entry.second.connection->stop();
        return true;
      });
    }
    auto& known = cluster_publishes_[address];
    if (!known.connection) {
      known = start_publishes({.url = cluster_->url_of(address)});
      if (closed_) known.connection->stop();
    }
    to = known;
  }
  const std::size_t commands = encoded.commands;
  Reply reply;
  RR_CO_TRY_ASSIGN(reply, co_await send_published(std::move(to), std::move(encoded)));
  *confirmed = std::min(*confirmed, reply.elements.back().integer);
  reply.elements.pop_back();
  // Answered as Connection::send does: one command's reply on its own.
  if (commands == 1) {
    Reply only = std::move(reply.elements.front());
    co_return only;
  }
  co_return reply;
}

task<result<Reply>> RedisStore::send(std::uint16_t slot, std::string_view name,
                                     resp::Encoded encoded, bool waited) {
  const bool batch = encoded.commands > 1 || (waited && options_.wait_replicas > 0);
  auto reply = co_await send_raw(slot, std::move(encoded), waited);
  if (!reply) co_return reply.error();
  if (!batch && reply->is_error()) co_return redis_error(*reply, name);
  if (batch) {
    for (const auto& r : reply->elements) {
      if (r.is_error()) co_return redis_error(r, name);
    }
  }
  co_return reply;
}

task<result<Reply>> RedisStore::call_on(std::shared_ptr<resp::Connection> connection,
                                        std::vector<std::string> args) {
  if (!connection->ready()) co_await connection->wait_ready(kConnectWait);
  auto reply = co_await connection->command(args);
  if (!reply) co_return reply.error();
  if (reply->is_error()) co_return redis_error(*reply, args.front());
  co_return reply;
}

std::vector<std::shared_ptr<resp::Connection>> RedisStore::primaries() const {
  if (!cluster_) return {main_};
  std::vector<std::shared_ptr<resp::Connection>> out;
  for (auto& node : cluster_->primaries()) out.push_back(std::move(node.connection));
  return out;
}

task<result<std::vector<std::string>>> RedisStore::scan(std::string pattern, std::string type,
                                                        std::optional<std::uint16_t> slot) {
  if (cluster_ && !cluster_->ready()) co_await cluster_->wait_ready(kConnectWait);
  std::vector<std::shared_ptr<resp::Connection>> nodes;
  if (slot && cluster_) {
    auto node = cluster_->node(*slot);
    if (!node) co_return cluster_->not_ready_error();
    nodes.push_back(node->connection);
  } else {
    nodes = primaries();
    if (nodes.empty()) co_return cluster_->not_ready_error();  // (a cluster without a map)
  }
  std::vector<std::string> out;
  for (const auto& node : nodes) {
    std::string cursor = "0";
    do {
      auto cmd = command("SCAN", cursor, "MATCH", pattern, "COUNT", "1000");
      if (!type.empty()) {
        cmd.push_back("TYPE");
        cmd.push_back(type);
      }
      Reply page;
      RR_CO_TRY_ASSIGN(page, co_await call_on(node, std::move(cmd)));
      if (page.elements.size() != 2) co_return unexpected_reply("SCAN");
      cursor = page.elements[0].str;
      for (auto& k : page.elements[1].elements) out.push_back(std::move(k.str));
    } while (cursor != "0");
  }
  co_return out;
}

task<result<Reply>> RedisStore::call_blocking(std::uint16_t slot, std::vector<std::string> args,
                                              std::vector<std::string> unblocked) {
  // The node serving the slot: its URL, and the key of its idle connections.
  resp::Connection::Options server = this->server();
  std::string address;
  if (cluster_) {
    if (!cluster_->ready()) co_await cluster_->wait_ready(kConnectWait);
    auto node = cluster_->node(slot);
    if (!node) co_return cluster_->not_ready_error();
    server.url = std::move(node->url);
    address = std::move(node->address);
  }
  std::shared_ptr<resp::Connection> conn;
  {
    std::lock_guard lock(idle_mu_);
    if (closed_) co_return store_closed_error();
    if (auto& idle = idle_blocking_[address]; !idle.empty()) {
      conn = std::move(idle.back());
      idle.pop_back();
    }
  }
  if (!conn) {
    conn = resp::Connection::start(executor_, server);
    {
      std::lock_guard lock(idle_mu_);
      std::erase_if(all_blocking_, [](const auto& weak) { return weak.expired(); });
      all_blocking_.push_back(conn);
      if (closed_) conn->stop();  // close() came while it started
    }
    if (!co_await conn->wait_ready(Millis(2000))) {
      conn->stop();
      co_return make_error(errc::store_unavailable,
                           "Redis at " + server.url.redacted() + ": not connected");
    }
  }
  auto reply = co_await conn->command(args);
  if (conn->ready()) {
    std::lock_guard lock(idle_mu_);
    idle_blocking_[address].push_back(std::move(conn));
  } else {
    conn->stop();
  }
  if (!reply) co_return reply.error();
  // The slot moved to another primary (the command did not run): once more, on the new owner.
  if (cluster_ && cluster_->redirected(*reply)) {
    co_return co_await call_blocking(slot, std::move(args), std::move(unblocked));
  }
  if (cluster_ &&
      (reply->error_is("ASK") || reply->error_is("TRYAGAIN") || reply->error_is("UNBLOCKED"))) {
    auto read = co_await call(slot, std::move(unblocked));
    if (read && read->elements.empty()) {
      asio::steady_timer pause(executor_, kMigrationPause);
      co_await pause.async_wait(asio::as_tuple(asio::use_awaitable));
    }
    co_return read;
  }
  const std::string& name = args.front();
  if (reply->is_error()) co_return redis_error(*reply, name);
  co_return reply;
}

task<result<Reply>> RedisStore::eval(const char* script, std::vector<std::string> keys,
                                     std::vector<std::string> args) {
  std::vector<std::string_view> views(keys.begin(), keys.end());
  views.insert(views.end(), args.begin(), args.end());
  co_return co_await eval_views(script, keys.size(), views);
}

task<result<Reply>> RedisStore::eval_views(const char* script, std::size_t keys,
                                           std::span<const std::string_view> keys_and_args,
                                           bool waited) {
  static const std::map<const char*, std::string> shas{
      {kAppendBatchScript, sha1_hex(kAppendBatchScript)},
      {kAppendGeneratedScript, sha1_hex(kAppendGeneratedScript)},
      {kRangeScript, sha1_hex(kRangeScript)},
      {kTrimScript, sha1_hex(kTrimScript)},
      {kTrimBeforeScript, sha1_hex(kTrimBeforeScript)},
      {kSetTopicScript, sha1_hex(kSetTopicScript)}};
  const std::string& sha = shas.at(script);
  const std::string key_count = std::to_string(keys);
  auto encode = [&](std::string_view verb, std::string_view body) {
    std::vector<std::string_view> cmd{verb, body, key_count};
    cmd.insert(cmd.end(), keys_and_args.begin(), keys_and_args.end());
    resp::Encoded encoded;
    encoded.add(cmd);
    return encoded;
  };
  const bool waits = waited && options_.wait_replicas > 0;
  // The script's own reply: with WAIT, the first of two.
  auto script_of = [waits](Reply& r) -> Reply& { return waits ? r.elements.at(0) : r; };
  const std::uint16_t route = slot(keys_and_args.front());
  auto reply = co_await send_raw(route, encode("EVALSHA", sha), waits);
  if (reply && script_of(*reply).error_is("NOSCRIPT")) {
    // EVAL caches the script on the node that runs it (each primary of a cluster has its own
    // cache, and a restart empties it): later EVALSHAs find it there.
    reply = co_await send_raw(route, encode("EVAL", script), waits);
  }
  if (!reply) co_return reply.error();
  if (script_of(*reply).is_error()) co_return redis_error(script_of(*reply), "script");
  if (waits) RR_CO_TRY(check_wait(*reply));
  co_return reply;
}

result<void> RedisStore::check_wait(Reply& reply) const {
  if (options_.wait_replicas == 0) return {};
  if (reply.type != Reply::Type::array || reply.elements.empty()) return unexpected_reply("WAIT");
  const std::int64_t confirmed = reply.elements.back().integer;
  reply.elements.pop_back();
  if (reply.elements.size() == 1) {
    Reply only = std::move(reply.elements[0]);
    reply = std::move(only);
  }
  if (confirmed >= options_.wait_replicas) return {};
  return make_error(errc::store_unavailable,
                    "stored on the Redis primary, but only " + std::to_string(confirmed) + " of " +
                        std::to_string(options_.wait_replicas) + " replicas confirmed it within " +
                        std::to_string(options_.wait_timeout.count()) +
                        " ms: a failover could lose it (publish it again with the same event_id "
                        "to store it once)");
}

std::string RedisStore::idempotency_key(std::string_view stream, std::string_view event_id) const {
  return options_.prefix + ":@idem:" + tag(stream) + ":" + std::string(event_id);
}

namespace {

// XADD of `e` to `key`, encoded straight from the event's fields (the hot path copies nothing).
void add_xadd(resp::Encoded& out, const std::string& key, const Event& e) {
  out.add_args("XADD", key, "*", "event_id", e.event_id, "channel", e.channel, "type", e.type,
               "payload", e.payload, "actor", e.actor, "metadata", e.metadata, "created_at",
               e.created_at);
}

}  // namespace

task<result<Appended>> RedisStore::append(std::string_view stream, NewEvent event,
                                          AppendOptions options) {
  if (event.chosen_event_id) {
    // Lookup, XADD and idempotency record must be one script: a batch of one.
    std::vector<NewEvent> one;
    one.push_back(std::move(event));
    std::vector<Appended> stored;
    RR_CO_TRY_ASSIGN(stored, co_await append_batch(stream, std::move(one), options));
    co_return std::move(stored.front());
  }
  // An exact MAXLEN is waited for: at the limit, the XADD's answer is followed by a trim round
  // on trim_strand_. An append to a stream that was at its limit last time runs there whole, so
  // that the caller's thread is left and reentered once rather than twice: on a server whose
  // event loops are other threads, 13% more publishes at the limit, 10% less CPU each. Below the
  // limit that hop would cost more than it saves.
  const bool exact = options.maxlen > 0 && !options.approximate;
  const bool hinted = exact && at_limit(stream);
  if (hinted && !trim_strand_.running_in_this_thread()) {
    co_return co_await asio::co_spawn(trim_strand_, append(stream, std::move(event), options),
                                      asio::use_awaitable);
  }
  // A server-generated id is new by construction: nothing to look up, a plain XADD. (The
  // stream's epoch is recorded by the first read, info or group operation.) With a MAXLEN, XLEN
  // rides along in the same write: a trim is needed only past it.
  const std::string k = key(stream);
  resp::Encoded xadd;
  add_xadd(xadd, k, event.event);
  if (options.maxlen > 0) xadd.add_args("XLEN", k);
  Reply reply;
  RR_CO_TRY_ASSIGN(reply,
                   co_await send(slot(k), "XADD", std::move(xadd), options_.wait_replicas > 0));
  RR_CO_TRY(check_wait(reply));
  bool needs_trim = false;
  if (options.maxlen > 0) {
    needs_trim = over_maxlen(options, reply.elements[1].integer);
    reply = std::move(reply.elements[0]);
  }
  auto id = StreamId::parse(reply.str);
  if (!id) co_return unexpected_reply("append");
  auto stored = std::make_shared<Event>(std::move(event.event));
  stored->id = *id;
  if (exact && needs_trim != hinted) note_at_limit(stream, needs_trim);
  if (needs_trim) co_await trim_after_append(stream, options);
  co_return Appended{std::move(stored), false};
}

bool RedisStore::at_limit(std::string_view stream) {
  std::lock_guard lock(at_limit_mu_);
  return at_limit_.contains(stream);
}

void RedisStore::note_at_limit(std::string_view stream, bool at) {
  std::lock_guard lock(at_limit_mu_);
  if (!at) {
    if (auto it = at_limit_.find(stream); it != at_limit_.end()) at_limit_.erase(it);
    return;
  }
  // A hint only: forgetting streams (deleted ones stay until then) costs one append a hop.
  if (at_limit_.size() >= kAtLimitHints) at_limit_.clear();
  at_limit_.emplace(stream);
}

task<result<std::vector<Appended>>> RedisStore::append_batch(std::string_view stream,
                                                             std::vector<NewEvent> events,
                                                             AppendOptions options) {
  if (events.empty()) co_return std::vector<Appended>{};
  const bool chosen = std::any_of(events.begin(), events.end(),
                                  [](const NewEvent& e) { return e.chosen_event_id; });
  if (!chosen) co_return co_await append_generated(stream, std::move(events), options);
  // The script's keys and arguments as views of these strings and of the events.
  const std::string k = key(stream), meta = meta_key(stream);
  const std::string ttl = std::to_string(options.idempotency_ttl.count()), epoch = make_epoch();
  std::vector<std::string> idempotency_keys, fingerprints;
  fingerprints.reserve(events.size());
  for (const auto& e : events) {
    if (e.chosen_event_id) idempotency_keys.push_back(idempotency_key(stream, e.event.event_id));
    fingerprints.push_back(e.chosen_event_id ? to_hex(e.fingerprint) : std::string());
  }
  std::vector<std::string_view> views{k, meta};
  views.reserve(4 + idempotency_keys.size() + 9 * events.size());
  views.insert(views.end(), idempotency_keys.begin(), idempotency_keys.end());
  views.insert(views.end(), {ttl, epoch});
  for (std::size_t i = 0; i < events.size(); ++i) {
    const Event& e = events[i].event;
    views.insert(views.end(), {events[i].chosen_event_id ? "1" : "0", fingerprints[i], e.event_id,
                               e.channel, e.type, e.payload, e.actor, e.metadata, e.created_at});
  }
  Reply reply;
  RR_CO_TRY_ASSIGN(
      reply, co_await eval_views(kAppendBatchScript, 2 + idempotency_keys.size(), views, true));
  if (reply.elements.size() < 2) co_return unexpected_reply("append");
  if (reply.elements[0].str == "conflict") {
    auto i = static_cast<std::size_t>(reply.elements[1].integer);
    if (i >= events.size()) co_return unexpected_reply("append");
    co_return duplicate_conflict_error(stream, events[i].event.event_id);
  }
  const auto& ids = reply.elements[1].elements;
  if (reply.elements.size() != 3 || ids.size() != events.size()) {
    co_return unexpected_reply("append");
  }
  std::vector<Appended> out;
  out.reserve(events.size());
  for (std::size_t i = 0; i < events.size(); ++i) {
    // A new entry's id, or a duplicate's {id, created_at}.
    const bool duplicate = !ids[i].elements.empty();
    auto id = StreamId::parse(duplicate ? ids[i].elements[0].str : ids[i].str);
    if (!id) co_return unexpected_reply("append");
    auto stored = std::make_shared<Event>(std::move(events[i].event));
    stored->id = *id;
    if (duplicate && ids[i].elements.size() > 1) stored->created_at = ids[i].elements[1].str;
    out.push_back({std::move(stored), duplicate});
  }
  if (over_maxlen(options, reply.elements[2].integer)) co_await trim_after_append(stream, options);
  co_return out;
}

task<result<std::vector<Appended>>> RedisStore::append_generated(std::string_view stream,
                                                                 std::vector<NewEvent> events,
                                                                 AppendOptions options) {
  if (events.size() == 1) {  // one XADD: whole or not at all by itself
    Appended one;
    RR_CO_TRY_ASSIGN(one, co_await append(stream, std::move(events.front()), options));
    std::vector<Appended> out;
    out.push_back(std::move(one));
    co_return out;
  }
  // Whole or not at all: Redis out of memory (maxmemory) refuses a pipelined XADD past the limit
  // and keeps those before it, which the failed batch's retry would then store twice.
  const std::string k = key(stream);
  Reply reply;
  if (!cluster_) {
    // MULTI / EXEC: a command Redis refuses as it is queued makes it refuse the EXEC; once EXEC
    // runs, every XADD does. (The topics benchmark's batch ingest: as fast as pipelined XADDs
    // within the noise, and ~7% faster than kAppendGeneratedScript.)
    resp::Encoded batch;
    batch.add_args("MULTI");
    for (const auto& e : events) add_xadd(batch, k, e.event);
    batch.add_args("XLEN", k);
    batch.add_args("EXEC");
    RR_CO_TRY_ASSIGN(reply,
                     co_await send(slot(k), "XADD", std::move(batch), options_.wait_replicas > 0));
    RR_CO_TRY(check_wait(reply));
    Reply exec = std::move(reply.elements.back());  // after MULTI's OK and the QUEUEDs
    for (const auto& r : exec.elements) {
      if (r.is_error()) co_return redis_error(r, "XADD");
    }
    reply = std::move(exec);
  } else {
    // The cluster client follows redirections command by command, which would split a MULTI:
    // there, the script.
    std::vector<std::string_view> views{k};
    views.reserve(1 + 7 * events.size());
    for (const auto& ne : events) {
      const Event& e = ne.event;
      views.insert(views.end(),
                   {e.event_id, e.channel, e.type, e.payload, e.actor, e.metadata, e.created_at});
    }
    RR_CO_TRY_ASSIGN(reply, co_await eval_views(kAppendGeneratedScript, 1, views, true));
  }
  if (reply.elements.size() != events.size() + 1) co_return unexpected_reply("append");
  std::vector<Appended> out;
  out.reserve(events.size());
  for (std::size_t i = 0; i < events.size(); ++i) {
    auto id = StreamId::parse(reply.elements[i].str);
    if (!id) co_return unexpected_reply("append");
    auto stored = std::make_shared<Event>(std::move(events[i].event));
    stored->id = *id;
    out.push_back({std::move(stored), false});
  }
  if (over_maxlen(options, reply.elements.back().integer)) {
    co_await trim_after_append(stream, options);
  }
  co_return out;
}

bool RedisStore::over_maxlen(const AppendOptions& options, std::int64_t length) {
  if (options.maxlen == 0) return false;
  return length >= static_cast<std::int64_t>(options.maxlen + trim_slack(options.approximate));
}

task<void> RedisStore::trim_after_append(std::string_view stream, const AppendOptions& options) {
  if (options.approximate) {
    // MAXLEN ~ promises no exact length: the append need not wait for its trim.
    asio::co_spawn(
        executor_,
        [](std::shared_ptr<RedisStore> self, std::string stream,
           std::uint64_t maxlen) -> task<void> {
          (void)co_await self->trim(std::move(stream), maxlen, true);
        }(shared_from_this(), std::string(stream), options.maxlen),
        asio::detached);
  } else {
    // The events are stored whatever happens here; a trim that fails is done by the next
    // append's.
    (void)co_await trim(std::string(stream), options.maxlen, false);
  }
}

task<result<void>> RedisStore::trim(std::string stream, std::uint64_t maxlen, bool approximate) {
  if (trim_strand_.running_in_this_thread()) {  // an append above
    co_return co_await trim_on_strand(std::move(stream), maxlen, approximate);
  }
  co_return co_await asio::co_spawn(
      trim_strand_, trim_on_strand(std::move(stream), maxlen, approximate), asio::use_awaitable);
}

// Runs on trim_strand_, like group commit: at most one trim per (stream, maxlen, approximate)
// is in flight; callers arriving meanwhile join the next round, sent when it returns. A round
// covers its callers because each joined only after its XADD had been answered.
task<result<void>> RedisStore::trim_on_strand(std::string stream, std::uint64_t maxlen,
                                              bool approximate) {
  auto slot = std::make_tuple(std::move(stream), maxlen, approximate);
  auto [it, idle] = trims_.try_emplace(slot);
  TrimQueue& queue = it->second;
  if (!queue.next) queue.next = std::make_shared<TrimRound>(trim_strand_);
  auto round = queue.next;
  if (idle) asio::co_spawn(trim_strand_, run_trims(slot), asio::detached);
  co_await round->done.async_wait(asio::as_tuple(asio::use_awaitable));
  co_return *round->outcome;
}

// Sends the queued rounds of one slot, one at a time, until none is left.
task<void> RedisStore::run_trims(TrimSlot slot) {
  auto self = shared_from_this();  // the store outlives the rounds it runs
  const std::string& name = std::get<0>(slot);
  for (;;) {
    auto it = trims_.find(slot);
    if (!it->second.next) {
      trims_.erase(it);
      co_return;
    }
    auto round = std::move(it->second.next);
    round->outcome = co_await trim_excess(name, std::get<1>(slot), std::get<2>(slot));
    round->done.cancel();
  }
}

task<result<void>> RedisStore::trim_excess(const std::string& stream, std::uint64_t maxlen,
                                           bool approximate) {
  auto keys = command(key(stream), meta_key(stream));
  auto args = command(std::to_string(maxlen), std::to_string(trim_slack(approximate)),
                      std::to_string(kTrimChunk));
  // Runs the script until the excess its first run saw is gone (what appends add meanwhile is
  // for their own rounds), or until it does nothing (MAXLEN ~ less than its slack past).
  std::optional<std::int64_t> excess;
  for (std::int64_t removed = 0;;) {
    Reply r;
    RR_CO_TRY_ASSIGN(r, co_await eval(kTrimScript, keys, args));
    if (r.type != Reply::Type::array || r.elements.size() != 2) co_return unexpected_reply("trim");
    if (!excess) excess = r.elements[1].integer;
    removed += r.elements[0].integer;
    if (r.elements[0].integer == 0 || removed >= *excess) co_return result<void>{};
  }
}

task<result<RedisStore::Page>> RedisStore::page(std::string_view stream, StreamId after,
                                                std::size_t limit) {
  // XRANGE cannot start after the largest id: nothing can be there.
  if (after == StreamId::max()) limit = 0;
  auto keys = command(key(stream), meta_key(stream));
  auto args = command("(" + after.to_string(), std::to_string(limit), make_epoch());
  Reply r;
  RR_CO_TRY_ASSIGN(r, co_await eval(kRangeScript, std::move(keys), std::move(args)));
  if (r.elements.size() != 7) co_return unexpected_reply("range");
  Page p;
  p.exists = r.elements[0].integer == 1;
  if (!p.exists) co_return p;
  p.epoch = r.elements[1].str;
  p.trimmed_through = parse_id_or_zero(r.elements[2]);
  p.first_id = parse_id_or_zero(r.elements[3]);
  p.last_id = parse_id_or_zero(r.elements[4]);
  p.length = static_cast<std::uint64_t>(r.elements[6].integer);
  for (const auto& entry : r.elements[5].elements) {
    EventPtr e;
    RR_CO_TRY_ASSIGN(e, parse_entry(entry));
    if (e) p.events.push_back(std::move(e));
  }
  co_return p;
}

task<result<std::vector<EventPtr>>> RedisStore::checked_page(std::string_view stream,
                                                             StreamId after, std::size_t limit,
                                                             std::string_view epoch) {
  Page p;
  RR_CO_TRY_ASSIGN(p, co_await page(stream, after, limit));
  auto pos = p.position();
  RR_CO_TRY(check_cursor(stream, p.exists ? &pos : nullptr, after, epoch));
  co_return std::move(p.events);
}

task<result<std::vector<EventPtr>>> RedisStore::range(std::string_view stream, StreamId after,
                                                      std::size_t limit, std::string_view epoch) {
  co_return co_await checked_page(stream, after, limit, epoch);
}

task<result<std::vector<StreamEvents>>> RedisStore::read(std::span<const StreamCursor> cursors,
                                                         ReadOptions options) {
  RR_CO_TRY(check_read_args(cursors.size(), options));
  ReadDeadline deadline(options);
  for (;;) {
    std::vector<StreamEvents> out;
    for (const auto& c : cursors) {
      std::vector<EventPtr> events;
      RR_CO_TRY_ASSIGN(events, co_await checked_page(c.stream, c.after, options.count, c.epoch));
      if (!events.empty()) out.push_back({c.stream, std::move(events)});
    }
    if (!out.empty() || !options.block || deadline.passed()) co_return out;
    // XREAD BLOCK only as a wake-up: the pages above are read again, with their cursor checks.
    std::vector<redis::BlockingReads::Watch> watches;
    for (const auto& c : cursors) watches.push_back({key(c.stream), c.after});
    RR_CO_TRY(co_await blocking_->wait(std::move(watches), deadline.at()));
  }
}

task<result<StreamInfo>> RedisStore::info(std::string_view stream) {
  Page p;
  RR_CO_TRY_ASSIGN(p, co_await page(stream, {}, 0));
  if (!p.exists) co_return no_stream(stream);
  StreamInfo out;
  const std::string k = key(stream);
  const std::uint16_t route = slot(k);
  out.length = p.length;  // from the same moment as the ids (a trim may run meanwhile)
  out.first_id = p.first_id;
  out.last_id = p.last_id;
  out.trimmed_through = p.trimmed_through;
  out.epoch = p.epoch;
  Reply groups, meta;
  RR_CO_TRY_ASSIGN(groups, co_await call(route, command("XINFO", "GROUPS", k)));
  if (!groups.elements.empty()) {
    RR_CO_TRY_ASSIGN(meta, co_await call(route, command("HGETALL", meta_key(stream))));
  }
  for (const auto& g : groups.elements) {
    GroupInfo gi;
    gi.name = field(g, "name").str;
    const Reply& max_deliveries = field(meta, group_options_field(gi.name));
    if (!max_deliveries.str.empty()) {
      gi.max_deliveries = std::strtoull(max_deliveries.str.c_str(), nullptr, 10);
    }
    gi.consumers = static_cast<std::uint64_t>(field(g, "consumers").integer);
    gi.pending = static_cast<std::uint64_t>(field(g, "pending").integer);
    gi.last_delivered = parse_id_or_zero(field(g, "last-delivered-id"));
    const Reply& lag = field(g, "lag");
    if (gi.last_delivered < out.first_id || out.length == 0) {
      // Everything retained comes after the group's position.
      gi.lag = gi.last_delivered < out.first_id ? out.length : 0;
    } else if (lag.type == Reply::Type::integer) {
      gi.lag = static_cast<std::uint64_t>(lag.integer);
    } else {
      // Redis could not tell (the group was set to an arbitrary id): count.
      Reply after;
      RR_CO_TRY_ASSIGN(
          after,
          co_await call(route, command("XRANGE", k, "(" + gi.last_delivered.to_string(), "+")));
      gi.lag = after.elements.size();
    }
    out.groups.push_back(std::move(gi));
  }
  co_return out;
}

task<result<bool>> RedisStore::delete_stream(std::string_view stream) {
  const std::string k = key(stream);
  const std::uint16_t route = slot(k);
  Reply deleted;
  RR_CO_TRY_ASSIGN(deleted, co_await call(route, command("DEL", k, meta_key(stream))));
  // The stream's idempotency records (on a cluster they share its slot, so its node).
  std::vector<std::string> records;
  RR_CO_TRY_ASSIGN(records,
                   co_await scan(options_.prefix + ":@idem:" + tag(stream) + ":*", "", route));
  for (std::size_t i = 0; i < records.size(); i += 1000) {
    auto del = command("DEL");
    auto end = records.begin() + static_cast<std::ptrdiff_t>(std::min(records.size(), i + 1000));
    del.insert(del.end(), records.begin() + static_cast<std::ptrdiff_t>(i), end);
    RR_CO_TRY(co_await call(route, std::move(del)));
  }
  co_return deleted.integer > 0;
}

task<result<std::uint64_t>> RedisStore::trim_before(std::string_view stream, StreamId before) {
  if (before == StreamId{}) co_return 0;  // nothing is below 0-0 (and "(0-0" is no range end)
  Reply r;
  RR_CO_TRY_ASSIGN(r, co_await eval(kTrimBeforeScript, command(key(stream), meta_key(stream)),
                                    command(before.to_string())));
  if (r.type != Reply::Type::integer) co_return unexpected_reply("trim_before");
  co_return static_cast<std::uint64_t>(r.integer);
}

task<result<std::vector<std::string>>> RedisStore::list_streams() {
  const std::string prefix = options_.prefix + ":";
  std::vector<std::string> keys;
  RR_CO_TRY_ASSIGN(keys, co_await scan(prefix + "*", "stream", std::nullopt));
  std::vector<std::string> out;
  for (const auto& k : keys) {
    std::string_view name = std::string_view(k).substr(prefix.size());
    if (name.starts_with('@')) continue;
    if (options_.cluster) {
      // `{<stream>}`; keys without the tag are not this store's.
      if (name.size() < 2 || name.front() != '{' || name.back() != '}') continue;
      name = name.substr(1, name.size() - 2);
    }
    out.emplace_back(name);
  }
  // (A stream whose slot moved while the primaries were scanned may have been seen on both.)
  std::sort(out.begin(), out.end());
  out.erase(std::unique(out.begin(), out.end()), out.end());
  co_return out;
}

task<result<Topic>> RedisStore::create_topic(std::string_view name, std::uint32_t partitions) {
  RR_CO_TRY(check_topic(name, partitions));
  Topic t{std::string(name), partitions, now_timestamp(), {}};
  std::string value = topic_value(t);
  Reply created;
  RR_CO_TRY_ASSIGN(
      created, co_await call(slot(topics_key()), command("HSETNX", topics_key(), t.name, value)));
  if (created.integer == 1) co_return t;
  std::optional<Topic> existing;
  RR_CO_TRY_ASSIGN(existing, co_await get_topic(name));
  if (!existing) co_return unexpected_reply("HGET");
  if (existing->partitions != partitions) {
    co_return topic_conflict_error(name, existing->partitions, partitions);
  }
  co_return *existing;
}

task<result<std::optional<Topic>>> RedisStore::get_topic(std::string_view name) {
  Reply r;
  RR_CO_TRY_ASSIGN(
      r, co_await call(slot(topics_key()), command("HGET", topics_key(), std::string(name))));
  if (r.is_nil()) co_return std::optional<Topic>();
  co_return parse_topic(name, r.str);
}

task<result<std::vector<Topic>>> RedisStore::list_topics() {
  Reply r;
  RR_CO_TRY_ASSIGN(r, co_await call(slot(topics_key()), command("HGETALL", topics_key())));
  std::vector<Topic> out;
  for (std::size_t i = 0; i + 1 < r.elements.size(); i += 2) {
    auto t = parse_topic(r.elements[i].str, r.elements[i + 1].str);
    if (!t) co_return t.error();
    out.push_back(std::move(*t));
  }
  std::sort(out.begin(), out.end(), [](const Topic& a, const Topic& b) { return a.name < b.name; });
  co_return out;
}

task<result<Topic>> RedisStore::set_topic_retention(std::string_view name,
                                                    TopicRetention retention) {
  RR_CO_TRY(check_retention(retention));
  // Read, then write the whole record while the topic exists: its partitions and created_at
  // never change, so only two retention changes at once can race, and the last one stands.
  std::optional<Topic> t;
  RR_CO_TRY_ASSIGN(t, co_await get_topic(name));
  if (!t) co_return no_topic(name);
  t->retention = retention;
  std::vector<std::string> keys{topics_key()};
  std::vector<std::string> args{t->name, topic_value(*t)};
  Reply set;
  RR_CO_TRY_ASSIGN(set, co_await eval(kSetTopicScript, std::move(keys), std::move(args)));
  if (set.integer == 0) co_return no_topic(name);  // deleted meanwhile
  co_return std::move(*t);
}

task<result<bool>> RedisStore::delete_topic(std::string_view name) {
  Reply r;
  RR_CO_TRY_ASSIGN(
      r, co_await call(slot(topics_key()), command("HDEL", topics_key(), std::string(name))));
  co_return r.integer > 0;
}

task<result<bool>> RedisStore::take_lease(std::string_view name, Millis ttl) {
  RR_CO_TRY(check_lease(name, ttl));
  const std::string k = options_.prefix + ":@lease:" + std::string(name);
  Reply r;
  RR_CO_TRY_ASSIGN(
      r, co_await call(slot(k), command("SET", k, "1", "NX", "PX", std::to_string(ttl.count()))));
  co_return !r.is_nil();  // OK, or nil when held
}

task<result<void>> RedisStore::health() {
  if (cluster_ && !cluster_->ready() && !co_await cluster_->wait_ready(kConnectWait)) {
    co_return cluster_->not_ready_error();  // says why: not a cluster, no node reachable…
  }
  // Every primary: on a cluster, each serves part of the streams.
  for (const auto& node : primaries()) RR_CO_TRY(co_await call_on(node, command("PING")));
  co_return result<void>{};
}

}  // namespace replayrail::store
