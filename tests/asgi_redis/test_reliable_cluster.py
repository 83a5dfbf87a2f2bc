"""At-least-once delivery on RedisClusterChannelLayer (issue 17, issue 19 item 1): the
conformance suite with ``alo.*`` at-least-once on a 3-master / 3-replica cluster, one
slot per channel's keys, redelivery of a message taken and never acknowledged (also
across a master failover), group sends ringing the doorbell, dead letters on every
master."""

from __future__ import annotations

import threading
import time

import pytest

from asgi_redis import RedisClusterChannelLayer
from asgi_redis.slots import name_slot
from channels.layers import conformance
from channels.layers.base import DELIVERY_KEY
from tests.asgi_redis.test_cluster import _until, cluster_layer  # noqa: F401 (fixture)

pytestmark = pytest.mark.redis

ALO = {"at_least_once": ["alo.*"], "ack_timeout": 1, "max_deliveries": 3}


@pytest.mark.usefixtures("cluster_layer")
class ClusterReliableTests(conformance.ConformanceTestCase):
    """L-58 and the at-least-once block (issue 17) on the cluster."""

    expiry_delay = 1.1
    capacity_limit = 5
    extra_options: dict = ALO


def _layer(cluster, prefix: str, **options) -> RedisClusterChannelLayer:
    return RedisClusterChannelLayer(
        hosts=cluster.startup_nodes[:2],
        prefix=f"{prefix}:",
        stats_prefix=f"{prefix}-meta:",
        **{**ALO, **options},
    )


def _receive(layer, channels, wait: float = 10.0):
    give_up = time.monotonic() + wait
    found = layer.receive(channels, block=False)
    while found[0] is None and time.monotonic() < give_up:
        found = layer.receive(channels, block=True)
    return found


def test_keys_share_one_slot(redis_cluster) -> None:
    """Every key a leased channel's scripts touch sits in the channel's slot."""
    layer = _layer(redis_cluster, "t-alo-slot")
    try:
        layer.send("alo.slot", {"n": 1})
        channel, message = _receive(layer, ["alo.slot", "plain.slot"])
        assert channel == "alo.slot"
        slot = name_slot("alo.slot")
        client = layer.slot_shard("alo.slot").client()
        keys = sorted(key.decode() for key in client.keys("t-alo-slot*"))
        assert "t-alo-slot:{alo.slot}:lease" in keys
        assert {name_slot(key[key.index("{") + 1 : key.index("}")]) for key in keys} == {slot}
        assert layer.ack(channel, message[DELIVERY_KEY]["id"])
    finally:
        layer.flush()
        layer.close()


def test_taken_and_never_acked_is_redelivered(redis_cluster) -> None:
    """Issue 17: a worker that took a message and died (its layer gone without an ack)
    leaves it to another worker after ack_timeout, counted as a second delivery."""
    first = _layer(redis_cluster, "t-alo-kill")
    second = _layer(redis_cluster, "t-alo-kill")
    try:
        names = ["alo.kill", "alo.other", "plain.kill"]
        first.send("alo.kill", {"n": 1})
        channel, message = _receive(first, names)
        assert (channel, message[DELIVERY_KEY]["count"]) == ("alo.kill", 1)
        first.close()  # "killed": no ack, no release
        started = time.monotonic()
        channel, again = _receive(second, names, wait=10)
        assert channel == "alo.kill"
        assert again[DELIVERY_KEY]["count"] == 2 and again["n"] == 1
        assert 0.5 < time.monotonic() - started < 5
        assert second.ack(channel, again[DELIVERY_KEY]["id"])
        assert second.receive(names) == (None, None)
        assert second.global_statistics()["redelivered_count"] == 1
    finally:
        second.flush()
        second.close()


def test_group_send_rings_the_bell(redis_cluster) -> None:
    """A group send stores the leased member's message and rings its doorbell: a
    receiver blocked on it wakes at once, not at its blocking timeout."""
    layer = _layer(redis_cluster, "t-alo-group")
    try:
        layer.blpop_timeout = 8
        names = ["alo.g1", "alo.g2", "plain.g3"]
        for name in names:
            layer.group_add("g", name)
        found: list = []
        ready = threading.Event()

        def wait() -> None:
            ready.set()
            found.append(layer.receive(["alo.g2"], block=True))

        waiter = threading.Thread(target=wait, daemon=True)
        waiter.start()
        assert ready.wait(5)
        time.sleep(0.2)  # let the receive reach its blocking pop (no event to await)
        sent = time.monotonic()
        layer.send_group("g", {"n": 7})
        waiter.join(10)
        assert time.monotonic() - sent < 3
        channel, message = found[0]
        assert (channel, message["n"], message[DELIVERY_KEY]["count"]) == ("alo.g2", 7, 1)
        assert layer.ack(channel, message[DELIVERY_KEY]["id"])
        assert _receive(layer, ["alo.g1"])[1]["n"] == 7
        assert layer.receive(["plain.g3"]) == ("plain.g3", {"n": 7})
    finally:
        layer.flush()
        layer.close()


def test_dead_letters_on_every_master(redis_cluster) -> None:
    """Dead letters of channels on different masters are counted, listed, requeued and
    purged by a fresh layer (as `manage.py deadletters` builds one)."""
    from channels.layers.inspect import snapshot

    layer = _layer(redis_cluster, "t-alo-dead", max_deliveries=1)
    names = [f"alo.d{index}" for index in range(12)]
    masters = {redis_cluster.master_of_slot(name_slot(name)).port for name in names}
    assert len(masters) > 1
    try:
        for name in names:
            layer.send(name, {"name": name})
            channel, message = _receive(layer, [name])
            layer.nack(channel, message[DELIVERY_KEY]["id"], 0)
        fresh = _layer(redis_cluster, "t-alo-dead", max_deliveries=1)
        assert snapshot(fresh).dead_letters == len(names)  # issue 18's reading
        letters = fresh.dead_letters()
        assert sorted(letter.channel for letter in letters) == sorted(names)
        assert fresh.requeue_dead_letters("alo.d1*") == 3  # d1, d10, d11
        assert fresh.purge_dead_letters() == 9
        assert fresh.dead_letters() == []
        fresh.close()
    finally:
        layer.flush()
        layer.close()


