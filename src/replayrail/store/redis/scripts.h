#pragma once

// Lua scripts of the Redis store, run with EVALSHA (loaded on first use, reloaded on NOSCRIPT).
// Each makes one operation atomic: Redis runs a script without interleaving other commands.

namespace replayrail::store::redis {

// Append of a publisher-chosen event_id: idempotency lookup, XADD, idempotency record and the
// stream's epoch, all at once. (Server-generated ids need none of that: a plain XADD.)
// KEYS: stream, meta hash, idempotency key
// ARGV: ttl seconds (0 = look up but do not remember), fingerprint, fresh epoch, then the 7 entry
//       values (event_id, channel, type, payload, actor, metadata, created_at)
// Returns {"ok", id} | {"dup", id, created_at} | {"conflict"}.
inline constexpr const char* kAppendScript = R"lua(
local rec = redis.call('HMGET', KEYS[3], 'id', 'fp', 'created_at')
if rec[1] then
  if rec[2] ~= ARGV[2] then return {'conflict'} end
  return {'dup', rec[1], rec[3]}
end
if redis.call('EXISTS', KEYS[1]) == 0 then
  redis.call('DEL', KEYS[2])
end
redis.call('HSETNX', KEYS[2], 'epoch', ARGV[3])
local id = redis.call('XADD', KEYS[1], '*',
  'event_id', ARGV[4], 'channel', ARGV[5], 'type', ARGV[6], 'payload', ARGV[7],
  'actor', ARGV[8], 'metadata', ARGV[9], 'created_at', ARGV[10])
if tonumber(ARGV[1]) > 0 then
  redis.call('HSET', KEYS[3], 'id', id, 'fp', ARGV[2], 'created_at', ARGV[10])
  redis.call('EXPIRE', KEYS[3], ARGV[1])
end
return {'ok', id}
)lua";

// MAXLEN trimming that records the last id it removed (the stream's trimmed_through), so a
// cursor equal to it is still known to be complete. One run serves every append that came
// before it (RedisStore coalesces them).
// KEYS: stream, meta hash. ARGV: maxlen, approximate ("1": MAXLEN ~, which frees only whole
// internal nodes of `node_entries` entries and may keep more), node_entries
// Returns the number of entries removed.
inline constexpr const char* kTrimScript = R"lua(
local maxlen = tonumber(ARGV[1])
local excess = redis.call('XLEN', KEYS[1]) - maxlen
if excess <= 0 then return 0 end
if ARGV[2] == '1' and excess < tonumber(ARGV[3]) then return 0 end
local oldest = redis.call('XRANGE', KEYS[1], '-', '+', 'COUNT', excess)
local removed
if ARGV[2] == '1' then
  removed = redis.call('XTRIM', KEYS[1], 'MAXLEN', '~', maxlen)
else
  removed = redis.call('XTRIM', KEYS[1], 'MAXLEN', maxlen)
end
if removed > 0 then redis.call('HSET', KEYS[2], 'trimmed', oldest[removed][1]) end
return removed
)lua";

// What a cursor check needs, and a page after the cursor, from one moment.
// KEYS: stream, meta hash. ARGV: exclusive start ("(ms-seq"), count (0 = no entries), fresh epoch
// Returns {exists, epoch, trimmed or "", first id or "", last id or "", entries}.
inline constexpr const char* kRangeScript = R"lua(
if redis.call('EXISTS', KEYS[1]) == 0 then return {0, '', '', '', '', {}} end
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
return {1, meta[1], meta[2] or '', first[1] and first[1][1] or '', last, entries}
)lua";

}  // namespace replayrail::store::redis
