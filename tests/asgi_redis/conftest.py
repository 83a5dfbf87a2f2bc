"""Fixtures for the Redis layer tests: layers on the shared or private servers (L-59)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from asgi_redis import RedisChannelLayer
from support.redis_harness import RedisCluster, redis_server_path


@pytest.fixture(scope="class")
def class_layer(request, redis_servers_session) -> Iterator[None]:
    """Give a unittest-style class its layer from ``layer_options(servers)`` (L-58)."""
    cls = request.cls
    options = cls.layer_options(redis_servers_session)
    # A prefix per class keeps classes on the shared servers apart.
    options.setdefault("prefix", f"t-{cls.__name__}:")
    options.setdefault("stats_prefix", f"t-{cls.__name__}-meta:")
    cls.channel_layer = RedisChannelLayer(**options)
    yield
    cls.channel_layer.flush()


@pytest.fixture
def layer_on(redis_servers_session):
    """Build a flushed layer on the first ``shards`` shared servers."""
    built = []

    def build(shards: int = 1, **options) -> RedisChannelLayer:
        options.setdefault("prefix", "t-func:")
        options.setdefault("stats_prefix", "t-func-meta:")
        hosts = [server.url for server in redis_servers_session[:shards]]
        layer = RedisChannelLayer(hosts=hosts, **options)
        layer.flush()
        built.append(layer)
        return layer

    yield build
    for layer in built:
        layer.flush()


def _new_cluster() -> RedisCluster:
    if redis_server_path() is None:
        pytest.skip("redis-server is not installed; .ci/run installs it")
    return RedisCluster()


@pytest.fixture(scope="module")
def redis_cluster() -> Iterator[RedisCluster]:
    """A Redis Cluster of 3 masters and 3 replicas shared by a module (issue 19)."""
    with _new_cluster() as cluster:
        yield cluster


@pytest.fixture
def private_redis_cluster() -> Iterator[RedisCluster]:
    """A Redis Cluster of the test's own, for tests that kill, promote or reshard."""
    with _new_cluster() as cluster:
        yield cluster
