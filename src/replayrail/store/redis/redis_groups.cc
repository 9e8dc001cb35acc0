// Consumer groups of the Redis store: the XGROUP family, XREADGROUP, XACK, XAUTOCLAIM and
// XPENDING, with Redis's errors mapped to the contract's.

#include <algorithm>
#include <charconv>
#include <iterator>
#include <map>

#include "replayrail/store/redis/redis_store.h"
#include "replayrail/store/redis/replies.h"
#include "replayrail/store/rules.h"

namespace replayrail::store {

using resp::Reply;
using namespace redis;

namespace {

std::string position(Cursor c) { return c.is_latest() ? "$" : c.id().to_string(); }

}  // namespace

task<result<void>> RedisStore::group_create(std::string_view stream, std::string_view group,
                                            Cursor start, bool mkstream, GroupOptions options) {
  RR_CO_TRY(check_group_name(group));
  auto cmd = command("XGROUP", "CREATE", key(stream), std::string(group), position(start));
  if (mkstream) cmd.push_back("MKSTREAM");
  RR_CO_TRY(co_await call(stream_slot(stream), std::move(cmd)));
  // The group's options live in the stream's meta hash (a field left by a group of the same
  // name that another client destroyed is replaced).
  auto field = group_options_field(group);
  if (options.max_deliveries > 0) {
    RR_CO_TRY(co_await call(stream_slot(stream), command("HSET", meta_key(stream), field,
                                                         std::to_string(options.max_deliveries))));
  } else {
    RR_CO_TRY(co_await call(stream_slot(stream), command("HDEL", meta_key(stream), field)));
  }
  co_return result<void>{};
}

task<result<void>> RedisStore::group_setid(std::string_view stream, std::string_view group,
                                           Cursor id) {
  RR_CO_TRY(co_await call(stream_slot(stream), command("XGROUP", "SETID", key(stream),
                                                       std::string(group), position(id))));
  co_return result<void>{};
}

task<result<bool>> RedisStore::group_destroy(std::string_view stream, std::string_view group) {
  Reply r;
  RR_CO_TRY_ASSIGN(r, co_await call(stream_slot(stream),
                                    command("XGROUP", "DESTROY", key(stream), std::string(group))));
  RR_CO_TRY(co_await call(stream_slot(stream),
                          command("HDEL", meta_key(stream), group_options_field(group))));
  co_return r.integer > 0;
}

task<result<void>> RedisStore::fill_delivery_counts(std::string_view stream, std::string_view group,
                                                    std::vector<GroupMessage>& messages) {
  if (messages.empty()) co_return result<void>{};
  Reply r;
  RR_CO_TRY_ASSIGN(
      r, co_await call(
             stream_slot(stream),
             command("XPENDING", key(stream), std::string(group), messages.front().id.to_string(),
                     messages.back().id.to_string(), std::to_string(messages.size() * 2 + 16))));
  std::map<StreamId, std::uint64_t> counts;
  for (const auto& p : r.elements) {
    if (p.elements.size() == 4) {
      counts[parse_id_or_zero(p.elements[0])] = static_cast<std::uint64_t>(p.elements[3].integer);
    }
  }
  for (auto& m : messages) {
    if (auto it = counts.find(m.id); it != counts.end()) m.delivery_count = it->second;
  }
  co_return result<void>{};
}

std::vector<std::string> RedisStore::group_read_command(std::string_view group,
                                                        std::string_view consumer,
                                                        std::span<const GroupCursor> cursors,
                                                        std::size_t count,
                                                        std::optional<Millis> block) const {
  auto cmd = command("XREADGROUP", "GROUP", std::string(group), std::string(consumer), "COUNT",
                     std::to_string(count));
  if (block) {
    cmd.push_back("BLOCK");
    cmd.push_back(std::to_string(std::max<std::int64_t>(1, block->count())));
  }
  cmd.push_back("STREAMS");
  for (const auto& c : cursors) cmd.push_back(key(c.stream));
  for (const auto& c : cursors) {
    cmd.push_back(c.pending_after ? c.pending_after->to_string() : ">");
  }
  return cmd;
}

task<result<std::vector<GroupStreamMessages>>> RedisStore::group_messages(
    std::string_view group, std::span<const GroupCursor> cursors, const Reply& reply) {
  std::vector<GroupStreamMessages> out;
  for (const auto& s : reply.elements) {
    if (s.elements.size() != 2) co_return unexpected_reply("XREADGROUP");
    auto it = std::find_if(cursors.begin(), cursors.end(), [&](const GroupCursor& c) {
      return key(c.stream) == s.elements[0].str;
    });
    if (it == cursors.end()) co_return unexpected_reply("XREADGROUP");
    GroupStreamMessages batch{it->stream, {}};
    for (const auto& entry : s.elements[1].elements) {
      EventPtr e;
      RR_CO_TRY_ASSIGN(e, parse_entry(entry));
      batch.messages.push_back({parse_id_or_zero(entry.elements[0]), std::move(e), 1});
    }
    if (it->pending_after) {
      RR_CO_TRY(co_await fill_delivery_counts(it->stream, group, batch.messages));
    } else if (batch.messages.empty()) {
      continue;
    }
    out.push_back(std::move(batch));
  }
  co_return out;
}

task<result<std::vector<GroupStreamMessages>>> RedisStore::read_group(
    std::string_view group, std::string_view consumer, std::span<const GroupCursor> cursors,
    ReadOptions options) {
  bool history;
  RR_CO_TRY_ASSIGN(history, check_read_group_args(cursors, consumer, options));
  const bool block = options.block && !history;
  const std::uint16_t route = stream_slot(cursors.front().stream);
  if (std::any_of(cursors.begin(), cursors.end(),
                  [&](const GroupCursor& c) { return stream_slot(c.stream) != route; })) {
    co_return co_await read_group_across_slots(group, consumer, cursors, options.count,
                                               block ? options.block : std::nullopt);
  }
  ReadDeadline deadline(options);
  for (;;) {
    std::optional<Millis> wait;
    if (block) wait = std::min(deadline.remaining().value_or(kMaxBlock), kMaxBlock);
    auto cmd = group_read_command(group, consumer, cursors, options.count, wait);
    // (if/else, not ?: - GCC 12 miscompiles co_await inside a conditional expression.)
    result<Reply> reply = make_error(errc::internal);
    if (block) {
      reply = co_await call_blocking(
          route, std::move(cmd),
          group_read_command(group, consumer, cursors, options.count, std::nullopt));
    } else {
      reply = co_await call(route, std::move(cmd));
    }
    if (!reply) co_return reply.error();
    std::vector<GroupStreamMessages> out;
    RR_CO_TRY_ASSIGN(out, co_await group_messages(group, cursors, *reply));
    if (!out.empty() || !block || deadline.passed()) co_return out;
  }
}

task<result<std::vector<GroupStreamMessages>>> RedisStore::read_group_across_slots(
    std::string_view group, std::string_view consumer, std::span<const GroupCursor> cursors,
    std::size_t count, std::optional<Millis> block) {
  std::map<std::uint16_t, std::vector<GroupCursor>> by_slot;
  for (const auto& c : cursors) by_slot[stream_slot(c.stream)].push_back(c);
  ReadDeadline deadline({count, block});
  for (;;) {
    std::vector<GroupStreamMessages> out;
    std::vector<redis::BlockingReads::Watch> watches;
    for (const auto& [route, in_slot] : by_slot) {
      // Each stream's last id, then the read, in one pipeline: an entry added in between is in
      // the read's answer, so an entry after these ids is one the group has not seen, and the
      // wake-up below cannot miss it.
      resp::Encoded batch;
      std::vector<std::string> keys;
      for (const auto& c : in_slot) {
        keys.push_back(key(c.stream));
        batch.add_args("XREVRANGE", keys.back(), "+", "-", "COUNT", "1");
      }
      auto cmd = group_read_command(group, consumer, in_slot, count, std::nullopt);
      batch.add(std::vector<std::string_view>(cmd.begin(), cmd.end()));
      Reply r;
      RR_CO_TRY_ASSIGN(r, co_await send(route, "XREADGROUP", std::move(batch)));
      if (r.elements.size() != in_slot.size() + 1) co_return unexpected_reply("XREADGROUP");
      for (std::size_t i = 0; i < in_slot.size(); ++i) {
        const auto& last = r.elements[i].elements;
        StreamId after = last.empty() ? StreamId{} : parse_id_or_zero(last.front().elements.at(0));
        watches.push_back({std::move(keys[i]), after});
      }
      std::vector<GroupStreamMessages> read;
      RR_CO_TRY_ASSIGN(read, co_await group_messages(group, in_slot, r.elements.back()));
      std::move(read.begin(), read.end(), std::back_inserter(out));
    }
    if (!out.empty() || !block || deadline.passed()) {
      // In the cursors' order, as one XREADGROUP answers.
      auto position = [&](const GroupStreamMessages& m) {
        return std::find_if(cursors.begin(), cursors.end(),
                            [&](const GroupCursor& c) { return c.stream == m.stream; }) -
               cursors.begin();
      };
      std::sort(out.begin(), out.end(),
                [&](const auto& a, const auto& b) { return position(a) < position(b); });
      co_return out;
    }
    RR_CO_TRY(co_await blocking_->wait(std::move(watches), deadline.at()));
  }
}

task<result<std::uint64_t>> RedisStore::ack(std::string_view stream, std::string_view group,
                                            std::span<const StreamId> ids) {
  if (ids.empty()) co_return 0;
  auto cmd = command("XACK", key(stream), std::string(group));
  for (auto id : ids) cmd.push_back(id.to_string());
  Reply r;
  RR_CO_TRY_ASSIGN(r, co_await call(stream_slot(stream), std::move(cmd)));
  co_return static_cast<std::uint64_t>(r.integer);
}

task<result<AutoclaimResult>> RedisStore::autoclaim(std::string_view stream, std::string_view group,
                                                    std::string_view consumer, Millis min_idle,
                                                    StreamId start, std::size_t count) {
  RR_CO_TRY(check_autoclaim_args(consumer, min_idle, count));
  Reply r;
  RR_CO_TRY_ASSIGN(r, co_await call(stream_slot(stream),
                                    command("XAUTOCLAIM", key(stream), std::string(group),
                                            std::string(consumer), std::to_string(min_idle.count()),
                                            start.to_string(), "COUNT", std::to_string(count))));
  if (r.elements.size() < 2) co_return unexpected_reply("XAUTOCLAIM");
  AutoclaimResult out;
  out.next = parse_id_or_zero(r.elements[0]);
  for (const auto& entry : r.elements[1].elements) {
    EventPtr e;
    RR_CO_TRY_ASSIGN(e, parse_entry(entry));
    out.claimed.push_back({parse_id_or_zero(entry.elements[0]), std::move(e), 0});
  }
  if (r.elements.size() > 2) {
    for (const auto& id : r.elements[2].elements) out.deleted.push_back(parse_id_or_zero(id));
  }
  RR_CO_TRY(co_await fill_delivery_counts(stream, group, out.claimed));
  co_return out;
}

task<result<PendingSummary>> RedisStore::pending(std::string_view stream, std::string_view group) {
  Reply r;
  RR_CO_TRY_ASSIGN(
      r, co_await call(stream_slot(stream), command("XPENDING", key(stream), std::string(group))));
  if (r.elements.size() != 4) co_return unexpected_reply("XPENDING");
  PendingSummary out;
  out.count = static_cast<std::uint64_t>(r.elements[0].integer);
  out.min_id = parse_id_or_zero(r.elements[1]);
  out.max_id = parse_id_or_zero(r.elements[2]);
  for (const auto& c : r.elements[3].elements) {
    if (c.elements.size() != 2) continue;
    std::uint64_t n = 0;
    std::from_chars(c.elements[1].str.data(), c.elements[1].str.data() + c.elements[1].str.size(),
                    n);
    out.consumers.emplace_back(c.elements[0].str, n);
  }
  std::sort(out.consumers.begin(), out.consumers.end());
  co_return out;
}

task<result<std::vector<PendingEntry>>> RedisStore::pending_entries(std::string_view stream,
                                                                    std::string_view group,
                                                                    PendingQuery query) {
  std::vector<PendingEntry> out;
  if (query.count == 0) {
    // XPENDING answers COUNT 0 with everything; the contract says nothing. Still check the group.
    RR_CO_TRY(co_await pending(stream, group));
    co_return out;
  }
  auto cmd = command("XPENDING", key(stream), std::string(group));
  if (query.min_idle_ms > 0) {
    cmd.push_back("IDLE");
    cmd.push_back(std::to_string(query.min_idle_ms));
  }
  cmd.insert(cmd.end(),
             {query.start.to_string(), query.end.to_string(), std::to_string(query.count)});
  if (query.consumer) cmd.push_back(*query.consumer);
  Reply r;
  RR_CO_TRY_ASSIGN(r, co_await call(stream_slot(stream), std::move(cmd)));
  for (const auto& p : r.elements) {
    if (p.elements.size() != 4) co_return unexpected_reply("XPENDING");
    out.push_back({parse_id_or_zero(p.elements[0]), p.elements[1].str,
                   static_cast<std::uint64_t>(p.elements[2].integer),
                   static_cast<std::uint64_t>(p.elements[3].integer)});
  }
  co_return out;
}

task<result<std::vector<ConsumerInfo>>> RedisStore::consumers(std::string_view stream,
                                                              std::string_view group) {
  Reply r;
  RR_CO_TRY_ASSIGN(r, co_await call(stream_slot(stream), command("XINFO", "CONSUMERS", key(stream),
                                                                 std::string(group))));
  std::vector<ConsumerInfo> out;
  for (const auto& c : r.elements) {
    out.push_back({field(c, "name").str, static_cast<std::uint64_t>(field(c, "pending").integer),
                   static_cast<std::uint64_t>(field(c, "idle").integer)});
  }
  std::sort(out.begin(), out.end(),
            [](const ConsumerInfo& a, const ConsumerInfo& b) { return a.name < b.name; });
  co_return out;
}

}  // namespace replayrail::store
