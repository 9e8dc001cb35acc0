#pragma once

// Lua scripts of the Redis store, run with EVALSHA (loaded on first use, reloaded on NOSCRIPT).
// Each makes one operation atomic: Redis runs a script without interleaving other commands.

namespace replayrail::store::redis {

// Append with idempotency, MAXLEN trimming and the stream's epoch, all at once.
// KEYS: stream, meta hash, idempotency key ("" = the event_id is not remembered)
// ARGV: maxlen, ttl seconds (0 = look up but do not remember), fingerprint, fresh epoch, then the 7
// entry values
//       (event_id, channel, type, payload, actor, metadata, created_at)
// Returns {"ok", id} | {"dup", id, created_at} | {"conflict"}.
inline constexpr const char* kAppendScript = R"lua(
if KEYS[3] ~= '' then
  local rec = redis.call('HMGET', KEYS[3], 'id', 'fp', 'created_at')
  if rec[1] then
    if rec[2] ~= ARGV[3] then return {'conflict'} end
    return {'dup', rec[1], rec[3]}
  end
end
if redis.call('EXISTS', KEYS[1]) == 0 then
  redis.call('DEL', KEYS[2])
end
redis.call('HSETNX', KEYS[2], 'epoch', ARGV[4])
local id = redis.call('XADD', KEYS[1], '*',
  'event_id', ARGV[5], 'channel', ARGV[6], 'type', ARGV[7], 'payload', ARGV[8],
  'actor', ARGV[9], 'metadata', ARGV[10], 'created_at', ARGV[11])
local maxlen = tonumber(ARGV[1])
if maxlen > 0 then
  local len = redis.call('XLEN', KEYS[1])
  if len > maxlen then
    local dropped = redis.call('XRANGE', KEYS[1], '-', '+', 'COUNT', len - maxlen)
    redis.call('HSET', KEYS[2], 'trimmed', dropped[#dropped][1])
    redis.call('XTRIM', KEYS[1], 'MAXLEN', maxlen)
  end
end
if KEYS[3] ~= '' and tonumber(ARGV[2]) > 0 then
  redis.call('HSET', KEYS[3], 'id', id, 'fp', ARGV[3], 'created_at', ARGV[11])
  redis.call('EXPIRE', KEYS[3], ARGV[2])
end
return {'ok', id}
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
