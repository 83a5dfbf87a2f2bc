"""Placement over several shards (L-24..L-26), checked on real servers."""

from __future__ import annotations

import pytest

from asgi_redis.sharding import consistent_hash

pytestmark = pytest.mark.redis


def test_hash_is_stable_and_in_range() -> None:
    """L-24: deterministic, 0..n-1, everything on shard 0 with one host."""
    names = [f"chan{index}" for index in range(2000)]
    for size in (1, 2, 3, 5):
        placed = [consistent_hash(name, size) for name in names]
        assert placed == [consistent_hash(name, size) for name in names]
        assert set(placed) == set(range(size))
    assert consistent_hash("daphne.response.abc!", 1) == 0


def test_adding_a_shard_moves_few_names() -> None:
    """L-24 (improved): growing 3 -> 4 shards moves about a quarter of the names, never
    between old shards (1.x CRC32 ranges moved most names)."""
    names = [f"websocket.send.{index}!" for index in range(4000)]
    moved = [name for name in names if consistent_hash(name, 3) != consistent_hash(name, 4)]
    assert all(consistent_hash(name, 4) == 3 for name in moved)
    assert len(moved) < len(names) * 0.3


def test_names_live_on_their_hashed_shard(layer_on) -> None:
    """L-25: P!L on hash(P!), name?x on hash(name?x), groups on hash(group)."""
    layer = layer_on(shards=3)
    layer.send("placed!one", {})
    layer.send("placed.reply?abc", {})
    layer.group_add("placed_group", "placed!one")
    expected = {
        layer._placement.list_key("placed!"): consistent_hash("placed!", 3),
        layer._placement.list_key("placed.reply?abc"): consistent_hash("placed.reply?abc", 3),
        layer._placement.group_key("placed_group"): consistent_hash("placed_group", 3),
    }
    for key, shard in expected.items():
        holders = [index for index in range(3) if layer.connection(index).exists(key)]
        assert holders == [shard], key


def test_every_instance_agrees(layer_on) -> None:
    """A-23: a second instance with the same hosts reads what the first sent."""
    sender = layer_on(shards=3)
    reader = layer_on(shards=3)
    for index in range(20):
        sender.send(f"agree!{index}", {"n": index})
        sender.send(f"agree.single?{index}", {"n": index})
    received = [reader.receive(["agree!"])[1]["n"] for _ in range(20)]
    assert received == list(range(20))  # FIFO under one P!
    for index in range(20):
        assert reader.receive([f"agree.single?{index}"]) == (
            f"agree.single?{index}",
            {"n": index},
        )


def test_normal_channel_spread_and_order(layer_on) -> None:
    """L-25, L-26, A-25: one sender keeps a normal channel in order on one shard;
    a blocking receive finds messages on whichever shard they are."""
    layers = [layer_on(shards=3) for _ in range(6)]
    key = layers[0]._placement.list_key("spread")
    for number, layer in enumerate(layers):
        before = [layer.connection(i).llen(key) for i in range(3)]
        layer.send("spread", {"n": number})
        layer.send("spread", {"n": number + 100})
        grown = [layer.connection(i).llen(key) - before[i] for i in range(3)]
        assert sorted(grown) == [0, 0, 2]  # both on one shard
    reader = layers[0]
    got = [reader.receive(["spread"], block=True)[1]["n"] for _ in range(12)]
    assert sorted(got) == sorted([n for n in range(6)] + [n + 100 for n in range(6)])
    for number in range(6):
        assert got.index(number) < got.index(number + 100)
    assert reader.receive(["spread"], block=True) == (None, None)


def test_group_send_across_shards(layer_on) -> None:
    """A-44, A-93 over three shards: every kind of member gets one copy."""
    layer = layer_on(shards=3)
    members = ["gx.normal", "gx.single?abc", "gx.a!1", "gx.a!2", "gx.b!1"]
    for member in members:
        layer.group_add("gx", member)
    layer.send_group("gx", {"v": 1})
    assert layer.receive(["gx.normal"], block=True) == ("gx.normal", {"v": 1})
    assert layer.receive(["gx.single?abc"]) == ("gx.single?abc", {"v": 1})
    assert {layer.receive(["gx.a!"])[0] for _ in range(2)} == {"gx.a!1", "gx.a!2"}
    assert layer.receive(["gx.b!"]) == ("gx.b!1", {"v": 1})
    assert layer.channel_statistics("gx.a!")["messages_pending"] == 0
    assert layer.global_statistics()["messages_count"] == 5
