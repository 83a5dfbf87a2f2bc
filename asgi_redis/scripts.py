"""The Lua scripts: every multi-step operation runs atomically on one shard (L-27..L-35).

Each script is a shared prelude plus a body. Scripts are loaded into a server
once and then run by SHA (L-44); `Script.run` reloads a script that a
restarted server forgot (``NOSCRIPT``) and retries once, which is safe
because a ``NOSCRIPT`` reply means nothing ran (L-62.2).

Keys: a channel's list is ``prefix{channel}`` and its counters the hash
``stats_prefix{channel}`` (fields ``messages_count``, ``channel_full_count``, ``expired_count``),
so a script working on one channel touches one Redis Cluster hash slot, apart
from the shard-global counters (hash ``stats_prefix#global#``) and
`GROUP_SEND`, which fans out to many lists and is only used on a single,
non-cluster shard.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from typing import Any

import redis

from .errors import UnsupportedRedis, refusal
from .wire import execute, pack_command

__all__ = [
    "Script",
    "UnsupportedRedis",
    "SEND",
    "SEND_MANY",
    "PUSH",
    "POP",
    "GROUP_ADD",
    "GROUP_MEMBERS",
    "GROUP_SEND",
    "CHANNEL_STATS",
    "PUT_BACK",
    "pack_load",
]


def unsupported(exc: redis.ResponseError, client: redis.Redis | None = None) -> Exception:
    """`UnsupportedRedis` for ``unknown command`` (L-28), `LayerOutOfMemory` for ``OOM``,
    else `exc` itself (`errors.refusal`)."""
    return refusal(exc, client)


# A normal channel's list outlives its newest entry by this much (issue 15 item 6), and
# a sender's refresh flag, which also resets that TTL (`_SEND_PRELUDE`), must come
# round well within it: `sending` sends it at most every `statistics_refresh_interval`
# (60 s; tests/asgi_redis/test_send_scripts.py holds it under a third of the grace).
EXPIRED_GRACE_MS = 900_000
_GRACE = f"local EXPIRED_GRACE_MS = {EXPIRED_GRACE_MS}\n"

_PRELUDE = (
    """
local function now_ms()
  local t = redis.call('TIME')
  return tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
end

local function deadline(entry)
  return tonumber(string.sub(entry, 1, 13))
end

-- Messages in one entry: 1, or one per member of a bundle (`entries`).
local function messages_in(entry)
  if string.byte(entry, 14) ~= 78 then return 1 end
  local bar = string.find(entry, '|', 15, true)
  local _, commas = string.gsub(string.sub(entry, 15, bar - 1), ',', '')
  return commas + 1
end

-- Drop expired entries from the head (A-27) and return how many messages went.
-- Only called when the list looks full, so the common send never copies the
-- head entry into Lua.
local function trim_expired(key, now)
  local trimmed = 0
  while true do
    local head = redis.call('LINDEX', key, 0)
    if (not head) or deadline(head) > now then return trimmed end
    redis.call('LPOP', key)
    trimmed = trimmed + messages_in(head)
  end
end

-- Count `amount` under `stat` in a channel's statistics hash and the shard's
-- global one (L-39..L-41). counters = {channel hash, global hash, channel TTL,
-- global TTL, refresh}. A hash gets its TTL when it is new; after that only
-- when the caller asks (`refresh`), which a sender does at most once a minute
-- per channel: two EXPIREs per message were a quarter of a send's commands.
local function count(counters, stat, amount)
  if redis.call('HINCRBY', counters[1], stat, amount) == amount or counters[5] then
    redis.call('EXPIRE', counters[1], counters[3])
  end
  if redis.call('HINCRBY', counters[2], stat, amount) == amount or counters[5] then
    redis.call('EXPIRE', counters[2], counters[4])
  end
end

-- The counters of storage name `name` for the group scripts, which build keys
-- from the prefix and always refresh TTLs. stats = {stats_prefix, channel TTL, global TTL}.
local function counters_of(stats, name)
  return {stats[1] .. '{' .. name .. '}', stats[1] .. '#global#', stats[2], stats[3], true}
end

