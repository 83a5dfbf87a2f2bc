"""Where a layer's shards come from: a fixed list of servers, or Sentinel (L-19, L-22, L-51).

A layer gets its shards from a `ShardSource`: `StaticShards` builds one
`shard.Shard` per URL at once (building a client connects nothing, L-62.1);
`sentinel.SentinelShards` finds the services' masters through Sentinel, on
first use. The layer asks for the list when it first needs it and keeps it.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any, Protocol

import redis

from .shard import Shard

__all__ = ["ShardSource", "StaticShards"]

# Called once for every shard a source builds (the layer sets up its accounting).
Prepare = Callable[[Shard], None]


class ShardSource(Protocol):
    """Gives a layer its shards, in ring order (L-22, L-25)."""

    # What the layer shows as its ``hosts`` (URLs, or the Sentinels' addresses).
    hosts: list[Any]

    def prepare(self, prepare: Prepare) -> None:
        """Run `prepare` on every shard, now for those built already, else when built."""

    def shards(self) -> list[Shard]:
        """The shards (the same list on every call); may connect on the first."""

    def open_clients(self) -> list[redis.Redis]:
        """The clients built so far, for `close`."""


class StaticShards:
    """One shard per Redis URL (L-19), built at once (L-22); connects nothing (L-62.1)."""

    def __init__(self, urls: Sequence[str], client_kwargs: dict[str, Any]) -> None:
        self.hosts: list[Any] = list(urls)
        self._shards = [
            Shard(index, redis.Redis.from_url(url, **client_kwargs))
            for index, url in enumerate(self.hosts)
        ]

    def prepare(self, prepare: Prepare) -> None:
        for shard in self._shards:
            prepare(shard)

    def shards(self) -> list[Shard]:
        return self._shards

    def open_clients(self) -> list[redis.Redis]:
        return [shard.client() for shard in self._shards]
