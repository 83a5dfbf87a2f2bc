"""Redis out of memory raises `asgi_redis.LayerOutOfMemory` (issue 15 item 9, L-28).

A private redis-server with ``--maxmemory 1mb --maxmemory-policy noeviction`` is filled
until it refuses writes; then every way of sending must report the refusal with the
layer's class, which is still a `redis.ResponseError` (existing catches work) and a
`LayerUnavailable` (what a server maps to 503), and must store nothing. Receives keep
working: they are what frees memory.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import redis

from asgi_redis import LayerOutOfMemory, LayerUnavailable, RedisChannelLayer
from support.redis_harness import RedisServer

from .test_socket_send import Outcomes, drive

pytestmark = pytest.mark.redis


@pytest.fixture
def full_server() -> Iterator[RedisServer]:
    """A Redis at its maxmemory, refusing every write (noeviction)."""
    with RedisServer(
        extra_args=["--maxmemory", "1mb", "--maxmemory-policy", "noeviction"]
    ) as server:
        client = redis.Redis.from_url(server.url)
        with pytest.raises(redis.exceptions.OutOfMemoryError):
            for n in range(100_000):  # bounded: 1 MiB fills long before
                client.set(f"filler:{n}", b"x" * 1000)
        client.close()
        yield server


def assert_out_of_memory(error: BaseException, server: RedisServer) -> None:
    assert isinstance(error, LayerOutOfMemory)
    assert isinstance(error, redis.ResponseError)
    assert isinstance(error, LayerUnavailable)
    assert error.layer_unavailable is True
    assert f"127.0.0.1:{server.port}" in str(error)
    assert "out of memory" in str(error)


def test_send_raises_layer_out_of_memory(full_server):
    layer = RedisChannelLayer(hosts=[full_server.url])
    with pytest.raises(LayerOutOfMemory) as caught:
        layer.send("oom.send", {"n": 1})
    assert_out_of_memory(caught.value, full_server)
    with pytest.raises(redis.ResponseError):  # existing catches still work
        layer.send("oom.send", {"n": 2})
    assert layer.receive(["oom.send"]) == (None, None)  # nothing stored; receive works
    layer.close()


def test_send_many_reports_it_per_message(full_server):
    layer = RedisChannelLayer(hosts=[full_server.url])
    outcomes = layer.send_many([("oom.a", {}), ("oom.b", {})])
    assert len(outcomes) == 2
    for outcome in outcomes:
        assert_out_of_memory(outcome, full_server)
    outcomes, received = layer.send_many_then_receive([("oom.a", {})], ["oom.a"])
    assert_out_of_memory(outcomes[0], full_server)
    assert received == (None, None)
    layer.close()


def test_group_send_raises_it(full_server):
    layer = RedisChannelLayer(hosts=[full_server.url])
    with pytest.raises(LayerOutOfMemory):
        layer.group_add("oom.g", "oom.member")
    # A group stored before memory ran out: lift the limit, add, put it back.
    client = redis.Redis.from_url(full_server.url)
    client.config_set("maxmemory", "0")
    layer.group_add("oom.g", "oom.member")
    client.config_set("maxmemory", "1mb")
    with pytest.raises(redis.exceptions.OutOfMemoryError):
        for n in range(100_000):  # bounded, as in the fixture
            client.set(f"refill:{n}", b"x" * 1000)
    with pytest.raises(LayerOutOfMemory) as caught:
        layer.send_group("oom.g", {"n": 1})
    assert_out_of_memory(caught.value, full_server)
    client.close()
    layer.close()


def test_socket_sender_reports_it(full_server):
    layer = RedisChannelLayer(hosts=[full_server.url])
    sender = layer.socket_sender()
    outcomes = Outcomes()
    drive(sender.submit([("oom.sock", {}), ("oom.sock", {})], outcomes))
    assert outcomes.results is not None and len(outcomes.results) == 2
    for outcome in outcomes.results:
        assert_out_of_memory(outcome, full_server)
    sender.close()
    layer.close()
