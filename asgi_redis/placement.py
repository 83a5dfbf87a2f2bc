"""Where a name lives: the shard list, the keys, and the shard a send or a group goes to.

Pure: no Redis call and no I/O, so it is tested without a server
(`tests/asgi_redis/test_placement.py`). The shards are opaque objects here.

- ``?`` and ``!`` names and groups sit on their hashed shard (L-25, `sharding`).
- A normal channel goes to one shard per sending layer instance: its hash plus a
  random per-instance offset, so one sender's messages stay in order (A-25,
  L-43) while many senders spread a busy channel over every shard.
- Keys sit under Redis Cluster hash tags (L-23, L-42): ``prefix{channel}`` for a
  list, ``prefix:group:{group}`` for a group, the hash ``stats_prefix{channel}``
  for a channel's counters and ``stats_prefix#global#`` for the shard's.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Generic, TypeVar

from .sharding import consistent_hash

__all__ = ["GLOBAL_STATS_KEY", "Placement", "hashed"]

S = TypeVar("S")

# L-21: the name of the shard-global statistics hash (after `stats_prefix`).
GLOBAL_STATS_KEY = "#global#"


def hashed(name: str) -> bool:
    """Whether `name` always sits on its hashed shard: single-reader (``?``) or
    process-specific (``!``) names (L-25); normal names are placed per sender."""
    return "?" in name or name.endswith("!")


class Placement(Generic[S]):
    """The shard list of a layer and where each name and group sits on it."""

    __slots__ = (
        "shards",
        "ring_size",
        "prefix",
        "stats_prefix",
        "global_stats_key",
        "global_stats_hash",
        "_normal_offset",
    )

    def __init__(
        self,
        shards: Sequence[S],
        prefix: str,
        stats_prefix: str,
        normal_offset: int,
        global_stats_key: str = GLOBAL_STATS_KEY,
    ) -> None:
        if not shards:
            raise ValueError("a layer needs at least one shard")
        self.shards: list[S] = list(shards)
        self.ring_size = len(self.shards)
        self.prefix = prefix
        self.stats_prefix = stats_prefix
        self.global_stats_key = global_stats_key
        self._normal_offset = normal_offset
        self.global_stats_hash = self.stats_hash(global_stats_key)

    # -- shards (L-22, L-24, L-25) ----------------------------------------------------

    def index(self, name: str) -> int:
        """The hashed shard index of `name` (L-24; jump consistent hashing)."""
        return consistent_hash(name, self.ring_size)

    def home(self, name: str) -> S:
        """The hashed shard of `name`: where a ``?``/``!`` name or a group sits."""
        return self.shards[consistent_hash(name, self.ring_size)]

    def send_shard(self, storage: str) -> S:
        """The shard this layer instance sends `storage` (a non-local name) to."""
        ring_size = self.ring_size
        if ring_size == 1:
            return self.shards[0]
        if "?" in storage or storage.endswith("!"):
            return self.shards[consistent_hash(storage, ring_size)]
        # A normal channel goes to one shard per sending instance, so one
        # sender's messages stay in order (A-25, L-43); the random per-instance
        # offset spreads a busy channel's senders over the shards.
        index = consistent_hash(storage, ring_size) + self._normal_offset
        return self.shards[index % ring_size]

    def group_shard(self, group: str) -> S:
        return self.shards[consistent_hash(group, self.ring_size)]

    def statistics_shards(self, storage: str) -> list[S]:
        """Shards holding counters of `storage`: its own, or every one for a normal
        name (each sender may pick another, L-40)."""
        if hashed(storage):
            return [self.home(storage)]
        return self.shards

    # -- keys (L-23) ----------------------------------------------------------------

    def list_key(self, storage: str) -> str:
        return f"{self.prefix}{{{storage}}}"

    def group_key(self, group: str) -> str:
        return f"{self.prefix}:group:{{{group}}}"

    def stats_hash(self, name: str) -> str:
        """The hash of ``messages_count`` and ``channel_full_count`` for `name`."""
        if name == self.global_stats_key:
            return f"{self.stats_prefix}{name}"
        return f"{self.stats_prefix}{{{name}}}"
