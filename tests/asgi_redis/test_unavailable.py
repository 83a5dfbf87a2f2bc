"""A Redis that cannot be reached raises the layer's `Unavailable` (issue 16 item 5, L-62.1).

Every connection error the layer raises is both redis-py's own type (``except
redis.ConnectionError`` in 1.x code keeps working) and
`channels.layers.base.LayerUnavailable` (``layer.Unavailable``, a builtin
``ConnectionError``), whatever path met it: a command, a blocking pop, a send
batch, a socket receive, a Sentinel lookup. Real redis-servers, killed.
"""

from __future__ import annotations

import pickle
import signal
import time

import pytest
import redis
from redis.sentinel import MasterNotFoundError

from asgi_redis import RedisChannelLayer, RedisSentinelChannelLayer
from asgi_redis.errors import (
    LayerOutOfMemory,
    ShardConnectionError,
    ShardTimeoutError,
    unavailable,
)
from channels.layers.base import LayerUnavailable
from support.redis_harness import free_port

pytestmark = pytest.mark.redis


def assert_unavailable(error: BaseException, kind: type[BaseException], where: str) -> None:
    assert isinstance(error, LayerUnavailable), type(error).__mro__
    assert isinstance(error, kind), type(error).__mro__
    assert isinstance(error, ConnectionError)  # the builtin, through LayerUnavailable
    assert error.layer_unavailable is True  # type: ignore[attr-defined]
    assert where in str(error), str(error)


@pytest.fixture
def killed(redis_server):
    """A layer whose one server answered once, then was SIGKILLed."""
    layer = RedisChannelLayer(hosts=[redis_server.url])
    layer.send("warm", {"n": 0})  # connected: the failure below is a lost server
    redis_server.kill()
    yield layer, f":{redis_server.port}"
    layer.close()


def test_send_receive_and_groups_raise_the_dual_class(killed):
    layer, where = killed
    calls = [
        lambda: layer.send("a", {"n": 1}),
        lambda: layer.receive(["a", "b"]),
        lambda: layer.receive(["a"], block=True),
        lambda: layer.group_add("g", "a"),
        lambda: layer.send_group("g", {"n": 1}),
        lambda: layer.new_channel("a?"),
    ]
    for call in calls:
        with pytest.raises(layer.Unavailable) as caught:
            call()
        assert_unavailable(caught.value, redis.ConnectionError, where)
        assert not isinstance(caught.value.__cause__, LayerUnavailable)  # the original


def test_send_many_outcomes_are_the_dual_class(killed):
    layer, where = killed
    outcomes = layer.send_many([("a", {"n": 1}), ("b", {"n": 2})])
    assert len(outcomes) == 2
    for outcome in outcomes:
        assert_unavailable(outcome, redis.ConnectionError, where)


def test_socket_receive_raises_the_dual_class(killed):
    layer, where = killed
    with pytest.raises(LayerUnavailable) as caught:
        layer.socket_receive(["daphne.response.x!"])
    assert_unavailable(caught.value, redis.ConnectionError, where)


@pytest.mark.slow
def test_a_hung_server_raises_the_dual_timeout_class(redis_server):
    """SIGSTOP: the server accepts the bytes and never answers; after `socket_timeout`
    (at least 5 s, L-20) the send raises redis-py's TimeoutError that is `Unavailable`."""
    layer = RedisChannelLayer(hosts=[redis_server.url], connection_kwargs={"socket_timeout": 5})
    layer.send("warm", {"n": 0})
    redis_server.process.send_signal(signal.SIGSTOP)
    try:
        started = time.monotonic()
        with pytest.raises(layer.Unavailable) as caught:
            layer.send("a", {"n": 1})
        assert time.monotonic() - started < 15
    finally:
        redis_server.process.send_signal(signal.SIGCONT)
    assert type(caught.value) is ShardTimeoutError
    assert_unavailable(caught.value, redis.TimeoutError, f":{redis_server.port}")
    layer.send("a", {"n": 2})  # answers again once resumed
    layer.close()


def test_every_layer_class_declares_unavailable():
    for layer_class in (RedisChannelLayer, RedisSentinelChannelLayer):
        assert layer_class.Unavailable is LayerUnavailable
    assert issubclass(LayerOutOfMemory, LayerUnavailable)
    assert issubclass(LayerOutOfMemory, redis.ResponseError)


def test_sentinels_unreachable_raise_the_dual_class():
    """No Sentinel listens: discovery and a named service's lookup both raise it."""
    port = free_port()
    discovering = RedisSentinelChannelLayer(hosts=[("127.0.0.1", port)])
    with pytest.raises(LayerUnavailable) as caught:
        discovering.send("a", {"n": 1})
    assert_unavailable(caught.value, redis.ConnectionError, "No Sentinel")
    named = RedisSentinelChannelLayer(hosts=[("127.0.0.1", port)], services=["mymaster"])
    with pytest.raises(MasterNotFoundError) as caught:
        named.send("a", {"n": 1})
    assert_unavailable(caught.value, MasterNotFoundError, "mymaster")


@pytest.mark.parametrize(
    ("kind", "dual"),
    [
        (redis.ConnectionError, ShardConnectionError),
        (redis.TimeoutError, ShardTimeoutError),
        (redis.BusyLoadingError, None),
        (redis.ReadOnlyError, None),  # a Sentinel master demoted mid-call
    ],
)
def test_unavailable_keeps_the_redis_type_and_pickles(kind, dual):
    original = kind("Error 111 connecting")
    error = unavailable(original, "Redis shard 0 at h:1: Error 111 connecting")
    if dual is not None:
        assert type(error) is dual
    assert_unavailable(error, kind, "h:1")
    assert error.__cause__ is original
    assert unavailable(error, "again") is not error  # re-made, still the same class
    assert type(unavailable(error, "again")) is type(error)
    copy = pickle.loads(pickle.dumps(error))
    assert type(copy) is type(error) and copy.args == error.args
