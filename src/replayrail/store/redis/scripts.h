#pragma once

// Lua scripts of the Redis store, run with EVALSHA (loaded on first use, reloaded on NOSCRIPT).
// Each makes one operation atomic: Redis runs a script without interleaving other commands.

namespace replayrail::store::redis {

// Appends of publisher-chosen event_ids (append() of one is a batch of one): every event of a
// batch in order, atomically, with the stream's epoch. Conflicts are looked for first, so a batch
// with one writes nothing; then each event is looked up (a remembered event_id, also one an
// earlier event of the batch remembered, is a duplicate), appended and remembered with a TTL.
// (Server-generated ids need none of that: XADDs, in a MULTI or kAppendGeneratedScript.)
// KEYS: stream, meta hash, then the idempotency key of each event with a chosen event_id, in order
// ARGV: ttl seconds (0 = look up but do not remember), fresh epoch, then 9 values per event:
//       chosen ("1" or "0"), fingerprint, and the 7 entry values
// Returns {"conflict", event index} | {"ok", {id | {id, created_at} (a duplicate), ...}, XLEN}.
inline constexpr const char* kAppendBatchScript = R"lua(
local ttl = tonumber(ARGV[1])
local n = (#ARGV - 2) / 9
local in_batch = {}
local k = 3
for i = 0, n - 1 do
  local a = 3 + i * 9
  if ARGV[a] == '1' then
    local fp = redis.call('HGET', KEYS[k], 'fp') or in_batch[KEYS[k]]
    if fp and fp ~= ARGV[a + 1] then return {'conflict', i} end
    if not fp and ttl > 0 then in_batch[KEYS[k]] = ARGV[a + 1] end
    k = k + 1
  end
end
if redis.call('EXISTS', KEYS[1]) == 0 then
  redis.call('DEL', KEYS[2])
end
redis.call('HSETNX', KEYS[2], 'epoch', ARGV[2])
local out = {}
k = 3
for i = 0, n - 1 do
  local a = 3 + i * 9
  local rec = nil
  if ARGV[a] == '1' then
    rec = redis.call('HMGET', KEYS[k], 'id', 'created_at')
  end
  if rec and rec[1] then
    out[i + 1] = {rec[1], rec[2]}
  else
    local id = redis.call('XADD', KEYS[1], '*',
      'event_id', ARGV[a + 2], 'channel', ARGV[a + 3], 'type', ARGV[a + 4],
      'payload', ARGV[a + 5], 'actor', ARGV[a + 6], 'metadata', ARGV[a + 7],
      'created_at', ARGV[a + 8])
    if rec and ttl > 0 then
      redis.call('HSET', KEYS[k], 'id', id, 'fp', ARGV[a + 1], 'created_at', ARGV[a + 8])
      redis.call('EXPIRE', KEYS[k], ARGV[1])
    end
    out[i + 1] = id
  end
  if rec then k = k + 1 end
end
return {'ok', out, redis.call('XLEN', KEYS[1])}
)lua";

// A batch of events with server-generated ids on a Redis Cluster (elsewhere: MULTI / EXEC): their
// XADDs, in order, then XLEN. A script so that the batch is stored whole or not at all: Redis out
// of memory (maxmemory) refuses a script before its first write and lets one that has written
// finish. (Lighter for Redis than kAppendBatchScript: about 10% more CPU an event than pipelined
// XADDs, against 25%.)
// KEYS: stream. ARGV: the 7 entry values of each event. Returns {id, ..., XLEN}.
inline constexpr const char* kAppendGeneratedScript = R"lua(
local out = {}
for a = 1, #ARGV, 7 do
  out[#out + 1] = redis.call('XADD', KEYS[1], '*', 'event_id', ARGV[a], 'channel', ARGV[a + 1],
    'type', ARGV[a + 2], 'payload', ARGV[a + 3], 'actor', ARGV[a + 4], 'metadata', ARGV[a + 5],
    'created_at', ARGV[a + 6])
end
out[#out + 1] = redis.call('XLEN', KEYS[1])
return out
)lua";

// MAXLEN trimming that records the last id it removed (the stream's trimmed_through), so a
// cursor equal to it is still known to be complete. One run serves every append that came
// before it (RedisStore coalesces them). A run removes at most `chunk` entries, so a stream far
// past its MAXLEN (written without one, or a MAXLEN lowered) is trimmed over several runs rather
// than in one of seconds, Redis serving nothing else meanwhile.
// No Redis command returns the ids alone, and Lua converts a whole entry (~2 µs) to learn one,
// so a run trims all but the last entry to go, reads that one, and trims it too. Redis' own
// MAXLEN ~ is not used: how many entries it frees is known only after, when they are gone, so
// their ids would have to be read first, every one of them.
// KEYS: stream, meta hash. ARGV: maxlen, slack (the excess below which nothing is done: 1 for
// an exact MAXLEN; more for a loose one, which is then trimmed in steps), chunk
// Returns {entries removed, entries in excess before}.
inline constexpr const char* kTrimScript = R"lua(
local length = redis.call('XLEN', KEYS[1])
local excess = length - tonumber(ARGV[1])
if excess < tonumber(ARGV[2]) then return {0, math.max(excess, 0)} end
local count = math.min(excess, tonumber(ARGV[3]))
if count > 1 then redis.call('XTRIM', KEYS[1], 'MAXLEN', length - count + 1) end
local edge = redis.call('XRANGE', KEYS[1], '-', '+', 'COUNT', 1)[1][1]
redis.call('XTRIM', KEYS[1], 'MAXLEN', length - count)
redis.call('HSET', KEYS[2], 'trimmed', edge)
return {count, excess}
)lua";

