"""`send_many`: several sends in one round trip per shard, one outcome per message
(A-19, A-25, A-37, A-40, L-27, L-28, L-39..L-41, L-47, L-62.3; issue 9)."""

from __future__ import annotations

import time

import pytest
import redis

from asgi_redis import RedisChannelLayer, RedisLocalChannelLayer
from channels.layers.base import InvalidChannelName, MessageTooLarge

# The global counters that stay 0 without expiry or restarts (issue 15).
# expired_count and shard_restarts appear once not zero: the exact 1.x keys (L-39).
NO_EXPIRY: dict[str, int] = {}

pytestmark = pytest.mark.redis


@pytest.mark.parametrize("shards", [1, 3])
def test_every_kind_of_channel_is_delivered_in_order(layer_on, shards) -> None:
    """A-19, A-25, L-27: normal, single-reader and process-specific channels, several
    messages each, come out in the order given; all results are None."""
    layer = layer_on(shards=shards)
    reply = layer.new_channel("reply?")
    pairs = [
        ("work", {"n": 1}),
        ("daphne.x!c1", {"n": 2}),
        (reply, {"n": 3}),
        ("work", {"n": 4}),
        ("daphne.x!c2", {"n": 5}),
    ]
    assert layer.send_many(pairs) == [None] * len(pairs)
    assert [layer.receive(["work"], block=True)[1]["n"] for _ in range(2)] == [1, 4]
    assert layer.receive([reply], block=True) == (reply, {"n": 3})
    got = [layer.receive(["daphne.x!"], block=True) for _ in range(2)]
    assert got == [("daphne.x!c1", {"n": 2}), ("daphne.x!c2", {"n": 5})]
    assert layer.global_statistics() == {"messages_count": 5, "channel_full_count": 0, **NO_EXPIRY}
    assert layer.channel_statistics("work")["messages_count"] == 2


def test_a_full_channel_is_reported_per_message_and_counted(layer_on) -> None:
    """A-37, L-28, L-41: past capacity the result is ChannelFull for that message only;
    refused messages count in channel_full_count, not messages_count."""
    layer = layer_on(capacity=2)
    results = layer.send_many(
        [("tight", {"n": 1}), ("tight", {"n": 2}), ("tight", {"n": 3}), ("roomy", {"n": 4})]
    )
    assert results[:2] == [None, None]
    assert isinstance(results[2], layer.ChannelFull)
    assert "tight" in str(results[2])
    assert results[3] is None
    assert layer.channel_statistics("tight")["channel_full_count"] == 1
    assert layer.global_statistics() == {"messages_count": 3, "channel_full_count": 1, **NO_EXPIRY}
    assert [layer.receive(["tight"])[1]["n"] for _ in range(2)] == [1, 2]


def test_bad_input_raises_before_anything_is_sent(layer_on) -> None:
    """A-31, A-92: an invalid name or an oversized message raises and nothing is sent."""
    layer = layer_on()
    with pytest.raises(InvalidChannelName):
        layer.send_many([("fine", {}), ("bad name", {})])
    with pytest.raises(MessageTooLarge):
        layer.send_many([("fine", {}), ("fine", {"body": b"x" * (2 * 1024 * 1024)})])
    assert layer.receive(["fine"]) == (None, None)
    assert layer.send_many([]) == []


def test_an_unreachable_shard_fails_only_its_own_messages(
    redis_servers_session, redis_server
) -> None:
    """L-62.3: messages for a shard that is down get its ConnectionError as their result;
    the other shard's messages are still delivered."""
    layer = RedisChannelLayer(
        hosts=[redis_servers_session[0].url, redis_server.url],
        prefix="t-many:",
        stats_prefix="t-many-meta:",
    )
    layer.flush()
    names = [f"p{index}!" for index in range(12)]
    down = {name for name in names if layer.consistent_hash(name) == 1}
    assert down and len(down) < len(names)
    redis_server.stop()
    try:
        results = layer.send_many([(f"{name}c", {"to": name}) for name in names])
        for name, result in zip(names, results, strict=True):
            if name in down:
                assert isinstance(result, redis.ConnectionError)
                assert str(redis_server.port) in str(result)
            else:
                assert result is None
                assert layer.receive([name]) == (f"{name}c", {"to": name})
    finally:
        redis_server.start()
        layer.flush()


def test_local_layer_sends_normal_channels_through_ipc(redis_servers_session) -> None:
    """L-47: in RedisLocalChannelLayer, send_many puts normal names in the local IPC
    layer and ?/! names in Redis, each result in its place."""
    layer = RedisLocalChannelLayer(
        hosts=[redis_servers_session[0].url],
        prefix="tmany:",
        stats_prefix="tmany-meta:",
        capacity=1,
    )
    layer.flush()
    try:
        results = layer.send_many(
            [("local.work", {"n": 1}), ("reply.d!c", {"n": 2}), ("local.work", {"n": 3})]
        )
        assert results[:2] == [None, None]
        assert isinstance(results[2], layer.ChannelFull)
        assert layer.local_layer.receive(["local.work"]) == ("local.work", {"n": 1})
        assert layer.receive(["reply.d!"], block=True) == ("reply.d!c", {"n": 2})
        assert layer.global_statistics()["messages_count"] == 1  # Redis traffic only (L-48)
    finally:
        layer.flush()


