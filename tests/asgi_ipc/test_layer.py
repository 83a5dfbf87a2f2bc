"""IPC layer options, memory bounds, capacity patterns and store recovery (L-55..L-57)."""

from __future__ import annotations

import logging
import os
import re
import sqlite3
import time

import pytest

import asgi_ipc
from asgi_ipc import IPCChannelLayer
from asgi_ipc.groups import MEMBERSHIP_SIZE
from asgi_ipc.store import store_directory
from tests.asgi_ipc.helpers import remove_store, unique_prefix


@pytest.fixture
def prefix(request):
    name = unique_prefix(request.node.name[:20])
    yield name
    IPCChannelLayer(prefix=name).flush()
    remove_store(name)


def make(prefix: str, **options) -> IPCChannelLayer:
    return IPCChannelLayer(prefix=prefix, **options)


# -- options (L-5, L-55) ------------------------------------------------------------


def test_defaults_version_and_str(prefix) -> None:
    """L-55, L-5, L-1"""
    layer = make(prefix)
    assert (layer.expiry, layer.group_expiry, layer.capacity) == (60, 86400, 100)
    assert (layer.message_memory, layer.group_memory) == (104857600, 20971520)
    assert layer.extensions == ["groups", "flush"]
    assert str(layer) == f"IPCChannelLayer(prefix={prefix})"
    assert str(IPCChannelLayer()) == "IPCChannelLayer(prefix=asgi)"
    assert isinstance(asgi_ipc.__version__, str) and asgi_ipc.__version__[0].isdigit()


def test_positional_options_in_1x_order(prefix) -> None:
    """L-55: prefix, expiry, group_expiry, capacity, channel_capacity, memories."""
    layer = IPCChannelLayer(prefix, 5, 10, 3, {"a": 1}, 10_000, 5_000)
    assert (layer.prefix, layer.expiry, layer.group_expiry, layer.capacity) == (prefix, 5, 10, 3)
    assert (layer.message_memory, layer.group_memory) == (10_000, 5_000)
    assert layer.get_capacity("a") == 1


def test_unknown_option_is_refused() -> None:
    """L-2"""
    with pytest.raises(TypeError):
        IPCChannelLayer(prefix="x", hosts=["redis://localhost"])


@pytest.mark.parametrize(
    ("options", "error", "text"),
    [
        ({"prefix": "a/b"}, ValueError, "prefix 'a/b' is invalid"),
        ({"prefix": ""}, ValueError, "is invalid"),
        ({"prefix": b"asgi"}, TypeError, "prefix must be a str"),
        ({"message_memory": 0}, ValueError, "message_memory must be a positive"),
        ({"group_memory": 1.5}, ValueError, "group_memory must be a positive"),
        ({"capacity": 0}, ValueError, "capacity"),
    ],
)
def test_bad_options_say_what_to_change(options, error, text) -> None:
    with pytest.raises(error, match=re.escape(text)):
        IPCChannelLayer(**options)


def test_float_expiry(prefix) -> None:
    """L-55: expiry may be a float number of seconds; expired messages free capacity."""
    layer = make(prefix, expiry=0.2, capacity=1)
    layer.send("fe", {"n": 1})
    with pytest.raises(layer.ChannelFull):
        layer.send("fe", {"n": 2})
    time.sleep(0.3)  # waiting for expiry itself
    layer.send("fe", {"n": 3})  # L-56.5: the expired one does not count
    assert layer.receive(["fe"]) == ("fe", {"n": 3})


# -- namespaces (L-56.1, L-56.9) ---------------------------------------------------------


def test_prefixes_are_separate_and_flush_is_per_prefix(prefix) -> None:
    """L-56.1, L-56.9"""
    other_prefix = unique_prefix("other")
    try:
        mine, other, same = make(prefix), make(other_prefix), make(prefix)
        mine.send("ns", {"who": "mine"})
        other.send("ns", {"who": "other"})
        other.group_add("g", "ns")
        assert same.receive(["ns"]) == ("ns", {"who": "mine"})
        mine.send("ns", {"who": "mine again"})
        mine.group_add("g", "mine.member")
        mine.flush()
        assert same.receive(["ns"]) == (None, None)
        assert same.group_channels("g") == []
        assert other.receive(["ns"]) == ("ns", {"who": "other"})
        assert other.group_channels("g") == ["ns"]
    finally:
        remove_store(other_prefix)


def test_backing_files_are_named_from_the_prefix(prefix) -> None:
    """L-56.11"""
    make(prefix)
    files = set(os.listdir(store_directory()))
    assert {f"{prefix}-messages", f"{prefix}-groups"} <= files
    assert os.stat(store_directory()).st_mode & 0o777 == 0o700


