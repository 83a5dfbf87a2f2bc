"""The Lua scripts of at-least-once delivery (issue 17; design in `reliable`).

They run after `scripts`' prelude (``now_ms``, ``deadline``, ``count``,
``count_expired``, ``messages_in``, ``list_ttl``). Every key one call touches for one
channel sits under that channel's hash tag (`reliable.reliable_keys`). A data list they
put entries back into gets the TTL a send creating it would give it (``list_ttl``: a
normal channel's keeps issue 15's grace, which its senders then reset only now and
then, `scripts._SEND_PRELUDE`); doorbells keep expiry + 1 s.
"""

from __future__ import annotations

from .scripts import Script

__all__ = ["ACK", "LEASE", "NACK", "REQUEUE"]

_RELIABLE_PRELUDE = """
-- Leases of one channel that ended go back to the head of its data list (kind R,
-- with their delivery count) or, after max_deliveries, to its dead letters.
-- k = {list, bell, lease, held, dead}. Returns (moved back, dead-lettered).
local function reclaim(k, now, maxd, expiry_ms, counters, limit)
  local due = redis.call('ZRANGEBYSCORE', k[3], '-inf', now, 'LIMIT', 0, limit)
  if #due == 0 then return 0, 0 end
  local back, dead = {}, 0
  for _, id in ipairs(due) do
    local rec = redis.call('HGET', k[4], id)
    redis.call('ZREM', k[3], id)
    redis.call('HDEL', k[4], id)
    if rec then
      local colon = string.find(rec, ':', 1, true)
      local n = tonumber(string.sub(rec, 1, colon - 1))
      local entry = string.sub(rec, colon + 1)
      if n >= maxd then
        redis.call('RPUSH', k[5], string.format('%013d', now) .. n .. ':' .. entry)
        dead = dead + 1
      else
        back[#back + 1] = string.format('%013d', now + expiry_ms) .. 'R' .. n .. ':' ..
                          string.sub(entry, 14)
      end
    end
  end
  if #back > 0 then
    for i = #back, 1, -1 do redis.call('LPUSH', k[1], back[i]) end
    redis.call('PEXPIRE', k[1], list_ttl(k[1], expiry_ms))
    for _ = 1, #back do redis.call('RPUSH', k[2], '9999999999999B') end
    redis.call('PEXPIRE', k[2], expiry_ms + 1000)
  end
  if dead > 0 then count(counters, 'dead_lettered_count', dead) end
  return #back, dead
end
"""

# One non-blocking pass (issue 17). KEYS: global statistics hash, then per name in
# the order to try: 'r' (at-least-once) names give list, bell, lease, held, dead,
# channel statistics hash; 'p' (plain) names give their list. ARGV: ack_timeout_ms,
# max_deliveries, expiry_ms, lease id token, stats_prefix, channel stats TTL, global
# stats TTL, kinds ('r'/'p' per name), then lease ids acknowledged by this receiver
# since its last pass (`Reliable.ack_later`), whose lease set and held hash are the
# last KEYS, two per id.
# Returns {now, next lease deadline or -1, {name index, dead-lettered, ...}} and, when
# something was taken: name index, lease id ('' for plain), delivery count, entry.
_LEASE = """
local now = now_ms()
local ack_ms, maxd, expiry_ms = tonumber(ARGV[1]), tonumber(ARGV[2]), tonumber(ARGV[3])
local token = ARGV[4]
local stats = {ARGV[5], ARGV[6], ARGV[7]}
local kinds = ARGV[8]
local acks = #ARGV - 8
for a = 1, acks do
  local at = #KEYS - 2 * (acks - a) - 1
  redis.call('ZREM', KEYS[at], ARGV[8 + a])
  redis.call('HDEL', KEYS[at + 1], ARGV[8 + a])
end
local next_due, dead_info = -1, {}
local k = 2
for i = 1, #kinds do
  if string.byte(kinds, i) == 114 then
    local keys = {KEYS[k], KEYS[k + 1], KEYS[k + 2], KEYS[k + 3], KEYS[k + 4]}
    local counters = {KEYS[k + 5], KEYS[1], stats[2], stats[3], false}
    k = k + 6
    local _, dead = reclaim(keys, now, maxd, expiry_ms, counters, 100)
    if dead > 0 then
      dead_info[#dead_info + 1] = i
      dead_info[#dead_info + 1] = dead
    end
    local dropped = 0
    while true do
      local entry = redis.call('LPOP', keys[1])
      if not entry then break end
      if deadline(entry) > now then
        local n = 1
        if string.byte(entry, 14) == 82 then
          local colon = string.find(entry, ':', 15, true)
          n = tonumber(string.sub(entry, 15, colon - 1)) + 1
          entry = string.sub(entry, 1, 13) .. string.sub(entry, colon + 1)
        end
        local id = token .. i
        redis.call('ZADD', keys[3], now + ack_ms, id)
        redis.call('HSET', keys[4], id, n .. ':' .. entry)
        redis.call('LPOP', keys[2])
        if n > 1 then count(counters, 'redelivered_count', 1) end
        if dropped > 0 then count(counters, 'expired_count', dropped) end
        return {now, -1, dead_info, i, id, n, entry}
      end
      dropped = dropped + 1
    end
    if dropped > 0 then count(counters, 'expired_count', dropped) end
    local first = redis.call('ZRANGE', keys[3], 0, 0, 'WITHSCORES')
    if first[2] then
      local due = tonumber(first[2])
      if next_due < 0 or due < next_due then next_due = due end
    end
  else
    local key = KEYS[k]
    k = k + 1
    local dropped = 0
    while true do
      local entry = redis.call('LPOP', key)
      if not entry then break end
      if deadline(entry) > now then
        if dropped > 0 then count_expired(key, stats, dropped) end
        return {now, -1, dead_info, i, '', 0, entry}
      end
      dropped = dropped + messages_in(entry)
    end
    if dropped > 0 then count_expired(key, stats, dropped) end
  end
end
return {now, next_due, dead_info}
"""

