"""Capacity, expiry, groups, buffering and encryption on a real server (A-27, A-37..A-48,
L-27..L-38)."""

from __future__ import annotations

import asyncio
import re
import threading
import time

import pytest
import redis
from cryptography.fernet import InvalidToken

from channels.layers.base import InvalidChannelName

# The global counters that stay 0 without expiry or restarts (issue 15).
# expired_count and shard_restarts appear once not zero: the exact 1.x keys (L-39).
NO_EXPIRY: dict[str, int] = {}

pytestmark = pytest.mark.redis


def test_capacity_and_channel_full(layer_on) -> None:
    """A-37, A-38, A-39: default capacity, glob and regex patterns, P! counted as one."""
    layer = layer_on(
        capacity=2,
        channel_capacity={"big.*": 4, re.compile(r"reply\.[a-z]+!"): 3},
    )
    for _ in range(4):
        layer.send("big.one", {})
    with pytest.raises(layer.ChannelFull, match="big.one"):
        layer.send("big.one", {})
    for local in ("a", "b", "c"):
        layer.send(f"reply.x!{local}", {})
    with pytest.raises(layer.ChannelFull, match=re.escape("reply.x!")):
        layer.send("reply.x!d", {})
    layer.send("small", {})
    layer.send("small", {})
    with pytest.raises(layer.ChannelFull):
        layer.send("small", {})
    assert layer.receive(["small"]) == ("small", {})
    layer.send("small", {"room": "again"})  # a receive frees one unit


def test_expired_messages_are_skipped_and_free_capacity(layer_on) -> None:
    """A-27, L-33 (improved): expired entries are never delivered and, once the list is
    full, are trimmed so they do not hold capacity."""
    layer = layer_on(expiry=1, capacity=2)
    layer.send("exp", {"n": 1})
    layer.send("exp", {"n": 2})
    time.sleep(1.1)
    layer.send("exp", {"n": 3})  # full of expired entries: trimmed, then stored
    assert layer.channel_statistics("exp")["messages_pending"] == 1
    assert layer.receive(["exp"]) == ("exp", {"n": 3})
    layer.send("exp.b", {"n": 4})
    time.sleep(1.1)
    layer.send("exp.b", {"n": 5})
    assert layer.receive(["exp.b"], block=True) == ("exp.b", {"n": 5})


def test_blocking_receive_skips_expired_then_waits(layer_on) -> None:
    """A-27, A-32: a blocking receive drops the expired entry and is woken by a later send."""
    layer = layer_on(expiry=1)
    layer.send("late", {"n": 1})
    time.sleep(1.1)
    timer = threading.Timer(0.2, layer.send, ("late", {"n": 2}))
    timer.start()
    try:
        assert layer.receive(["late"], block=True) == ("late", {"n": 2})
    finally:
        timer.join(10)


def test_group_membership_expires_and_refreshes(layer_on) -> None:
    """A-41, A-45, L-34: members older than group_expiry vanish; re-adding refreshes."""
    layer = layer_on(group_expiry=2)
    layer.group_add("ge", "ge.old")
    layer.group_add("ge", "ge.kept")
    time.sleep(1.2)
    layer.group_add("ge", "ge.kept")
    time.sleep(1.2)
    assert layer.group_channels("ge") == ["ge.kept"]
    layer.send_group("ge", {"v": 1})
    assert layer.receive(["ge.old"]) == (None, None)
    assert layer.receive(["ge.kept"]) == ("ge.kept", {"v": 1})


def test_group_discard_and_unknown_group(layer_on) -> None:
    """A-42, A-43, A-44: discarding unknowns is silent; an unknown group is a no-op."""
    layer = layer_on()
    layer.group_discard("nobody", "nothing")
    assert list(layer.group_channels("nobody")) == []
    layer.send_group("nobody", {"v": 1})
    with pytest.raises(TypeError):
        layer.group_add("bad!group", "x")
    with pytest.raises(TypeError):
        layer.send_group("bad?group", {})