def test_prefix_with_characters_1x_accepted(prefix) -> None:
    """L-55, issue 13: a 1.x prefix with ':' or spaces works (only '/' cannot name a file)."""
    odd = f"{prefix}:my app.é"
    try:
        layer = make(odd)
        layer.send("a", {"n": 1})
        assert make(odd).receive(["a"]) == ("a", {"n": 1})
        assert str(layer) == f"IPCChannelLayer(prefix={odd})"
        assert f"{odd}-messages" in os.listdir(store_directory())
    finally:
        make(odd).flush()
        remove_store(odd)


# -- memory bounds (L-56.4, L-57) ----------------------------------------------------------


def test_message_memory_full_raises_channel_full_and_keeps_data(prefix) -> None:
    """L-56.4, L-57: a full store refuses, loses nothing, and takes messages again once read."""
    layer = make(prefix, message_memory=4000)
    body = b"m" * 1000
    stored = 0
    with pytest.raises(layer.ChannelFull, match="message_memory=4000"):
        for n in range(10):  # a different channel each time: memory, not capacity, is the limit
            layer.send(f"mem{n}", {"body": body})
            stored += 1
    assert stored == 3
    for n in range(stored):
        assert layer.receive([f"mem{n}"]) == (f"mem{n}", {"body": body})
    for n in range(stored):
        layer.send(f"mem{n}", {"body": body})


def test_message_bigger_than_memory_is_too_large(prefix) -> None:
    """L-56.4, L-57: a message that could never fit raises MessageTooLarge, stores nothing."""
    layer = make(prefix, message_memory=4000)
    with pytest.raises(layer.MessageTooLarge, match="message_memory of 4000"):
        layer.send("big", {"body": b"x" * 5000})
    layer.group_add("bg", "big")
    with pytest.raises(layer.MessageTooLarge):
        layer.send_group("bg", {"body": b"x" * 5000})
    assert layer.receive(["big"]) == (None, None)


def test_expired_messages_free_memory(prefix) -> None:
    """L-56.4: room taken by expired messages is reclaimed before refusing."""
    layer = make(prefix, message_memory=2500, expiry=0.2)
    layer.send("ex1", {"body": b"e" * 1000})
    layer.send("ex2", {"body": b"e" * 1000})
    with pytest.raises(layer.ChannelFull):
        layer.send("ex3", {"body": b"e" * 1000})
    time.sleep(0.3)  # waiting for expiry itself
    layer.send("ex3", {"body": b"e" * 1000})
    assert layer.receive(["ex1", "ex2", "ex3"]) == ("ex3", {"body": b"e" * 1000})


def test_group_memory_full(prefix) -> None:
    """L-56.4: group_add beyond group_memory raises ChannelFull; re-adding still works."""
    layer = make(prefix, group_memory=3 * MEMBERSHIP_SIZE, group_expiry=60)
    for n in range(3):
        layer.group_add("gm", f"member{n}")
    with pytest.raises(layer.ChannelFull, match="group_memory"):
        layer.group_add("gm", "member3")
    layer.group_add("gm", "member0")  # refresh, needs no room
    assert sorted(layer.group_channels("gm")) == ["member0", "member1", "member2"]
    layer.group_discard("gm", "member1")
    layer.group_add("gm", "member3")
    assert sorted(layer.group_channels("gm")) == ["member0", "member2", "member3"]


def test_expired_memberships_free_group_memory(prefix) -> None:
    """L-56.4, L-56.8"""
    layer = make(prefix, group_memory=MEMBERSHIP_SIZE, group_expiry=0.2)
    layer.group_add("ge", "first")
    with pytest.raises(layer.ChannelFull):
        layer.group_add("ge", "second")
    time.sleep(0.3)  # waiting for group expiry itself
    layer.group_add("ge", "second")
    assert layer.group_channels("ge") == ["second"]


def test_send_group_skips_members_when_memory_is_full(prefix, caplog) -> None:
    """A-40 with L-56.4: no raise; the member that does not fit is skipped and logged."""
    layer = make(prefix, message_memory=1500)
    layer.group_add("sg", "sg.a")
    layer.group_add("sg", "sg.b")
    with caplog.at_level(logging.WARNING, logger="asgi_ipc.core"):
        layer.send_group("sg", {"body": b"s" * 1000})
    got = [layer.receive(["sg.a"]), layer.receive(["sg.b"])]
    assert sorted(channel for channel, _ in got if channel) in (["sg.a"], ["sg.b"])
    assert "skipped full channel" in caplog.text


