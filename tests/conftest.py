"""Shared fixtures: private Redis servers and Sentinel clusters (L-59)."""

from __future__ import annotations

import logging
import signal
from collections.abc import Callable, Iterator

import pytest

from support.redis_harness import RedisServer, SentinelCluster, redis_server_path


def pytest_configure(config: pytest.Config) -> None:
    """Tests stop the servers they start with SIGINT, as a terminal's Ctrl-C does. A suite
    started in the background (``cmd &`` in a script) has SIGINT ignored, and every
    process it starts would inherit that and ignore them; take Ctrl-C as Python does."""
    if signal.getsignal(signal.SIGINT) == signal.SIG_IGN:
        signal.signal(signal.SIGINT, signal.default_int_handler)


def _require_redis() -> None:
    if redis_server_path() is None:
        pytest.skip("redis-server is not installed; .ci/run installs it")


@pytest.fixture(scope="session")
def redis_servers_session() -> Iterator[list[RedisServer]]:
    """Three servers shared by the whole run; tests flush what they use."""
    _require_redis()
    servers = [RedisServer().start() for _ in range(3)]
    yield servers
    for server in servers:
        server.close()


@pytest.fixture
def redis_server() -> Iterator[RedisServer]:
    """A private server for one test, free to stop, kill and restart."""
    _require_redis()
    with RedisServer() as server:
        yield server


@pytest.fixture
def redis_server_factory() -> Iterator[Callable[[], RedisServer]]:
    """Start as many private servers as a test needs; all stop afterwards."""
    _require_redis()
    started: list[RedisServer] = []

    def start() -> RedisServer:
        server = RedisServer().start()
        started.append(server)
        return server

    yield start
    for server in started:
        server.close()


@pytest.fixture
def sentinel_cluster() -> Iterator[SentinelCluster]:
    """A primary, a replica and a Sentinel watching them as ``mymaster``."""
    _require_redis()
    with SentinelCluster() as cluster:
        yield cluster


_ISOLATED_LOGGERS = (
    "django.channels",
    "daphne.cli",
    "daphne.server",
    "daphne.http_protocol",
    "daphne.ws_protocol",
    "asgi_redis",
    "asgi_ipc",
    "channels.layers",
)


@pytest.fixture(autouse=True)
def _restore_channels_loggers() -> Iterator[None]:
    """Undo `channels.log.setup_logger` (C-76) after each test.

    runworker/runserver tests call it in-process; it stops propagation on the daphne
    loggers, which would hide later tests' log records from ``caplog``.
    """
    loggers = [logging.getLogger(name) for name in _ISOLATED_LOGGERS]
    saved = [(lg.handlers[:], lg.level, lg.propagate) for lg in loggers]
    yield
    for lg, (handlers, level, propagate) in zip(loggers, saved, strict=True):
        lg.handlers[:] = handlers
        lg.setLevel(level)
        lg.propagate = propagate


@pytest.fixture(autouse=True)
def _close_redis_clients(monkeypatch) -> Iterator[None]:
    """Close every redis-py client a test built (its layers' included) when it ends.

    Left to the garbage collector, a socket may be finalised while still open in
    the middle of some later test, whose ``filterwarnings = error`` then fails it
    with an unrelated ResourceWarning. A client used again later reconnects.
    """
    import redis

    built: list[redis.Redis] = []
    original = redis.Redis.__init__

    def record(self, *args, **kwargs) -> None:
        original(self, *args, **kwargs)
        built.append(self)

    monkeypatch.setattr(redis.Redis, "__init__", record)
    yield
    from asgi_redis.wire import close_connections

    for client in built:
        close_connections(client)
