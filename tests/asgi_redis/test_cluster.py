"""RedisClusterChannelLayer (issue 19 item 1): conformance on a real 3-master /
3-replica Redis Cluster, failover and resharding with the layer in use."""

from __future__ import annotations

import threading
import time

import pytest

from asgi_redis import RedisClusterChannelLayer
from asgi_redis.slots import name_slot
from channels.layers import conformance
from tests.asgi_redis.test_conformance import RedisExtraChecks

pytestmark = pytest.mark.redis

_OPTIONS = {"expiry": 1, "group_expiry": 2, "capacity": 5}


@pytest.fixture(scope="class")
def cluster_layer(request, redis_cluster):
    cls = request.cls
    options = dict(_OPTIONS, hosts=redis_cluster.startup_nodes[:2], **cls.extra_options)
    options.setdefault("prefix", f"t-{cls.__name__}:")
    options.setdefault("stats_prefix", f"t-{cls.__name__}-meta:")
    cls.channel_layer = RedisClusterChannelLayer(**options)
    yield
    cls.channel_layer.flush()
    cls.channel_layer.close()


@pytest.mark.usefixtures("cluster_layer")
class ClusterTests(RedisExtraChecks, conformance.ConformanceTestCase):
    """L-58 on the cluster: every channel in one slot, so capacity is per channel."""

    expiry_delay = 1.1
    capacity_limit = 5
    extra_options: dict = {}

    def test_masters_are_the_ring(self) -> None:
        """ring_size counts the masters; str() names the startup nodes (L-5)."""
        layer = self.channel_layer
        self.assertEqual(layer.ring_size, 3)
        self.assertTrue(str(layer).startswith("RedisClusterChannelLayer(hosts=['redis://"))
        self.assertIn("statistics", layer.extensions)

    def test_blocking_receive_over_many_slots(self) -> None:
        """A-32: a blocking receive on names in many slots sees a message in any of them."""
        layer = self.channel_layer
        names = [f"many-{index}" for index in range(8)]
        self.assertGreater(len({name_slot(name) for name in names}), 4)
        layer.send(names[5], {"n": 5})
        self.assertEqual(layer.receive(names, block=True), (names[5], {"n": 5}))
        found: list = []
        waiter = threading.Thread(target=lambda: found.append(layer.receive(names, block=True)))
        waiter.start()
        layer.send(names[2], {"n": 2})
        waiter.join(10)
        self.assertEqual(found, [(names[2], {"n": 2})])

    def test_group_send_over_many_slots(self) -> None:
        """A-44, A-93: members in many slots and behind one P! all get the message."""
        layer = self.channel_layer
        members = [f"gm-{index}" for index in range(6)] + ["gd!a", "gd!b"]
        for member in members:
            layer.group_add("spread", member)
        layer.send_group("spread", {"v": 1})
        got = set()
        for _ in range(len(members)):
            channel, message = layer.receive([*members[:6], "gd!"], block=True)
            self.assertEqual(message, {"v": 1})
            got.add(channel)
        self.assertEqual(got, set(members))

    def test_send_many_over_many_slots(self) -> None:
        """send_many: one pipelined round trip per master; outcomes per message, in order
        (a full channel's own ChannelFull only) and FIFO per channel (A-25)."""
        layer = self.channel_layer
        names = [f"sm-{index}" for index in range(12)]
        for _ in range(5):
            layer.send("sm-full", {})
        pairs = [(name, {"n": n}) for n in range(2) for name in names] + [("sm-full", {})]
        outcomes = layer.send_many(pairs)
        self.assertEqual(outcomes[:-1], [None] * (len(pairs) - 1))
        self.assertIsInstance(outcomes[-1], layer.ChannelFull)
        for name in names:
            self.assertEqual(layer.receive([name]), (name, {"n": 0}))
            self.assertEqual(layer.receive([name]), (name, {"n": 1}))
        stats = layer.channel_statistics("sm-full")
        self.assertEqual((stats["messages_count"], stats["channel_full_count"]), (5, 1))

    def test_group_members_move_with_their_slot(self) -> None:
        """Every key of a channel shares its slot: list and counters (hash tags)."""
        layer = self.channel_layer
        placement = layer._placement
        for name in ("daphne.response.abc!", "http.request", "x?y"):
            slots = {name_slot(name)}
            for key in (placement.list_key(name), placement.stats_hash(name)):
                from redis.crc import key_slot

                slots.add(key_slot(key.encode()))
            self.assertEqual(len(slots), 1, name)

    def test_receive_async_and_twisted(self) -> None:
        """A-50, A-51, L-43, L-61: the thread-based extensions keep FIFO order."""
        import asyncio

        layer = self.channel_layer
        layer.send("async-order", {"n": 1})
        layer.send("async-order", {"n": 2})
        first = asyncio.run(layer.receive_async(["async-order"]))
        self.assertEqual(first, ("async-order", {"n": 1}))
        self.assertEqual(layer.receive(["async-order"]), ("async-order", {"n": 2}))
        self.assertIn("twisted", layer.extensions)