def test_store_files_stay_bounded(prefix) -> None:
    """L-56.4: filling and draining many times does not grow the files without bound."""
    layer = make(prefix, message_memory=2 * 1024 * 1024, capacity=1000)
    body = os.urandom(50_000)
    for _ in range(8):
        sent = 0
        try:
            while True:
                layer.send("bounded", {"body": body})
                sent += 1
        except layer.ChannelFull:
            pass
        assert sent == 41
        for _ in range(sent):
            assert layer.receive(["bounded"])[1]["body"] == body
    directory = store_directory()
    total = sum(
        os.path.getsize(os.path.join(directory, entry))
        for entry in os.listdir(directory)
        if entry.startswith(f"{prefix}-messages")
    )
    assert total < 2 * 1024 * 1024 + 2 * 4 * 1024 * 1024


# -- capacity and naming (A-38, L-57, L-56.7) -------------------------------------------------


def test_capacity_by_pattern(prefix) -> None:
    """L-57, A-38, A-39: glob and regex patterns, first match wins, P! for P!L."""
    layer = make(
        prefix,
        capacity=2,
        channel_capacity={"big*": 4, re.compile(r"resp\..*!"): 1, "bigger": 9},
    )
    for _ in range(4):
        layer.send("bigger", {})
    with pytest.raises(layer.ChannelFull):
        layer.send("bigger", {})
    layer.send("resp.x!a", {})
    with pytest.raises(layer.ChannelFull, match=re.escape("'resp.x!'")):
        layer.send("resp.x!b", {})
    layer.send("other", {})
    layer.send("other", {})
    with pytest.raises(layer.ChannelFull):
        layer.send("other", {})


def test_new_channel_appends_twelve_letters(prefix) -> None:
    """L-56.7, A-34"""
    name = make(prefix).new_channel("http.request.body?")
    assert re.fullmatch(r"http\.request\.body\?[A-Za-z]{12}", name)


def test_group_discard_and_channels_for_unknowns(prefix) -> None:
    """L-56.8"""
    layer = make(prefix)
    layer.group_discard("nobody", "nothing")
    layer.group_add("known", "a")
    layer.group_discard("known", "nothing")
    assert layer.group_channels("nobody") == []
    assert layer.group_channels("known") == ["a"]


def test_group_readd_refreshes_expiry(prefix) -> None:
    """L-56.8, A-41: re-adding restarts the membership clock."""
    layer = make(prefix, group_expiry=0.4)
    layer.group_add("rf", "member")
    time.sleep(0.25)
    layer.group_add("rf", "member")
    time.sleep(0.25)  # 0.5 s after the first add, 0.25 s after the second
    assert layer.group_channels("rf") == ["member"]


# -- recovery (L-56.6) ---------------------------------------------------------------------------


def test_unreadable_store_is_reset_with_a_warning(prefix, caplog) -> None:
    """L-56.6: a store that is not a database is reset to empty, with a WARNING."""
    with open(os.path.join(store_directory(), f"{prefix}-messages"), "wb") as file:
        file.write(b"this is not a SQLite database" * 100)
    with caplog.at_level(logging.WARNING, logger="asgi_ipc.store"):
        layer = make(prefix)
    assert "unreadable" in caplog.text and "resetting it to empty" in caplog.text
    layer.send("reset", {"ok": 1})
    assert layer.receive(["reset"]) == ("reset", {"ok": 1})


def test_store_of_another_version_is_reset(prefix, caplog) -> None:
    """L-56.6: a store written by an incompatible version is reset, with a WARNING."""
    path = os.path.join(store_directory(), f"{prefix}-messages")
    with sqlite3.connect(path) as connection:
        connection.execute("CREATE TABLE messages (old TEXT)")
        connection.execute("PRAGMA user_version = 99")
    connection.close()
    with caplog.at_level(logging.WARNING, logger="asgi_ipc.store"):
        layer = make(prefix)
    assert "schema version 99" in caplog.text
    layer.send("reset", {"ok": 2})
    assert layer.receive(["reset"]) == ("reset", {"ok": 2})


def test_layer_leaves_the_global_random_state_alone(prefix) -> None:
    """A-28, A-34: shuffles and new names come from the layers' own generator, so seeded
    application code and test tools (hypothesis) see the `random` module untouched."""
    import random

    layer = make(prefix)
    state = random.getstate()
    layer.send("a", {"n": 1})
    assert layer.receive(["b", "a", "c"]) == ("a", {"n": 1})
    assert layer.new_channel("fresh?").startswith("fresh?")
    assert random.getstate() == state
