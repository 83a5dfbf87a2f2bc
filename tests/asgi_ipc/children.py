"""Code run in child processes by the IPC layer's multi-process tests (L-56, L-57).

Top-level functions only, so the ``spawn`` start method can import them: each
child is a fresh interpreter that shares nothing with the test but the store.
"""

from __future__ import annotations

import os
import signal
import time

from asgi_ipc import IPCChannelLayer, queues

# Children give up after this long so a broken layer fails the test instead of hanging it.
CHILD_DEADLINE = 60.0


def layer_for(prefix: str, **options) -> IPCChannelLayer:
    return IPCChannelLayer(prefix=prefix, **options)


def send_all(prefix: str, channel: str, sender: int, count: int, options: dict) -> None:
    """Send `count` numbered messages, retrying a full channel until it drains."""
    layer = layer_for(prefix, **options)
    for seq in range(count):
        send_retrying(layer, channel, {"sender": sender, "seq": seq, "body": b"\x00" * 20})


def send_retrying(layer: IPCChannelLayer, channel: str, message: dict) -> None:
    give_up = time.monotonic() + CHILD_DEADLINE
    delay = 0.001
    while True:
        try:
            layer.send(channel, message)
            return
        except layer.ChannelFull:
            # A-89's growing backoff: nothing to wait on for "space freed".
            if time.monotonic() > give_up:
                raise
            time.sleep(delay)
            delay = min(delay * 2, 0.05)


def receive_until_stop(prefix: str, channels: list[str], results, options: dict) -> None:
    """Blocking-receive until a ``stop`` message; report what arrived, in order."""
    layer = layer_for(prefix, **options)
    received = []
    give_up = time.monotonic() + CHILD_DEADLINE
    while time.monotonic() < give_up:
        channel, message = layer.receive(channels, block=True)
        if channel is None:
            continue
        if message.get("stop"):
            break
        received.append((channel, message["sender"], message["seq"]))
    results.put(received)


def receive_one_blocking(prefix: str, channel: str, ready, results, timeout: float) -> None:
    """Announce readiness, then wait in one blocking receive with a long timeout."""
    layer = layer_for(prefix)
    layer.blocking_timeout = timeout
    ready.set()
    results.put(layer.receive([channel], block=True))


def send_when_set(prefix: str, channel: str, go, message: dict) -> None:
    layer = layer_for(prefix)
    if go.wait(CHILD_DEADLINE):
        layer.send(channel, message)


def victim_loop(prefix: str, running) -> None:
    """Send, receive and use groups in a tight loop until killed (L-56.6)."""
    layer = layer_for(prefix, capacity=50)
    seq = 0
    pid = os.getpid()
    while True:
        for channel in ("victim", f"victim!{seq % 3}"):
            try:
                layer.send(channel, {"pid": pid, "seq": seq, "pad": b"v" * (seq % 200)})
            except layer.ChannelFull:
                pass
        layer.group_add("victims", f"victim.g{seq % 5}")
        layer.send_group("victims", {"pid": pid, "seq": seq})
        # Both receives find a message, so the blocking one does not sit out its timeout.
        layer.receive(["victim", "victim!"], block=seq % 2 == 0)
        layer.receive(["victim", "victim!"])
        seq += 1
        if seq == 50:
            running.set()


def die_inside_transaction(prefix: str, inside) -> None:
    """Take the lock, half-write a message and a membership, then wait to be killed."""
    layer = layer_for(prefix)
    store = layer._store()
    with store.transaction() as db:
        queues.enqueue(db, "halfway", ["halfway"], b"\x81\xa1k\xa1v", time.time() + 60, 60)
        db.execute(
            "INSERT INTO memberships (grp, channel, deadline) VALUES ('halfgroup', 'x', ?)",
            (time.time() + 60,),
        )
        inside.set()
        os.kill(os.getpid(), signal.SIGSTOP)  # parked until the test kills us


def die_while_blocked(prefix: str, channel: str, ready) -> None:
    """Be a registered blocked receiver (as `receive(block=True)` leaves it), then stop.

    Registering by hand makes "registered" an event the test can wait for;
    the state is the one a receiver killed inside its wait leaves behind.
    """
    layer = layer_for(prefix)
    store = layer._store()
    waker = store.waker()
    with store.transaction() as db:
        queues.register_waiter(db, [channel], waker.name)
    ready.set()
    os.kill(os.getpid(), signal.SIGSTOP)  # parked until the test kills us
