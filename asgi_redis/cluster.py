"""`RedisClusterChannelLayer`: the Redis layer on a Redis Cluster (issue 19 item 1).

Built by composition like `RedisSentinelChannelLayer`: the same facade
(`core.RedisChannelLayer`), the same senders, receivers, scripts and
pipelines, with a different notion of a shard.

- **A shard is a hash slot** (`SlotShard`), made on first use. Its client is
  whichever master serves the slot now, looked up in redis-py's cluster slot
  map (`redis.cluster.RedisCluster`, built on first use: construction connects
  nothing, L-62.1). Every key carries a hash tag (`placement`, `slots`), so
  each Lua script, each pipeline and each multi-key pop the layer sends goes
  to one slot: a ``P!`` list and its counters sit in one slot, so daphne's
  receive stays one call.
- **Placement** (`slots.ClusterPlacement`): every name on its slot, normal
  names too; the cluster spreads the slots over its masters.
- **Blocking receive over many slots**: ``BLMPOP`` takes keys of one slot
  only, so a receive groups its names by slot (one visit per slot) and waits
  on all of them at once with one connection per slot, exactly as
  `shards_wait` waits on several shards (a message in any slot is seen at
  once; the pops left waiting are cancelled with ``CLIENT UNBLOCK`` and what
  they took is put back). A worker on channels in k slots holds k blocked
  connections; one per node is impossible with ``BLMPOP``'s single-slot rule,
  and polling each node would add latency.
  The non-blocking pass before that wait asks each master which of its
  slots hold entries (one pipelined ``EXISTS`` per slot) and pops only
  those, master by master: two round trips under load, not one per slot.
- **Group sends and `send_many`** (`ClusterGroups`, `ClusterSender`): one
  ``PUSH`` / ``SEND_MANY`` script per slot (a script touches one slot), and
  the scripts of all slots of one master sent in one pipelined round trip;
  members behind one ``P!`` still share one bundle (A-93); a master that could
  not be connected to is followed to its successor (`cluster_parts.per_node`).
- **daphne's socket paths** (`cluster_sockets`): `socket_receive` pops a
  ``P!`` prefix on its slot's master, `socket_sender` keeps one connection
  per slot sent to; a redirection or a lost connection drops the socket with
  the layer's unavailable error, and daphne opens a new one (in a thread) on
  the slot's master then.
- **Redirections and failover** (`SlotShard.call`): ``MOVED`` refreshes the
  slot map and retries at once; ``ASK`` (the slot migrating, the keys moved
  already) sends the script, pop or pipeline to the importing node at once,
  each command after ``ASKING`` (all of a script's or pipeline's keys are in
  the one slot, so they are all there); ``TRYAGAIN`` and ``CLUSTERDOWN`` (a
  migration half done, or the cluster electing a new master) and a
  connection that could not be made are retried with backoff for up to
  `cluster_retry_timeout` seconds, after refreshing the slot map. All of
  these prove nothing ran, so the retry cannot repeat a pop or a send
  (L-62.3). A connection that breaks mid-command raises, as on every Redis
  layer. Waits on several slots that end in a redirection start again (a
  blocking pop is not sent with ``ASKING``: it waits on the owner again).
- **What a failover can lose**: Redis replicates asynchronously. A message
  accepted by a master in the last moments before it dies may not have
  reached its replica, and is lost when that replica is promoted. ``WAIT``
  would narrow the window at the cost of a round trip per send and still not
  close it (a replica can acknowledge and then fail); the layer does not use
  it, so delivery stays at-most-once (A-24), as on a single Redis. A replica
  promoted before its first full sync is empty: the groups of its slots are lost
  and later group sends find no members (docs/layers.rst).
- **At-least-once channels** (issue 17, `cluster_reliable`): `reliable`'s
  leases, one slot per channel; a lease survives a failover as far as it was
  replicated.
- **Statistics**: the shard-global counters are kept per slot
  (`slots.global_key`) and `global_statistics` sums them over the masters.
"""

