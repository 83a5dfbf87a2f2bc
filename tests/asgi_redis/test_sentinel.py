"""RedisSentinelChannelLayer (L-50..L-54): conformance through Sentinel and failover."""

from __future__ import annotations

import pytest
import redis

from asgi_redis import RedisSentinelChannelLayer
from channels.layers import conformance
from support.redis_harness import SentinelCluster, redis_server_path
from tests.asgi_redis.test_conformance import RedisExtraChecks

pytestmark = pytest.mark.redis

_OPTIONS = {"expiry": 1, "group_expiry": 2, "capacity": 5}


@pytest.fixture(scope="module")
def module_cluster():
    if redis_server_path() is None:
        pytest.skip("redis-server is not installed; .ci/run installs it")
    with SentinelCluster() as cluster:
        yield cluster


@pytest.fixture(scope="class")
def sentinel_layer(request, module_cluster):
    cls = request.cls
    options = dict(_OPTIONS, hosts=[module_cluster.sentinel_address], **cls.extra_options)
    if cls.with_services:
        options["services"] = [module_cluster.service]
    options.setdefault("prefix", f"t-{cls.__name__}:")
    cls.channel_layer = RedisSentinelChannelLayer(**options)
    yield
    cls.channel_layer.flush()


@pytest.mark.usefixtures("sentinel_layer")
class SentinelServicesTests(RedisExtraChecks, conformance.ConformanceTestCase):
    """L-58: Sentinel with `services`, lookup on every operation, plus the statistics
    values (L-41) and the Redis extra checks."""

    expiry_delay = 1.1
    capacity_limit = 5
    with_services = True
    extra_options: dict = {}


@pytest.mark.usefixtures("sentinel_layer")
class SentinelDiscoveredTests(conformance.ConformanceTestCase):
    """L-51, L-58: services discovered through SENTINEL MASTERS; cached masters (L-53)."""

    expiry_delay = 1.1
    capacity_limit = 5
    with_services = False
    extra_options = {"sentinel_refresh_interval": 60}

    def test_discovered_services(self) -> None:
        """L-51, L-54: the monitored service is found and shown by str()."""
        self.assertEqual(self.channel_layer.ring_size, 1)
        self.assertEqual(self.channel_layer.services, ["mymaster"])
        self.assertEqual(
            str(self.channel_layer), "RedisSentinelChannelLayer(services==['mymaster'])"
        )


@pytest.mark.usefixtures("sentinel_layer")
class SentinelEncryptedTests(conformance.ConformanceTestCase):
    """L-58: the encrypted variant through Sentinel."""

    expiry_delay = 1.1
    capacity_limit = 5
    with_services = True
    extra_options = {"symmetric_encryption_keys": ["test", "old"], "sentinel_refresh_interval": 60}


@pytest.mark.slow
@pytest.mark.parametrize("refresh", [0, 60])
def test_failover_is_followed(sentinel_cluster, refresh) -> None:
    """L-53: after the primary dies and Sentinel promotes the replica, the layer goes on."""
    layer = RedisSentinelChannelLayer(
        hosts=[sentinel_cluster.sentinel_address],
        services=[sentinel_cluster.service],
        sentinel_refresh_interval=refresh,
    )
    layer.send("before", {"n": 1})
    assert layer.receive(["before"]) == ("before", {"n": 1})
    layer.group_add("fo_group", "fo!a")
    old_port = layer.connection(0).connection_pool.connection_kwargs["port"]
    assert old_port == sentinel_cluster.primary.port

    new_port = sentinel_cluster.fail_over()

    # The first operation after the failover finds the new master by itself.
    layer.send("after", {"n": 2})
    assert layer.connection(0).connection_pool.connection_kwargs["port"] == new_port
    assert layer.receive(["after"]) == ("after", {"n": 2})
    layer.send("after!x", {"n": 3})
    assert layer.receive(["after!"], block=True) == ("after!x", {"n": 3})
    assert layer.global_statistics()["messages_count"] >= 2


def test_unreachable_sentinels_give_a_clear_error() -> None:
    """L-51, L-62.1: discovery with no Sentinel answering names every failure."""
    from support.redis_harness import free_port

    port = free_port()
    layer = RedisSentinelChannelLayer(hosts=[("127.0.0.1", port)])  # does not connect
    with pytest.raises(Exception) as info:
        layer.send("x", {})
    assert f"127.0.0.1:{port}" in str(info.value)
    import redis

    assert isinstance(info.value, redis.ConnectionError)


