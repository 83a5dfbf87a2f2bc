"""`RedisChannelLayer.socket_receive`: a receive an event loop drives from a socket.

daphne's reactor reads its replies this way (issue 9); the entries must come out as the
blocking `receive` gives them (A-20, A-27, A-93) and failures must name the shard
(L-62.1) without hiding what was already read.
"""

from __future__ import annotations

import contextlib
import select
import time
from collections.abc import Iterator
from typing import Any

import pytest
import redis

from asgi_redis import RedisChannelLayer
from asgi_redis.socket_receive import SocketReceiveUnsupported

pytestmark = pytest.mark.redis

PREFIX = "daphne.response.sock!"


@contextlib.contextmanager
def receiving(layer: RedisChannelLayer) -> Iterator[Any]:
    """A `socket_receive` on `PREFIX`, closed afterwards."""
    receive = layer.socket_receive([PREFIX])
    try:
        yield receive
    finally:
        receive.close()


def read_until(receive, count: int, timeout: float = 10) -> list[tuple[str, dict]]:
    """Poll the receive's socket and read until `count` messages came (bounded)."""
    poller = select.poll()
    poller.register(receive.fileno(), select.POLLIN)
    messages: list[tuple[str, dict]] = []
    give_up = time.monotonic() + timeout
    while len(messages) < count:
        remaining = give_up - time.monotonic()
        assert remaining > 0, f"only {len(messages)} of {count} messages arrived"
        if poller.poll(remaining * 1000):
            messages += receive.read()
    return messages


def test_messages_sent_while_it_waits_arrive_in_order(layer_on):
    """A-20: every reply on the prefix, in the order sent, with its full name."""
    layer = layer_on()
    with receiving(layer) as receive:
        assert receive.read() == []  # nothing yet: never blocks
        for n in range(5):
            layer.send(f"{PREFIX}c{n % 2}", {"n": n})
        messages = read_until(receive, 5)
        assert [(name, m["n"]) for name, m in messages] == [
            (f"{PREFIX}c{n % 2}", n) for n in range(5)
        ]
        # The pop is sent again after each answer: later messages arrive too.
        layer.send(f"{PREFIX}late", {"n": 99})
        assert read_until(receive, 1) == [(f"{PREFIX}late", {"n": 99})]


def test_a_group_bundle_becomes_one_message_per_member(layer_on):
    """A-93: one group send to several members behind the prefix."""
    layer = layer_on()
    members = [f"{PREFIX}m{n}" for n in range(3)]
    for member in members:
        layer.group_add("sockets", member)
    with receiving(layer) as receive:
        layer.send_group("sockets", {"text": "hi"})
        messages = read_until(receive, 3)
        assert sorted(name for name, _ in messages) == members
        assert all(message == {"text": "hi"} for _, message in messages)
        messages[0][1]["text"] = "changed"  # each member has its own dict
        assert messages[1][1] == {"text": "hi"}


def test_a_bundle_with_nested_values_gives_each_member_its_own_copy(layer_on):
    """A-8, A-93: a bundle is decoded once and copied, but nested lists and dicts are
    not shared between members (issue 20)."""
    layer = layer_on()
    members = [f"{PREFIX}n{n}" for n in range(3)]
    for member in members:
        layer.group_add("nested", member)
    with receiving(layer) as receive:
        layer.send_group("nested", {"items": [1, 2], "meta": {"a": 1}, "text": "x"})
        messages = [message for _, message in read_until(receive, 3)]
        assert all(m == {"items": [1, 2], "meta": {"a": 1}, "text": "x"} for m in messages)
        messages[0]["items"].append(3)
        messages[0]["meta"]["b"] = 2
        assert messages[1] == messages[2] == {"items": [1, 2], "meta": {"a": 1}, "text": "x"}


def test_expired_entries_are_dropped(layer_on):
    """A-27: an entry past its deadline is never handed out."""
    layer = layer_on(expiry=1)
    layer.send(f"{PREFIX}old", {"n": 1})
    time.sleep(1.2)  # the message's lifetime, not synchronisation
    with receiving(layer) as receive:
        layer.send(f"{PREFIX}new", {"n": 2})
        assert read_until(receive, 1) == [(f"{PREFIX}new", {"n": 2})]


def test_the_shard_clock_is_measured_when_stale(layer_on):
    """Entries are checked against the shard's clock: a stale offset is refreshed by a
    TIME sent with the pop."""
    layer = layer_on()
    shard = layer._shards[0]
    shard.clock_checked = float("-inf")
    with receiving(layer) as receive:
        layer.send(f"{PREFIX}x", {"n": 1})
        assert read_until(receive, 1) == [(f"{PREFIX}x", {"n": 1})]
        assert shard.clock_checked > time.monotonic() - 60


def test_names_on_several_shards_are_refused(layer_on):
    layer = layer_on(shards=2)
    names = [f"daphne.response.s{n}!" for n in range(20)]
    with pytest.raises(SocketReceiveUnsupported):
        layer.socket_receive(names)
    assert issubclass(SocketReceiveUnsupported, NotImplementedError)


def test_a_killed_server_is_a_connection_error_naming_the_shard(redis_server):
    """L-62.1; a new receive after the restart works again (L-62.2)."""
    layer = RedisChannelLayer(hosts=[redis_server.url])
    receive = layer.socket_receive([PREFIX])
    redis_server.kill()
    with pytest.raises(redis.ConnectionError, match="Redis shard 0"):
        read_until(receive, 1)
    receive.close()
    with pytest.raises(redis.ConnectionError):
        layer.socket_receive([PREFIX])  # still down: the connect fails
    redis_server.restart()
    with receiving(layer) as receive:
        layer.send(f"{PREFIX}back", {"n": 1})
        assert read_until(receive, 1) == [(f"{PREFIX}back", {"n": 1})]
