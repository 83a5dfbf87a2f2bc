"""daphne's socket paths on RedisClusterChannelLayer (issue 19 item 1, `cluster_sockets`).

Driven without an event loop, as in test_socket_receive / test_socket_send: poll the
socket, call `read` / `write_some`. A slot moved under an open socket (``MOVED``) drops
it with the layer's unavailable error; the next socket opens on the slot's new master
and nothing accepted is lost.
"""

from __future__ import annotations

import pytest

from asgi_redis import LayerUnavailable, RedisClusterChannelLayer
from asgi_redis.cluster_sockets import ClusterSocketReceive, ClusterSocketSender
from asgi_redis.slots import name_slot
from tests.asgi_redis.test_socket_receive import read_until
from tests.asgi_redis.test_socket_send import Outcomes, drive

pytestmark = [pytest.mark.redis, pytest.mark.slow]

PREFIX = "daphne.response.csock!"


def _other_master(cluster, name: str):
    serving = cluster.master_of_slot(name_slot(name))
    return next(node for node in cluster.master_nodes() if node is not serving)


def test_socket_receive_follows_a_moved_slot(private_redis_cluster):
    """D-15 on a cluster: the reactor's pop sits on the P! slot's master; the slot moved
    under it ends it with LayerUnavailable (MOVED, nothing popped), and a new one reads on
    the new master, the message sent meanwhile included."""
    cluster = private_redis_cluster
    layer = RedisClusterChannelLayer(hosts=cluster.startup_nodes)
    receive = layer.socket_receive([PREFIX])
    assert isinstance(receive, ClusterSocketReceive)
    try:
        layer.send(PREFIX + "a", {"n": 1})
        assert read_until(receive, 1) == [(PREFIX + "a", {"n": 1})]
        cluster.move_slot(name_slot(PREFIX), _other_master(cluster, PREFIX))
        with pytest.raises(LayerUnavailable) as moved:
            read_until(receive, 1)  # the blocked pop is answered with MOVED
        assert moved.value.layer_redirected  # daphne: INFO, not an outage (issue 19)
    finally:
        receive.close()
    layer.send(PREFIX + "b", {"n": 2})  # follows MOVED itself
    receive = layer.socket_receive([PREFIX])
    try:
        assert read_until(receive, 1) == [(PREFIX + "b", {"n": 2})]
    finally:
        receive.close()
    layer.close()


def test_socket_sender_follows_a_moved_slot(private_redis_cluster):
    """issue 15's sender on a cluster: one pipe per slot; a batch answered MOVED is
    refused with LayerUnavailable (nothing stored, daphne retries it), and the retry goes
    to the new master; every stored message is received once, in order (A-19)."""
    cluster = private_redis_cluster
    layer = RedisClusterChannelLayer(hosts=cluster.startup_nodes)
    sender = layer.socket_sender()
    assert isinstance(sender, ClusterSocketSender)
    channels = ["csend.a", "csend.b"]
    assert name_slot(channels[0]) != name_slot(channels[1])
    outcomes = Outcomes()
    drive(sender.submit([(channel, {"n": 1}) for channel in channels], outcomes))
    assert outcomes.results == [None, None]
    assert len(sender.pipes) == 2
    cluster.move_slot(name_slot("csend.a"), _other_master(cluster, "csend.a"))
    moved = Outcomes()
    drive(sender.submit([("csend.a", {"n": 2}), ("csend.b", {"n": 2})], moved))
    assert isinstance(moved.results[0], LayerUnavailable), moved.results
    assert moved.results[0].layer_redirected
    assert moved.results[1] is None
    retried = Outcomes()
    drive(sender.submit([("csend.a", {"n": 2})], retried))
    assert retried.results == [None]
    for channel in channels:
        assert layer.receive([channel]) == (channel, {"n": 1})
        assert layer.receive([channel]) == (channel, {"n": 2})
        assert layer.receive([channel]) == (None, None)
    sender.close()
    layer.close()


def test_daphne_logs_a_moved_slot_at_info(caplog):
    """issue 19: a slot moving under daphne's sockets (a reshard) is normal operation:
    logged at INFO, no outage begun (no ERROR, no "reachable again" afterwards); an
    outage (CLUSTERDOWN, a refused connection) is still one ERROR (L-62.4)."""
    import logging

    import redis

    from asgi_redis.cluster_sockets import _redirected
    from daphne.layer_health import LayerHealth

    layer = RedisClusterChannelLayer(hosts=[("127.0.0.1", 1)])  # connects nothing
    shard = layer.slot_shard(PREFIX)
    moved = _redirected(shard, f"MOVED {shard.slot} 127.0.0.1:2")
    down = _redirected(shard, "CLUSTERDOWN The cluster is down")
    assert moved.layer_redirected and not getattr(down, "layer_redirected", False)
    health = LayerHealth(layer)
    with caplog.at_level(logging.DEBUG, logger="daphne.server"):
        health.failed("trying to receive messages", moved)
        assert not health.down
        health.ok("trying to receive messages")
        health.failed("sending WebSocket messages", down)
        assert health.down
    loud = [r for r in caplog.records if r.levelno >= logging.INFO]
    assert [r.levelname for r in loud] == ["INFO", "ERROR"], [r.getMessage() for r in loud]
    assert "moved slot" in loud[0].getMessage()
    assert isinstance(moved, redis.ConnectionError)
