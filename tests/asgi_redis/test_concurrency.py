"""Many readers and senders at once: every message delivered exactly once (A-24, A-29)."""

from __future__ import annotations

import threading

import pytest

pytestmark = pytest.mark.redis


@pytest.mark.parametrize("shards", [1, 3])
def test_competing_workers_get_each_message_once(layer_on, shards) -> None:
    """A-24, A-29: 2 senders and 4 blocking readers (two sharing one layer instance) on
    one normal channel; every message arrives exactly once."""
    # Room for every message, so the check is about delivery, not backpressure.
    options = {"shards": shards, "capacity": 1000}
    senders = [layer_on(**options) for _ in range(2)]
    shared = layer_on(**options)
    readers = [shared, shared, layer_on(**options), layer_on(**options)]
    per_sender = 500
    total = per_sender * len(senders)
    received: list[tuple[int, int]] = []
    failures: list[BaseException] = []
    lock = threading.Lock()
    done = threading.Event()

    def read(layer) -> None:
        while not done.is_set():
            channel, message = layer.receive(["work.queue", "work.other"], block=True)
            if channel is None:
                continue
            with lock:
                received.append((message["sender"], message["n"]))
                if len(received) >= total:
                    done.set()

    def send(number: int, layer) -> None:
        try:
            for index in range(per_sender):
                layer.send("work.queue", {"sender": number, "n": index})
        except Exception as exc:  # recorded and asserted below, never hidden
            failures.append(exc)
            done.set()

    threads = [threading.Thread(target=read, args=(layer,), daemon=True) for layer in readers]
    threads += [
        threading.Thread(target=send, args=(number, layer), daemon=True)
        for number, layer in enumerate(senders)
    ]
    for thread in threads:
        thread.start()
    assert done.wait(60), f"only {len(received)} of {total} arrived"
    for thread in threads:
        thread.join(15)
        assert not thread.is_alive()
    assert failures == []
    expected = [(number, index) for number in range(len(senders)) for index in range(per_sender)]
    assert sorted(received) == expected  # no loss, no duplicate
    assert shared.receive(["work.queue"], block=True) == (None, None)
    assert shared.global_statistics()["channel_full_count"] == 0
