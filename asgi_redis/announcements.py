"""The channels workers route, announced in Redis (issue 14; see
`channels.layers.announcements` for the extension).

One hash per layer prefix on the first shard, ``<prefix>:announce``: field = the
announcer, value = ``<deadline ms>|<channel>,<channel>...``, the deadline on the
Redis server's clock (no clock skew between machines). Reading drops expired
fields; the hash itself expires when nobody refreshed it for the longest TTL. Two
small scripts, run every few seconds, never on the message path; sent with EVAL
(not loaded by SHA), so they leave the layer's script cache and EVALSHA counts alone.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

from .scripts import Script
from .wire import execute

__all__ = ["RedisAnnouncements"]

# KEYS: the hash. ARGV: announcer, ttl ms, comma-joined channels ("" withdraws).
ANNOUNCE = Script(
    "announce",
    """
if ARGV[3] == '' or tonumber(ARGV[2]) <= 0 then
  redis.call('HDEL', KEYS[1], ARGV[1])
  return 0
end
redis.call('HSET', KEYS[1], ARGV[1], (now_ms() + tonumber(ARGV[2])) .. '|' .. ARGV[3])
local ttl = redis.call('PTTL', KEYS[1])
if ttl < tonumber(ARGV[2]) then redis.call('PEXPIRE', KEYS[1], ARGV[2]) end
return 1
""",
)

# KEYS: the hash. Returns the channel lists of the live announcements.
ANNOUNCED = Script(
    "announced",
    """
local now = now_ms()
local fields = redis.call('HGETALL', KEYS[1])
local live = {}
for i = 1, #fields, 2 do
  local value = fields[i + 1]
  local bar = string.find(value, '|', 1, true)
  if bar and tonumber(string.sub(value, 1, bar - 1)) > now then
    live[#live + 1] = string.sub(value, bar + 1)
  else
    redis.call('HDEL', KEYS[1], fields[i])
  end
end
return live
""",
)


class RedisAnnouncements:
    """``announce_channels`` / ``announced_channels`` on the layer's first shard."""

    prefix: str
    if TYPE_CHECKING:

        @property
        def _shards(self) -> list[Any]: ...

    def _announce_key(self) -> str:
        return f"{self.prefix}:announce"

    def _eval(self, script: Script, *args: Any) -> Any:
        key = self._announce_key()
        return self._shards[0].call(
            lambda client: execute(client, "EVAL", script.source, 1, key, *args)
        )

    def announce_channels(self, announcer: str, channels: Iterable[str], ttl: float) -> None:
        names = ",".join(sorted(set(channels)))
        ttl_ms = int(ttl * 1000) if names else 0
        self._eval(ANNOUNCE, announcer, ttl_ms, names)

    def announced_channels(self) -> frozenset[str] | None:
        lists = self._eval(ANNOUNCED)
        if not lists:
            return None
        names: set[str] = set()
        for joined in lists:
            text = joined.decode("utf-8") if isinstance(joined, bytes) else joined
            names.update(name for name in text.split(",") if name)
        return frozenset(names)
