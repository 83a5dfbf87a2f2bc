"""The slot map and node clients of a `RedisClusterChannelLayer` (issue 19 item 1).

`ClusterTopology` wraps redis-py's `redis.cluster.RedisCluster` (built on first
use: construction connects nothing, L-62.1) for the slot map only; the layer
sends its own commands on the node clients (`cluster.SlotShard`). The map is
read again after a redirection or a failed connection (at most every 50 ms,
concurrent callers sharing one read), moved one slot at a time for a ``MOVED``
naming a known node, and marked stale (read before the next socket connects)
where reading it would block daphne's reactor (`cluster_sockets`).

A map read asks first a node that accepts a TCP connection now (`reachable`,
every known node tried at once). redis-py asks the known nodes one after the
other in random order, and a node whose host is gone answers nothing: each
such node cost the whole connect timeout (5 s), and a host carrying two
nodes doubled the stall of a failover (issue 19 item 3).
"""

from __future__ import annotations

import errno
import logging
import random
import selectors
import socket
import threading
import time
from collections.abc import Callable
from typing import Any

import redis
from redis.cluster import ClusterNode, RedisCluster
from redis.exceptions import MovedError, RedisClusterException

from .errors import ShardConnectionError
from .shard import CONNECTION_ERRORS, ShardFeatures

__all__ = ["ClusterTopology", "reachable"]

logger = logging.getLogger("asgi_redis")

# At most this many known nodes are tried at once before a map read.
PROBED_NODES = 16
# Seconds between two map reads, unless one is forced (`refresh`).
MAP_READ_INTERVAL = 0.05


def reachable(addresses: list[tuple[str, int]], timeout: float) -> tuple[str, int] | None:
    """The first of `addresses` to accept a TCP connection within `timeout` seconds, all
    tried at once (non-blocking connects, one wait); `None` if none does."""
    with selectors.DefaultSelector() as selector:
        sockets: list[socket.socket] = []
        try:
            for address in addresses:
                try:
                    infos = socket.getaddrinfo(*address, type=socket.SOCK_STREAM)
                    family, kind, proto, _, target = infos[0]
                    sock = socket.socket(family, kind, proto)
                except OSError:
                    continue
                sockets.append(sock)
                sock.setblocking(False)
                if sock.connect_ex(target) in (0, errno.EINPROGRESS):
                    selector.register(sock, selectors.EVENT_WRITE, address)
            deadline = time.monotonic() + timeout
            while selector.get_map():
                left = deadline - time.monotonic()
                if left <= 0:
                    return None
                for key, _ in selector.select(left):
                    sock = key.fileobj  # type: ignore[assignment]
                    if sock.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR) == 0:
                        return key.data  # type: ignore[no-any-return]
                    selector.unregister(sock)  # refused: this one is down
            return None
        finally:
            for sock in sockets:
                sock.close()