def test_send_group_refusals(layer_on) -> None:
    """A-44, A-92, A-6: send_group validates the message before storing anything."""
    layer = layer_on()
    layer.group_add("gr", "gr.member")
    with pytest.raises(layer.MessageTooLarge, match="over the limit"):
        layer.send_group("gr", {"body": b"x" * (2 * 1024 * 1024)})
    with pytest.raises(TypeError, match="set"):
        layer.send_group("gr", {"v": {1}})
    with pytest.raises(AssertionError):
        layer.send_group("gr", ["not", "a", "dict"])
    assert layer.receive(["gr.member"]) == (None, None)


def test_group_send_with_channel_capacity(layer_on) -> None:
    """A-38, A-40, A-93 on the read-then-push path used with channel_capacity."""
    layer = layer_on(capacity=5, channel_capacity={"cc.small": 1})
    for member in ("cc.small", "cc.big", "cc.p!1", "cc.p!2"):
        layer.group_add("cc", member)
    layer.send_group("cc", {"n": 1})
    layer.send_group("cc", {"n": 2})  # cc.small is full now: skipped and counted
    assert layer.receive(["cc.small"]) == ("cc.small", {"n": 1})
    assert layer.receive(["cc.small"]) == (None, None)
    assert [layer.receive(["cc.big"])[1]["n"] for _ in range(2)] == [1, 2]
    got = [layer.receive(["cc.p!"]) for _ in range(4)]
    assert sorted((name, msg["n"]) for name, msg in got) == [
        ("cc.p!1", 1),
        ("cc.p!1", 2),
        ("cc.p!2", 1),
        ("cc.p!2", 2),
    ]
    assert layer.channel_statistics("cc.small")["channel_full_count"] == 1
    assert layer.channel_statistics("cc.p!")["messages_count"] == 4


def test_full_member_is_logged(layer_on, caplog) -> None:
    """A-40: a skipped member is logged at WARNING naming group and channel."""
    layer = layer_on(capacity=1)
    layer.group_add("logged", "logged.member")
    layer.send_group("logged", {})
    with caplog.at_level("WARNING", logger="asgi_redis"):
        layer.send_group("logged", {})
    assert any(
        "logged" in record.getMessage() and "logged.member" in record.getMessage()
        for record in caplog.records
        if record.levelname == "WARNING"
    )


def test_prefetched_messages_expire_in_the_buffer(layer_on) -> None:
    """A-27 for the P! prefetch: entries taken early are still never handed out late."""
    layer = layer_on(expiry=1)
    for index in range(3):
        layer.send(f"pf!{index}", {"n": index})
    assert layer.receive(["pf!"]) == ("pf!0", {"n": 0})
    assert layer.channel_statistics("pf!")["messages_pending"] == 0  # taken into the buffer
    time.sleep(1.1)
    assert layer.receive(["pf!"]) == (None, None)


def test_receive_buffered_serves_only_what_was_popped(layer_on) -> None:
    """receive_buffered: a P! batch's rest comes from memory, and nothing else ever does.

    Counted on the server: draining the batch this way costs no command at all
    (daphne's reply reader relies on that, issue 9).
    """
    layer = layer_on()
    for index in range(3):
        layer.send(f"rb!{index}", {"n": index})
    assert layer.receive_buffered(["rb!"]) == (None, None)  # nothing popped yet
    assert layer.receive(["rb!"], block=True) == ("rb!0", {"n": 0})
    client = layer.connection(0)
    before = client.info("stats")["total_commands_processed"]
    assert layer.receive_buffered(["rb!"]) == ("rb!1", {"n": 1})
    assert layer.receive_buffered(["rb!"]) == ("rb!2", {"n": 2})
    assert layer.receive_buffered(["rb!"]) == (None, None)
    # Only the INFO call itself was processed in between.
    assert client.info("stats")["total_commands_processed"] == before + 1
    layer.send("rb!3", {"n": 3})
    assert layer.receive_buffered(["rb!"]) == (None, None)  # on the server, not popped
    assert layer.receive(["rb!"]) == ("rb!3", {"n": 3})
    with pytest.raises(InvalidChannelName):
        layer.receive_buffered(["bad name!"])