@pytest.mark.slow
def test_redelivery_across_a_master_failover(private_redis_cluster) -> None:
    """A message taken and never acknowledged, its lease replicated, comes back after
    ack_timeout from the promoted replica once its master is killed."""
    import redis

    cluster = private_redis_cluster
    layer = _layer(cluster, "t-alo-failover")
    name = "alo.failover"
    layer.send(name, {"n": 1})
    channel, message = _receive(layer, [name])
    assert message[DELIVERY_KEY]["count"] == 1
    master = cluster.master_of_slot(name_slot(name))
    direct = redis.Redis(port=master.port)
    assert direct.execute_command("WAIT", 1, 5000) == 1  # the lease reached the replica
    direct.close()
    layer.close()
    cluster.fail_over(master)
    other = _layer(cluster, "t-alo-failover")
    channel, again = _until("a receive after the failover", lambda: _receive(other, [name]))
    assert (channel, again["n"], again[DELIVERY_KEY]["count"]) == (name, 1, 2)
    assert other.ack(channel, again[DELIVERY_KEY]["id"])
    assert other.receive([name]) == (None, None)
    other.close()


@pytest.mark.slow
def test_sigkilled_runworker_message_goes_to_another_worker(redis_cluster, tmp_path) -> None:
    """Issue 17 with real ``manage.py runworker`` processes on the cluster: a worker
    SIGKILLed inside its consumer leaves the message to a second worker after
    ack_timeout (count 2), which acknowledges it."""
    import signal

    from tests.channels import e2e
    from tests.channels.test_runworker_delivery import ALO as WORKER_ALO
    from tests.channels.test_runworker_delivery import EXIT_TIMEOUT, receive_one, wait_until

    database = tmp_path / "db.sqlite3"
    nodes = ",".join(f"redis://{host}:{port}" for host, port in redis_cluster.startup_nodes[:2])
    env = e2e.e2e_env(
        database,
        CHANNELS_E2E_REDIS_CLUSTER=nodes,
        CHANNELS_E2E_AT_LEAST_ONCE=",".join(WORKER_ALO["at_least_once"]),
        CHANNELS_E2E_ACK_TIMEOUT=str(WORKER_ALO["ack_timeout"]),
        CHANNELS_E2E_MAX_DELIVERIES=str(WORKER_ALO["max_deliveries"]),
    )
    e2e.prepare_database(env)
    layer = RedisClusterChannelLayer(hosts=redis_cluster.startup_nodes[:2], **WORKER_ALO)
    lease_key = f"{layer.prefix}{{alo.hold}}:lease"
    first = e2e.start_worker(env)
    second = None
    try:
        first.output.wait_for("Listening on channels", timeout=60)
        layer.send("alo.hold", {"n": 1})
        started = receive_one(layer, "alo_report.started")
        assert (started["n"], started["count"], started["pid"]) == (1, 1, first.process.pid)
        first.process.send_signal(signal.SIGKILL)
        first.process.wait(timeout=EXIT_TIMEOUT)
        second = e2e.start_worker(env)
        second.output.wait_for("Listening on channels", timeout=60)
        again = receive_one(layer, "alo_report.started")
        assert (again["n"], again["count"], again["redelivered"]) == (1, 2, True)
        assert again["pid"] == second.process.pid
        layer.send("test.release", {})
        assert receive_one(layer, "alo_report.done")["count"] == 2
        shard = layer.slot_shard("alo.hold")
        assert wait_until(lambda: shard.command("ZCARD", lease_key) == 0)
        assert layer.global_statistics()["redelivered_count"] == 1
    finally:
        first.stop()
        if second is not None:
            second.stop()
        layer.flush()
        layer.close()


@pytest.mark.slow
def test_blocked_receiver_survives_a_master_failover(private_redis_cluster) -> None:
    """A receiver waiting on a leased channel's doorbell when its master is killed
    waits again on the promoted replica by itself (callers retry what raised, L-62.5),
    and leases what is sent after the failover."""
    cluster = private_redis_cluster
    layer = _layer(cluster, "t-alo-blocked")
    sender = _layer(cluster, "t-alo-blocked")
    name = "alo.blocked"
    master = cluster.master_of_slot(name_slot(name))
    received: list = []
    waiting = threading.Event()

    def consume() -> None:
        give_up = time.monotonic() + 60
        while time.monotonic() < give_up and not received:
            waiting.set()
            try:
                found = layer.receive([name, "plain.blocked"], block=True)
            except Exception:  # the master is gone: callers retry (L-62.5)
                continue
            if found[0] is not None:
                received.append(found)

    consumer = threading.Thread(target=consume, daemon=True)
    consumer.start()
    assert waiting.wait(10)
    time.sleep(0.3)  # let it reach its blocking pop (no event to await)
    master.kill()
    _until("send after the failover", lambda: sender.send(name, {"after": True}))
    consumer.join(60)
    assert len(received) == 1
    channel, message = received[0]
    assert (channel, message["after"], message[DELIVERY_KEY]["count"]) == (name, True, 1)
    assert layer.ack(channel, message[DELIVERY_KEY]["id"])
    layer.close()
    sender.close()
