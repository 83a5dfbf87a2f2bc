"""RedisClusterChannelLayer across a master failover: the sends that pipeline per
master (group sends, ``send_many``) follow the slot map to the promoted replica
(issue 19 item 1; the e2e ``test_masters_killed_under_load`` lost broadcasts)."""

from __future__ import annotations

import concurrent.futures
import itertools
import logging

import pytest
import redis

from asgi_redis import RedisClusterChannelLayer
from asgi_redis.slots import name_slot
from channels.layers.base import LayerUnavailable

pytestmark = [pytest.mark.redis, pytest.mark.slow]


def _names(prefix: str, slots: set[int], inside: bool, count: int, suffix: str = "") -> list[str]:
    """`count` names ``<prefix><n><suffix>`` whose slots are (or, `inside` false, are
    not) in `slots`, each in a slot of its own."""
    found: list[str] = []
    used: set[int] = set()
    for index in itertools.count():
        name = f"{prefix}{index}{suffix}"
        slot = name_slot(name)
        if (slot in slots) == inside and slot not in used:
            found.append(name)
            used.add(slot)
            if len(found) == count:
                return found
    raise AssertionError("unreachable")


def _receive_one(layer: RedisClusterChannelLayer, name: str, attempts: int = 6) -> str | None:
    """The channel of the next message on `name` (each blocking receive ~5 s, A-32)."""
    for _ in range(attempts):
        try:
            channel, _message = layer.receive([name], block=True)
        except LayerUnavailable:  # its master killed under the wait: wait again
            continue
        if channel is not None:
            return channel
    return None


def _replicated(port: int) -> None:
    """Every write the master on `port` accepted has reached its replica (WAIT): a
    loss after the kill would then be the layer's, not asynchronous replication's."""
    client = redis.Redis(port=port)
    try:
        assert client.execute_command("WAIT", 1, 5000) == 1
    finally:
        client.close()


def test_group_send_and_send_many_follow_a_failover(private_redis_cluster, caplog) -> None:
    """A-44, A-93, L-62.2: a master is killed and its replica promoted while the layers
    are idle, their slot maps still naming the dead master. The first group send after
    it reaches every member, those whose slots (several, and a ``P!`` bundle) the dead
    master served included, and the first ``send_many`` stores every message: the
    pipeline to the dead master could not connect (nothing ran, L-62.3), so the slot map
    is read again and those slots are sent to the promoted master. (Before: their copies
    were dropped and the send raised the dead master's connection error.)
    """
    cluster = private_redis_cluster
    doomed = cluster.master_nodes()[0]
    doomed_slots = set(cluster.slots_of(doomed))
    on_doomed = _names("fo-d", doomed_slots, True, 3)
    elsewhere = _names("fo-e", doomed_slots, False, 3)
    process = _names("fo-p", doomed_slots, True, 1, suffix="!")[0]
    group = _names("fo-room", doomed_slots, False, 1)[0]  # read as usual: a live master
    members = [*on_doomed, *elsewhere, process + "a", process + "b"]
    listening = [*on_doomed, *elsewhere, process]
    grouping = RedisClusterChannelLayer(hosts=cluster.startup_nodes)
    sending = RedisClusterChannelLayer(hosts=cluster.startup_nodes)
    layers = [grouping, sending]

    def received(count: int) -> list[str]:
        """The channels of the next `count` messages, then checks nothing else came
        (a new layer: its slot map read after the failover)."""
        receiving = RedisClusterChannelLayer(hosts=cluster.startup_nodes)
        layers.append(receiving)
        channels = [receiving.receive(listening, block=True)[0] for _ in range(count)]
        assert receiving.receive(listening) == (None, None)
        return sorted(channel for channel in channels if channel is not None)

    try:
        for member in members:
            grouping.group_add(group, member)
        # Each layer's slot map learns the slots of every name before the kill.
        grouping.send_group(group, {"n": 0})
        assert sending.send_many([(name, {"m": 0}) for name in members[:6]]) == [None] * 6
        assert received(len(members) + 6) == sorted([*members, *members[:6]])
        _replicated(doomed.port)

        caplog.set_level(logging.INFO, logger="asgi_redis")
        blocked = RedisClusterChannelLayer(hosts=cluster.startup_nodes)
        layers.append(blocked)
        assert blocked.receive([on_doomed[0]]) == (None, None)  # its slot map read
        pool = concurrent.futures.ThreadPoolExecutor(1)
        waiting = pool.submit(_receive_one, blocked, on_doomed[0])
        pool.shutdown(wait=False)
        cluster.fail_over(doomed)  # bounded: waits for the promotion

        # A blocking receive waiting on the dead master (L-62.4: one WARNING) gets the
        # next message from the promoted one (one INFO).
        sending.send(on_doomed[0], {"s": 1})
        assert waiting.result(timeout=30) == on_doomed[0]
        grouping.send_group(group, {"n": 1})
        assert received(len(members)) == sorted(members)
        assert sending.send_many([(name, {"m": 1}) for name in members[:6]]) == [None] * 6
        assert received(6) == sorted(members[:6])
        # L-62.4: a layer's WARNING for the dead master is ended by one INFO naming it.
        dead = f"127.0.0.1:{doomed.port}"
        replaced = [
            record
            for record in caplog.records
            if record.getMessage().startswith(f"Redis Cluster node {dead} is replaced")
        ]
        warned = [
            record
            for record in caplog.records
            if record.levelno == logging.WARNING and dead in record.getMessage()
        ]
        assert warned and len(replaced) == len(warned), caplog.text
    finally:
        for layer in layers:
            layer.close()
