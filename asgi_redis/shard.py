"""One Redis server of a layer: its client, its health, its clock (L-22, L-62).

Every Redis call of the layer goes through `Shard.call`, which gives
connection errors the shard's address (L-62.1) and logs one WARNING when the
shard stops answering and one INFO when it answers again (L-62.4). Nothing is
retried here: a pop or a send that failed on the wire may have taken effect
(L-62.3). A shard also keeps its expired-message accounting (`expiry`) and,
for a fixed address, the run id its connections check on connecting
(`restarts`).
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Sequence
from typing import Any, TypeVar

import redis

from .errors import LayerUnavailable, describe_client, unavailable
from .expiry import ExpiredMessages
from .features import ShardFeatures, probe_features
from .restarts import watch_restarts
from .scripts import Script
from .wire import execute, execute_packed, execute_pipeline

__all__ = ["CONNECTION_ERRORS", "Shard", "ShardFeatures", "describe_client"]

logger = logging.getLogger("asgi_redis")

T = TypeVar("T")

CONNECTION_ERRORS = (redis.ConnectionError, redis.TimeoutError)


class Shard:
    """A Redis server with a fixed address."""

    _client: redis.Redis

    def __init__(self, index: int, client: redis.Redis | None) -> None:
        """`client` is None only for a subclass that overrides `client` (Sentinel)."""
        self.index = index
        if client is not None:
            self._client = client
        self._lock = threading.Lock()
        self._reachable = True
        # Failures seen so far: a call that succeeded but began before the latest
        # failure (a reply in flight when the server went away) proves nothing.
        self.failures = 0
        # Redis server clock minus local clock, in seconds, measured by the Lua pop
        # (`clock_checked` is when, on the monotonic clock). Entries popped without
        # Lua or buffered are checked against the server's clock through it.
        self.clock_offset = 0.0
        self.clock_checked = float("-inf")
        # What the server can do (`features`): asked once, on first use; None until then.
        self.known_features: ShardFeatures | None = None
        # Messages found expired on this shard: counted and logged (`expiry`).
        self.expired = ExpiredMessages(index)
        # Restarts of its server, noticed on connecting (`restarts`; fixed address only).
        self.restarts = watch_restarts(self, client) if client is not None else None

    def client(self) -> redis.Redis:
        return self._client

    def features(self) -> ShardFeatures:
        """The server's optional commands (`features`): one round trip, the first time."""
        features = self.known_features
        if features is None:
            features = self.known_features = self.call(probe_features)
        return features

    def call(self, operation: Callable[[redis.Redis], T]) -> T:
        client = self.client()
        began = self.failures
        try:
            result = operation(client)
        except CONNECTION_ERRORS as exc:
            raise self.failed(exc, describe_client(client))
        if not self._reachable:
            self.answered(describe_client(client), began)
        return result

    def script(self, script: Script, keys: Sequence[Any], args: Sequence[Any]) -> Any:
        return self.call(lambda client: script.run(client, keys, args))

    def note_clock(self, server_ms: int) -> None:
        self.clock_offset = server_ms / 1000 - time.time()
        self.clock_checked = time.monotonic()

    def command(self, *args: Any) -> Any:
        return self.call(lambda client: execute(client, *args))

    def command_packed(self, packed: bytes) -> Any:
        """Run one command packed by `wire.pack_command` (kept by a receive plan)."""
        return self.call(lambda client: execute_packed(client, packed))

    def pipeline(self, packed: Sequence[bytes], read_timeout: float | None = None) -> list[Any]:
        """Run packed commands in one round trip; error replies come back as values.

        A ``READONLY`` reply to the last command (this server became a replica)
        is raised instead, so the Sentinel shard can retry the whole call on the
        new master: a replica refuses every write of the pipeline alike.
        """

        def run(client: redis.Redis) -> list[Any]:
            replies = execute_pipeline(client, packed, read_timeout)
            if isinstance(replies[-1], redis.ReadOnlyError):
                raise replies[-1]
            return replies

        return self.call(run)

    # -- health (L-62.4) ---------------------------------------------------------

    def lost(self, client: redis.Redis, exc: Exception) -> Exception:
        """`failed` for an error met on `client` outside `call` (a wait on several shards)."""
        return self.failed(exc, describe_client(client))

    def failed(self, exc: Exception, address: str) -> Exception:
        """Log the first failure and return `exc` re-made to name the shard's address,
        as its own redis-py type and `LayerUnavailable` (`errors.unavailable`)."""
        with self._lock:
            was_reachable, self._reachable = self._reachable, False
            self.failures += 1
        if was_reachable:
            logger.warning("Redis shard %d at %s is unreachable: %s", self.index, address, exc)
        if address in str(exc) and isinstance(exc, LayerUnavailable):
            return exc
        text = str(exc) if address in str(exc) else f"Redis shard {self.index} at {address}: {exc}"
        return unavailable(exc, text)

    def answered(self, address: str, began: int | None = None) -> None:
        """Note a success; `began` is `failures` when the call started, if known.

        A success that began before the latest failure was in flight when the
        server went away: it does not mean the shard answers again.
        """
        with self._lock:
            if began is not None and began != self.failures:
                return
            was_reachable, self._reachable = self._reachable, True
        if not was_reachable:
            logger.info("Redis shard %d at %s answers again", self.index, address)