# KEYS: lease set, held hash. ARGV: lease id. Returns 1 when the lease was live.
_ACK = """
local gone = redis.call('ZREM', KEYS[1], ARGV[1])
redis.call('HDEL', KEYS[2], ARGV[1])
return gone
"""

# A nack: the lease ends after delay_ms (0: now), and so the message comes back; at
# once, to the dead letters, when that was its last delivery.
# KEYS: list, bell, lease, held, dead, channel statistics hash, global statistics
# hash. ARGV: lease id, delay_ms, max_deliveries, expiry_ms, channel stats TTL,
# global stats TTL, '1' to hand the message back uncounted (a worker stopping).
# Returns {1 when the lease was live, messages dead-lettered}.
_NACK = """
local now = now_ms()
if not redis.call('ZSCORE', KEYS[3], ARGV[1]) then return {0, 0} end
local delay = tonumber(ARGV[2])
local rec = redis.call('HGET', KEYS[4], ARGV[1])
local colon = string.find(rec, ':', 1, true)
local n = tonumber(string.sub(rec, 1, colon - 1))
if ARGV[7] == '1' then
  n = n - 1
  redis.call('HSET', KEYS[4], ARGV[1], n .. ':' .. string.sub(rec, colon + 1))
end
-- The last delivery failed: a dead letter now, not after the back-off.
if n >= tonumber(ARGV[3]) then delay = 0 end
redis.call('ZADD', KEYS[3], now + delay, ARGV[1])
local counters = {KEYS[6], KEYS[7], ARGV[5], ARGV[6], false}
local _, dead = reclaim({KEYS[1], KEYS[2], KEYS[3], KEYS[4], KEYS[5]}, now, tonumber(ARGV[3]),
                        tonumber(ARGV[4]), counters, 100)
return {1, dead}
"""

# Dead letters back to the tail of their data list, delivery counts reset.
# KEYS: dead, list, bell. ARGV: expiry_ms. Returns how many moved.
_REQUEUE = """
local now = now_ms()
local expiry_ms = tonumber(ARGV[1])
local letters = redis.call('LRANGE', KEYS[1], 0, -1)
for _, letter in ipairs(letters) do
  local colon = string.find(letter, ':', 14, true)
  local entry = string.sub(letter, colon + 1)
  redis.call('RPUSH', KEYS[2], string.format('%013d', now + expiry_ms) .. string.sub(entry, 14))
  redis.call('RPUSH', KEYS[3], '9999999999999B')
end
if #letters > 0 then
  redis.call('DEL', KEYS[1])
  redis.call('PEXPIRE', KEYS[2], list_ttl(KEYS[2], expiry_ms))
  redis.call('PEXPIRE', KEYS[3], expiry_ms + 1000)
end
return #letters
"""

LEASE = Script("lease", _RELIABLE_PRELUDE + _LEASE)
ACK = Script("ack", _ACK)
NACK = Script("nack", _RELIABLE_PRELUDE + _NACK)
REQUEUE = Script("requeue_dead", _REQUEUE)
