"""Broadcasts into one process-specific queue lose nothing at default settings (A-93, A-40)."""

from __future__ import annotations

import threading
import time

import pytest

pytestmark = pytest.mark.redis


def test_broadcast_to_200_members_of_one_process(layer_on) -> None:
    """A-93: 200 members behind one P! at default capacity (100) all get the message,
    using one entry of the queue."""
    layer = layer_on()
    assert layer.capacity == 100
    members = {f"daphne.response.bcast!{index}" for index in range(200)}
    for member in members:
        layer.group_add("bcast", member)
    layer.send_group("bcast", {"text": "hello"})
    stats = layer.channel_statistics("daphne.response.bcast!")
    assert stats["messages_pending"] == 1
    assert stats["messages_count"] == 200
    seen = []
    for _ in members:
        channel, message = layer.receive(["daphne.response.bcast!"])
        assert message == {"text": "hello"}
        seen.append(channel)
    assert sorted(seen) == sorted(members)
    assert layer.receive(["daphne.response.bcast!"]) == (None, None)
    assert layer.global_statistics()["channel_full_count"] == 0


def test_group_sends_at_2000_per_second_into_one_reader(layer_on, redis_servers_session) -> None:
    """A-93, issue 3: group sends at up to 2,000/s into one daphne's P! (10 members) for
    2 s at default settings, with a concurrent reader: every copy arrives, nothing is
    counted full."""
    sender = layer_on()
    reader = layer_on()
    prefix = "daphne.response.rate!"
    members = [f"{prefix}{index}" for index in range(10)]
    for member in members:
        sender.group_add("rate", member)

    received: dict[str, list[int]] = {member: [] for member in members}
    stop = threading.Event()

    def read() -> None:
        # Keeps reading until the sender is done and the queue is drained.
        while True:
            channel, message = reader.receive([prefix], block=True)
            if channel is not None:
                received[channel].append(message["n"])
            elif stop.is_set():
                return

    thread = threading.Thread(target=read, name="broadcast-reader", daemon=True)
    thread.start()
    sent = 0
    started = time.monotonic()
    while sent < 4000 and time.monotonic() - started < 2.0:
        # Pace at 2,000 sends/s; never sleep when behind schedule.
        ahead = started + sent / 2000 - time.monotonic()
        if ahead > 0:
            time.sleep(ahead)
        sender.send_group("rate", {"n": sent})
        sent += 1
    stop.set()
    thread.join(30)
    assert not thread.is_alive()
    assert sent > 0
    print(f"group sends: {sent} in {time.monotonic() - started:.2f} s")
    for member in members:
        assert received[member] == list(range(sent)), member  # all, in order
    assert sender.global_statistics() == {"messages_count": sent * 10, "channel_full_count": 0}
