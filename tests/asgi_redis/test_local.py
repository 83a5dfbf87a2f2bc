"""`RedisLocalChannelLayer` on a private Redis plus the local IPC layer (L-45..L-49, L-58)."""

from __future__ import annotations

import multiprocessing
import uuid
from collections.abc import Iterator

import pytest
import redis

from asgi_ipc import IPCChannelLayer
from asgi_redis import RedisChannelLayer, RedisLocalChannelLayer
from channels.layers import conformance
from tests.asgi_ipc import children
from tests.asgi_ipc.helpers import remove_store

SPAWN = multiprocessing.get_context("spawn")


def unique_prefix() -> str:
    return f"tl-{uuid.uuid4().hex[:10]}:"


@pytest.fixture(scope="class")
def local_class_layer(request, redis_servers_session) -> Iterator[None]:
    """L-58 "Redis local": one host, expiry=1, group_expiry=2, capacity=5, own prefix."""
    cls = request.cls
    prefix = unique_prefix()
    cls.channel_layer = RedisLocalChannelLayer(
        hosts=[redis_servers_session[0].url],
        prefix=prefix,
        stats_prefix=f"{prefix}meta:",
        expiry=1,
        group_expiry=2,
        capacity=5,
    )
    yield
    cls.channel_layer.flush()
    remove_store(cls.channel_layer.local_layer.prefix)


@pytest.fixture
def layer(redis_servers_session) -> Iterator[RedisLocalChannelLayer]:
    prefix = unique_prefix()
    built = RedisLocalChannelLayer(
        hosts=[redis_servers_session[0].url], prefix=prefix, stats_prefix=f"{prefix}meta:"
    )
    built.flush()
    yield built
    built.flush()
    remove_store(built.local_layer.prefix)


@pytest.mark.redis
@pytest.mark.usefixtures("local_class_layer")
class RedisLocalConformanceTests(conformance.ConformanceTestCase):
    """L-58: the whole suite; capacity_limit 5, one receive try."""

    expiry_delay = 1.1
    capacity_limit = 5

    def test_ipc_traffic_is_not_counted(self) -> None:
        """L-48"""
        layer = self.channel_layer
        layer.send("st_local", {"n": 1})
        self.assertEqual(layer.channel_statistics("st_local")["messages_count"], 0)
        self.assertEqual(layer.global_statistics()["messages_count"], 0)
        self.assertEqual(layer.receive(["st_local"]), ("st_local", {"n": 1}))


@pytest.mark.redis
def test_options_and_local_prefix(redis_servers_session) -> None:
    """L-45, L-46: defaults, Redis options as keywords, IPC prefix without colons."""
    url = redis_servers_session[0].url
    layer = RedisLocalChannelLayer(hosts=[url], stats_prefix="tl-meta:")
    assert (layer.expiry, layer.group_expiry, layer.capacity) == (60, 86400, 100)
    assert layer.prefix == "asgi:"
    local = layer.local_layer
    assert isinstance(local, IPCChannelLayer)
    assert local.prefix == "asgi"
    assert (local.expiry, local.group_expiry, local.capacity) == (60, 86400, 100)
    assert (local.message_memory, local.group_memory) == (104857600, 20971520)
    assert layer.extensions == RedisChannelLayer.extensions
    assert str(layer) == f"RedisLocalChannelLayer(hosts=[{url!r}])"

    name = uuid.uuid4().hex[:8]
    custom = RedisLocalChannelLayer(
        5, f"ns:{name}:", 7, 3, {"big": 9}, hosts=[url], connection_kwargs={"socket_timeout": 10}
    )
    remove_store(f"ns{name}")
    assert custom.local_layer.prefix == f"ns{name}"
    assert (custom.local_layer.expiry, custom.local_layer.group_expiry) == (5, 7)
    assert custom.local_layer.get_capacity("big") == 9
    assert custom.local_layer.capacity == 3
    with pytest.raises(TypeError):
        RedisLocalChannelLayer(hosts=[url], message_memory=10)