def test_close_drops_connections_and_the_layer_reconnects(layer_on, redis_server) -> None:
    """close(): the server sees this layer's connections go; the next call reconnects."""
    from asgi_redis import RedisChannelLayer

    layer = RedisChannelLayer(hosts=[redis_server.url])
    layer.send("closing", {"n": 1})
    with redis.Redis.from_url(redis_server.url) as watcher:

        def clients() -> int:
            return watcher.info("clients")["connected_clients"]

        def clients_become(count: int) -> bool:
            # The server notices a closed socket on its own schedule: bounded look.
            give_up = time.monotonic() + 5
            while clients() != count and time.monotonic() < give_up:
                time.sleep(0.01)
            return clients() == count

        with_layer = clients()
        layer.close()
        assert clients_become(with_layer - 1)
        assert layer.receive(["closing"]) == ("closing", {"n": 1})
        assert clients() == with_layer


def test_bundle_copies_are_independent(layer_on) -> None:
    """A-8: each member of a bundle gets its own object."""
    layer = layer_on()
    for local in ("a", "b"):
        layer.group_add("copies", f"cp!{local}")
    layer.send_group("copies", {"list": [1]})
    _, first = layer.receive(["cp!"])
    first["list"].append(2)
    assert layer.receive(["cp!"])[1] == {"list": [1]}


def test_flush_only_touches_its_namespace(layer_on) -> None:
    """A-48, L-42: flush deletes this prefix and stats prefix, nothing else."""
    layer = layer_on()
    other = layer_on(prefix="t-other:", stats_prefix="t-other-meta:")
    layer.send("mine", {})
    other.send("theirs", {})
    layer.flush()
    assert layer.receive(["mine"]) == (None, None)
    assert layer.global_statistics() == {"messages_count": 0, "channel_full_count": 0, **NO_EXPIRY}
    assert other.receive(["theirs"]) == ("theirs", {})
    assert other.global_statistics()["messages_count"] == 1


def test_receive_argument_errors(layer_on) -> None:
    """A-32, A-13: a bare str or a P!L name is refused; an empty list returns at once."""
    layer = layer_on()
    with pytest.raises(InvalidChannelName):
        layer.receive("abc")
    with pytest.raises(TypeError):
        layer.receive(["abc!def"])
    assert layer.receive([]) == (None, None)
    assert layer.receive([], block=True) == (None, None)


def test_new_channel_skips_names_in_use(layer_on) -> None:
    """A-34, L-32: 12 random letters; a name holding messages is never returned."""
    layer = layer_on()
    name = layer.new_channel("nc.test?")
    assert re.fullmatch(r"nc\.test\?[A-Za-z]{12}", name)
    layer.send(name, {})
    assert layer.channel_in_use(name)
    assert not layer.channel_in_use(name + "x")


def test_receive_async_waits_for_a_send(layer_on) -> None:
    """A-51, L-61: receive_async is woken by a later send and does not block the loop."""
    layer = layer_on()

    async def scenario():
        task = asyncio.ensure_future(layer.receive_async(["ra.wait"]))
        ticks = 0
        while not task.done() and ticks < 2:
            await asyncio.sleep(0.05)  # the loop keeps running while the receive waits
            ticks += 1
        layer.send("ra.wait", {"n": 1})
        return ticks, await asyncio.wait_for(task, 10)

    ticks, result = asyncio.run(scenario())
    assert ticks == 2
    assert result == ("ra.wait", {"n": 1})


def test_receive_twisted_reports_errors_on_the_deferred(layer_on) -> None:
    """A-50: a bad name arrives as a failed Deferred, not an exception in the reactor."""
    from twisted.internet.threads import blockingCallFromThread

    from channels.layers.conformance import run_reactor_in_thread

    layer = layer_on()
    reactor = run_reactor_in_thread()
    with pytest.raises(TypeError):
        blockingCallFromThread(reactor, layer.receive_twisted, ["bad!name"])
    layer.send("rt.ok", {"n": 1})
    assert blockingCallFromThread(reactor, layer.receive_twisted, ["rt.ok"]) == (
        "rt.ok",
        {"n": 1},
    )


