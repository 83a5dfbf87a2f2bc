"""At-least-once delivery on the Redis layer (issue 17): the conformance block on one and
three shards, keys under one hash tag, and at-most-once paths left alone."""

from __future__ import annotations

import pytest

from asgi_redis import RedisChannelLayer
from channels.layers import conformance
from channels.layers.base import DELIVERY_KEY

ALO = {"at_least_once": ["alo.*"], "ack_timeout": 1, "max_deliveries": 3}


@pytest.mark.usefixtures("class_layer")
class TestReliableOneShard(conformance.ConformanceTestCase):
    """The whole suite (L-58 settings) with at-least-once on for ``alo.*``."""

    expiry_delay = 1.1
    capacity_limit = 5

    @staticmethod
    def layer_options(servers):
        return {"hosts": [servers[0].url], "expiry": 1, "group_expiry": 2, "capacity": 5, **ALO}


@pytest.mark.usefixtures("class_layer")
class TestReliableThreeShards(conformance.ConformanceTestCase):
    expiry_delay = 1.1
    receive_tries = 3

    @staticmethod
    def layer_options(servers):
        return {
            "hosts": [server.url for server in servers[:3]],
            "expiry": 1,
            "group_expiry": 2,
            "capacity": 5,
            **ALO,
        }


def test_keys_share_one_hash_tag(layer_on):
    """Every key of one at-least-once channel sits in one Redis Cluster slot."""
    layer = layer_on(**ALO)
    layer.send("alo.tag", {"n": 1})
    channel, message = layer.receive(["alo.tag"])
    client = layer.connection(0)
    keys = sorted(key.decode() for key in client.keys("t-func:*"))
    assert keys == ["t-func:{alo.tag}:held", "t-func:{alo.tag}:lease"]
    assert layer.ack(channel, message[DELIVERY_KEY]["id"])
    assert client.keys("t-func:*") == []


def test_at_most_once_unchanged(layer_on):
    """Without the option: no extension, the exact 1.x statistics keys."""
    layer = layer_on()
    assert "at_least_once" not in layer.extensions
    layer.send("alo.x", {"n": 1})
    assert layer.receive(["alo.x"]) == ("alo.x", {"n": 1})
    assert set(layer.global_statistics()) == {"messages_count", "channel_full_count"}


def test_too_large_is_counted(layer_on):
    """Issue 17 item 2: a message refused as too large is counted by reason."""
    layer = layer_on()
    with pytest.raises(layer.MessageTooLarge):
        layer.send("big", {"b": b"x" * (layer.max_message_size + 1)})
    assert layer.global_statistics()["too_large_count"] == 1
    assert layer.channel_statistics("big")["too_large_count"] == 1


def test_blocking_receive_wakes_on_send(layer_on):
    """A blocked receiver is woken by the doorbell, not by its timeout."""
    import threading
    import time

    layer = layer_on(**ALO)
    got = []

    def receive():
        received = layer.receive(["alo.wake", "plain.wake"], block=True)
        got.append((time.monotonic(), received))  # after the receive returned

    thread = threading.Thread(target=receive)
    thread.start()
    time.sleep(0.3)  # let it block; the assertion below bounds the wake-up instead
    sent = time.monotonic()
    RedisChannelLayer(hosts=layer.hosts, prefix="t-func:", stats_prefix="t-func-meta:", **ALO).send(
        "alo.wake", {"n": 1}
    )
    thread.join(10)
    woke, (channel, message) = got[0]
    assert channel == "alo.wake" and message["n"] == 1
    assert woke - sent < 3.0  # the receive would otherwise wait its 5 s timeout


@pytest.mark.parametrize(
    "options",
    [
        pytest.param({}, id="one-script"),  # scripts.GROUP_SEND
        pytest.param({"channel_capacity": {"other": 10}}, id="members-then-push"),
        pytest.param({"shards": 3}, id="three-shards"),  # scripts.PUSH per shard
    ],
)
def test_group_send_rings_the_doorbell(layer_on, options):
    """Issue 17: a group send to an at-least-once member wakes a blocked receiver at once
    (no wait for its 5 s pass); plain and reply members are served as before."""
    import threading
    import time

    layer = layer_on(**ALO, **options)
    for member in ("alo.grouped", "plain.grouped", "daphne.response.x!abc"):
        layer.group_add("g", member)
    got = []
    blocking = threading.Event()

    def receive():
        blocking.set()
        received = layer.receive(["alo.grouped"], block=True)
        got.append((time.monotonic(), received))

    # Ring no bell before the receiver blocks: the message must come from the group send.
    thread = threading.Thread(target=receive)
    thread.start()
    blocking.wait(5)
    time.sleep(0.3)  # let it block; the assertion below bounds the wake-up instead
    sent = time.monotonic()
    sender = RedisChannelLayer(
        hosts=layer.hosts,
        prefix="t-func:",
        stats_prefix="t-func-meta:",
        **ALO,
        **{k: v for k, v in options.items() if k != "shards"},
    )
    sender.send_group("g", {"n": 7})
    thread.join(10)
    woke, (channel, message) = got[0]
    assert channel == "alo.grouped" and message["n"] == 7
    assert woke - sent < 3.0  # the receive would otherwise wait its 5 s timeout
    assert layer.ack(channel, message[DELIVERY_KEY]["id"])
    # Blocking: a normal channel's copy lies on one of the shards, and a non-blocking
    # receive looks at one shard only (L-26); the blocking one waits on all of them.
    assert layer.receive(["plain.grouped"], block=True) == ("plain.grouped", {"n": 7})
    assert layer.receive(["daphne.response.x!"]) == ("daphne.response.x!abc", {"n": 7})
    sender.close()