@pytest.mark.usefixtures("cluster_layer")
class ClusterEncryptedTests(conformance.ConformanceTestCase):
    """L-58: the encrypted variant on the cluster."""

    expiry_delay = 1.1
    capacity_limit = 5
    extra_options = {"symmetric_encryption_keys": ["test", "old"]}


def test_constructor_checks() -> None:
    """Options as for RedisChannelLayer; a database other than 0 is refused."""
    with pytest.raises(ValueError):
        RedisClusterChannelLayer(hosts="redis://127.0.0.1:7000")
    with pytest.raises(ValueError):
        RedisClusterChannelLayer(hosts=["redis://127.0.0.1:7000/3"])
    with pytest.raises(TypeError):
        RedisClusterChannelLayer(hosts=[("127.0.0.1", 7000)], bogus=1)
    layer = RedisClusterChannelLayer(hosts=[("127.0.0.1", 1)])  # connects nothing (L-62.1)
    assert layer.hosts == ["redis://127.0.0.1:1/0"]


def test_unreachable_startup_nodes_give_a_clear_error() -> None:
    """L-62.1: no node answers: a LayerUnavailable naming the startup nodes, bounded."""
    from asgi_redis import LayerUnavailable
    from support.redis_harness import free_port

    port = free_port()
    layer = RedisClusterChannelLayer(hosts=[("127.0.0.1", port)])
    started = time.monotonic()
    with pytest.raises(LayerUnavailable, match=f"127.0.0.1:{port}"):
        layer.send("nowhere", {})
    assert time.monotonic() - started < 15


def _until(what: str, attempt, timeout: float = 30.0):
    """Call `attempt` until it returns without an error; bounded.

    Waiting on other processes (a replica's election): there is no event to await,
    so the retries back off (the layer's own calls already wait up to 5 s each).
    """
    give_up = time.monotonic() + timeout
    delay = 0.01
    while True:
        try:
            return attempt()
        except Exception as exc:  # LayerUnavailable and kin, or an assertion
            if time.monotonic() >= give_up:
                raise AssertionError(f"{what} still failing after {timeout} s: {exc!r}") from exc
        time.sleep(delay)
        delay = min(delay * 2, 0.2)


def _three_masters(cluster) -> None:
    assert len(cluster.master_nodes()) == 3