@pytest.mark.redis
def test_routing_of_send(layer, redis_servers_session) -> None:
    """L-47: normal names go to IPC, ?/! names to Redis."""
    client = redis.Redis.from_url(redis_servers_session[0].url)
    layer.send("route.normal", {"n": 1})
    single = layer.new_channel("route.single?")
    layer.send(single, {"n": 2})
    layer.send("route.proc!x", {"n": 3})
    redis_keys = {key.decode() for key in client.scan_iter(match=f"{layer.prefix}*")}
    assert not any("route.normal" in key for key in redis_keys)
    assert any(single in key for key in redis_keys)
    assert any("route.proc!" in key for key in redis_keys)
    # L-46: a standalone IPC layer with the colon-free prefix holds the normal message.
    assert IPCChannelLayer(prefix=layer.local_layer.prefix).receive(["route.normal"]) == (
        "route.normal",
        {"n": 1},
    )
    assert layer.receive(["route.proc!"]) == ("route.proc!x", {"n": 3})
    assert layer.receive([single]) == (single, {"n": 2})


@pytest.mark.redis
def test_receive_mixed_names(layer) -> None:
    """L-47: with both kinds, IPC is tried first, then Redis."""
    layer.send("mix.normal", {"from": "ipc"})
    layer.send("mix.proc!a", {"from": "redis"})
    first = layer.receive(["mix.normal", "mix.proc!"])
    second = layer.receive(["mix.normal", "mix.proc!"])
    assert first == ("mix.normal", {"from": "ipc"})
    assert second == ("mix.proc!a", {"from": "redis"})
    assert layer.receive(["mix.normal", "mix.proc!"]) == (None, None)


@pytest.mark.redis
def test_blocking_receive_of_remote_names(layer) -> None:
    """L-47: only ?/! names: Redis with block; a message already queued returns at once."""
    layer.send("blk.proc!a", {"n": 1})
    assert layer.receive(["blk.proc!"], block=True) == ("blk.proc!a", {"n": 1})


@pytest.mark.redis
def test_group_send_normal_members_go_through_ipc(layer, redis_servers_session) -> None:
    """L-48: groups in Redis; normal members get the message in this machine's IPC layer."""
    client = redis.Redis.from_url(redis_servers_session[0].url)
    layer.group_add("room", "grp.normal")
    layer.group_add("room", "grp.proc!a")
    layer.group_add("room", "grp.proc!b")
    assert sorted(layer.group_channels("room")) == ["grp.normal", "grp.proc!a", "grp.proc!b"]
    assert any(b"room" in key for key in client.scan_iter(match=f"{layer.prefix}*"))
    layer.send_group("room", {"text": "hi"})
    assert IPCChannelLayer(prefix=layer.local_layer.prefix).receive(["grp.normal"]) == (
        "grp.normal",
        {"text": "hi"},
    )
    got = sorted([layer.receive(["grp.proc!"]), layer.receive(["grp.proc!"])])
    assert got == [("grp.proc!a", {"text": "hi"}), ("grp.proc!b", {"text": "hi"})]


@pytest.mark.redis
def test_group_send_skips_full_local_member(layer, caplog) -> None:
    """A-40 with L-48: a full IPC member is skipped without raising; others still get it."""
    local = layer.local_layer
    for _ in range(local.capacity):
        layer.send("full.normal", {})
    layer.group_add("fullroom", "full.normal")
    layer.group_add("fullroom", "free.normal")
    layer.send_group("fullroom", {"n": 1})
    assert layer.receive(["free.normal"]) == ("free.normal", {"n": 1})
    assert "full.normal" in caplog.text


@pytest.mark.redis
def test_flush_empties_both(layer) -> None:
    """L-47: flush clears the IPC and the Redis side."""
    layer.send("fl.normal", {})
    layer.send("fl.proc!a", {})
    layer.group_add("flg", "fl.normal")
    layer.flush()
    assert layer.receive(["fl.normal", "fl.proc!"]) == (None, None)
    assert layer.group_channels("flg") == []


@pytest.mark.redis
def test_normal_channel_between_processes(layer) -> None:
    """L-46, L-49: a worker process on this machine gets what another process sent."""
    process = SPAWN.Process(
        target=children.send_all,
        args=(layer.local_layer.prefix, "xproc.normal", 1, 5, {}),
        daemon=True,
    )
    process.start()
    process.join(60)
    assert process.exitcode == 0
    got = [layer.receive(["xproc.normal"], block=True) for _ in range(5)]
    assert [message["seq"] for _, message in got] == list(range(5))