def test_local_layer_never_lets_a_later_message_overtake_a_full_one(redis_servers_session):
    """A-19, A-25: in RedisLocalChannelLayer, once a local channel came back full in a
    call, its later messages are refused too, even if a reader freed room meanwhile."""
    layer = RedisLocalChannelLayer(
        hosts=[redis_servers_session[0].url],
        prefix="tmany2:",
        stats_prefix="tmany2-meta:",
        capacity=1,
    )
    layer.flush()
    real_send = layer.local_layer.send

    def send_then_drain(channel, message):
        try:
            real_send(channel, message)
        except layer.ChannelFull:
            layer.local_layer.receive([channel])  # a reader frees the slot right after
            raise

    layer.local_layer.send = send_then_drain
    try:
        results = layer.send_many([("x", {"n": 1}), ("x", {"n": 2}), ("x", {"n": 3})])
        assert results[0] is None
        assert all(isinstance(result, layer.ChannelFull) for result in results[1:])
        assert layer.receive(["x"]) == (None, None)
    finally:
        layer.flush()


def test_local_layer_checks_every_pair_before_sending(redis_servers_session):
    """A-31, A-92: a bad local message raises before the Redis pairs are sent."""
    layer = RedisLocalChannelLayer(
        hosts=[redis_servers_session[0].url], prefix="tmany3:", stats_prefix="tmany3-meta:"
    )
    layer.flush()
    try:
        with pytest.raises(MessageTooLarge):
            layer.send_many(
                [("reply.d!c", {"n": 1}), ("local.work", {"body": b"x" * (2 * 1024 * 1024)})]
            )
        with pytest.raises(InvalidChannelName):
            layer.send_many([("reply.d!c", {"n": 1}), ("bad name", {})])
        assert layer.receive(["reply.d!"]) == (None, None)
    finally:
        layer.flush()


def test_send_many_then_receive_pipelines_without_a_blocking_receive_first(layer_on) -> None:
    """A-37: a caller that never blocks still gets the one-round-trip pipeline: it asks
    the server what it has (`features`) itself, once, before its first pipeline."""
    layer = layer_on()
    layer.send("pipe.warm", {})  # measures the shard's clock, as any first send does
    shard = layer._shards[0]
    assert shard.known_features is None  # a single-list LPOP never needed to ask
    outcomes, received = layer.send_many_then_receive([("pipe.a", {"n": 1})], ["pipe.a"])
    assert outcomes == [None]
    assert received == ("pipe.a", {"n": 1})
    assert shard.known_features is not None


def test_a_batch_counts_once_per_hash_and_stays_exact(layer_on) -> None:
    """Issue 20, L-39..L-41: ``SEND_MANY`` adds up a batch's counts and runs one HINCRBY
    per statistics hash and stat, yet every count read afterwards is exact, full and
    stored messages alike, per channel and globally."""
    layer = layer_on(capacity=3)
    client = layer.connection(0)
    layer.send("warm", {"n": 0})  # loads the scripts and measures the clock
    client.config_resetstat()
    results = layer.send_many(
        [("tally.a", {"n": n}) for n in range(5)] + [("tally.b", {"n": 9})] * 2
    )
    assert [result is None for result in results] == [True] * 3 + [False] * 2 + [True] * 2
    calls = client.info("commandstats")["cmdstat_hincrby"]["calls"]
    # tally.a: messages_count, channel_full_count; tally.b: messages_count; global: both.
    assert calls == 5
    assert layer.channel_statistics("tally.a")["messages_count"] == 3
    assert layer.channel_statistics("tally.a")["channel_full_count"] == 2
    assert layer.channel_statistics("tally.b")["messages_count"] == 2
    assert layer.global_statistics() == {"messages_count": 6, "channel_full_count": 2}
    hash_key = next(key for key in client.keys("*tally.a*") if b"meta" in key)
    assert 0 < client.ttl(hash_key) <= layer.channel_statistics_expiry


@pytest.mark.parametrize("at_least_once", [False, True])
def test_the_packed_send_many_is_the_scripts_own_packing(layer_on, at_least_once) -> None:
    """Issue 20: `Sender.packed_send_many` packs ``SEND_MANY`` from pieces kept per
    storage name and batch size; the bytes are those of `Script.packed` on
    `send_many_arguments` (same KEYS and ARGV), fresh clock or stale, one message or
    several, every kind of channel."""
    from asgi_redis import scripts
    from asgi_redis.wire import pack_argument

    options = {"at_least_once": ["pk.r*"]} if at_least_once else {}
    layer = layer_on(channel_capacity={"pk.c*": 7}, **options)
    sender = layer._sender
    shard = layer._shards[0]
    batch = [
        (0, "pk.a", "pk.a", b"\x81\xa1n\x01"),
        (1, "pk.b!x1", "pk.b!", b"y" * 300),
        (2, "pk.c?z", "pk.c?z", b""),
        (3, "pk.r1", "pk.r1", b"r"),
    ]
    for _, _, storage, _ in batch:
        sender.flags(storage)  # the statistics refresh is no longer due: '' both times
    for checked in (float("-inf"), time.monotonic()):
        shard.clock_checked = checked
        for size in (1, 2, 4):
            part = batch[:size]
            packed = sender.packed_send_many(shard, part)
            expected = scripts.SEND_MANY.packed(*sender.send_many_arguments(shard, part))
            # The deadline is read from the clock each time: compare it apart.
            assert len(packed) == len(expected)
            if checked > 0:
                marker = pack_argument(sender.expiry_ms) + b"$13\r\n"
                start = expected.index(marker) + len(marker)
                assert packed[start : start + 13].isdigit()
                packed = packed[:start] + expected[start : start + 13] + packed[start + 13 :]
            assert packed == expected
