"""`asgi_ipc.inspect` on a real shared-memory store: depths, ages, groups (issue 18)."""

from __future__ import annotations

import time

import pytest

from asgi_ipc import IPCChannelLayer
from channels.layers.inspect import GROUP_SAMPLE, snapshot
from tests.asgi_ipc.helpers import remove_store, unique_prefix


@pytest.fixture
def prefix(request):
    name = unique_prefix(request.node.name[:20])
    yield name
    IPCChannelLayer(prefix=name).flush()
    remove_store(name)


def test_an_empty_layer(prefix) -> None:
    snap = snapshot(IPCChannelLayer(prefix=prefix))
    assert (snap.families, snap.group_count, snap.group_sizes, snap.drops) == ({}, 0, {}, {})
    assert prefix in snap.layer


def test_depth_and_oldest_age_move_with_sends_and_receives(prefix) -> None:
    layer = IPCChannelLayer(prefix=prefix)
    before = time.time()
    layer.send("http.request", {"n": 1})
    layer.send("http.request", {"n": 2})
    layer.send("websocket.send!abc", {})
    layer.send("websocket.send!def", {})
    snap = snapshot(layer)
    assert {family: stats.depth for family, stats in snap.families.items()} == {
        "http.request": 2,
        "websocket.send!": 2,
    }
    assert 0 <= snap.families["http.request"].oldest_age <= time.time() - before + 0.01
    # Another process's layer object on the same prefix sees the same store.
    assert snapshot(IPCChannelLayer(prefix=prefix)).depth == 4
    layer.receive(["http.request"])
    assert snapshot(layer).families["http.request"].depth == 1
    layer.receive(["http.request"])
    assert "http.request" not in snapshot(layer).families


def test_the_oldest_entry_gives_the_age(prefix) -> None:
    layer = IPCChannelLayer(prefix=prefix, expiry=60)
    layer.send("http.request", {})
    with layer._store().transaction() as db:  # backdate the entry by 30 s
        db.execute("UPDATE messages SET deadline = deadline - 30")
    layer.send("http.request", {})
    stats = snapshot(layer).families["http.request"]
    assert stats.depth == 2
    assert 30 <= stats.oldest_age < 35


def test_expired_entries_are_not_counted(prefix) -> None:
    layer = IPCChannelLayer(prefix=prefix, expiry=60)
    layer.send("http.request", {})
    with layer._store().transaction() as db:
        db.execute("UPDATE messages SET deadline = deadline - 61")
    assert snapshot(layer).families == {}


def test_groups_are_counted_and_sampled(prefix) -> None:
    layer = IPCChannelLayer(prefix=prefix)
    for n in range(GROUP_SAMPLE + 5):
        layer.group_add(f"room{n}", "websocket.send!a")
    layer.group_add("room3", "websocket.send!b")
    snap = snapshot(layer)
    assert snap.group_count == GROUP_SAMPLE + 5
    assert len(snap.group_sizes) == GROUP_SAMPLE
    assert next(iter(snap.group_sizes.items())) == ("room3", 2)