@pytest.mark.slow
def test_master_failover_needs_no_manual_action(private_redis_cluster) -> None:
    """Kill the master of two channels' slots with the layer in use (a receiver blocked
    on one of them): once the replica is promoted, sends and receives work again by
    themselves, and what was replicated before the kill is still delivered.

    Asynchronous replication can lose writes that never reached the replica; WAIT
    makes sure these did (the layer itself does not wait, see `asgi_redis.cluster`).
    """
    import redis

    cluster = private_redis_cluster
    layer = RedisClusterChannelLayer(hosts=cluster.startup_nodes)
    stored, live = "failover-stored", "failover-live"
    master = cluster.master_of_slot(name_slot(stored))
    live_candidates = (f"failover-live-{index}" for index in range(10_000))
    live = next(
        name for name in live_candidates if cluster.master_of_slot(name_slot(name)) is master
    )
    for index in range(10):
        layer.send(stored, {"n": index})
    direct = redis.Redis(port=master.port)
    assert direct.execute_command("WAIT", 1, 5000) == 1  # the replica has all ten
    direct.close()
    received: list = []
    waiting = threading.Event()

    def consume() -> None:
        give_up = time.monotonic() + 60
        while time.monotonic() < give_up and not received:
            waiting.set()
            try:
                found = layer.receive([live], block=True)
            except Exception:  # the master is gone: callers retry (L-62.5)
                continue
            if found[0] is not None:
                received.append(found[1])

    consumer = threading.Thread(target=consume, daemon=True)
    consumer.start()
    assert waiting.wait(10)
    master.kill()
    started = time.monotonic()
    _until("send after the failover", lambda: layer.send(live, {"after": True}))
    recovered = time.monotonic() - started
    consumer.join(60)
    assert received == [{"after": True}]
    assert [layer.receive([stored]) for _ in range(11)] == [
        *((stored, {"n": index}) for index in range(10)),
        (None, None),
    ]
    assert recovered < 30
    _until("every node seeing three masters", lambda: _three_masters(cluster))
    layer.close()


@pytest.mark.slow
def test_resharding_under_load_loses_nothing(private_redis_cluster) -> None:
    """``redis-cli --cluster reshard`` moves slots while a sender and a receiver run:
    every accepted message is received exactly once (MOVED / ASK followed)."""
    cluster = private_redis_cluster
    layer = RedisClusterChannelLayer(hosts=cluster.startup_nodes, capacity=100_000)
    receiver_layer = RedisClusterChannelLayer(hosts=cluster.startup_nodes, capacity=100_000)
    masters = cluster.master_nodes()
    # redis-cli moves the source's lowest slots first: half the channels sit there.
    moving = set(cluster.slots_of(masters[0])[:1000])
    candidates = [f"reshard-{index}" for index in range(20_000)]
    channels = [name for name in candidates if name_slot(name) in moving][:10]
    channels += [name for name in candidates if name_slot(name) not in moving][:10]
    accepted: list[int] = []
    received: list[int] = []
    failures: list[BaseException] = []
    sending = threading.Event()
    sending.set()

    def send() -> None:
        number = 0
        while sending.is_set():
            try:
                layer.send(channels[number % len(channels)], {"n": number})
            except Exception as exc:
                failures.append(exc)
                continue
            accepted.append(number)
            number += 1

    def receive() -> None:
        give_up = time.monotonic() + 120
        while time.monotonic() < give_up:
            if not sending.is_set() and len(received) >= len(accepted):
                return
            try:
                channel, message = receiver_layer.receive(channels, block=True)
            except Exception as exc:
                failures.append(exc)
                continue
            if channel is not None:
                received.append(message["n"])

    sender = threading.Thread(target=send, daemon=True)
    receiver = threading.Thread(target=receive, daemon=True)
    sender.start()
    receiver.start()
    try:
        cluster.reshard(masters[0], masters[1], 1000)
        cluster.reshard(masters[1], masters[2], 500)
    finally:
        sending.clear()
        sender.join(30)
        receiver.join(150)
    print("reshard: accepted", len(accepted), "failures", len(failures), failures[:2])
    assert accepted, "nothing was sent"
    assert sorted(received) == sorted(accepted), (len(received), len(accepted), failures[:3])
    assert len(set(received)) == len(received)
    layer.close()
    receiver_layer.close()