from __future__ import annotations

import functools
import socket
import threading
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any, TypeVar
from urllib.parse import urlparse

import redis
from redis.cluster import RedisCluster
from redis.exceptions import (
    AskError,
    ClusterDownError,
    MovedError,
    SlotNotCoveredError,
)

from channels.layers.base import layer_random

from . import cluster_sockets, scripts
from .cluster_parts import (
    ClusterGroups,
    ClusterReceiver,
    ClusterSender,
    RetryWindow,
    is_redirect,
    nothing_ran,
)
from .cluster_reliable import ClusterReliable
from .cluster_topology import ClusterTopology
from .core import RedisChannelLayer
from .errors import ShardConnectionError, refusal
from .flushing import glob_escape
from .groups import Groups
from .options import client_kwargs, redis_urls
from .placement import GLOBAL_STATS_KEY, Placement
from .receiving import Receiver
from .scripts import Script
from .sending import Sender
from .shard import CONNECTION_ERRORS, Shard, ShardFeatures, describe_client, logger
from .slots import ClusterExpiredMessages, ClusterPlacement, cluster_script, global_key, name_slot
from .socket_receive import SocketReceive
from .socket_send import SocketSender
from .stats import ALL_GLOBAL_FIELDS, reported_figures
from .wire import execute, execute_packed, execute_pipeline, pack_command

__all__ = ["ClusterShards", "RedisClusterChannelLayer", "SlotShard"]

T = TypeVar("T")


