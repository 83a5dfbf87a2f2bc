"""The in-memory layer (L-7..L-17): conformance plus its own behaviour."""

from __future__ import annotations

import threading
import time

import pytest

from channels.layers import conformance
from channels.layers.inmemory import ChannelLayer, channel_layer


class InMemoryConformanceTests(conformance.ConformanceTestCase):
    """L-58: the whole suite with expiry=1, group_expiry=2, capacity=5."""

    channel_layer = ChannelLayer(expiry=1, group_expiry=2, capacity=5)
    expiry_delay = 1.1
    capacity_limit = 5

    def test_group_eviction_on_expiry(self) -> None:
        """L-11 / L-58: a channel whose message expired unread leaves the group."""
        layer = self.channel_layer
        layer.group_add("tgme_group", "tgme_test")
        layer.send_group("tgme_group", {"value": "blue"})
        time.sleep(1.2)
        layer.send_group("tgme_group", {"value": "green"})
        self.assertEqual(layer.receive(["tgme_test"]), (None, None))


def test_module_instance_and_defaults() -> None:
    """L-7, L-8"""
    assert isinstance(channel_layer, ChannelLayer)
    layer = ChannelLayer()
    assert (layer.expiry, layer.group_expiry, layer.capacity) == (60, 86400, 10)
    assert layer.extensions == ["groups", "flush", "statistics"]


def test_channel_capacity_by_pattern() -> None:
    """L-10: channel_capacity is honoured, on the P! of process-specific names."""
    layer = ChannelLayer(capacity=2, channel_capacity={"big": 4, "resp.*": 1})
    for _ in range(4):
        layer.send("big", {})
    with pytest.raises(layer.ChannelFull):
        layer.send("big", {})
    layer.send("resp.x!a", {})
    with pytest.raises(layer.ChannelFull, match="resp.x!"):
        layer.send("resp.x!b", {})
    layer.send("other", {})
    layer.send("other", {})
    with pytest.raises(layer.ChannelFull):
        layer.send("other", {})


def test_expired_messages_free_capacity() -> None:
    """L-10, L-11: expired messages do not count toward capacity."""
    layer = ChannelLayer(expiry=0.05, capacity=1)
    layer.send("exp", {"n": 1})
    time.sleep(0.1)
    layer.send("exp", {"n": 2})
    assert layer.receive(["exp"]) == ("exp", {"n": 2})


def test_process_specific_fifo_across_local_parts() -> None:
    """A-19: one FIFO per P!, whatever the local part."""
    layer = ChannelLayer(capacity=100)
    for index in range(50):
        layer.send(f"proc!{'ab'[index % 2]}{index}", {"n": index})
    received = [layer.receive(["proc!"]) for _ in range(50)]
    assert [message["n"] for _, message in received] == list(range(50))
    assert [channel for channel, _ in received][:2] == ["proc!a0", "proc!b1"]


def test_blocking_receive_is_woken_by_send() -> None:
    """L-12: the waiting receiver is woken by the send itself, not a poll or timeout.

    The receive may wait 60 s; it can only return within the join bound if the
    send from another thread notified it.
    """
    layer = ChannelLayer()
    layer.blocking_timeout = 60
    result = {}
    thread = threading.Thread(
        target=lambda: result.setdefault("got", layer.receive(["wake"], block=True))
    )
    thread.start()
    deadline = time.monotonic() + 5
    while "wake" not in layer._waiters and time.monotonic() < deadline:
        time.sleep(0.001)  # waiting for the other thread to block; it offers no event
    assert "wake" in layer._waiters
    layer.send("wake", {"v": 1})
    thread.join(5)
    assert not thread.is_alive()
    assert result["got"] == ("wake", {"v": 1})


def test_blocking_receive_times_out() -> None:
    """L-12: nothing arrives -> (None, None) after about a second, bounded."""
    layer = ChannelLayer()
    layer.blocking_timeout = 0.1
    assert layer.receive(["nothing"], block=True) == (None, None)


def test_empty_receive_list() -> None:
    """A-32"""
    assert ChannelLayer().receive([], block=True) == (None, None)