def test_snapshot_reports_dead_letters_per_family(layer_on):
    """Issue 17 / 18: the Redis inspection counts each channel's dead-letter list."""
    from channels.layers.inspect import snapshot

    layer = layer_on(at_least_once=["alo.*"], max_deliveries=1)
    assert snapshot(layer).dead_letters == 0
    for name in ("alo.a", "alo.b", "alo.b"):
        layer.send(name, {})
        _, message = layer.receive([name])
        layer.nack(name, message[DELIVERY_KEY]["id"], 0)
    taken = snapshot(layer)
    assert taken.dead_letters == 3
    assert taken.dead_letter_families == {"alo.a": 1, "alo.b": 2}
    assert taken.families == {}  # leases, bells and dead letters are not queues


def test_ipc_and_local_layers_refuse(tmp_path):
    """Issue 17: layers without leases refuse the option, naming it."""
    from asgi_ipc import IPCChannelLayer
    from asgi_redis import RedisLocalChannelLayer

    with pytest.raises(ValueError, match="'at_least_once'"):
        IPCChannelLayer(prefix="alo-refuse", at_least_once=["x"])
    with pytest.raises(ValueError, match="'at_least_once'"):
        RedisLocalChannelLayer(at_least_once=["x"])


def test_ack_later_rides_with_the_next_receive(layer_on):
    """ack_later sends nothing by itself; the next receive (or flush_acks) carries it."""
    layer = layer_on(**ALO)
    layer.send("alo.later", {"n": 1})
    channel, message = layer.receive(["alo.later"])
    lease_key = "t-func:{alo.later}:lease"
    client = layer.connection(0)
    layer.ack_later(channel, message[DELIVERY_KEY]["id"])
    assert client.zcard(lease_key) == 1
    assert layer.receive(["alo.later"]) == (None, None)
    assert client.zcard(lease_key) == 0
    layer.send("alo.later", {"n": 2})
    channel, message = layer.receive(["alo.later"])
    layer.ack_later(channel, message[DELIVERY_KEY]["id"])
    layer.flush_acks()
    assert client.zcard(lease_key) == 0


def test_replies_and_ack_ride_with_the_next_lease(layer_on):
    """One shard: the replies' SEND_MANY and the LEASE (carrying the previous ack) go
    out in one pipeline; the replies are stored, the ack applied, the next leased."""
    layer = layer_on(**ALO)
    layer.send("alo.pipe", {"n": 1})
    layer.send("alo.pipe", {"n": 2})
    channel, message = layer.receive(["alo.pipe", "plain.pipe"])
    layer.ack_later(channel, message[DELIVERY_KEY]["id"])
    outcomes, (channel, second) = layer.send_many_then_receive(
        [("reply.pipe", {"r": 1})], ["alo.pipe", "plain.pipe"]
    )
    assert outcomes == [None]
    assert (channel, second["n"], second[DELIVERY_KEY]["count"]) == ("alo.pipe", 2, 1)
    assert layer.connection(0).zcard("t-func:{alo.pipe}:lease") == 1  # only the second
    assert layer.receive(["reply.pipe"]) == ("reply.pipe", {"r": 1})
    layer.send("plain.pipe", {"p": 1})
    outcomes, received = layer.send_many_then_receive([("reply.pipe", {"r": 2})], ["plain.pipe"])
    assert (outcomes, received) == ([None], ("plain.pipe", {"p": 1}))


def test_sentinel_layer_takes_the_options():
    """The Sentinel layer passes the options to the same collaborators (built without
    connecting, L-22)."""
    from asgi_redis import RedisSentinelChannelLayer

    layer = RedisSentinelChannelLayer(services=["mymaster"], **ALO)
    assert "at_least_once" in layer.extensions
    assert layer.delivery.applies("alo.x") and not layer.delivery.applies("other")