class SlotShard(Shard):
    """Hash slot ``slot``: served by whichever master the slot map names now."""

    expired: ClusterExpiredMessages
    # A wait on several slots ends when this one's connection fails (`shards_wait`):
    # `ClusterReceiver.blocking_pop` waits again, on the slot's new master.
    failure_ends_wait = True

    @staticmethod
    def redirect_reply(exc: Exception) -> bool:
        """Whether error reply `exc` says nothing ran here (`cluster_parts.is_redirect`):
        `shards_wait` then cancels a pop that got it quietly, its connection kept."""
        return is_redirect(exc)

    def __init__(self, slot: int, topology: ClusterTopology) -> None:
        super().__init__(slot, client=None)
        self.slot = slot
        self._topology = self.topology = topology
        self.expired = ClusterExpiredMessages(slot)
        # The node the slot's last failure met, until the slot answers again (L-62.4).
        self._failed_at: str | None = None

    def client(self) -> redis.Redis:
        try:
            return self._topology.client(self.slot)
        except SlotNotCoveredError as exc:
            self._topology.refresh()
            raise ClusterDownError(str(exc)) from exc

    def features(self) -> ShardFeatures:
        """Asked once per cluster (its nodes run one version), not once per slot."""
        features = self.known_features
        if features is None:
            features = self._topology.features
            if features is None:
                features = self._topology.features = super().features()
            self.known_features = features
        return features

    def global_key(self) -> str:
        return global_key(self.expired.stats_args[0], self.slot)

    def call(
        self,
        operation: Callable[[redis.Redis], T],
        window: RetryWindow | None = None,
        asked: Callable[[redis.Redis], T] | None = None,
    ) -> T:
        """Run `operation` on the slot's master, following redirections and failovers.

        The retries end `cluster_retry_timeout` seconds after the first one, or at the
        end of `window` when given: the slots of one group send or `send_many` share one
        window, so a master gone for good costs them one wait, not one wait per slot.
        ``ASK`` (the slot migrating, the keys moved already) runs `asked`, the operation
        preceded by ``ASKING``, on the importing node: at once the first time. Without
        `asked` the owner is asked again until the move ends.
        """
        if window is None:
            window = RetryWindow(self._topology.retry_timeout)
        delay = 0.005
        moved = asked_once = False
        ask_target: redis.Redis | None = None
        while True:
            client = None
            began = self.failures
            try:
                if ask_target is not None and asked is not None:
                    client, ask_target = ask_target, None
                    result = asked(client)
                else:
                    client = self.client()
                    result = operation(client)
            except CONNECTION_ERRORS as exc:
                self._topology.refresh()
                address = describe_client(client) if client is not None else f"slot {self.slot}"
                if not nothing_ran(exc):
                    raise self.failed(exc, address) from None
                error: Exception = exc
            except redis.ResponseError as exc:
                if not is_redirect(exc):
                    raise
                if isinstance(exc, MovedError):
                    self._topology.moved(exc)
                elif isinstance(exc, AskError) and asked is not None:
                    ask_target = self._topology.node_client(exc.host, exc.port)
                else:
                    self._topology.refresh()
                window.start()
                if isinstance(exc, MovedError) and not moved:
                    moved = True
                    continue  # the slot map knows the new owner now: at once
                if ask_target is not None and not asked_once:
                    asked_once = True
                    continue  # the importing node, at once
                error = exc
            else:
                if not self._reachable and client is not None:
                    self.answered(describe_client(client), began)
                return result
            window.start()
            if window.over():
                if isinstance(error, CONNECTION_ERRORS):
                    address = describe_client(client) if client is not None else "the cluster"
                    raise self.failed(error, address) from None
                raise self.failed(
                    ShardConnectionError(
                        f"Redis Cluster slot {self.slot}: still redirected after "
                        f"{self._topology.retry_timeout} s: {error}"
                    ),
                    f"slot {self.slot}",
                ) from None
            time.sleep(delay)  # a migration or an election in progress: back off
            delay = min(delay * 2, 0.1)

    def script(
        self,
        script: Script,
        keys: Sequence[Any],
        args: Sequence[Any],
        window: RetryWindow | None = None,
    ) -> Any:
        """Run `script`, with this slot's global counters in place of the shard-wide ones
        (`window`: as for `call`)."""
        variant = cluster_script(script)
        if variant is not None:
            script, args = variant, (*args, self.global_key())
        elif script is scripts.SEND:
            keys = (keys[0], keys[1], self.global_key())
        elif script is scripts.SEND_MANY:
            keys = (self.global_key(), *keys[1:])
        return self.call(
            lambda client: script.run(client, keys, args),
            window,
            lambda client: _asked_script(client, script, keys, args),
        )

    def command_packed(self, packed: bytes) -> Any:
        """As `Shard.command_packed`, following ``ASK`` (`call`)."""

        def asked(client: redis.Redis) -> Any:
            (reply,) = _asking(client, [packed])
            if isinstance(reply, redis.ResponseError):
                raise reply
            return reply

        return self.call(lambda client: execute_packed(client, packed), asked=asked)

    def pipeline(self, packed: Sequence[bytes], read_timeout: float | None = None) -> list[Any]:
        """As `Shard.pipeline`; a redirected command redirects the whole pipeline (every
        keyed command is about this slot, so none of them ran), which is sent again."""

        def checked(replies: list[Any]) -> list[Any]:
            for reply in replies:  # a keyless SCRIPT LOAD may come first
                if is_redirect(reply):
                    raise reply
            return replies

        return self.call(
            lambda client: checked(execute_pipeline(client, packed, read_timeout)),
            asked=lambda client: checked(_asking(client, packed, read_timeout)),
        )

    def lost(self, client: redis.Redis, exc: Exception) -> Exception:
        self._topology.refresh()
        return super().lost(client, exc)

    def failed(self, exc: Exception, address: str) -> Exception:
        """As `Shard.failed`, logging once per node (many slots share it), not per slot."""
        self._failed_at = address
        if not self._topology.note_down(address):
            with self._lock:
                self._reachable = False  # so `Shard.failed` does not log again
        return super().failed(exc, address)

    def answered(self, address: str, began: int | None = None) -> None:
        """As `Shard.answered`, once per node; a slot answering from another node than
        the one that failed (its replica, promoted) logs that node's replacement once,
        the INFO that ends the failed node's WARNING (L-62.4, issue 19)."""
        failed_at, self._failed_at = self._failed_at, None
        if self._topology.note_up(address):
            super().answered(address, began)
            return
        # Its replica promoted: the failed node's addresses answer no more.
        if failed_at not in (None, address) and self._topology.note_up(failed_at):
            logger.info(
                "Redis Cluster node %s is replaced: its slots answer at %s", failed_at, address
            )
        with self._lock:
            if began is None or began == self.failures:
                self._reachable = True

    @property
    def reachable(self) -> bool:
        """False from a failure until the slot's master answers again."""
        return self._reachable

    def redirected(self, exc: Exception) -> None:
        """A socket of this slot was redirected (`cluster_sockets`): no round trip here."""
        self._topology.redirected(exc)

    def lost_slot(self, exc: Exception) -> None:
        """A pop on this slot was redirected outside `call` (`exc`): update the slot map."""
        if isinstance(exc, MovedError):
            self._topology.moved(exc)
        else:
            self._topology.refresh()