-- Append one entry unless the list holds `capacity` live entries (A-37).
-- RPUSH first: its reply is the new length, so the usual, non-full send needs
-- no LLEN; an entry pushed past capacity is taken back at once (atomic script).
-- Also returns how many expired messages it trimmed to make room.
local function push(key, capacity, entry, list_ttl_ms, now)
  local trimmed = 0
  if redis.call('RPUSH', key, entry) > capacity then
    redis.call('RPOP', key)
    trimmed = trim_expired(key, now)
    if redis.call('LLEN', key) >= capacity then return 0, trimmed end
    redis.call('RPUSH', key, entry)
  end
  redis.call('PEXPIRE', key, list_ttl_ms)
  return 1, trimmed
end

-- How long a normal channel's list outlives its newest entry (issue 15 item 6; the
-- send scripts' prelude says more). `?` and `!` lists keep expiry + 1 s (L-23).
"""
    + _GRACE
    + """
local function list_ttl(key, expiry_ms)
  if string.find(key, '!', 1, true) or string.find(key, '?', 1, true) then
    return expiry_ms + 1000
  end
  return expiry_ms + 1000 + EXPIRED_GRACE_MS
end

-- Store a ready entry and count the outcome (L-28, A-40) and what expired (issue 15).
local function store(key, capacity, counters, copies, entry, expiry_ms, now)
  local stored, trimmed = push(key, capacity, entry, list_ttl(key, expiry_ms), now)
  if trimmed > 0 then count(counters, 'expired_count', trimmed) end
  if stored == 1 then
    count(counters, 'messages_count', copies)
    return 1
  end
  count(counters, 'channel_full_count', copies)
  return 0
end

local function deliver(key, capacity, counters, copies, header, payload, expiry_ms, now)
  local entry = string.format('%013d', now + expiry_ms) .. header .. payload
  return store(key, capacity, counters, copies, entry, expiry_ms, now)
end

-- Count `amount` expired messages of list `key` (whose storage name is between
-- its last braces) under ``expired_count``; stats = {stats_prefix, channel TTL,
-- global TTL}. pcall: a receive must not fail because Redis refuses a write
-- (out of memory), it is what frees memory.
local function count_expired(key, stats, amount)
  local name = string.match(key, '{([^{}]*)}$')
  local hashes = {stats[1] .. '{' .. name .. '}', stats[1] .. '#global#'}
  local ttls = {stats[2], stats[3]}
  for i = 1, 2 do
    redis.pcall('HINCRBY', hashes[i], 'expired_count', amount)
    redis.pcall('EXPIRE', hashes[i], ttls[i])
  end
end

local function live_members(group_key, group_expiry_ms, now)
  redis.call('ZREMRANGEBYSCORE', group_key, '-inf', '(' .. (now - group_expiry_ms))
  return redis.call('ZRANGE', group_key, 0, -1)
end
"""
)

# The send scripts' own prelude (issue 20). They run for every message, and in Redis's
# Lua every ``local function`` of a script is a new closure per call (about 1k
# instructions each under callgrind), a table a few hundred, a number handed to
# ``redis.call`` is formatted with ``%.17g`` (about 2.3k), a pattern find about 6k.
# So their common path (stored, nothing expired) is inline in the bodies and passes
# strings to ``redis.call``; the rare paths are the two functions here, and the
# shared prelude (about twenty closures) is not included.
_SEND_PRELUDE = (
    """
-- The RPUSH passed `capacity` (A-37): take the entry back, drop expired entries from
-- the head (A-27) and push it again if that made room. Returns (1 stored / 0 full,
-- messages trimmed). Only here does a send copy the head entry into Lua.
local function make_room(key, capacity, entry, now)
  redis.call('RPOP', key)
  local trimmed = 0
  while true do
    local head = redis.call('LINDEX', key, 0)
    if (not head) or tonumber(string.sub(head, 1, 13)) > now then break end
    redis.call('LPOP', key)
    if string.byte(head, 14) == 78 then
      -- a bundle (`entries`): one message per name before its '|'
      local bar = string.find(head, '|', 15, true)
      local _, commas = string.gsub(string.sub(head, 15, bar - 1), ',', '')
      trimmed = trimmed + commas + 1
    else
      trimmed = trimmed + 1
    end
  end
  if redis.call('LLEN', key) >= capacity then return 0, trimmed end
  redis.call('RPUSH', key, entry)
  return 1, trimmed
end