def test_concurrent_senders_and_receivers_exact_counts() -> None:
    """L-8: thread-safety — every message delivered exactly once, none lost."""
    layer = ChannelLayer(capacity=10_000)
    senders, receivers, per_sender = 4, 4, 500
    total = senders * per_sender
    received: list[tuple[int, int]] = []
    received_lock = threading.Lock()
    done = threading.Event()

    def send(sender: int) -> None:
        for index in range(per_sender):
            layer.send("conc", {"s": sender, "i": index})

    def receive() -> None:
        while not done.is_set():
            channel, message = layer.receive(["conc"], block=True)
            if channel is None:
                continue
            with received_lock:
                received.append((message["s"], message["i"]))
                if len(received) == total:
                    done.set()

    threads = [threading.Thread(target=receive) for _ in range(receivers)]
    threads += [threading.Thread(target=send, args=(s,)) for s in range(senders)]
    for thread in threads:
        thread.start()
    assert done.wait(30), f"only {len(received)} of {total} received"
    for thread in threads:
        thread.join(5)
    assert sorted(received) == sorted((s, i) for s in range(senders) for i in range(per_sender))


def test_group_send_skips_full_member_and_counts(caplog) -> None:
    """A-40: a full member is skipped, counted and logged; others still get it."""
    layer = ChannelLayer(capacity=1)
    layer.group_add("room", "full")
    layer.group_add("room", "free")
    layer.send("full", {})
    with caplog.at_level("WARNING", logger="channels.layers.inmemory"):
        layer.send_group("room", {"hello": True})
    assert layer.receive(["free"]) == ("free", {"hello": True})
    assert layer.channel_statistics("full")["channel_full_count"] == 1
    assert layer.global_statistics()["channel_full_count"] == 1
    assert "room" in caplog.text and "full" in caplog.text


def test_group_send_gives_each_member_its_own_copy() -> None:
    """A-8: receivers of one group send do not share objects."""
    layer = ChannelLayer()
    layer.group_add("g", "p!a")
    layer.group_add("g", "p!b")
    layer.group_add("g", "n")
    layer.send_group("g", {"list": [1]})
    first = layer.receive(["p!"])[1]
    first["list"].append(2)
    assert layer.receive(["p!"])[1] == {"list": [1]}
    assert layer.receive(["n"])[1] == {"list": [1]}


def test_statistics_values() -> None:
    """L-41 on the in-memory layer."""
    layer = ChannelLayer(capacity=3)
    layer.send("first_channel", {})
    layer.send("first_channel", {})
    layer.send("second_channel", {})
    assert layer.global_statistics() == {"messages_count": 3, "channel_full_count": 0}
    assert layer.channel_statistics("first_channel") == {
        "messages_count": 2,
        "messages_pending": 2,
        "messages_max_age": 0,
        "channel_full_count": 0,
    }
    layer.send("first_channel", {})
    for _ in range(4):
        with pytest.raises(layer.ChannelFull):
            layer.send("first_channel", {})
    stats = layer.channel_statistics("first_channel")
    assert stats["channel_full_count"] == 4 and stats["messages_count"] == 3
    layer.group_add("g", "first_channel")
    layer.send_group("g", {})
    assert layer.channel_statistics("first_channel")["channel_full_count"] == 5
    assert layer.global_statistics() == {"messages_count": 4, "channel_full_count": 5}


def test_group_membership_expires() -> None:
    """A-45 / L-14"""
    layer = ChannelLayer(group_expiry=0.05)
    layer.group_add("g", "c")
    assert layer.group_channels("g") == ["c"]
    time.sleep(0.1)
    assert layer.group_channels("g") == []
    layer.send_group("g", {})
    assert layer.receive(["c"]) == (None, None)


def test_group_add_refreshes_membership() -> None:
    """A-41: re-adding restarts the expiry clock."""
    layer = ChannelLayer(group_expiry=0.2)
    layer.group_add("g", "c")
    time.sleep(0.15)
    layer.group_add("g", "c")
    time.sleep(0.1)
    assert layer.group_channels("g") == ["c"]