@pytest.mark.parametrize(
    ("options", "error"),
    [
        ({"hosts": "localhost"}, ValueError),
        ({"hosts": ["redis://localhost:26379"]}, ValueError),
        ({"services": "mymaster"}, ValueError),
        ({"services": [1]}, ValueError),
        ({"sentinel_refresh_interval": "5"}, ValueError),
        ({"bogus": 1}, TypeError),
    ],
)
def test_constructor_errors(options, error) -> None:
    """L-50, L-51, L-2"""
    with pytest.raises(error):
        RedisSentinelChannelLayer(**options)


def test_defaults_and_extensions() -> None:
    """L-50, L-52: default Sentinel address; the thread-based twisted extension is listed."""
    layer = RedisSentinelChannelLayer(services=["a", "b"])
    assert layer.hosts == [("localhost", 26379)]
    assert layer.ring_size == 2
    assert {"groups", "flush", "statistics", "twisted", "asyncio"} <= set(layer.extensions)
    assert str(layer) == "RedisSentinelChannelLayer(services==['a', 'b'])"


def test_readonly_master_is_looked_up_again(sentinel_cluster) -> None:
    """L-53: a cached "master" that answers READONLY (it became a replica) is dropped,
    Sentinel is asked again and the operation is retried once on the real master."""
    import time

    import redis

    layer = RedisSentinelChannelLayer(
        hosts=[sentinel_cluster.sentinel_address],
        services=[sentinel_cluster.service],
        sentinel_refresh_interval=60,
    )
    # Pretend an earlier lookup had named the replica, as happens when an old master
    # comes back demoted while a process still caches it.
    assert layer.ring_size == 1  # builds the shards
    layer._masters._by_service[sentinel_cluster.service] = redis.Redis(
        port=sentinel_cluster.replica.port
    )
    layer._masters._built_at = time.monotonic()
    layer.send("ro_test", {"n": 1})
    assert layer.connection(0).connection_pool.connection_kwargs["port"] == (
        sentinel_cluster.primary.port
    )
    assert layer.receive(["ro_test"]) == ("ro_test", {"n": 1})


def test_connection_kwargs_reach_sentinels_and_masters(module_cluster) -> None:
    """L-50: connection_kwargs go to master connections; socket_* also to Sentinels."""
    layer = RedisSentinelChannelLayer(
        hosts=[module_cluster.sentinel_address],
        services=[module_cluster.service],
        prefix="t-kwargs:",
        connection_kwargs={"socket_timeout": 7, "socket_connect_timeout": 3, "db": 2},
    )
    sentinel_kwargs = layer._sentinel.sentinels[0].connection_pool.connection_kwargs
    assert (sentinel_kwargs["socket_timeout"], sentinel_kwargs["socket_connect_timeout"]) == (7, 3)
    assert sentinel_kwargs.get("db", 0) == 0  # only socket_* options go to Sentinels
    master = layer.connection(0).connection_pool.connection_kwargs
    assert (master["socket_timeout"], master["db"], master["port"]) == (
        7,
        2,
        module_cluster.master_port(),
    )
    layer.send("kw", {"n": 1})
    assert layer.receive(["kw"]) == ("kw", {"n": 1})
    assert layer.connection(0).dbsize() >= 1  # stored in database 2
    layer.flush()


@pytest.mark.slow
def test_socket_receive_follows_a_failover(sentinel_cluster) -> None:
    """L-53 for daphne's reactor reader: the receive on the old master fails, a new one
    (daphne opens it after its retry delay) reads from the promoted replica."""
    from tests.asgi_redis.test_socket_receive import PREFIX, read_until, receiving

    layer = RedisSentinelChannelLayer(
        hosts=[sentinel_cluster.sentinel_address],
        services=[sentinel_cluster.service],
        sentinel_refresh_interval=60,
    )
    receive = layer.socket_receive([PREFIX])
    layer.send(f"{PREFIX}before", {"n": 1})
    assert read_until(receive, 1) == [(f"{PREFIX}before", {"n": 1})]

    sentinel_cluster.fail_over()

    with pytest.raises(redis.RedisError):
        read_until(receive, 1, timeout=30)
    receive.close()
    with receiving(layer) as receive:
        layer.send(f"{PREFIX}after", {"n": 2})
        assert read_until(receive, 1) == [(f"{PREFIX}after", {"n": 2})]