_ASKING = pack_command(("ASKING",))


def _asking(
    client: redis.Redis, packed: Sequence[bytes], read_timeout: float | None = None
) -> list[Any]:
    """`packed` on the node importing a migrating slot (an ``ASK`` target), each command
    after an ``ASKING`` (it holds for the next command only), in one round trip; error
    replies come back as values, as from `wire.execute_pipeline`."""
    interleaved = [part for command in packed for part in (_ASKING, command)]
    return execute_pipeline(client, interleaved, read_timeout)[1::2]


def _asked_script(
    client: redis.Redis, script: Script, keys: Sequence[Any], args: Sequence[Any]
) -> Any:
    """`Script.run` on an ``ASK`` target (`_asking`)."""
    packed = script.packed(keys, args)
    (reply,) = _asking(client, [packed])
    if isinstance(reply, redis.exceptions.NoScriptError):  # nothing ran (L-62.2)
        execute(client, "SCRIPT", "LOAD", script.source)
        (reply,) = _asking(client, [packed])
    if isinstance(reply, redis.ResponseError):
        raise refusal(reply, client)
    return reply


class ClusterShards:
    """The shards of a cluster layer: one `SlotShard` per slot in use, made on demand."""

    def __init__(
        self, startup_nodes: list[tuple[str, int]], kwargs: dict[str, Any], retry_timeout: float
    ) -> None:
        self.hosts: list[Any] = startup_nodes
        self.topology = ClusterTopology(startup_nodes, kwargs, retry_timeout)
        self._lock = threading.Lock()
        self._slots: dict[int, SlotShard] = {}
        self._prepare: Callable[[Shard], None] | None = None

    def prepare(self, prepare: Callable[[Shard], None]) -> None:
        self._prepare = prepare
        for shard in list(self._slots.values()):
            prepare(shard)

    def shard_of(self, slot: int) -> SlotShard:
        shard = self._slots.get(slot)
        if shard is None:
            with self._lock:
                shard = self._slots.get(slot)
                if shard is None:
                    shard = SlotShard(slot, self.topology)
                    if self._prepare is not None:
                        self._prepare(shard)
                    self._slots[slot] = shard
        return shard

    def shards(self) -> list[Shard]:
        """The slot shards used so far."""
        return list(self._slots.values())

    def open_clients(self) -> list[redis.Redis]:
        return self.topology.open_clients()


def dead_node_detection() -> dict[int, int]:
    """TCP options finding a node whose host went away within about 5 s (issue 19 item 3).

    A master whose machine or network fails answers nothing and refuses nothing: a
    connection to it (a blocked pop, daphne's sockets, a send) would wait for the OS's
    retransmission limit, some 15 minutes, long after its replica took over. Keepalive
    probes after 2 s idle, every 1 s, and ``TCP_USER_TIMEOUT`` of 5 s (unacknowledged
    data or probes) end it with a connection error instead, which the layer and daphne
    answer by reconnecting to the slot's new master. Options the platform lacks are
    left out; ``connection_kwargs`` may set others.
    """
    wanted = {"TCP_KEEPIDLE": 2, "TCP_KEEPINTVL": 1, "TCP_KEEPCNT": 3, "TCP_USER_TIMEOUT": 5000}
    return {getattr(socket, name): value for name, value in wanted.items() if hasattr(socket, name)}


