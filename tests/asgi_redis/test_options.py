"""Constructor options and their errors (L-2, L-5, L-18..L-22, L-37, L-38)."""

from __future__ import annotations

import subprocess
import sys

import pytest
import redis

import asgi_redis
from asgi_redis import RedisChannelLayer
from asgi_redis.core import UnsupportedRedis


def test_defaults() -> None:
    """L-18, L-21, L-1: defaults, class attributes and extensions."""
    layer = RedisChannelLayer()
    assert layer.hosts == ["redis://localhost:6379/0"]
    assert (layer.expiry, layer.group_expiry, layer.capacity) == (60, 86400, 100)
    assert (layer.prefix, layer.stats_prefix) == ("asgi:", "asgi-meta:")
    assert layer.channel_capacity == []
    assert layer.crypter is None
    assert (layer.blpop_timeout, layer.channel_statistics_expiry) == (5, 3600)
    assert (layer.global_statistics_expiry, layer.global_stats_key) == (86400, "#global#")
    assert layer.extensions == ["groups", "flush", "statistics", "twisted", "asyncio"]
    assert layer.ring_size == 1


def test_version_and_str() -> None:
    """L-5"""
    assert isinstance(asgi_redis.__version__, str)
    assert str(RedisChannelLayer()) == "RedisChannelLayer(hosts=['redis://localhost:6379/0'])"


def test_hosts_forms() -> None:
    """L-19: URLs as is, (host, port) pairs as redis://host:port/0; [] means the default."""
    layer = RedisChannelLayer(
        hosts=["redis://:secret@10.0.0.1:6380/2", ("10.0.0.2", 6381), ["10.0.0.3", 6382]]
    )
    assert layer.hosts == [
        "redis://:secret@10.0.0.1:6380/2",
        "redis://10.0.0.2:6381/0",
        "redis://10.0.0.3:6382/0",
    ]
    assert layer.ring_size == 3
    first = layer.connection(0).connection_pool.connection_kwargs
    assert (first["host"], first["port"], first["db"], first["password"]) == (
        "10.0.0.1",
        6380,
        2,
        "secret",
    )
    assert RedisChannelLayer(hosts=[]).hosts == ["redis://localhost:6379/0"]


def test_connection_index() -> None:
    """L-22: connection(i) per shard, None for a random one, out of range is ValueError."""
    layer = RedisChannelLayer(hosts=[("h1", 1), ("h2", 2)])
    assert layer.connection(1).connection_pool.connection_kwargs["host"] == "h2"
    assert layer.connection(None) in (layer.connection(0), layer.connection(1))
    for bad in (2, -1, "0"):
        with pytest.raises(ValueError, match="only 2 shards"):
            layer.connection(bad)


def test_connection_kwargs_reach_clients() -> None:
    """L-18: connection_kwargs go to every client; redis-py's blind retries are off (L-62.3)."""
    layer = RedisChannelLayer(
        hosts=[("h1", 1), ("h2", 2)], connection_kwargs={"socket_connect_timeout": 2}
    )
    for index in range(2):
        kwargs = layer.connection(index).connection_pool.connection_kwargs
        assert kwargs["socket_connect_timeout"] == 2
        assert kwargs["retry"].get_retries() == 0


def test_connects_are_bounded_by_default() -> None:
    """L-62: an unreachable host that drops packets fails the connect within 5 s."""
    layer = RedisChannelLayer(hosts=[("h1", 1)])
    kwargs = layer.connection(0).connection_pool.connection_kwargs
    assert kwargs["socket_connect_timeout"] == 5.0


@pytest.mark.parametrize(
    ("options", "error", "text"),
    [
        ({"hosts": "redis://localhost"}, ValueError, "bare string"),
        ({"hosts": [("localhost",)]}, ValueError, "host, port"),
        ({"hosts": [6379]}, ValueError, "host, port"),
        ({"prefix": b"asgi:"}, TypeError, "prefix"),
        ({"stats_prefix": 1}, TypeError, "stats_prefix"),
        ({"connection_kwargs": {"socket_timeout": 1}}, ValueError, "at least 5"),
        ({"connection_kwargs": {"decode_responses": True}}, ValueError, "decode_responses"),
        ({"expiry": 1.5}, ValueError, "expiry"),
        ({"group_expiry": 2.0}, ValueError, "group_expiry"),
        ({"expiry": True}, ValueError, "expiry"),
        ({"capacity": 0}, ValueError, "capacity"),
        ({"symmetric_encryption_keys": "secret"}, ValueError, "list"),
        ({"host": "localhost"}, TypeError, "host"),
        ({"db": 0}, TypeError, "db"),
    ],
)
def test_constructor_errors(options, error, text) -> None:
    """L-2, L-19, L-20, L-38: bad options fail at construction, naming the option."""
    with pytest.raises(error, match=text):
        RedisChannelLayer(**options)


def test_socket_timeout_of_five_is_accepted() -> None:
    """L-20: 5 seconds is the smallest socket_timeout allowed."""
    layer = RedisChannelLayer(connection_kwargs={"socket_timeout": 5})
    assert layer.connection(0).connection_pool.connection_kwargs["socket_timeout"] == 5


def test_missing_cryptography() -> None:
    """L-38: encryption without the cryptography package is a ValueError at construction."""
    code = (
        "import sys; sys.modules['cryptography'] = None\n"
        "from asgi_redis import RedisChannelLayer\n"
        "RedisChannelLayer(symmetric_encryption_keys=['key'])\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=False
    )
    assert result.returncode == 1
    assert "ValueError: symmetric_encryption_keys needs the 'cryptography' package" in (
        result.stderr
    )


def test_unsupported_redis_is_an_exception() -> None:
    """L-28"""
    assert issubclass(UnsupportedRedis, Exception)
    assert asgi_redis.UnsupportedRedis is UnsupportedRedis


def test_construction_does_not_connect() -> None:
    """L-22, L-62.1: building a layer on an address nobody listens on succeeds."""
    layer = RedisChannelLayer(hosts=[("127.0.0.1", 1)])
    with pytest.raises(redis.ConnectionError, match="127.0.0.1:1"):
        layer.send("x", {})