-- Count outcomes in one statistics hash (L-39..L-41, A-40, issue 15): one HINCRBY per
-- stat that moved. The hash gets its TTL when it is new (a field came into being) or
-- when a sender asked (`refresh`: '1' first in its flags, at most once a minute per
-- channel and sender): two EXPIREs per message were a quarter of a send's commands.
local function counted(hash, ttl, messages, full, expired, refresh)
  if messages > 0 and redis.call('HINCRBY', hash, 'messages_count',
                                 messages == 1 and '1' or messages) == messages then
    refresh = true
  end
  if full > 0 and redis.call('HINCRBY', hash, 'channel_full_count', full) == full then
    refresh = true
  end
  if expired > 0 and redis.call('HINCRBY', hash, 'expired_count', expired) == expired then
    refresh = true
  end
  if refresh then redis.call('EXPIRE', hash, ttl) end
end

-- How long a normal channel's list outlives its newest entry (issue 15 item 6): its
-- entries expire after `expiry` as ever, but the list stays so that the next receive
-- (a worker back after an outage) drops and counts them, instead of their vanishing
-- uncounted with the list. `?` and `!` lists (one reader, who may be gone for good)
-- keep the 1.x TTL of expiry + 1 s, reset by every send (L-23); so do doorbells.
-- A normal list's TTL is reset when a send creates the list (RPUSH replies 1), makes
-- room in it, or carries its sender's refresh flag, which a sender sets on its first
-- send to a channel and then once per `statistics_refresh_interval` (60 s, well under
-- the grace): so a busy list outlives its newest entry by at least the grace less that
-- interval (a sender's entries since its last flag are that much younger than it),
-- for one PEXPIRE per list and minute instead of one per message. Whatever else
-- creates a normal list or resets its TTL gives it the same TTL: group sends (`store`),
-- PUT_BACK, the at-least-once reclaim and requeue (`reliable_scripts`).
"""
    + _GRACE
)

# A send's clock, inline in SEND and SEND_MANY: ``now`` (nil when the client gave the
# deadline) and ``reported`` (the server's time for the client, or -1); with an empty
# deadline text the script reads TIME and makes the deadline itself.
_SEND_CLOCK = """
local now, reported = nil, -1
if deadline_text == '' then
  local t = redis.call('TIME')
  now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
  reported = now
  deadline_text = string.format('%013d', now + expiry_ms)
end
"""

# One send (A-31, L-27, L-28). KEYS: list key, channel statistics hash, global
# statistics hash. ARGV: payload, expiry_ms, deadline (13 digits on the shard's clock,
# computed by the client from its measured clock offset; '' makes the script read
# TIME), capacity, header, channel stats TTL, global stats TTL, flags ('1' first to
# reset both TTLs; 'b' last to ring the doorbell of an at-least-once channel, `reliable`).
# Returns {1 stored / 0 full, server time in ms or -1 when the client's deadline was used}.
_SEND = (
    """
local key, expiry_ms, deadline_text, flags = KEYS[1], ARGV[2], ARGV[3], ARGV[8]
"""
    + _SEND_CLOCK
    + """local entry = deadline_text .. ARGV[5] .. ARGV[1]
local capacity = tonumber(ARGV[4])
local stored, trimmed = 1, 0
local length = redis.call('RPUSH', key, entry)
if length > capacity then
  stored, trimmed = make_room(key, capacity, entry, now or tonumber(deadline_text) - expiry_ms)
  length = stored  -- a list made room for gets its TTL reset
end
local refresh = flags ~= '' and string.byte(flags, 1) == 49
if string.find(key, '!', 1, true) or string.find(key, '?', 1, true) then
  if stored == 1 then redis.call('PEXPIRE', key, string.format('%d', expiry_ms + 1000)) end
elseif length == 1 or refresh then
  redis.call('PEXPIRE', key, string.format('%d', expiry_ms + 1000 + EXPIRED_GRACE_MS))
end
if stored == 1 and flags ~= '' and string.byte(flags, -1) == 98 then
  local bell = key .. ':bell'
  redis.call('RPUSH', bell, '9999999999999B')
  redis.call('PEXPIRE', bell, string.format('%d', expiry_ms + 1000))
end
counted(KEYS[2], ARGV[6], stored, 1 - stored, trimmed, refresh)
counted(KEYS[3], ARGV[7], stored, 1 - stored, trimmed, refresh)
return {stored, reported}
"""
)

# Several sends on one shard (`RedisChannelLayer.send_many`), each as in SEND.
# KEYS: global statistics hash, then per message: list key, channel statistics
# hash. ARGV: expiry_ms, deadline (as in SEND), channel stats TTL, global stats
# TTL, then per message: payload, capacity, header, flags (as in SEND).
# The statistics are counted once per hash and stat for the whole batch (issue 20),
# so a batch of n messages to one channel costs 2 HINCRBYs instead of 2n; the counts
# stay exact, they land in the same atomic script. Likewise a run of consecutive
# messages to one list resets its TTL once, after the run: set again within the same
# script, the same TTL is the same. A batch's first channel hash is counted in locals,
# others in a table made when a second one shows up.
# Returns {server time in ms or -1, then 1 stored / 0 full per message}.
_SEND_MANY = (
    """
local expiry_ms, deadline_text = ARGV[1], ARGV[2]
"""
    + _SEND_CLOCK
    + """local results, n = {reported}, 1
local capacity_text, capacity, last_key, single_reader, expire, short_ttl, long_ttl
local first, fm, ff, fe, fr = KEYS[3], 0, 0, 0, false
local gm, gf, ge, gr = 0, 0, 0, false
local others
for i = 2, #KEYS, 2 do
  local base = 2 * i
  local key, flags = KEYS[i], ARGV[base + 4]
  local entry = deadline_text .. ARGV[base + 3] .. ARGV[base + 1]
  if ARGV[base + 2] ~= capacity_text then
    capacity_text = ARGV[base + 2]
    capacity = tonumber(capacity_text)
  end
  local stored, trimmed = 1, 0
  local length = redis.call('RPUSH', key, entry)
  if length > capacity then
    now = now or tonumber(deadline_text) - expiry_ms
    stored, trimmed = make_room(key, capacity, entry, now)
    length = stored  -- a list made room for gets its TTL reset
  end
  if key ~= last_key then
    if expire then redis.call('PEXPIRE', last_key, expire) end
    last_key, expire = key, nil
    single_reader = string.find(key, '!', 1, true) or string.find(key, '?', 1, true)
    if single_reader then
      short_ttl = short_ttl or string.format('%d', expiry_ms + 1000)
    else
      long_ttl = long_ttl or string.format('%d', expiry_ms + 1000 + EXPIRED_GRACE_MS)
    end
  end
  local refresh = flags ~= '' and string.byte(flags, 1) == 49
  if single_reader then
    if stored == 1 then expire = short_ttl end
  elseif length == 1 or refresh then
    expire = long_ttl
  end
  if stored == 1 then gm = gm + 1 else gf = gf + 1 end
  if flags ~= '' then
    gr = gr or refresh
    if stored == 1 and string.byte(flags, -1) == 98 then
      local bell = key .. ':bell'
      short_ttl = short_ttl or string.format('%d', expiry_ms + 1000)
      redis.call('RPUSH', bell, '9999999999999B')
      redis.call('PEXPIRE', bell, short_ttl)
    end
  end
  ge = ge + trimmed
  local hash = KEYS[i + 1]
  if hash == first then
    fm, ff, fe, fr = fm + stored, ff + 1 - stored, fe + trimmed, fr or refresh
  else
    others = others or {}
    local counts = others[hash]
    if not counts then
      counts = {0, 0, 0, false}
      others[hash] = counts
      others[#others + 1] = hash
    end
    counts[1], counts[2] = counts[1] + stored, counts[2] + 1 - stored
    counts[3], counts[4] = counts[3] + trimmed, counts[4] or refresh
  end
  n = n + 1
  results[n] = stored
end
if expire then redis.call('PEXPIRE', last_key, expire) end
if first then counted(first, ARGV[3], fm, ff, fe, fr) end
if others then
  for _, hash in ipairs(others) do
    local counts = others[hash]
    counted(hash, ARGV[3], counts[1], counts[2], counts[3], counts[4])
  end
end
counted(KEYS[1], ARGV[4], gm, gf, ge, gr)
return results
"""
)

# Group deliveries on one shard. KEYS: list keys. ARGV: payload, expiry_ms,
# stats_prefix, channel stats TTL, global stats TTL, then per key: capacity,
# storage name, copies, header.
# Returns 1 (stored) or 0 (full) per key.
_PUSH = """
local now = now_ms()
local stats = {ARGV[3], ARGV[4], ARGV[5]}
local results = {}
for i, key in ipairs(KEYS) do
  local base = 5 + (i - 1) * 4
  results[i] = deliver(key, tonumber(ARGV[base + 1]), counters_of(stats, ARGV[base + 2]),
                       tonumber(ARGV[base + 3]), ARGV[base + 4], ARGV[1], tonumber(ARGV[2]), now)
end
return results
"""

# KEYS: list keys in the order to try. ARGV: per key, how many entries to take
# (more than one only for a process-specific list, which has one reader), then
# stats_prefix, channel stats TTL, global stats TTL.
# Returns {now, expired, key index, entries...} for the first list with live
# entries, or {now, expired}. Expired entries are dropped on the way and
# counted; `expired` is {key index, messages, ...} for the receiver's log line.
_POP = """
local now = now_ms()
local stats = {ARGV[#KEYS + 1], ARGV[#KEYS + 2], ARGV[#KEYS + 3]}
local expired = {}
for i, key in ipairs(KEYS) do
  local want = tonumber(ARGV[i])
  local dropped, live = 0, nil
  while true do
    local popped = redis.call('LPOP', key, want)
    if not popped then break end
    live = {now, expired, i}
    for _, entry in ipairs(popped) do
      if deadline(entry) > now then
        live[#live + 1] = entry
      else
        dropped = dropped + messages_in(entry)
      end
    end
    if #live > 3 then break end
    live = nil
  end
  if dropped > 0 then
    count_expired(key, stats, dropped)
    expired[#expired + 1] = i
    expired[#expired + 1] = dropped
  end
  if live then return live end
end
return {now, expired}
"""

# KEYS: group key. ARGV: member, group_expiry_ms.
_GROUP_ADD = """
redis.call('ZADD', KEYS[1], now_ms(), ARGV[1])
redis.call('PEXPIRE', KEYS[1], tonumber(ARGV[2]))
return 1
"""

# KEYS: group key. ARGV: group_expiry_ms. Returns the live members.
_GROUP_MEMBERS = """
return live_members(KEYS[1], tonumber(ARGV[1]), now_ms())
"""

# Whole send_group on one shard: read live members, then one
# entry per normal or single-reader member and one bundle per process-specific
# list. KEYS: group key. ARGV: payload, expiry_ms, stats_prefix, channel stats
# TTL, global stats TTL, group_expiry_ms, key prefix, capacity, and '1' when the
# layer has at-least-once channels (issue 17).
# Returns {skipped storage name, skipped copies, ...}; with that '1',
# {that list, {normal members stored}}, whose doorbells the caller rings (`reliable`).
_GROUP_SEND = """
local now = now_ms()
local stats = {ARGV[3], ARGV[4], ARGV[5]}
local payload, expiry_ms = ARGV[1], tonumber(ARGV[2])
local prefix, capacity = ARGV[7], tonumber(ARGV[8])
-- Read first, prune last: the first write is then a push, which Redis refuses when
-- out of memory (a script that wrote already may write on), so nothing is stored.
local oldest = now - tonumber(ARGV[6])
local members = redis.call('ZRANGE', KEYS[1], oldest, '+inf', 'BYSCORE')
local report = ARGV[9] == '1'
local bundles, order, skipped, stored = {}, {}, {}, {}
for _, member in ipairs(members) do
  local bang = string.find(member, '!', 1, true)
  if bang then
    local storage = string.sub(member, 1, bang)
    if not bundles[storage] then
      bundles[storage] = {}
      order[#order + 1] = storage
    end
    table.insert(bundles[storage], member)
  elseif deliver(prefix .. '{' .. member .. '}', capacity, counters_of(stats, member), 1, 'M',
                 payload, expiry_ms, now) == 0 then
    skipped[#skipped + 1] = member
    skipped[#skipped + 1] = 1
  elseif report and not string.find(member, '?', 1, true) then
    stored[#stored + 1] = member
  end
end
for _, storage in ipairs(order) do
  local names = bundles[storage]
  local header = 'N' .. table.concat(names, ',') .. '|'
  if deliver(prefix .. '{' .. storage .. '}', capacity, counters_of(stats, storage), #names,
             header, payload, expiry_ms, now) == 0 then
    skipped[#skipped + 1] = storage
    skipped[#skipped + 1] = #names
  end
end
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', '(' .. oldest)
if report then return {skipped, stored} end
return skipped
"""

# KEYS: list key, channel statistics hash.
# Returns {messages_count, channel_full_count, pending, head deadline or -1, now,
# expired_count, dead_lettered_count, redelivered_count, too_large_count}.
_CHANNEL_STATS = """
local head = redis.call('LINDEX', KEYS[1], 0)
local head_deadline = -1
if head then head_deadline = deadline(head) end
local counts = redis.call('HMGET', KEYS[2], 'messages_count', 'channel_full_count',
                          'expired_count', 'dead_lettered_count', 'redelivered_count',
                          'too_large_count')
return {tonumber(counts[1] or 0), tonumber(counts[2] or 0),
        redis.call('LLEN', KEYS[1]), head_deadline, now_ms(), tonumber(counts[3] or 0),
        tonumber(counts[4] or 0), tonumber(counts[5] or 0), tonumber(counts[6] or 0)}
"""


class Script:
    """One Lua script, run by SHA (L-44)."""

    def __init__(self, name: str, body: str, prelude: str = _PRELUDE) -> None:
        self.name = name
        self.source = prelude + body
        self.sha = hashlib.sha1(self.source.encode("utf-8")).hexdigest()

    def packed(self, keys: Sequence[Any], args: Sequence[Any]) -> bytes:
        """The ``EVALSHA`` of this script packed for a pipeline (`wire.execute_pipeline`)."""
        return pack_command(("EVALSHA", self.sha, len(keys), *keys, *args))

    def run(self, client: redis.Redis, keys: Sequence[Any], args: Sequence[Any]) -> Any:
        try:
            try:
                return execute(client, "EVALSHA", self.sha, len(keys), *keys, *args)
            except redis.exceptions.NoScriptError:
                # A restarted or flushed server forgot the script; nothing ran (L-62.2).
                execute(client, "SCRIPT", "LOAD", self.source)
                return execute(client, "EVALSHA", self.sha, len(keys), *keys, *args)
        except redis.ResponseError as exc:
            error = refusal(exc, client)  # UnsupportedRedis, LayerOutOfMemory
            if error is exc:
                raise
            raise error from exc

    def __repr__(self) -> str:
        return f"Script({self.name!r}, sha={self.sha[:8]})"


def pack_load(script: Script) -> bytes:
    """``SCRIPT LOAD`` of `script`, packed: sent first on a connection that then runs it
    by SHA without waiting for replies (`socket_send`)."""
    return pack_command(("SCRIPT", "LOAD", script.source))


SEND = Script("send", _SEND, _SEND_PRELUDE)
SEND_MANY = Script("send_many", _SEND_MANY, _SEND_PRELUDE)
PUSH = Script("push", _PUSH)
POP = Script("pop", _POP)
GROUP_ADD = Script("group_add", _GROUP_ADD)
GROUP_MEMBERS = Script("group_members", _GROUP_MEMBERS)
GROUP_SEND = Script("group_send", _GROUP_SEND)
CHANNEL_STATS = Script("channel_stats", _CHANNEL_STATS)

# Puts popped entries back at the head of their list (a cancelled blocking pop,
# `shards_wait`). KEYS: list key. ARGV: expiry_ms, then the entries newest first, so
# LPUSH leaves them in their original order. A list the pop emptied was deleted by
# Redis and comes back without a TTL: a `?` or `!` list gets the one a send would have
# given its newest entry (deadline plus a second, L-23), a normal list the one a send
# creating it now would give it (its senders' later sends may leave its TTL alone,
# `_SEND_PRELUDE`).
PUT_BACK = Script(
    "put_back",
    """
redis.call('LPUSH', KEYS[1], unpack(ARGV, 2))
if redis.call('PTTL', KEYS[1]) == -1 then
  if string.find(KEYS[1], '!', 1, true) or string.find(KEYS[1], '?', 1, true) then
    local newest = 0
    for i = 2, #ARGV do newest = math.max(newest, deadline(ARGV[i])) end
    redis.call('PEXPIREAT', KEYS[1], newest + 1000)
  else
    redis.call('PEXPIRE', KEYS[1], list_ttl(KEYS[1], tonumber(ARGV[1])))
  end
end
""",
)