@pytest.mark.slow
def test_graceful_failover_under_load_loses_nothing(private_redis_cluster) -> None:
    """``CLUSTER FAILOVER`` (the replica syncs, then takes over; blocked pops on the old
    master are redirected) while a sender and a receiver run: nothing accepted is lost
    and nothing is delivered twice."""
    cluster = private_redis_cluster
    sender_layer = RedisClusterChannelLayer(hosts=cluster.startup_nodes, capacity=100_000)
    receiver_layer = RedisClusterChannelLayer(hosts=cluster.startup_nodes, capacity=100_000)
    master = cluster.master_nodes()[0]
    candidates = (f"graceful-{index}" for index in range(10_000))
    channels = [name for name in candidates if cluster.master_of_slot(name_slot(name)) is master]
    channels = channels[:5]
    accepted: list[int] = []
    received: list[int] = []
    sending = threading.Event()
    sending.set()
    progress = threading.Condition()

    def send() -> None:
        number = 0
        while sending.is_set():
            try:
                sender_layer.send(channels[number % len(channels)], {"n": number})
            except Exception:
                continue
            with progress:
                accepted.append(number)
                progress.notify_all()
            number += 1

    def receive() -> None:
        give_up = time.monotonic() + 60
        while time.monotonic() < give_up:
            if not sending.is_set() and len(received) >= len(accepted):
                return
            try:
                channel, message = receiver_layer.receive(channels, block=True)
            except Exception:
                continue
            if channel is not None:
                with progress:
                    received.append(message["n"])
                    progress.notify_all()

    threads = [
        threading.Thread(target=send, daemon=True),
        threading.Thread(target=receive, daemon=True),
    ]
    for thread in threads:
        thread.start()
    try:
        with progress:
            assert progress.wait_for(lambda: len(received) > 100, 30)
        cluster.promote(cluster.replica_of(master))
        with progress:
            count = len(accepted)
            assert progress.wait_for(lambda: len(accepted) > count + 100, 30)
    finally:
        sending.clear()
        for thread in threads:
            thread.join(90)
    assert sorted(received) == sorted(accepted), (len(received), len(accepted))
    assert len(set(received)) == len(received)
    sender_layer.close()
    receiver_layer.close()


@pytest.mark.slow
def test_ask_is_followed_while_a_slot_migrates(private_redis_cluster) -> None:
    """issue 19: a slot half moved (MIGRATING on its owner, IMPORTING on the target, its
    keys on the target) makes the owner answer ``ASK``: a send (script), a pop (plain and
    scripted) and a group send follow it to the target at once with ``ASKING``. Before,
    each call asked the owner again until the move ended, and raised after
    ``cluster_retry_timeout`` (5 s) when it did not end."""
    cluster = private_redis_cluster
    layer = RedisClusterChannelLayer(hosts=cluster.startup_nodes)
    name = "ask-channel"
    slot = name_slot(name)
    layer.send(name, {"n": 0})
    layer.group_add("ask-group", name)
    source = cluster.master_of_slot(slot)
    target = next(node for node in cluster.master_nodes() if node is not source)
    if cluster.master_of_slot(name_slot("ask-group")) is source:
        pytest.skip("the group's slot is on the migrating master")  # fixed names: not so
    cluster.move_slot(slot, target, finish=False)
    try:
        started = time.monotonic()
        layer.send(name, {"n": 1})
        layer.send_group("ask-group", {"n": 2})
        received = [layer.receive([name]) for _ in range(4)]
        elapsed = time.monotonic() - started
    finally:
        cluster.finish_slot_move(slot, target)
    assert received == [*((name, {"n": n}) for n in range(3)), (None, None)]
    assert elapsed < 2, elapsed
    layer.send(name, {"n": 3})  # the move ended: MOVED, followed as before
    assert layer.receive([name]) == (name, {"n": 3})
    layer.close()
