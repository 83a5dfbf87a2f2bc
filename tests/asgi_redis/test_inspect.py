"""`asgi_redis.inspect` on real Redis servers: depths, ages, groups, drops (issue 18)."""

from __future__ import annotations

import pytest

from asgi_redis import inspect as redis_inspect
from asgi_redis.entries import DEADLINE_DIGITS
from channels.layers.inspect import snapshot


def backdate_head(layer, storage: str, seconds: int, shard: int = 0) -> None:
    """Make the head entry of `storage` look `seconds` older (its deadline moves back)."""
    client = layer.connection(shard)
    key = f"{layer.prefix}{{{storage}}}"
    head = client.lindex(key, 0)
    deadline = int(head[:DEADLINE_DIGITS]) - seconds * 1000
    client.lset(key, 0, b"%013d" % deadline + head[DEADLINE_DIGITS:])


def test_an_empty_layer(layer_on) -> None:
    snap = snapshot(layer_on())
    assert (snap.families, snap.group_count, snap.group_sizes, snap.truncated) == (
        {},
        0,
        {},
        False,
    )
    assert snap.drops == {"channel_full": 0, "expired": 0}
    assert snap.dead_letters is None
    assert "RedisChannelLayer" in snap.layer


def test_depth_and_oldest_age_move_with_sends_and_receives(layer_on) -> None:
    layer = layer_on()
    layer.send("http.request", {"n": 1})
    layer.send("http.request", {"n": 2})
    layer.send("websocket.send!abc", {"text": "a"})
    layer.send("daphne.response.QwErTyUiOp!x1", {"text": "b"})
    layer.send("daphne.response.AsDfGhJkLz!x2", {"text": "c"})
    snap = snapshot(layer)
    assert {family: stats.depth for family, stats in snap.families.items()} == {
        "daphne.response!": 2,
        "http.request": 2,
        "websocket.send!": 1,
    }
    assert snap.families["daphne.response!"].channels == 2
    assert 0 <= snap.families["http.request"].oldest_age < 5

    backdate_head(layer, "http.request", 30)
    aged = snapshot(layer).families["http.request"]
    assert 30 <= aged.oldest_age < 35

    channel, message = layer.receive(["http.request"])
    assert (channel, message) == ("http.request", {"n": 1})
    after = snapshot(layer).families["http.request"]
    assert after.depth == 1
    assert after.oldest_age < 5
    layer.receive(["http.request"])
    assert "http.request" not in snapshot(layer).families


def test_unpopped_expired_entries_show_their_age(layer_on) -> None:
    layer = layer_on(expiry=10)
    layer.send("http.request", {})
    backdate_head(layer, "http.request", 60)
    stats = snapshot(layer).families["http.request"]
    assert stats.depth == 1
    assert stats.oldest_age > layer.expiry  # nobody reads this channel


def test_groups_are_counted_and_sampled(layer_on) -> None:
    layer = layer_on()
    for n in range(3):
        layer.group_add("room", f"websocket.send!m{n}")
    layer.group_add("lobby", "websocket.send!m0")
    snap = snapshot(layer)
    assert snap.group_count == 2
    assert list(snap.group_sizes.items()) == [("room", 3), ("lobby", 1)]
    layer.group_discard("lobby", "websocket.send!m0")
    snap = snapshot(layer)
    assert snap.group_count == 1
    assert snap.group_sizes == {"room": 3}


def test_drops_come_from_the_layer_statistics(layer_on) -> None:
    layer = layer_on(capacity=1)
    layer.send("http.request", {})
    for _ in range(2):
        with pytest.raises(layer.ChannelFull):
            layer.send("http.request", {})
    snap = snapshot(layer)
    assert snap.drops["channel_full"] == 2
    assert snap.statistics["messages_count"] == 1


def test_every_shard_is_read(layer_on) -> None:
    layer = layer_on(shards=3)
    names = [f"chat.room{n}" for n in range(12)]
    for name in names:
        layer.send(name, {})
    for n in range(6):
        layer.group_add(f"group{n}", "websocket.send!a")
    snap = snapshot(layer)
    assert snap.depth == 12
    assert set(snap.families) == set(names)
    assert snap.group_count == 6
    shards_used = {
        index
        for index in range(3)
        if any(layer.connection(index).scan_iter(match=f"{layer.prefix}*"))
    }
    assert len(shards_used) > 1


def test_other_keys_under_the_prefix_are_ignored(layer_on) -> None:
    layer = layer_on()
    client = layer.connection(0)
    client.set(f"{layer.prefix}:announce-ish", b"x")
    client.hset(f"{layer.prefix}:announce", "k", "v")
    layer.send("http.request", {})
    assert set(snapshot(layer).families) == {"http.request"}


def test_a_big_keyspace_is_read_up_to_the_bound(layer_on, monkeypatch) -> None:
    layer = layer_on()
    for n in range(30):
        layer.send(f"chat.c{n}", {})
    monkeypatch.setattr(redis_inspect, "MAX_KEYS", 10)
    monkeypatch.setattr(redis_inspect, "SCAN_COUNT", 5)
    snap = snapshot(layer)
    assert snap.truncated
    assert 10 <= snap.depth < 30


def test_redis_local_layer_adds_its_machine_local_channels(redis_servers_session) -> None:
    """RedisLocalChannelLayer: normal names in IPC, the rest in Redis; one view of both."""
    from asgi_redis import RedisLocalChannelLayer
    from tests.asgi_ipc.helpers import remove_store, unique_prefix

    prefix = unique_prefix("rlocal")
    layer = RedisLocalChannelLayer(hosts=[redis_servers_session[0].url], prefix=f"{prefix}:")
    try:
        layer.send("http.request", {})
        layer.send("http.request", {})
        layer.send("websocket.send!abc", {})
        snap = snapshot(layer)
        assert {family: stats.depth for family, stats in snap.families.items()} == {
            "http.request": 2,
            "websocket.send!": 1,
        }
    finally:
        layer.flush()
        remove_store(prefix)