def test_encryption_rotation_and_wrong_key(layer_on) -> None:
    """L-37, L-38: new key first still reads old-key messages; a stranger's key fails with
    InvalidToken and consumes the message; names stay in clear text."""
    old = layer_on(symmetric_encryption_keys=["old"])
    rotated = layer_on(symmetric_encryption_keys=["new", "old"])
    stranger = layer_on(symmetric_encryption_keys=["other"])
    old.send("enc.chan", {"secret": "blue"})
    assert rotated.receive(["enc.chan"]) == ("enc.chan", {"secret": "blue"})
    rotated.send("enc.chan", {"secret": "green"})
    raw = rotated.connection(0).lindex(rotated._placement.list_key("enc.chan"), 0)
    assert b"green" not in raw
    with pytest.raises(InvalidToken):
        stranger.receive(["enc.chan"])
    assert rotated.receive(["enc.chan"]) == (None, None)


def test_receive_twisted_and_async_serve_buffered_messages_in_order(layer_on) -> None:
    """A-19, A-50, A-51: messages taken in one P! batch come out of receive_twisted and
    receive_async in send order."""
    from twisted.internet.threads import blockingCallFromThread

    from channels.layers.conformance import run_reactor_in_thread

    layer = layer_on()
    for index in range(6):
        layer.send(f"buf!{index}", {"n": index})
    reactor = run_reactor_in_thread()
    got = [blockingCallFromThread(reactor, layer.receive_twisted, ["buf!"]) for _ in range(3)]

    async def rest():
        return [await layer.receive_async(["buf!"]) for _ in range(3)]

    got += asyncio.run(rest())
    assert got == [(f"buf!{index}", {"n": index}) for index in range(6)]


def test_deadlines_are_on_the_server_clock(layer_on) -> None:
    """A-27: the first send reads the server's TIME; later ones compute the deadline from
    the measured clock offset; both land at server time + expiry."""
    layer = layer_on(expiry=60)
    client = layer.connection(0)
    key = layer._placement.list_key("dl")
    for index in range(3):
        layer.send("dl", {"n": index})
    seconds, micros = client.time()
    server_now_ms = seconds * 1000 + micros // 1000
    for entry in client.lrange(key, 0, -1):
        deadline = int(entry[:13])
        assert abs(deadline - (server_now_ms + 60_000)) < 2_000
    assert layer._shards[0].clock_checked > float("-inf")


def test_statistics_hashes_expire_and_active_ones_are_refreshed(layer_on) -> None:
    """L-21, L-39..L-41: every statistics key gets a TTL when created (no key lives
    forever), and a send after the refresh interval resets the TTL of a channel that
    stays active; the counts are unaffected by the refresh schedule."""
    layer = layer_on()
    client = layer.connection(0)
    layer.send("counted", {})
    layer.send("counted", {})
    stats_keys = {key.decode() for key in client.scan_iter(match=f"{layer.stats_prefix}*")}
    assert stats_keys == {f"{layer.stats_prefix}{{counted}}", f"{layer.stats_prefix}#global#"}
    channel_key = f"{layer.stats_prefix}{{counted}}"
    global_key = f"{layer.stats_prefix}#global#"
    assert 0 < client.ttl(channel_key) <= layer.channel_statistics_expiry
    assert 0 < client.ttl(global_key) <= layer.global_statistics_expiry
    # Pretend both TTLs ran low; a send after the refresh interval resets them.
    client.expire(channel_key, 5)
    client.expire(global_key, 5)
    layer._sender._refresh_interval = 0
    layer.send("counted", {})
    assert client.ttl(channel_key) > 5
    assert client.ttl(global_key) > 5
    assert layer.channel_statistics("counted")["messages_count"] == 3
    assert layer.global_statistics() == {"messages_count": 3, "channel_full_count": 0, **NO_EXPIRY}


def test_full_channel_keeps_its_entries_and_order(layer_on) -> None:
    """A-37, L-28: a refused send leaves the full list exactly as it was (the entry
    pushed past capacity is taken back), and the next accepted send lands last."""
    layer = layer_on(capacity=2)
    layer.send("tight", {"n": 1})
    layer.send("tight", {"n": 2})
    with pytest.raises(layer.ChannelFull):
        layer.send("tight", {"n": 3})
    assert layer.channel_statistics("tight")["messages_pending"] == 2
    assert layer.receive(["tight"]) == ("tight", {"n": 1})
    layer.send("tight", {"n": 4})
    assert [layer.receive(["tight"])[1]["n"] for _ in range(2)] == [2, 4]
    assert layer.receive(["tight"]) == (None, None)