def cluster_addresses(hosts: Any) -> tuple[list[tuple[str, int]], dict[str, Any]]:
    """Startup nodes from `hosts` (URLs or ``(host, port)``, L-19) and the URLs' credentials."""
    addresses = []
    credentials: dict[str, Any] = {}
    for url in redis_urls(hosts):
        parsed = urlparse(url)
        if parsed.scheme not in ("redis", "rediss"):
            raise ValueError(f"Redis Cluster hosts must be redis:// or rediss:// URLs, not {url!r}")
        if parsed.path not in ("", "/", "/0"):
            raise ValueError(f"Redis Cluster has database 0 only, not {url!r}")
        addresses.append((parsed.hostname or "localhost", parsed.port or 6379))
        if parsed.username:
            credentials["username"] = parsed.username
        if parsed.password:
            credentials["password"] = parsed.password
        if parsed.scheme == "rediss":
            credentials["ssl"] = True
    return addresses, credentials


class RedisClusterChannelLayer(RedisChannelLayer):
    """`RedisChannelLayer` on a Redis Cluster; `hosts` are startup nodes (issue 19)."""

    # Seconds a call keeps retrying while slots migrate or a new master is elected.
    cluster_retry_timeout = 5.0

    def __init__(
        self,
        expiry: int = 60,
        hosts: Sequence[Any] | None = None,
        prefix: str = "asgi:",
        group_expiry: int = 86400,
        capacity: int = 100,
        channel_capacity: Mapping[Any, int] | None = None,
        symmetric_encryption_keys: Sequence[str | bytes] | None = None,
        stats_prefix: str = "asgi-meta:",
        connection_kwargs: Mapping[str, Any] | None = None,
        at_least_once: Sequence[Any] | None = None,
        ack_timeout: int | float = 30,
        max_deliveries: int = 5,
    ) -> None:
        startup_nodes, credentials = cluster_addresses(hosts)
        kwargs = {**credentials, **client_kwargs(connection_kwargs)}
        if kwargs.get("socket_keepalive", True):
            kwargs.setdefault("socket_keepalive", True)
            kwargs.setdefault("socket_keepalive_options", dead_node_detection())
        source = ClusterShards(startup_nodes, kwargs, self.cluster_retry_timeout)
        self._cluster_shards = source
        super().__init__(
            expiry=expiry,
            prefix=prefix,
            group_expiry=group_expiry,
            capacity=capacity,
            channel_capacity=channel_capacity,
            symmetric_encryption_keys=symmetric_encryption_keys,
            stats_prefix=stats_prefix,
            connection_kwargs=connection_kwargs,
            at_least_once=at_least_once,
            ack_timeout=ack_timeout,
            max_deliveries=max_deliveries,
            shards=source,
        )
        if self._reliable is not None:  # issue 17: leases placed by slot
            self._reliable = ClusterReliable(self, self.delivery)
        self.hosts = [f"redis://{host}:{port}/0" for host, port in startup_nodes]

    @property
    def cluster(self) -> RedisCluster:
        """redis-py's cluster client the layer routes by (connects on first use)."""
        return self._cluster_shards.topology.cluster()

    # -- collaborators ----------------------------------------------------------------

    @functools.cached_property
    def _placement(self) -> Placement[Shard]:
        return ClusterPlacement(
            self._cluster_shards.shard_of, self.prefix, self.stats_prefix, self.global_stats_key
        )

    @functools.cached_property
    def _sender(self) -> Sender:
        return ClusterSender(self, self._placement)

    @functools.cached_property
    def _receiver(self) -> Receiver:
        return ClusterReceiver(self, self._placement, self._buffer)

    @functools.cached_property
    def _groups(self) -> Groups:
        return ClusterGroups(self, self._placement, self._sender, self._skips)

    # -- shards: the masters (L-22) ---------------------------------------------------

    @property
    def ring_size(self) -> int:
        return len(self._cluster_shards.topology.masters())

    def connection(self, index: int | None) -> redis.Redis:
        """The client of master `index` (address order), or of a random master for `None`."""
        masters = self._cluster_shards.topology.masters()
        if index is None:
            return layer_random.choice(masters)
        if not isinstance(index, int) or not 0 <= index < len(masters):
            raise ValueError(
                f"There are {len(masters)} masters (0 to {len(masters) - 1}), not {index!r}"
            )
        return masters[index]

    def consistent_hash(self, value: str) -> int:
        """The index (as `connection` counts) of the master serving `value`'s slot now."""
        topology = self._cluster_shards.topology
        serving = topology.client(name_slot(value))
        return topology.masters().index(serving)

    def slot_shard(self, name: str) -> SlotShard:
        """The shard (slot) of a channel or group name."""
        return self._cluster_shards.shard_of(name_slot(name))

    # -- flush and statistics over the masters (L-42, L-39) ----------------------------

    def flush(self) -> None:
        self._buffer.clear()
        patterns = [glob_escape(self.prefix) + "*", glob_escape(self.stats_prefix) + "*"]
        for client in self._cluster_shards.topology.masters():
            try:
                _delete_matching_per_key(client, patterns)
            except CONNECTION_ERRORS as exc:
                raise ShardConnectionError(f"{describe_client(client)}: {exc}") from exc

    def global_statistics(self) -> dict[str, int]:
        for shard in self._cluster_shards.shards():
            shard.expired.write(shard)
        pattern = glob_escape(f"{self.stats_prefix}{GLOBAL_STATS_KEY}") + "{*}"
        totals = dict.fromkeys(ALL_GLOBAL_FIELDS, 0)
        for client in self._cluster_shards.topology.masters():
            keys = list(client.scan_iter(match=pattern, count=1000))
            if not keys:
                continue
            pipe = client.pipeline(transaction=False)
            for key in keys:
                pipe.hmget(key, *ALL_GLOBAL_FIELDS)
            for values in pipe.execute():
                for field, value in zip(ALL_GLOBAL_FIELDS, values, strict=True):
                    totals[field] += int(value or 0)
        return reported_figures(totals, self.delivery.enabled)

    # -- announcements (issue 14): the announce key's own slot --------------------------

    def _eval(self, script: Script, *args: Any) -> Any:
        key = self._announce_key()
        shard = self._cluster_shards.shard_of(name_slot(key))
        return shard.call(lambda client: execute(client, "EVAL", script.source, 1, key, *args))

    # -- socket extensions, per slot (`cluster_sockets`) ----------------------------------

    def socket_receive(self, channels: Iterable[str]) -> SocketReceive:
        """As `RedisChannelLayer.socket_receive`, on the master of the names' one slot."""
        return cluster_sockets.socket_receive(self, channels)

    def socket_sender(self) -> SocketSender:
        """As `RedisChannelLayer.socket_sender`, with one connection per slot sent to."""
        return cluster_sockets.ClusterSocketSender(self)


def _delete_matching_per_key(client: redis.Redis, patterns: list[str]) -> None:
    """`flushing.delete_matching` for a cluster node: keys of many slots, one UNLINK each."""
    for pattern in patterns:
        pipe = client.pipeline(transaction=False)
        queued = 0
        for key in client.scan_iter(match=pattern, count=1000):
            pipe.unlink(key)
            queued += 1
            if queued >= 1000:
                pipe.execute()
                queued = 0
        if queued:
            pipe.execute()
