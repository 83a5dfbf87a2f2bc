"""Broadcasts into one process-specific queue lose nothing at default settings (A-93, A-40)."""

from __future__ import annotations

import os
import subprocess
import sys
import threading
from pathlib import Path

import pytest

# The global counters that stay 0 without expiry or restarts (issue 15).
# expired_count and shard_restarts appear once not zero: the exact 1.x keys (L-39).
NO_EXPIRY: dict[str, int] = {}

pytestmark = pytest.mark.redis

ROOT = Path(__file__).resolve().parents[2]


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


SENDER = """
import sys, time
from asgi_redis import RedisChannelLayer

layer = RedisChannelLayer(hosts=[sys.argv[1]], prefix="t-func:", stats_prefix="t-func-meta:")
sent = 0
started = time.monotonic()
while sent < 4000 and time.monotonic() - started < 2.0:
    ahead = started + sent / 2000 - time.monotonic()
    if ahead > 0:
        time.sleep(ahead)  # pacing to 2,000 sends/s; never sleeps when behind
    layer.send_group("rate", {"n": sent})
    sent += 1
print(sent, round(time.monotonic() - started, 3))
"""


def test_group_sends_at_2000_per_second_into_one_reader(layer_on, redis_servers_session) -> None:
    """A-93, issue 3: another process group-sends at up to 2,000/s for 2 s into one
    daphne-like P! with 10 members, at default settings, while this process keeps
    reading: one queue entry per send serves all ten members, so every member gets the
    same copies, in order, and whatever did not arrive was counted full, never lost
    silently. (Whether a reader keeps up with 2,000/s is a benchmark's question, not
    this test's: a loaded machine starves the reader and fills the queue.)"""
    reader = layer_on()
    prefix = "daphne.response.rate!"
    members = [f"{prefix}{index}" for index in range(10)]
    for member in members:
        reader.group_add("rate", member)
    received: dict[str, list[int]] = {member: [] for member in members}
    sender_done = threading.Event()

    def read() -> None:
        # Block while the sender runs; afterwards drain without blocking.
        while True:
            done = sender_done.is_set()
            channel, message = reader.receive([prefix], block=not done)
            if channel is not None:
                received[channel].append(message["n"])
            elif done:
                return

    thread = threading.Thread(target=read, name="broadcast-reader", daemon=True)
    thread.start()
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    try:
        result = subprocess.run(
            [sys.executable, "-c", SENDER, redis_servers_session[0].url],
            capture_output=True,
            text=True,
            timeout=60,
            env=env,
            check=True,
        )
    finally:
        sender_done.set()
        thread.join(30)
    assert not thread.is_alive()
    sent = int(result.stdout.split()[0])
    print(f"group sends: {sent} in {result.stdout.split()[1]} s")
    assert sent > 0
    first = received[members[0]]
    assert first == sorted(set(first))  # in order, no duplicates
    for member in members:
        assert received[member] == first, member  # one entry served every member
    full = sent - len(first)
    assert reader.global_statistics() == {
        "messages_count": len(first) * 10,
        "channel_full_count": full * 10,
        **NO_EXPIRY,
    }
