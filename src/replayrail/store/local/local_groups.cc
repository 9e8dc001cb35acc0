// Consumer groups of the local store: XGROUP, XREADGROUP, XACK, XAUTOCLAIM, XPENDING and
// XINFO CONSUMERS semantics over the groups / consumers / pending tables. Writes run on the
// writer thread; pending() and friends read from a leased connection.

#include <boost/asio/this_coro.hpp>

#include "replayrail/store/local/local_state.h"

namespace replayrail::store {

namespace asio = boost::asio;
using local::WriteContext;

namespace {

std::uint64_t idle_since(std::uint64_t now_ms, std::uint64_t then_ms) {
  return now_ms > then_ms ? now_ms - then_ms : 0;
}

result<StreamId> group_position(sqlite::Connection& db, std::string_view stream,
                                std::string_view group) {
  auto st = db.prepare("SELECT last_ms, last_seq FROM groups WHERE stream = ?1 AND name = ?2");
  if (!st) return st.error();
  st->bind(1, stream).bind(2, group);
  bool row;
  RR_TRY_ASSIGN(row, st->step());
  if (!row) return no_group(stream, group);
  return StreamId{st->uint64(0), st->uint64(1)};
}

result<void> set_group_position(sqlite::Connection& db, std::string_view stream,
                                std::string_view group, StreamId id) {
  auto st =
      db.prepare("UPDATE groups SET last_ms = ?3, last_seq = ?4 WHERE stream = ?1 AND name = ?2");
  if (!st) return st.error();
  return st->bind(1, stream).bind(2, group).bind(3, id.ms).bind(4, id.seq).run();
}

result<void> touch_consumer(WriteContext& ctx, std::string_view stream, std::string_view group,
                            std::string_view consumer) {
  auto st = ctx.db.prepare(
      "INSERT INTO consumers (stream, grp, name, seen_ms) VALUES (?1, ?2, ?3, ?4) "
      "ON CONFLICT (stream, grp, name) DO UPDATE SET seen_ms = ?4");
  if (!st) return st.error();
  return st->bind(1, stream).bind(2, group).bind(3, consumer).bind(4, ctx.now_ms).run();
}

// Records `id` as delivered to `consumer` now: a first delivery, even if it was pending for
// another consumer (XREADGROUP after XGROUP SETID moved the group back).
result<void> deliver(WriteContext& ctx, std::string_view stream, std::string_view group,
                     StreamId id, std::string_view consumer) {
  auto st = ctx.db.prepare(
      "INSERT INTO pending (stream, grp, ms, seq, consumer, delivered_ms, delivery_count) "
      "VALUES (?1, ?2, ?3, ?4, ?5, ?6, 1) ON CONFLICT (stream, grp, ms, seq) DO UPDATE SET "
      "consumer = ?5, delivered_ms = ?6, delivery_count = 1");
  if (!st) return st.error();
  return st->bind(1, stream)
      .bind(2, group)
      .bind(3, id.ms)
      .bind(4, id.seq)
      .bind(5, consumer)
      .bind(6, ctx.now_ms)
      .run();
}

// Counts one more delivery of a pending message, to `consumer`, now.
result<void> redeliver(WriteContext& ctx, std::string_view stream, std::string_view group,
                       StreamId id, std::string_view consumer) {
  auto st = ctx.db.prepare(
      "UPDATE pending SET consumer = ?5, delivered_ms = ?6, delivery_count = delivery_count + 1 "
      "WHERE stream = ?1 AND grp = ?2 AND ms = ?3 AND seq = ?4");
  if (!st) return st.error();
  return st->bind(1, stream)
      .bind(2, group)
      .bind(3, id.ms)
      .bind(4, id.seq)
      .bind(5, consumer)
      .bind(6, ctx.now_ms)
      .run();
}

// A pending message with its event (null when trimmed).
struct PendingRow {
  StreamId id;
  std::string consumer;
  std::uint64_t delivered_ms = 0;
  std::uint64_t delivery_count = 0;
  EventPtr event;
};

#define RR_PENDING_WITH_EVENT                                                       \
  "SELECT p.ms, p.seq, p.consumer, p.delivered_ms, p.delivery_count, e.ms, e.seq, " \
  "e.event_id, e.channel, e.type, e.payload, e.actor, e.metadata, e.created_at "    \
  "FROM pending p LEFT JOIN events e ON e.stream = p.stream AND e.ms = p.ms AND e.seq = p.seq "

result<std::vector<PendingRow>> collect(sqlite::Statement& st) {
  std::vector<PendingRow> out;
  for (;;) {
    bool row;
    RR_TRY_ASSIGN(row, st.step());
    if (!row) return out;
    out.push_back({{st.uint64(0), st.uint64(1)},
                   std::string(st.text(2)),
                   st.uint64(3),
                   st.uint64(4),
                   st.is_null(5) ? nullptr : local::read_event(st, 5)});
  }
}

result<GroupStreamMessages> read_history(WriteContext& ctx, std::string_view group,
                                         std::string_view consumer, const GroupCursor& c,
                                         std::size_t count) {
  std::vector<PendingRow> rows;
  {
    auto st = ctx.db.prepare(RR_PENDING_WITH_EVENT
                             "WHERE p.stream = ?1 AND p.grp = ?2 AND p.consumer = ?3 "
                             "AND (p.ms, p.seq) > (?4, ?5) ORDER BY p.ms, p.seq LIMIT ?6");
    if (!st) return st.error();
    st->bind(1, c.stream)
        .bind(2, group)
        .bind(3, consumer)
        .bind(4, c.pending_after->ms)
        .bind(5, c.pending_after->seq)
        .bind(6, std::uint64_t{count});
    RR_TRY_ASSIGN(rows, collect(*st));
  }
  GroupStreamMessages out{c.stream, {}};
  for (auto& r : rows) {
    RR_TRY(redeliver(ctx, c.stream, group, r.id, consumer));
    out.messages.push_back({r.id, std::move(r.event), r.delivery_count + 1});
  }
  return out;
}

result<GroupStreamMessages> read_new(WriteContext& ctx, std::string_view group,
                                     std::string_view consumer, const GroupCursor& c,
                                     std::size_t count) {
  StreamId last;
  RR_TRY_ASSIGN(last, group_position(ctx.db, c.stream, group));
  std::vector<EventPtr> events;
  RR_TRY_ASSIGN(events, local::load_events_after(ctx.db, c.stream, last, count));
  GroupStreamMessages out{c.stream, {}};
  for (auto& e : events) {
    RR_TRY(deliver(ctx, c.stream, group, e->id, consumer));
    out.messages.push_back({e->id, e, 1});
  }
  if (!events.empty()) RR_TRY(set_group_position(ctx.db, c.stream, group, events.back()->id));
  return out;
}

}  // namespace

task<result<void>> LocalStore::group_create(std::string_view stream, std::string_view group,
                                            Cursor start, bool mkstream, GroupOptions options) {
  RR_CO_TRY(check_group_name(group));
  auto op = [stream = std::string(stream), group = std::string(group), start, mkstream,
             options](WriteContext& ctx) -> result<void> {
    WriteContext::Stream* s;
    RR_TRY_ASSIGN(s, ctx.stream(stream, mkstream));
    if (!s) return no_stream(stream);
    if (local::check_group(ctx.db, stream, group)) return group_exists_error(stream, group);
    StreamId at = start.is_latest() ? s->row.last_id : start.id();
    auto st = ctx.db.prepare(
        "INSERT INTO groups (stream, name, last_ms, last_seq, max_deliveries) "
        "VALUES (?1, ?2, ?3, ?4, ?5)");
    if (!st) return st.error();
    return st->bind(1, stream)
        .bind(2, group)
        .bind(3, at.ms)
        .bind(4, at.seq)
        .bind(5, options.max_deliveries)
        .run();
  };
  co_return co_await state_->writer->call<void>(std::move(op));
}

task<result<void>> LocalStore::group_setid(std::string_view stream, std::string_view group,
                                           Cursor id) {
  auto op = [stream = std::string(stream), group = std::string(group),
             id](WriteContext& ctx) -> result<void> {
    WriteContext::Stream* s;
    RR_TRY_ASSIGN(s, ctx.stream(stream, false));
    if (!s) return no_stream(stream);
    RR_TRY(local::check_group(ctx.db, stream, group));
    return set_group_position(ctx.db, stream, group, id.is_latest() ? s->row.last_id : id.id());
  };
  co_return co_await state_->writer->call<void>(std::move(op));
}

task<result<bool>> LocalStore::group_destroy(std::string_view stream, std::string_view group) {
  auto op = [stream = std::string(stream),
             group = std::string(group)](WriteContext& ctx) -> result<bool> {
    WriteContext::Stream* s;
    RR_TRY_ASSIGN(s, ctx.stream(stream, false));
    if (!s) return no_stream(stream);
    auto del = ctx.db.prepare("DELETE FROM groups WHERE stream = ?1 AND name = ?2");
    if (!del) return del.error();
    RR_TRY(del->bind(1, stream).bind(2, group).run());
    bool existed = ctx.db.changes() > 0;
    for (const char* sql : {"DELETE FROM pending WHERE stream = ?1 AND grp = ?2",
                            "DELETE FROM consumers WHERE stream = ?1 AND grp = ?2"}) {
      auto st = ctx.db.prepare(sql);
      if (!st) return st.error();
      RR_TRY(st->bind(1, stream).bind(2, group).run());
    }
    return existed;
  };
  co_return co_await state_->writer->call<bool>(std::move(op));
}

task<result<std::vector<GroupStreamMessages>>> LocalStore::read_group(
    std::string_view group, std::string_view consumer, std::span<const GroupCursor> cursors,
    ReadOptions options) {
  bool history;
  RR_CO_TRY_ASSIGN(history, check_read_group_args(cursors, consumer, options));
  auto op = [group = std::string(group), consumer = std::string(consumer),
             cursors = std::vector<GroupCursor>(cursors.begin(), cursors.end()),
             count = options.count](WriteContext& ctx) -> result<std::vector<GroupStreamMessages>> {
    RR_TRY(ctx.apply_trims());
    // Check every group before changing any, so a bad cursor changes nothing.
    for (const auto& c : cursors) RR_TRY(local::check_group(ctx.db, c.stream, group));
    std::vector<GroupStreamMessages> out;
    for (const auto& c : cursors) {
      RR_TRY(touch_consumer(ctx, c.stream, group, consumer));
      GroupStreamMessages batch;
      if (c.pending_after) {
        RR_TRY_ASSIGN(batch, read_history(ctx, group, consumer, c, count));
        out.push_back(std::move(batch));  // history reads answer even when empty
        continue;
      }
      RR_TRY_ASSIGN(batch, read_new(ctx, group, consumer, c, count));
      if (!batch.messages.empty()) out.push_back(std::move(batch));
    }
    return out;
  };
  ReadDeadline deadline(options);
  auto executor = co_await asio::this_coro::executor;
  for (;;) {
    bool may_block = options.block && !history;
    auto registration = may_block ? state_->register_waiter(executor, cursors) : nullptr;
    std::vector<GroupStreamMessages> out;
    RR_CO_TRY_ASSIGN(out, co_await state_->writer->call<std::vector<GroupStreamMessages>>(op));
    if (!out.empty() || !may_block || deadline.passed()) co_return out;
    if (!co_await registration->waiter().wait(deadline.remaining()) && deadline.passed()) {
      co_return std::vector<GroupStreamMessages>{};
    }
  }
}

task<result<std::uint64_t>> LocalStore::ack(std::string_view stream, std::string_view group,
                                            std::span<const StreamId> ids) {
  auto op = [stream = std::string(stream), group = std::string(group),
             ids = std::vector<StreamId>(ids.begin(), ids.end())](
                WriteContext& ctx) -> result<std::uint64_t> {
    std::uint64_t acked = 0;
    for (StreamId id : ids) {
      auto st = ctx.db.prepare(
          "DELETE FROM pending WHERE stream = ?1 AND grp = ?2 AND ms = ?3 AND seq = ?4");
      if (!st) return st.error();
      RR_TRY(st->bind(1, stream).bind(2, group).bind(3, id.ms).bind(4, id.seq).run());
      acked += static_cast<std::uint64_t>(ctx.db.changes());
    }
    return acked;
  };
  co_return co_await state_->writer->call<std::uint64_t>(std::move(op));
}

task<result<AutoclaimResult>> LocalStore::autoclaim(std::string_view stream, std::string_view group,
                                                    std::string_view consumer, Millis min_idle,
                                                    StreamId start, std::size_t count) {
  RR_CO_TRY(check_autoclaim_args(consumer, min_idle, count));
  auto op = [stream = std::string(stream), group = std::string(group),
             consumer = std::string(consumer), min_idle = std::uint64_t(min_idle.count()), start,
             count](WriteContext& ctx) -> result<AutoclaimResult> {
    RR_TRY(ctx.apply_trims());
    RR_TRY(local::check_group(ctx.db, stream, group));
    RR_TRY(touch_consumer(ctx, stream, group, consumer));
    // XAUTOCLAIM examines at most ten entries per one it may claim; one more row tells
    // where the next scan starts.
    std::size_t attempts = count * 10;
    std::vector<PendingRow> rows;
    {
      auto st = ctx.db.prepare(RR_PENDING_WITH_EVENT
                               "WHERE p.stream = ?1 AND p.grp = ?2 AND (p.ms, p.seq) >= (?3, ?4) "
                               "ORDER BY p.ms, p.seq LIMIT ?5");
      if (!st) return st.error();
      st->bind(1, stream).bind(2, group).bind(3, start.ms).bind(4, start.seq);
      st->bind(5, std::uint64_t{attempts + 1});
      RR_TRY_ASSIGN(rows, collect(*st));
    }
    AutoclaimResult out;
    std::size_t i = 0;
    for (; i < rows.size() && attempts > 0 && out.claimed.size() < count; ++i, --attempts) {
      auto& r = rows[i];
      if (!r.event) {
        auto del = ctx.db.prepare(
            "DELETE FROM pending WHERE stream = ?1 AND grp = ?2 AND ms = ?3 AND seq = ?4");
        if (!del) return del.error();
        RR_TRY(del->bind(1, stream).bind(2, group).bind(3, r.id.ms).bind(4, r.id.seq).run());
        out.deleted.push_back(r.id);
        continue;
      }
      if (idle_since(ctx.now_ms, r.delivered_ms) < min_idle) continue;
      RR_TRY(redeliver(ctx, stream, group, r.id, consumer));
      out.claimed.push_back({r.id, std::move(r.event), r.delivery_count + 1});
    }
    out.next = i < rows.size() ? rows[i].id : StreamId{};
    return out;
  };
  co_return co_await state_->writer->call<AutoclaimResult>(std::move(op));
}

task<result<PendingSummary>> LocalStore::pending(std::string_view stream, std::string_view group) {
  local::ReaderPool::Lease db;
  RR_CO_TRY_ASSIGN(db, state_->readers->lease());
  RR_CO_TRY(local::check_group(*db, stream, group));
  auto st = db->prepare(
      "SELECT consumer, count(*) FROM pending "
      "WHERE stream = ?1 AND grp = ?2 GROUP BY consumer ORDER BY consumer");
  if (!st) co_return st.error();
  st->bind(1, stream).bind(2, group);
  PendingSummary out;
  for (;;) {
    bool row;
    RR_CO_TRY_ASSIGN(row, st->step());
    if (!row) break;
    out.consumers.emplace_back(std::string(st->text(0)), st->uint64(1));
    out.count += st->uint64(1);
  }
  if (out.count == 0) co_return out;
  for (auto [sql, target] : {std::pair{"SELECT ms, seq FROM pending WHERE stream = ?1 AND grp = ?2 "
                                       "ORDER BY ms, seq LIMIT 1",
                                       &out.min_id},
                             std::pair{"SELECT ms, seq FROM pending WHERE stream = ?1 AND grp = ?2 "
                                       "ORDER BY ms DESC, seq DESC LIMIT 1",
                                       &out.max_id}}) {
    auto edge = db->prepare(sql);
    if (!edge) co_return edge.error();
    edge->bind(1, stream).bind(2, group);
    bool row;
    RR_CO_TRY_ASSIGN(row, edge->step());
    if (row) *target = {edge->uint64(0), edge->uint64(1)};
  }
  co_return out;
}

task<result<std::vector<PendingEntry>>> LocalStore::pending_entries(std::string_view stream,
                                                                    std::string_view group,
                                                                    PendingQuery query) {
  local::ReaderPool::Lease db;
  RR_CO_TRY_ASSIGN(db, state_->readers->lease());
  RR_CO_TRY(local::check_group(*db, stream, group));
  auto st = db->prepare(
      "SELECT ms, seq, consumer, delivered_ms, delivery_count FROM pending "
      "WHERE stream = ?1 AND grp = ?2 AND (ms, seq) >= (?3, ?4) AND (ms, seq) <= (?5, ?6) "
      "AND (?7 IS NULL OR consumer = ?7) ORDER BY ms, seq");
  if (!st) co_return st.error();
  st->bind(1, stream)
      .bind(2, group)
      .bind(3, query.start.ms)
      .bind(4, query.start.seq)
      .bind(5, query.end.ms)
      .bind(6, query.end.seq);
  if (query.consumer) st->bind(7, *query.consumer);
  std::uint64_t now = state_->options.now_ms();
  std::vector<PendingEntry> out;
  while (out.size() < query.count) {
    bool row;
    RR_CO_TRY_ASSIGN(row, st->step());
    if (!row) break;
    auto idle = idle_since(now, st->uint64(3));
    if (idle < query.min_idle_ms) continue;
    out.push_back({{st->uint64(0), st->uint64(1)}, std::string(st->text(2)), idle, st->uint64(4)});
  }
  co_return out;
}

task<result<std::vector<ConsumerInfo>>> LocalStore::consumers(std::string_view stream,
                                                              std::string_view group) {
  local::ReaderPool::Lease db;
  RR_CO_TRY_ASSIGN(db, state_->readers->lease());
  RR_CO_TRY(local::check_group(*db, stream, group));
  auto st = db->prepare(
      "SELECT c.name, c.seen_ms, (SELECT count(*) FROM pending p WHERE p.stream = c.stream "
      "AND p.grp = c.grp AND p.consumer = c.name) FROM consumers c "
      "WHERE c.stream = ?1 AND c.grp = ?2 ORDER BY c.name");
  if (!st) co_return st.error();
  st->bind(1, stream).bind(2, group);
  std::uint64_t now = state_->options.now_ms();
  std::vector<ConsumerInfo> out;
  for (;;) {
    bool row;
    RR_CO_TRY_ASSIGN(row, st->step());
    if (!row) co_return out;
    out.push_back({std::string(st->text(0)), st->uint64(2), idle_since(now, st->uint64(1))});
  }
}

}  // namespace replayrail::store
