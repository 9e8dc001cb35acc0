#include "replayrail/topics.h"

#include <xxhash.h>

#include <algorithm>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/deferred.hpp>
#include <boost/asio/experimental/parallel_group.hpp>
#include <boost/asio/this_coro.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/json/value.hpp>
#include <functional>
#include <map>
#include <unordered_set>

#include "replayrail/core/json_text.h"
#include "replayrail/store/rules.h"

namespace replayrail {

namespace asio = boost::asio;
namespace json = boost::json;
using store::task;

Topics::Topics(std::shared_ptr<store::Store> store, TopicsConfig config,
               std::shared_ptr<Backpressure> backpressure)
    : store_(std::move(store)), config_(config), backpressure_(std::move(backpressure)) {}

std::uint32_t Topics::partition_for(const store::Topic& topic,
                                    std::optional<std::string_view> key) {
  if (topic.partitions <= 1) return 0;
  if (!key) return static_cast<std::uint32_t>(round_robin_++ % topic.partitions);
  // Rendezvous hashing: every partition scores xxh64(topic \0 key \0 p); the highest wins.
  std::string buffer = topic.name;
  buffer.push_back('\0');
  buffer.append(*key);
  buffer.push_back('\0');
  const std::size_t prefix = buffer.size();
  std::uint32_t best = 0;
  XXH64_hash_t best_score = 0;
  for (std::uint32_t p = 0; p < topic.partitions; ++p) {
    buffer.resize(prefix);
    buffer += std::to_string(p);
    XXH64_hash_t score = XXH64(buffer.data(), buffer.size(), 0);
    if (p == 0 || score > best_score) {
      best = p;
      best_score = score;
    }
  }
  return best;
}

task<result<IngestResult>> Topics::ingest(std::string_view topic,
                                          const std::vector<PublishBody>& events,
                                          std::optional<std::uint32_t> partitions) {
  RR_CO_TRY(validate_channel(topic));
  if (events.empty()) co_return make_error(errc::invalid_argument, "events must not be empty");
  if (events.size() > config_.max_batch) {
    co_return make_error(errc::invalid_argument, "at most " + std::to_string(config_.max_batch) +
                                                     " events per request, not " +
                                                     std::to_string(events.size()));
  }
  if (partitions && (*partitions == 0 || *partitions > kMaxPartitions)) {
    co_return make_error(errc::invalid_argument,
                         "partitions must be between 1 and " + std::to_string(kMaxPartitions));
  }
  // Every event is validated before any is written.
  std::vector<NewEvent> made;
  made.reserve(events.size());
  for (std::size_t i = 0; i < events.size(); ++i) {
    auto e = make_event_within(events[i].input(topic), config_.max_payload_bytes);
    if (!e) {
      Error error = e.error();
      error.message = "events[" + std::to_string(i) + "]: " + error.message;
      co_return error;
    }
    made.push_back(std::move(*e));
  }
  co_return co_await store_events(topic, events, std::move(made), partitions);
}

task<result<Ingested>> Topics::publish(std::string_view topic, const PublishBody& event) {
  RR_CO_TRY(validate_channel(topic));
  std::vector<NewEvent> made(1);
  RR_CO_TRY_ASSIGN(made[0], make_event_within(event.input(topic), config_.max_payload_bytes));
  IngestResult stored;
  RR_CO_TRY_ASSIGN(
      stored, co_await store_events(topic, std::span(&event, 1), std::move(made), std::nullopt));
  Ingested& one = stored.events.front();
  if (one.error) co_return *one.error;
  co_return std::move(one);
}

task<result<IngestResult>> Topics::store_events(std::string_view topic,
                                                std::span<const PublishBody> events,
                                                std::vector<NewEvent> made,
                                                std::optional<std::uint32_t> partitions) {
  store::Topic t;
  bool created = false;
  RR_CO_TRY_ASSIGN(t, co_await open_for_ingest(topic, partitions, &created));

  std::vector<Ingested> out(events.size());
  // Per partition: its stream and the batch indices of its events.
  std::map<std::uint32_t, std::pair<std::string, std::vector<std::size_t>>> by_partition;
  for (std::size_t i = 0; i < events.size(); ++i) {
    const auto& key = events[i].partition_key;
    const auto p = partition_for(t, key ? std::optional<std::string_view>(*key) : std::nullopt);
    out[i].partition = p;
    auto& [stream, indices] = by_partition[p];
    if (stream.empty()) stream = store::partition_stream(t.name, t.partitions, p);
    indices.push_back(i);
  }
  // Every partition is admitted before any is written to.
  std::vector<Backpressure::Ticket> admitted;
  if (backpressure_) {
    for (const auto& [p, part] : by_partition) {
      Backpressure::Ticket ticket;
      RR_CO_TRY_ASSIGN(ticket, co_await backpressure_->admit(part.first, part.second.size()));
      admitted.push_back(std::move(ticket));
    }
  }
  // Partitions in parallel, each in one append_batch (in batch order).
  auto append_partition = [](store::Store& s, std::string stream, std::vector<std::size_t> indices,
                             std::vector<NewEvent>& made, std::vector<Ingested>& out,
                             store::AppendOptions options) -> task<void> {
    std::vector<NewEvent> batch;
    batch.reserve(indices.size());
    for (std::size_t i : indices) batch.push_back(std::move(made[i]));
    auto stored = co_await s.append_batch(stream, std::move(batch), options);
    if (!stored) {
      for (std::size_t i : indices) out[i].error = stored.error();
      co_return;
    }
    for (std::size_t j = 0; j < indices.size(); ++j) {
      out[indices[j]].event = std::move((*stored)[j].event);
      out[indices[j]].duplicate = (*stored)[j].duplicate;
    }
  };
  const store::AppendOptions options = appends_for(t);
  if (by_partition.size() == 1) {
    const auto& [p, part] = *by_partition.begin();
    co_await append_partition(*store_, part.first, part.second, made, out, options);
  } else {
    auto executor = co_await asio::this_coro::executor;
    using Op = decltype(asio::co_spawn(executor, std::declval<task<void>>(), asio::deferred));
    std::vector<Op> ops;
    for (const auto& [p, part] : by_partition) {
      ops.push_back(asio::co_spawn(
          executor, append_partition(*store_, part.first, part.second, made, out, options),
          asio::deferred));
    }
    co_await asio::experimental::make_parallel_group(std::move(ops))
        .async_wait(asio::experimental::wait_for_all(), asio::use_awaitable);
  }
  if (backpressure_) {
    for (const auto& [p, part] : by_partition) {
      std::uint64_t n = 0;
      for (auto i : part.second) n += out[i].event && !out[i].duplicate;
      backpressure_->appended(part.first, n);
    }
  }
  // A partition's batch is all or nothing, but partitions are separate streams: those stored
  // while another failed stay stored (durable once acknowledged), and `out` says which.
  co_return IngestResult{std::move(t), std::move(out), created};
}

task<result<std::optional<store::Topic>>> Topics::look_up(std::string_view topic) {
  std::optional<store::Topic> t;
  RR_CO_TRY_ASSIGN(t, co_await find(topic));
  if (!t) RR_CO_TRY_ASSIGN(t, co_await store_->get_topic(topic));
  if (!t) RR_CO_TRY_ASSIGN(t, co_await adopt_channel(topic));
  co_return t;
}

task<result<store::Topic>> Topics::open_for_ingest(std::string_view topic,
                                                   std::optional<std::uint32_t> partitions,
                                                   bool* created_here) {
  std::optional<store::Topic> t;
  RR_CO_TRY_ASSIGN(t, co_await look_up(topic));
  if (created_here) *created_here = false;
  if (!t) {
    auto created =
        co_await store_->create_topic(topic, partitions.value_or(config_.default_partitions));
    if (created) {
      t = std::move(*created);
      if (created_here) *created_here = true;
    } else if (created.error().code == errc::topic_conflict && !partitions) {
      // Another server created it first, with another count: that count it is.
      RR_CO_TRY_ASSIGN(t, co_await store_->get_topic(topic));
      if (!t) co_return created.error();
    } else {
      co_return created.error();
    }
  }
  if (partitions && *partitions != t->partitions) {
    co_return make_error(errc::topic_conflict,
                         "topic " + t->name + " has " + std::to_string(t->partitions) +
                             (t->partitions == 1 ? " partition" : " partitions") + ", not " +
                             std::to_string(*partitions));
  }
  remember(*t);
  co_return std::move(*t);
}

task<result<store::Topic>> Topics::existing(std::string_view topic) {
  RR_CO_TRY(validate_channel(topic));
  std::optional<store::Topic> t;
  RR_CO_TRY_ASSIGN(t, co_await look_up(topic));
  if (!t) co_return make_error(errc::stream_not_found, "no topic " + std::string(topic));
  remember(*t);
  co_return std::move(*t);
}

task<result<std::optional<store::Topic>>> Topics::adopt_channel(std::string_view channel) {
  auto info = co_await store_->info(channel);
  if (!info) {
    if (info.error().code == errc::stream_not_found) co_return std::nullopt;
    co_return info.error();
  }
  // create_topic returns the topic when another node registered it first with one partition;
  // one registered meanwhile with more is a topic_conflict, answered as it is.
  store::Topic t;
  RR_CO_TRY_ASSIGN(t, co_await store_->create_topic(channel, 1));
  co_return t;
}

task<result<std::optional<store::Topic>>> Topics::find(std::string_view topic) {
  // One lock, as this runs on every publish: the topic, and whether this caller reloads.
  auto look = [this](std::string_view name) -> std::optional<store::Topic> {
    auto it = known_.find(name);
    return it == known_.end() ? std::nullopt : std::optional(it->second.topic);
  };
  const auto now = std::chrono::steady_clock::now();
  std::optional<store::Topic> found;
  bool load = false;
  {
    std::lock_guard lock(known_mu_);
    found = look(topic);
    const bool never = registry_loaded_ == std::chrono::steady_clock::time_point{};
    // Before the first load every caller waits for one: a partitioned topic must never be
    // taken for a plain channel. Later, one caller reloads and the others answer from known_.
    load = never || (!registry_loading_ && now - registry_loaded_ >= registry_refresh);
    if (load) registry_loading_ = true;
  }
  if (!load) co_return found;
  auto topics = co_await store_->list_topics();
  {
    std::lock_guard lock(known_mu_);
    registry_loading_ = false;
    if (topics) {
      for (auto& t : *topics) {
        std::string name = t.name;
        known_.insert_or_assign(std::move(name), Known{std::move(t), now});
      }
      // Gone from the registry (deleted), unless made here since the read began.
      std::erase_if(known_, [now](const auto& entry) { return entry.second.seen < now; });
      registry_loaded_ = now;
      found = look(topic);
    }
  }
  // The registry cannot be read (the store is down, or its node on a cluster): a topic known
  // before is still that topic.
  if (!topics && !found) co_return topics.error();
  co_return found;
}

void Topics::remember(const store::Topic& t) {
  std::lock_guard lock(known_mu_);
  known_.insert_or_assign(t.name, Known{t, std::chrono::steady_clock::now()});
}

store::AppendOptions Topics::appends_for(const store::Topic& t) const {
  store::AppendOptions options = config_.appends;
  if (t.retention.max_length) options.maxlen = *t.retention.max_length;
  return options;
}

store::TopicRetention Topics::effective_retention(const store::Topic& t) const {
  return {.max_length = t.retention.max_length.value_or(config_.appends.maxlen),
          .max_age = t.retention.max_age.value_or(config_.max_age)};
}

task<result<std::pair<store::Topic, bool>>> Topics::configure(
    std::string_view topic, std::optional<std::uint32_t> partitions,
    store::TopicRetention retention) {
  // Everything is checked before the topic is created.
  RR_CO_TRY(validate_channel(topic));
  RR_CO_TRY(store::check_retention(retention));
  if (partitions && (*partitions == 0 || *partitions > kMaxPartitions)) {
    co_return make_error(errc::invalid_argument,
                         "partitions must be between 1 and " + std::to_string(kMaxPartitions));
  }
  bool created = false;
  store::Topic t;
  RR_CO_TRY_ASSIGN(t, co_await open_for_ingest(topic, partitions, &created));
  RR_CO_TRY_ASSIGN(t, co_await store_->set_topic_retention(t.name, retention));
  remember(t);
  co_return std::make_pair(std::move(t), created);
}

task<result<StringMap<store::Millis>>> Topics::own_max_ages() {
  std::vector<store::Topic> topics;
  RR_CO_TRY_ASSIGN(topics, co_await store_->list_topics());
  StringMap<store::Millis> out;
  for (const auto& t : topics) {
    if (!t.retention.max_age) continue;
    for (std::uint32_t p = 0; p < t.partitions; ++p) {
      out.emplace(store::partition_stream(t.name, t.partitions, p), *t.retention.max_age);
    }
  }
  co_return out;
}

result<void> Topics::check_partitions(const store::Topic& t, const std::vector<std::uint32_t>& ps) {
  for (auto p : ps) {
    if (p >= t.partitions) {
      return make_error(errc::invalid_argument, "topic " + t.name + " has no partition " +
                                                    std::to_string(p) + " (it has " +
                                                    std::to_string(t.partitions) + ")");
    }
  }
  return {};
}

task<result<std::vector<store::Topic>>> Topics::list() { co_return co_await store_->list_topics(); }

task<result<TopicDescription>> Topics::describe(std::string_view topic) {
  TopicDescription d;
  RR_CO_TRY_ASSIGN(d.topic, co_await existing(topic));
  for (std::uint32_t p = 0; p < d.topic.partitions; ++p) {
    PartitionInfo pi{p, store::partition_stream(d.topic.name, d.topic.partitions, p), {}};
    auto info = co_await store_->info(pi.stream);
    if (info) {
      pi.info = std::move(*info);
    } else if (info.error().code != errc::stream_not_found) {
      co_return info.error();
    }
    d.partitions.push_back(std::move(pi));
  }
  co_return d;
}

task<result<std::vector<TopicDescription>>> Topics::describe_all() {
  std::vector<store::Topic> topics;
  RR_CO_TRY_ASSIGN(topics, co_await store_->list_topics());
  std::vector<TopicDescription> out;
  for (const auto& t : topics) {
    TopicDescription d;
    RR_CO_TRY_ASSIGN(d, co_await describe(t.name));
    out.push_back(std::move(d));
  }
  co_return out;
}

task<result<ChannelsDescription>> Topics::describe_channels(
    const std::vector<TopicDescription>& topics, std::size_t limit,
    std::function<bool(std::string_view)> visible) {
  std::vector<std::string> streams;
  RR_CO_TRY_ASSIGN(streams, co_await store_->list_streams());
  std::unordered_set<std::string> partitions;
  for (const auto& t : topics) {
    for (const auto& p : t.partitions) partitions.insert(p.stream);
  }
  std::erase_if(streams, [&](const std::string& s) {
    return partitions.contains(s) || (visible && !visible(s));
  });
  std::sort(streams.begin(), streams.end());
  ChannelsDescription out{.total = streams.size()};
  for (const auto& name : streams) {
    if (out.channels.size() == limit) break;
    auto info = co_await store_->info(name);
    if (info) {
      out.channels.push_back({name, std::move(*info)});
    } else if (info.error().code != errc::stream_not_found) {  // not deleted since it was listed
      co_return info.error();
    }
  }
  co_return out;
}

task<result<store::Topic>> Topics::on_every_partition(
    std::string_view topic, std::function<task<result<void>>(std::string stream)> op) {
  store::Topic t;
  RR_CO_TRY_ASSIGN(t, co_await existing(topic));
  for (std::uint32_t p = 0; p < t.partitions; ++p) {
    auto stream = store::partition_stream(t.name, t.partitions, p);
    auto done = co_await op(stream);
    stream_changed(stream);
    RR_CO_TRY(done);
  }
  co_return t;
}

task<result<store::Topic>> Topics::create_group(std::string_view topic, std::string_view group,
                                                Cursor start, store::GroupOptions options) {
  // A coroutine, so the stream name lives in its frame while the store uses it.
  return on_every_partition(
      topic,
      [this, group = std::string(group), start, options](std::string stream) -> task<result<void>> {
        co_return co_await store_->group_create(stream, group, start, true, options);
      });
}

task<result<std::uint64_t>> Topics::stored_max_deliveries(const std::string& stream,
                                                          std::string_view group) {
  store::StreamInfo info;
  RR_CO_TRY_ASSIGN(info, co_await store_->info(stream));
  for (const auto& g : info.groups) {
    if (g.name == group) co_return g.max_deliveries;
  }
  co_return std::uint64_t{0};
}

task<result<store::Topic>> Topics::reset_group(std::string_view topic, std::string_view group,
                                               Cursor start) {
  return on_every_partition(
      topic, [this, group = std::string(group), start](std::string stream) -> task<result<void>> {
        co_return co_await store_->group_setid(stream, group, start);
      });
}

task<result<bool>> Topics::destroy_group(std::string_view topic, std::string_view group) {
  store::Topic t;
  RR_CO_TRY_ASSIGN(t, co_await existing(topic));
  bool existed = false;
  for (std::uint32_t p = 0; p < t.partitions; ++p) {
    auto stream = store::partition_stream(t.name, t.partitions, p);
    auto r = co_await store_->group_destroy(stream, group);
    stream_changed(stream);
    if (r) {
      existed = existed || *r;
    } else if (r.error().code != errc::stream_not_found) {
      co_return r.error();
    }
  }
  co_return existed;
}

task<result<std::vector<PartitionMessage>>> Topics::read_group(
    std::string_view topic, std::string_view group, std::string_view consumer, std::size_t count,
    std::optional<store::Millis> block, std::vector<std::uint32_t> partitions) {
  store::Topic t;
  RR_CO_TRY_ASSIGN(t, co_await existing(topic));
  RR_CO_TRY(check_partitions(t, partitions));
  if (partitions.empty()) {
    for (std::uint32_t p = 0; p < t.partitions; ++p) partitions.push_back(p);
  }
  std::vector<store::GroupCursor> cursors;
  std::map<std::string, std::uint32_t, std::less<>> partition_of;
  for (auto p : partitions) {
    auto stream = store::partition_stream(t.name, t.partitions, p);
    partition_of[stream] = p;
    cursors.push_back({std::move(stream), std::nullopt});
  }
  std::vector<store::GroupStreamMessages> read;
  RR_CO_TRY_ASSIGN(read, co_await store_->read_group(group, consumer, cursors, {count, block}));
  std::vector<PartitionMessage> out;
  for (auto& s : read) {
    stream_changed(s.stream);
    std::uint32_t p = partition_of.find(s.stream)->second;
    for (auto& m : s.messages) out.push_back({p, std::move(m)});
  }
  co_return out;
}

task<result<std::uint64_t>> Topics::ack(std::string_view topic, std::string_view group,
                                        const std::vector<PartitionIds>& items) {
  store::Topic t;
  RR_CO_TRY_ASSIGN(t, co_await existing(topic));
  std::vector<std::uint32_t> ps;
  for (const auto& item : items) ps.push_back(item.partition);
  RR_CO_TRY(check_partitions(t, ps));
  std::uint64_t acked = 0;
  for (const auto& item : items) {
    auto stream = store::partition_stream(t.name, t.partitions, item.partition);
    std::uint64_t n = 0;
    auto acked_here = co_await store_->ack(stream, group, item.ids);
    stream_changed(stream);
    RR_CO_TRY_ASSIGN(n, std::move(acked_here));
    acked += n;
  }
  co_return acked;
}

task<result<std::pair<store::Topic, std::vector<PartitionPurge>>>> Topics::purge(
    std::string_view topic, std::optional<StreamId> before, std::vector<std::uint32_t> partitions) {
  store::Topic t;
  RR_CO_TRY_ASSIGN(t, co_await existing(topic));
  RR_CO_TRY(check_partitions(t, partitions));
  if (partitions.empty()) {
    for (std::uint32_t p = 0; p < t.partitions; ++p) partitions.push_back(p);
  }
  std::vector<PartitionPurge> out;
  for (std::uint32_t p : partitions) {
    const auto stream = store::partition_stream(t.name, t.partitions, p);
    StreamId below;
    if (before) {
      below = *before;
    } else {
      auto info = co_await store_->info(stream);
      if (!info && info.error().code != errc::stream_not_found) co_return info.error();
      if (info) below = info->last_id.next();  // everything up to the last id, inclusive
    }
    std::uint64_t purged = 0;
    if (below != StreamId{}) RR_CO_TRY_ASSIGN(purged, co_await store_->trim_before(stream, below));
    stream_changed(stream);
    out.push_back({p, purged});
  }
  co_return std::make_pair(std::move(t), std::move(out));
}

task<result<store::Topic>> Topics::remove(std::string_view topic) {
  RR_CO_TRY(validate_channel(topic));
  std::optional<store::Topic> t;
  RR_CO_TRY_ASSIGN(t, co_await store_->get_topic(topic));   // the registry's, not the copy
  if (!t) t = store::Topic{std::string(topic), 1, {}, {}};  // a plain channel, if anything
  bool streams = false;
  for (std::uint32_t p = 0; p < t->partitions; ++p) {
    const auto stream = store::partition_stream(t->name, t->partitions, p);
    bool deleted;
    RR_CO_TRY_ASSIGN(deleted, co_await store_->delete_stream(stream));
    streams = streams || deleted;
    stream_changed(stream);
  }
  bool registered;
  RR_CO_TRY_ASSIGN(registered, co_await store_->delete_topic(t->name));
  {
    std::lock_guard lock(known_mu_);
    known_.erase(t->name);
  }
  if (!registered && !streams) co_return make_error(errc::stream_not_found, "no topic " + t->name);
  co_return std::move(*t);
}

std::string dead_letter_stream(std::string_view topic) { return std::string(topic) + ".dlq"; }

task<result<void>> Topics::dead_letter(const store::Topic& t, std::uint32_t p,
                                       std::string_view group, const store::GroupMessage& m) {
  const Event& e = *m.event;
  auto parsed = parse_json(e.metadata);
  json::value metadata = parsed && parsed->is_object() ? std::move(*parsed) : json::object{};
  metadata.as_object()["dead_letter"] = json::object{{"reason", "max_deliveries"},
                                                     {"topic", t.name},
                                                     {"partition", p},
                                                     {"group", group},
                                                     {"original_id", m.id.to_string()},
                                                     {"deliveries", m.delivery_count}};
  const std::string metadata_text = to_json(metadata);
  const std::string stream = dead_letter_stream(t.name);
  // Idempotent: a claim retried after a failure between append and ack appends nothing twice.
  std::string event_id = e.event_id + ":dlq:" + std::string(group);
  EventInput input{.channel = stream,
                   .type = e.type,
                   .payload = e.payload,
                   .actor = e.actor,
                   .metadata = metadata_text,
                   .event_id = event_id,
                   .created_at = e.created_at};
  if (!validate_event_id(event_id)) input.event_id.reset();  // too long, or the group's name
  NewEvent dead;
  RR_CO_TRY_ASSIGN(dead, make_event(input));
  // The dead-letter stream is a channel of its own, which may be given a retention of its own.
  std::optional<store::Topic> own;
  RR_CO_TRY_ASSIGN(own, co_await find(stream));
  RR_CO_TRY(
      co_await store_->append(stream, std::move(dead), own ? appends_for(*own) : config_.appends));
  const auto partition = store::partition_stream(t.name, t.partitions, p);
  RR_CO_TRY(co_await store_->ack(partition, group, std::span(&m.id, 1)));
  stream_changed(partition);
  co_return result<void>{};
}

task<result<ClaimResult>> Topics::claim(std::string_view topic, std::string_view group,
                                        std::string_view consumer, store::Millis min_idle,
                                        std::size_t count, StreamId start,
                                        std::optional<std::uint64_t> max_deliveries,
                                        std::vector<std::uint32_t> partitions) {
  store::Topic t;
  RR_CO_TRY_ASSIGN(t, co_await existing(topic));
  RR_CO_TRY(check_partitions(t, partitions));
  if (partitions.empty()) {
    for (std::uint32_t p = 0; p < t.partitions; ++p) partitions.push_back(p);
  }
  ClaimResult out;
  for (std::uint32_t p : partitions) {
    if (out.claimed.size() >= count) break;
    const auto stream = store::partition_stream(t.name, t.partitions, p);
    std::optional<std::uint64_t> limit = max_deliveries;  // 0: never
    StreamId from = start;
    // XAUTOCLAIM scans a bounded range per call: follow its cursor to the end of the PEL.
    do {
      store::AutoclaimResult r;
      RR_CO_TRY_ASSIGN(r, co_await store_->autoclaim(stream, group, consumer, min_idle, from,
                                                     count - out.claimed.size()));
      PartitionIds dead{p, {}};
      if (!limit && !r.claimed.empty()) {
        // The group's own setting, looked up once per partition and only when needed.
        std::uint64_t stored;
        RR_CO_TRY_ASSIGN(stored, co_await stored_max_deliveries(stream, group));
        limit = stored;
      }
      for (auto& m : r.claimed) {
        if (*limit > 0 && m.delivery_count > *limit) {
          RR_CO_TRY(co_await dead_letter(t, p, group, m));
          dead.ids.push_back(m.id);
        } else {
          out.claimed.push_back({p, std::move(m)});
        }
      }
      if (!dead.ids.empty()) out.dead_lettered.push_back(std::move(dead));
      if (!r.deleted.empty()) out.deleted.push_back({p, std::move(r.deleted)});
      from = r.next;
    } while (from != StreamId{} && out.claimed.size() < count);
  }
  co_return out;
}

}  // namespace replayrail
