"""RedisClusterChannelLayer (issue 19 item 1): conformance on a real 3-master /
3-replica Redis Cluster, failover and resharding with the layer in use."""

from __future__ import annotations

import threading
import time

import pytest

from asgi_redis import RedisClusterChannelLayer
from asgi_redis.slots import name_slot
from channels.layers import conformance
from support.redis_harness import RedisCluster, redis_server_path
from tests.asgi_redis.test_conformance import RedisExtraChecks

pytestmark = pytest.mark.redis

_OPTIONS = {"expiry": 1, "group_expiry": 2, "capacity": 5}


def _cluster() -> RedisCluster:
    if redis_server_path() is None:
        pytest.skip("redis-server is not installed; .ci/run installs it")
    return RedisCluster()


@pytest.fixture(scope="module")
def module_cluster():
    with _cluster() as cluster:
        yield cluster


@pytest.fixture
def private_cluster():
    """A cluster of the test's own, for tests that kill or reshard nodes."""
    with _cluster() as cluster:
        yield cluster


@pytest.fixture(scope="class")
def cluster_layer(request, module_cluster):
    cls = request.cls
    options = dict(_OPTIONS, hosts=module_cluster.startup_nodes[:2], **cls.extra_options)
    options.setdefault("prefix", f"t-{cls.__name__}:")
    options.setdefault("stats_prefix", f"t-{cls.__name__}-meta:")
    cls.channel_layer = RedisClusterChannelLayer(**options)
    yield
    cls.channel_layer.flush()
    cls.channel_layer.close()


@pytest.mark.usefixtures("cluster_layer")
class ClusterTests(RedisExtraChecks, conformance.ConformanceTestCase):
    """L-58 on the cluster: every channel in one slot, so capacity is per channel."""

    expiry_delay = 1.1
    capacity_limit = 5
    extra_options: dict = {}

    def test_masters_are_the_ring(self) -> None:
        """ring_size counts the masters; str() names the startup nodes (L-5)."""
        layer = self.channel_layer
        self.assertEqual(layer.ring_size, 3)
        self.assertTrue(str(layer).startswith("RedisClusterChannelLayer(hosts=['redis://"))
        self.assertIn("statistics", layer.extensions)

    def test_blocking_receive_over_many_slots(self) -> None:
        """A-32: a blocking receive on names in many slots sees a message in any of them."""
        layer = self.channel_layer
        names = [f"many-{index}" for index in range(8)]
        self.assertGreater(len({name_slot(name) for name in names}), 4)
        layer.send(names[5], {"n": 5})
        self.assertEqual(layer.receive(names, block=True), (names[5], {"n": 5}))
        found: list = []
        waiter = threading.Thread(target=lambda: found.append(layer.receive(names, block=True)))
        waiter.start()
        layer.send(names[2], {"n": 2})
        waiter.join(10)
        self.assertEqual(found, [(names[2], {"n": 2})])

    def test_group_send_over_many_slots(self) -> None:
        """A-44, A-93: members in many slots and behind one P! all get the message."""
        layer = self.channel_layer
        members = [f"gm-{index}" for index in range(6)] + ["gd!a", "gd!b"]
        for member in members:
            layer.group_add("spread", member)
        layer.send_group("spread", {"v": 1})
        got = set()
        for _ in range(len(members)):
            channel, message = layer.receive([*members[:6], "gd!"], block=True)
            self.assertEqual(message, {"v": 1})
            got.add(channel)
        self.assertEqual(got, set(members))


@pytest.mark.usefixtures("cluster_layer")
class ClusterEncryptedTests(conformance.ConformanceTestCase):
    """L-58: the encrypted variant on the cluster."""

    expiry_delay = 1.1
    capacity_limit = 5
    extra_options = {"symmetric_encryption_keys": ["test", "old"]}


def test_constructor_checks() -> None:
    """Options as for RedisChannelLayer; a database other than 0 is refused."""
    with pytest.raises(ValueError):
        RedisClusterChannelLayer(hosts="redis://127.0.0.1:7000")
    with pytest.raises(ValueError):
        RedisClusterChannelLayer(hosts=["redis://127.0.0.1:7000/3"])
    with pytest.raises(TypeError):
        RedisClusterChannelLayer(hosts=[("127.0.0.1", 7000)], bogus=1)
    layer = RedisClusterChannelLayer(hosts=[("127.0.0.1", 1)])  # connects nothing (L-62.1)
    assert layer.hosts == ["redis://127.0.0.1:1/0"]