// XTRIM MINID that records the last id it removed (the stream's trimmed_through), as kTrimScript
// does. Not in chunks as kTrimScript: nothing tells cheaply how many entries lie below an id,
// and XTRIM frees every stream node wholly below it without reading its entries:
// rr_redis_store_bench expiry removes 990,000 events of 200-byte payloads in 38 ms, as fast as
// a plain XTRIM MINID. Passes every expiry interval remove what aged in one, so only a first
// pass over a long past takes that long.
// KEYS: stream, meta hash. ARGV: the id below which entries go (not 0-0). Returns entries removed.
inline constexpr const char* kTrimBeforeScript = R"lua(
local edge = redis.call('XREVRANGE', KEYS[1], '(' .. ARGV[1], '-', 'COUNT', 1)[1]
if not edge then return 0 end
local removed = redis.call('XTRIM', KEYS[1], 'MINID', ARGV[1])
redis.call('HSET', KEYS[2], 'trimmed', edge[1])
return removed
)lua";

// Replaces a topic's registry record only while the topic exists (Redis has no HSET XX): a
// topic deleted since its record was read is not brought back.
// KEYS: the registry hash. ARGV: topic, record. Returns 1, or 0 when there is no such topic.
inline constexpr const char* kSetTopicScript = R"lua(
if redis.call('HEXISTS', KEYS[1], ARGV[1]) == 0 then return 0 end
redis.call('HSET', KEYS[1], ARGV[1], ARGV[2])
return 1
)lua";

// What a cursor check needs, and a page after the cursor, from one moment.
// KEYS: stream, meta hash. ARGV: exclusive start ("(ms-seq"), count (0 = no entries), fresh epoch
// Returns {exists, epoch, trimmed or "", first id or "", last id or "", entries, length}.
inline constexpr const char* kRangeScript = R"lua(
if redis.call('EXISTS', KEYS[1]) == 0 then return {0, '', '', '', '', {}, 0} end
redis.call('HSETNX', KEYS[2], 'epoch', ARGV[3])
local meta = redis.call('HMGET', KEYS[2], 'epoch', 'trimmed')
local first = redis.call('XRANGE', KEYS[1], '-', '+', 'COUNT', 1)
local info = redis.call('XINFO', 'STREAM', KEYS[1])
local last = ''
for i = 1, #info, 2 do
  if info[i] == 'last-generated-id' then last = info[i + 1] end
end
local entries = {}
if tonumber(ARGV[2]) > 0 then
  entries = redis.call('XRANGE', KEYS[1], ARGV[1], '+', 'COUNT', ARGV[2])
end
return {1, meta[1], meta[2] or '', first[1] and first[1][1] or '', last, entries,
        redis.call('XLEN', KEYS[1])}
)lua";

}  // namespace replayrail::store::redis
