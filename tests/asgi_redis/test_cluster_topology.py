"""The slot map of a cluster layer (`asgi_redis.cluster_topology`, issue 19 item 1; L-62.2,
L-62.5: reconnects after a failover follow the map without flooding the survivors).

A map marked stale (a daphne socket redirected or lost, `cluster_sockets`) is read
before the next connect, but not more than once per `MAP_READ_INTERVAL`: while a master
is elected every reconnect marks it stale again, and each forced read was a
``CLUSTER SLOTS`` on a surviving node, hundreds a second from each daphne. Counted on
the servers (``INFO commandstats``).
"""

from __future__ import annotations

import threading
import time

import pytest
import redis

from asgi_redis import RedisClusterChannelLayer
from asgi_redis.cluster import ClusterShards
from asgi_redis.cluster_topology import MAP_READ_INTERVAL

pytestmark = pytest.mark.redis


def _map_reads(cluster) -> int:
    total = 0
    for host, port in cluster.startup_nodes:
        client = redis.Redis(host=host, port=port, socket_timeout=5)
        stats = client.info("commandstats")
        total += stats.get("cmdstat_cluster|slots", {}).get("calls", 0)
        client.close()
    return total


def test_a_stale_map_is_read_at_most_once_per_interval(redis_cluster) -> None:
    layer = RedisClusterChannelLayer(hosts=redis_cluster.startup_nodes[:1], prefix="topo:")
    try:
        layer.send("topo-warm-up", {})  # builds the map
        source = layer._shard_source
        assert isinstance(source, ClusterShards)
        topology = source.topology
        pause = threading.Event()
        pause.wait(MAP_READ_INTERVAL * 2)  # the interval itself is what is tested
        before = _map_reads(redis_cluster)
        began = time.monotonic()
        for _ in range(200):
            topology.mark_stale()
            topology.refresh_if_stale()
        elapsed = time.monotonic() - began
        reads = _map_reads(redis_cluster) - before
        assert 1 <= reads <= 2 + elapsed / MAP_READ_INTERVAL, (reads, elapsed)
        # A call that found the map read too lately left it stale: read once time passes.
        topology.mark_stale()
        pause.wait(MAP_READ_INTERVAL * 2)
        before = _map_reads(redis_cluster)
        topology.refresh_if_stale()
        topology.refresh_if_stale()
        assert _map_reads(redis_cluster) - before == 1
    finally:
        layer.flush()
        layer.close()
