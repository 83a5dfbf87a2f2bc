"""Expired messages are counted (``expired_count``) and logged merged (issue 15 item 6, A-27, A-49).

Every path on which the layer discards an expired message is covered: the plain
pop (checked in Python), the Lua pop (stale clock offset), a full send trimming
the head, a ``P!`` bundle (one message per member), the prefetch buffer and the
socket receive. Expiry is 1 s (the shortest Redis TTL), so each test waits that
long for messages to expire: the behaviour under test is the passing of time.
"""

from __future__ import annotations

import logging
import time

import pytest

from asgi_redis import RedisChannelLayer

from .test_socket_receive import read_until

pytestmark = pytest.mark.redis

EXPIRED = 1.2  # seconds after which a message sent with expiry=1 has expired


def expired_lines(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [
        record.getMessage()
        for record in caplog.records
        if record.name == "asgi_redis" and "expired unread" in record.getMessage()
    ]


def measure_clock(layer: RedisChannelLayer) -> None:
    """A receive through the Lua pop: the shard's clock offset is fresh afterwards."""
    for shard in layer._shards:
        shard.clock_checked = float("-inf")
    assert layer.receive(["exp.clock"]) == (None, None)


def test_plain_pop_counts_and_logs_once(layer_on, caplog):
    """Issue 15 item 6: expired entries an LPOP found are counted per channel and
    globally, and one WARNING names the channel with the number."""
    layer = layer_on(expiry=1)
    measure_clock(layer)
    for n in range(3):
        layer.send("exp.plain", {"n": n})
    time.sleep(EXPIRED)
    with caplog.at_level(logging.WARNING, logger="asgi_redis"):
        assert layer.receive(["exp.plain"]) == (None, None)
    assert layer.channel_statistics("exp.plain")["expired_count"] == 3
    assert layer.global_statistics()["expired_count"] == 3
    lines = expired_lines(caplog)
    assert len(lines) == 1
    assert "3 messages on channel 'exp.plain' expired unread" in lines[0]


def test_lua_pop_counts(layer_on, caplog):
    """The Lua pop (clock offset stale) counts in the script and reports for the log."""
    layer = layer_on(expiry=1)
    layer.send("exp.lua", {})
    layer.send("exp.lua", {})
    time.sleep(EXPIRED)
    layer.send("exp.lua", {"live": True})
    layer._shards[0].clock_checked = float("-inf")  # forces the Lua pop
    with caplog.at_level(logging.WARNING, logger="asgi_redis"):
        assert layer.receive(["exp.lua"]) == ("exp.lua", {"live": True})
    assert layer.channel_statistics("exp.lua")["expired_count"] == 2
    assert layer.global_statistics()["expired_count"] == 2
    assert ["2 messages on channel 'exp.lua'" in line for line in expired_lines(caplog)] == [True]


def test_full_send_trim_counts(layer_on):
    """A send to a full channel trims expired entries in its script and counts them."""
    layer = layer_on(expiry=1, capacity=2)
    layer.send("exp.full", {})
    layer.send("exp.full", {})
    time.sleep(EXPIRED)
    layer.send("exp.full", {"n": 3})  # room made by trimming the two expired ones
    stats = layer.channel_statistics("exp.full")
    assert (stats["expired_count"], stats["channel_full_count"]) == (2, 0)
    assert layer.global_statistics()["expired_count"] == 2


def test_bundle_counts_every_member(layer_on):
    """A-93: a group send to two members behind one P! is one entry and two messages."""
    layer = layer_on(expiry=1)
    measure_clock(layer)
    layer.group_add("exp.g", "exp.p!a")
    layer.group_add("exp.g", "exp.p!b")
    layer.send_group("exp.g", {})
    time.sleep(EXPIRED)
    assert layer.receive(["exp.p!"]) == (None, None)
    assert layer.channel_statistics("exp.p!")["expired_count"] == 2


def test_prefetch_buffer_counts(layer_on):
    """Buffered P! messages that expire before they are handed out are counted too."""
    layer = layer_on(expiry=1)
    measure_clock(layer)
    for n in range(3):
        layer.send(f"exp.q!{n}", {"n": n})
    assert layer.receive(["exp.q!"])[1] == {"n": 0}  # the other two are buffered
    time.sleep(EXPIRED)
    assert layer.receive_buffered(["exp.q!"]) == (None, None)  # dropped: never a round trip
    assert layer.channel_statistics("exp.q!")["expired_count"] == 2


def test_socket_receive_counts_with_its_next_pop(layer_on):
    """daphne's socket receive counts what it dropped in front of its next pop."""
    layer = layer_on(expiry=1)
    measure_clock(layer)
    prefix = "daphne.response.sock!"
    layer.send(prefix + "a", {"n": 0})
    layer.send(prefix + "b", {"n": 1})
    time.sleep(EXPIRED)
    layer.send(prefix + "a", {"n": 2})
    receive = layer.socket_receive([prefix])
    try:
        assert read_until(receive, 1) == [(prefix + "a", {"n": 2})]
        layer.send(prefix + "b", {"n": 3})
        # This pop's reply follows the counts written with it.
        assert read_until(receive, 1) == [(prefix + "b", {"n": 3})]
    finally:
        receive.close()
    assert layer.channel_statistics(prefix)["expired_count"] == 2


def test_log_lines_are_merged_per_interval(layer_on, caplog):
    """One WARNING per channel per interval; the next line carries the merged count."""
    layer = layer_on(expiry=1)
    measure_clock(layer)
    expired = layer._shards[0].expired
    with caplog.at_level(logging.WARNING, logger="asgi_redis"):
        for _ in range(2):
            layer.send("exp.merge", {})
            layer.send("exp.merge", {})
        time.sleep(EXPIRED)
        assert layer.receive(["exp.merge"]) == (None, None)
        expired.counted("exp.merge", 5)  # more within the interval: no new line
        assert len(expired_lines(caplog)) == 1
        expired.interval = 0.0
        expired.counted("exp.merge", 1)
    lines = expired_lines(caplog)
    assert len(lines) == 2
    assert lines[1].startswith("6 messages on channel 'exp.merge'")
    assert layer.channel_statistics("exp.merge")["expired_count"] == 4


def test_no_warning_without_expiry(layer_on, caplog):
    """Normal operation prints no WARNING and counts nothing."""
    layer = layer_on()
    with caplog.at_level(logging.WARNING, logger="asgi_redis"):
        layer.send("exp.none", {})
        assert layer.receive(["exp.none"]) == ("exp.none", {})
    assert layer.channel_statistics("exp.none").get("expired_count", 0) == 0
    assert not caplog.records


def test_held_back_count_is_logged_by_a_timer(caplog):
    """Issue 15 items 3 and 6: a burst whose rest no later expiry follows is still
    logged, with its true count, when the interval ends (a timer, not the next drop)."""
    from asgi_redis.expiry import ExpiredMessages

    expired = ExpiredMessages(0)
    expired.interval = 0.2
    with caplog.at_level(logging.WARNING, logger="asgi_redis"):
        expired.counted("exp.burst", 1)
        expired.counted("exp.burst", 399)
        assert len(expired_lines(caplog)) == 1
        deadline = time.monotonic() + 10
        while len(expired_lines(caplog)) < 2 and time.monotonic() < deadline:
            time.sleep(0.02)  # the timer thread logs; nothing else to wait on
    lines = expired_lines(caplog)
    assert [line.split(" on channel")[0] for line in lines] == ["1 message", "399 messages"]


def test_a_normal_channel_list_outlives_its_entries_so_a_late_worker_counts_them(layer_on):
    """Issue 15 item 6: no receive for longer than expiry + 1 s (the workers were down)
    no longer lets the list expire with its messages uncounted: a normal channel's list
    lives on (15 minutes) and the first receive after counts what expired. A ``?`` (or ``!``)
    channel's list keeps the 1.x TTL of expiry + 1 s (L-23)."""
    layer = layer_on(expiry=1)
    measure_clock(layer)
    for n in range(4):
        layer.send("exp.late", {"n": n})
    reply = layer.new_channel("exp.reply?")
    layer.send(reply, {"n": 0})
    client = layer.connection(0)
    keys = {key.decode() for key in client.keys("*exp.late*")}
    assert keys and all(client.pttl(key) > 60_000 for key in keys)
    reply_keys = [key for key in client.keys("*exp.reply?*") if b"-meta" not in key]
    assert reply_keys and all(0 < client.pttl(key) <= 1000 + 1000 for key in reply_keys)
    time.sleep(2.3)  # past expiry + 1 s: the old list TTL would have removed the list
    assert layer.receive(["exp.late"]) == (None, None)
    assert layer.channel_statistics("exp.late")["expired_count"] == 4
