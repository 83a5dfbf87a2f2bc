"""`channels.layers.inspect` on the in-memory layer: depths, ages, groups, drops (issue 18)."""

from __future__ import annotations

import time

import pytest

from channels.layers.inmemory import ChannelLayer
from channels.layers.inspect import (
    GROUP_SAMPLE,
    FamilyStats,
    LayerSnapshot,
    UninspectableLayer,
    describe,
    group_summary,
    snapshot,
    summarize,
)


def test_an_empty_layer() -> None:
    snap = snapshot(ChannelLayer())
    assert snap.families == {}
    assert (snap.depth, snap.oldest_age, snap.group_count, snap.group_sizes) == (0, 0.0, 0, {})
    assert snap.drops == {"channel_full": 0}
    assert snap.dead_letters is None
    assert snap.layer == "ChannelLayer()"


def test_depth_and_oldest_age_follow_sends_and_receives() -> None:
    layer = ChannelLayer(capacity=5)
    layer.send("http.request", {"n": 1})
    first_sent = time.monotonic()
    layer.send("http.request", {"n": 2})
    layer.send("websocket.send!abc", {"text": "a"})
    layer.send("websocket.send!def", {"text": "b"})
    layer.send("websocket.send!def", {"text": "c"})
    snap = snapshot(layer)
    assert snap.families["http.request"] == FamilyStats(
        "http.request", 2, snap.families["http.request"].oldest_age, 1
    )
    assert 0 <= snap.families["http.request"].oldest_age <= time.monotonic() - first_sent + 0.01
    # Both P!L sends share one list, websocket.send!: three entries, one "channel".
    assert snap.families["websocket.send!"].depth == 3
    assert snap.families["websocket.send!"].channels == 1
    assert snap.depth == 5
    later = snapshot(layer)
    assert later.families["http.request"].oldest_age >= snap.families["http.request"].oldest_age
    layer.receive(["http.request"])
    layer.receive(["http.request"])
    after = snapshot(layer)
    assert "http.request" not in after.families
    assert after.depth == 3


def test_expired_entries_are_not_counted() -> None:
    layer = ChannelLayer(expiry=0.05)
    layer.send("http.request", {})
    deadline = time.monotonic() + 5
    while snapshot(layer).depth and time.monotonic() < deadline:
        time.sleep(0.01)  # waiting out the layer's own expiry, not synchronising threads
    assert snapshot(layer).depth == 0
    assert layer._queues  # the snapshot did not purge anything itself


def test_groups_are_counted_and_sampled_largest_first() -> None:
    layer = ChannelLayer()
    for n in range(3):
        layer.group_add("big", f"websocket.send!{n}")
    layer.group_add("small", "websocket.send!x")
    snap = snapshot(layer)
    assert snap.group_count == 2
    assert list(snap.group_sizes.items()) == [("big", 3), ("small", 1)]
    layer.group_discard("small", "websocket.send!x")
    assert snapshot(layer).group_count == 1


def test_group_sample_is_bounded() -> None:
    layer = ChannelLayer()
    for n in range(GROUP_SAMPLE + 20):
        layer.group_add(f"room{n}", "websocket.send!a")
    layer.group_add("room7", "websocket.send!b")
    snap = snapshot(layer)
    assert snap.group_count == GROUP_SAMPLE + 20
    assert len(snap.group_sizes) == GROUP_SAMPLE
    assert next(iter(snap.group_sizes.items())) == ("room7", 2)


def test_drops_come_from_the_layer_statistics() -> None:
    layer = ChannelLayer(capacity=1)
    layer.send("http.request", {})
    for _ in range(3):
        with pytest.raises(layer.ChannelFull):
            layer.send("http.request", {})
    snap = snapshot(layer)
    assert snap.drops == {"channel_full": 3}
    assert snap.statistics["messages_count"] == 1


def test_the_django_wrapper_is_unwrapped() -> None:
    class Wrapper:
        def __init__(self, layer: ChannelLayer) -> None:
            self.channel_layer = layer

    layer = ChannelLayer()
    layer.send("http.request", {})
    assert snapshot(Wrapper(layer)).depth == 1


def test_a_layer_snapshot_hook_wins_and_unknown_layers_raise() -> None:
    canned = LayerSnapshot("custom", {}, None, {}, {})

    class Custom:
        def layer_snapshot(self) -> LayerSnapshot:
            return canned

    assert snapshot(Custom()) is canned
    with pytest.raises(UninspectableLayer, match="layer_snapshot"):
        snapshot(object())


def test_summarize_and_group_summary() -> None:
    families = summarize(
        [
            ("daphne.response.AbCdEfGhIj!", 4, 1.5),
            ("daphne.response.ZyXwVuTsRq!", 2, 3.0),
            ("http.request", 0, 0.0),
        ]
    )
    assert families == {"daphne.response!": FamilyStats("daphne.response!", 6, 3.0, 2)}
    assert list(group_summary({"a": 1, "b": 5, "c": 5})) == ["b", "c", "a"]


def test_describe_hides_passwords() -> None:
    class Shown:
        def __str__(self) -> str:
            return "RedisChannelLayer(hosts=['redis://:s3cret@db:6379/0', 'redis://db2'])"

    assert describe(Shown()) == "RedisChannelLayer(hosts=['redis://***@db:6379/0', 'redis://db2'])"