class ClusterTopology:
    """The cluster's slot map and node clients, from redis-py's `RedisCluster`."""

    def __init__(
        self, startup_nodes: list[tuple[str, int]], kwargs: dict[str, Any], retry_timeout: float
    ) -> None:
        self.startup_nodes = startup_nodes
        # Node clients get redis-py's own no-retry policy (L-62.3).
        self._kwargs = {key: value for key, value in kwargs.items() if key != "retry"}
        self.retry_timeout = retry_timeout
        self._lock = threading.Lock()
        self._cluster: RedisCluster | None = None
        self._refreshed = float("-inf")
        self.features: ShardFeatures | None = None
        # Nodes known to be unreachable: one WARNING / INFO per node, not per slot.
        self._down: set[str] = set()
        # The slot map may be out of date: read it before the next socket connects
        # (`cluster_sockets`: noticed on daphne's reactor, which must not wait on it).
        self._stale = False

    def mark_stale(self) -> None:
        self._stale = True

    def refresh_if_stale(self) -> None:
        """Read the slot map again if `mark_stale` asked for it (may wait on the network),
        unless it was read in the last `MAP_READ_INTERVAL` seconds: then it stays stale
        for the next connect. While a master is elected every reconnect of daphne's
        sockets marks it stale, and each socket's backoff starts at a few milliseconds:
        forced reads came hundreds of times a second from each daphne."""
        if self._stale and self.refresh():
            self._stale = False

    def redirected(self, exc: Exception) -> None:
        """Note a redirection without a round trip: a ``MOVED`` to a known node moves the
        slot in the map; anything else marks the map stale."""
        cluster = self._cluster
        if cluster is not None and isinstance(exc, MovedError):
            node = cluster.nodes_manager.get_node(host=exc.host, port=exc.port)
            if node is not None and node.redis_connection is not None:
                cluster.nodes_manager.move_slot(exc)
                return
        self._stale = True

    def note_down(self, address: str) -> bool:
        """Record `address` as unreachable; True if it was not known to be."""
        with self._lock:
            first = address not in self._down
            self._down.add(address)
        return first

    def note_up(self, address: str) -> bool:
        """Record `address` as answering; True if it was known to be unreachable."""
        with self._lock:
            was_down = address in self._down
            self._down.discard(address)
        return was_down

    def cluster(self) -> RedisCluster:
        cluster = self._cluster
        if cluster is None:
            with self._lock:
                cluster = self._cluster
                if cluster is None:
                    cluster = self._cluster = self._connect()
        return cluster

    def _connect(self) -> RedisCluster:
        make_node: Callable[..., ClusterNode] = ClusterNode
        nodes = [make_node(host, port) for host, port in self.startup_nodes]
        try:
            make: Callable[..., RedisCluster] = RedisCluster
            cluster = make(startup_nodes=nodes, require_full_coverage=False, **self._kwargs)
        except (RedisClusterException, *CONNECTION_ERRORS) as exc:
            label = ", ".join(f"{host}:{port}" for host, port in self.startup_nodes)
            raise ShardConnectionError(
                f"No Redis Cluster node answered (startup nodes {label}): {exc}"
            ) from exc
        self._refreshed = time.monotonic()
        return cluster

    def client(self, slot: int) -> redis.Redis:
        node = self.cluster().nodes_manager.get_node_from_slot(slot)
        client: redis.Redis = node.redis_connection
        return client

    def node_client(self, host: str, port: int) -> redis.Redis | None:
        """The client of the known node at `host`:`port` (an ``ASK`` target), if any."""
        cluster = self._cluster
        node = None if cluster is None else cluster.nodes_manager.get_node(host=host, port=port)
        return None if node is None else node.redis_connection

    def moved(self, exc: MovedError) -> None:
        """Point the slot of a ``MOVED`` reply at its new owner (a known node), else read
        the whole slot map again."""
        cluster = self._cluster
        if cluster is None:
            return
        manager = cluster.nodes_manager
        node = manager.get_node(host=exc.host, port=exc.port)
        if node is not None and node.redis_connection is not None:
            manager.move_slot(exc)
        else:
            self.refresh(force=True)

    def refresh(self, force: bool = False) -> bool:
        """Read the slot map again (at most every `MAP_READ_INTERVAL` seconds unless
        `force`; concurrent callers share one). False when it was not read (too soon,
        or no map yet)."""
        cluster = self._cluster
        if cluster is None:
            return False
        with self._lock:
            if not force and time.monotonic() - self._refreshed < MAP_READ_INTERVAL:
                return False
            try:
                self._read_map(cluster)
            except (RedisClusterException, *CONNECTION_ERRORS) as exc:
                logger.info("Redis Cluster: could not read the slot map yet: %s", exc)
            self._refreshed = time.monotonic()
        return True

    def _read_map(self, cluster: RedisCluster) -> None:
        """redis-py's map read, asking a node that accepts a connection now first: the
        known nodes are narrowed to it for the read (it names every node again)."""
        manager = cluster.nodes_manager
        known = dict(manager.startup_nodes)
        if len(known) > 1:
            names = list(known)
            if len(names) > PROBED_NODES:
                names = random.sample(names, PROBED_NODES)
            by_address = {(known[name].host, known[name].port): name for name in names}
            timeout = self._kwargs.get("socket_connect_timeout") or 5.0
            found = reachable(list(by_address), timeout)
            if found is not None:
                name = by_address[found]
                narrowed = manager.startup_nodes = {name: known[name]}
                try:
                    manager.initialize()  # on success it names every node it found
                    return
                except (RedisClusterException, *CONNECTION_ERRORS):
                    pass  # it went away meanwhile: every known node, as redis-py would
                finally:
                    if manager.startup_nodes is narrowed:
                        manager.startup_nodes = known
        manager.initialize()

    def masters(self) -> list[redis.Redis]:
        """The masters' clients, in address order (`connection`, `flush`, statistics)."""
        nodes = self.cluster().nodes_manager.get_nodes_by_server_type("primary")
        return [node.redis_connection for node in sorted(nodes, key=lambda node: node.name)]

    def open_clients(self) -> list[redis.Redis]:
        cluster = self._cluster
        if cluster is None:
            return []
        nodes = list(cluster.nodes_manager.nodes_cache.values())
        return [node.redis_connection for node in nodes if node.redis_connection is not None]
