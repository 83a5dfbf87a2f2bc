"""The IPC layer across processes: delivery, wake-ups and crash safety (L-56, L-57).

Every child is a fresh ``spawn``ed interpreter (see children.py) sharing only
the store with the test process. All waits are bounded.
"""

from __future__ import annotations

import multiprocessing
import os
import random
import select
import signal
import threading
import time
from collections import Counter

import pytest

from asgi_ipc import IPCChannelLayer
from asgi_ipc.store import store_directory
from tests.asgi_ipc import children
from tests.asgi_ipc.helpers import remove_store, unique_prefix

SPAWN = multiprocessing.get_context("spawn")
JOIN_TIMEOUT = 60


@pytest.fixture
def prefix(request):
    name = unique_prefix(request.node.name[:20].replace("[", "-").replace("]", ""))
    yield name
    IPCChannelLayer(prefix=name).flush()
    remove_store(name)


def start(target, *args):
    process = SPAWN.Process(target=target, args=args, daemon=True)
    process.start()
    return process


def join_ok(process) -> None:
    process.join(JOIN_TIMEOUT)
    assert not process.is_alive(), f"{process.name} did not finish within {JOIN_TIMEOUT} s"
    assert process.exitcode == 0, f"{process.name} failed with exit code {process.exitcode}"


def kill(process) -> None:
    os.kill(process.pid, signal.SIGKILL)
    process.join(JOIN_TIMEOUT)
    assert process.exitcode == -signal.SIGKILL


def drain(layer, channels, limit=100_000):
    received = []
    for _ in range(limit):
        channel, message = layer.receive(channels)
        if channel is None:
            return received
        received.append((channel, message))
    raise AssertionError("drain did not finish")


def test_child_sends_parent_receives(prefix) -> None:
    """L-57, L-56.1, L-56.2: messages from an exited child arrive in order, bytes intact."""
    join_ok(start(children.send_all, prefix, "xp.normal", 1, 40, {}))
    join_ok(start(children.send_all, prefix, "xp.proc!abc", 2, 40, {}))
    layer = IPCChannelLayer(prefix=prefix)
    normal = drain(layer, ["xp.normal"])
    assert [m["seq"] for _, m in normal] == list(range(40))
    assert all(m["body"] == b"\x00" * 20 and type(m["body"]) is bytes for _, m in normal)
    specific = drain(layer, ["xp.proc!"])
    assert [(c, m["seq"]) for c, m in specific] == [("xp.proc!abc", n) for n in range(40)]


def test_parent_sends_child_receives(prefix) -> None:
    """L-57: the reverse direction; the child receives with block=True."""
    layer = IPCChannelLayer(prefix=prefix)
    for seq in range(30):
        layer.send("xp.down", {"sender": 0, "seq": seq})
    layer.send("xp.down", {"stop": True})
    results = SPAWN.Queue()
    child = start(children.receive_until_stop, prefix, ["xp.down"], results, {})
    received = results.get(timeout=JOIN_TIMEOUT)
    join_ok(child)
    assert received == [("xp.down", 0, seq) for seq in range(30)]


def test_blocking_receive_woken_by_other_process(prefix) -> None:
    """L-56.7: a receive blocked in one process returns the message another process sends.

    The receiver's own timeout is 50 s, so it can only return the message
    because the send woke it.
    """
    ready, results = SPAWN.Event(), SPAWN.Queue()
    receiver = start(children.receive_one_blocking, prefix, "wake.me", ready, results, 50.0)
    assert ready.wait(JOIN_TIMEOUT)
    IPCChannelLayer(prefix=prefix).send("wake.me", {"value": "hello"})
    assert results.get(timeout=JOIN_TIMEOUT) == ("wake.me", {"value": "hello"})
    join_ok(receiver)


def test_blocking_receive_in_parent_woken_by_child(prefix) -> None:
    """L-56.7, reversed: the parent blocks, a child process sends."""
    layer = IPCChannelLayer(prefix=prefix)
    layer.blocking_timeout = 50.0
    go = SPAWN.Event()
    sender = start(children.send_when_set, prefix, "wake.parent!", go, {"value": 7})
    threading.Timer(0.1, go.set).start()
    assert layer.receive(["wake.parent!"], block=True) == ("wake.parent!", {"value": 7})
    join_ok(sender)


def test_many_senders_and_receivers_exact_counts(prefix) -> None:
    """L-56.3, A-24: 3 senders x 300 messages, 3 blocking receivers: each exactly once."""
    options = {"capacity": 50}
    senders = [start(children.send_all, prefix, "mp.work", n, 300, options) for n in range(3)]
    results = SPAWN.Queue()
    receivers = [
        start(children.receive_until_stop, prefix, ["mp.work"], results, options) for _ in range(3)
    ]
    for sender in senders:
        join_ok(sender)
    layer = IPCChannelLayer(prefix=prefix, capacity=50)
    for _ in receivers:  # FIFO: each stop lands behind all work messages
        children.send_retrying(layer, "mp.work", {"stop": True})
    batches = [results.get(timeout=JOIN_TIMEOUT) for _ in receivers]
    for receiver in receivers:
        join_ok(receiver)
    seen = Counter((sender, seq) for batch in batches for _, sender, seq in batch)
    assert seen == Counter((sender, seq) for sender in range(3) for seq in range(300))
    for batch in batches:  # one writer's messages stay in order for each reader
        for sender in range(3):
            seqs = [seq for _, s, seq in batch if s == sender]
            assert seqs == sorted(seqs)


def test_process_specific_fifo_across_processes(prefix) -> None:
    """A-19: two senders into one P!, one reader: every message, per-sender order."""
    senders = [
        start(children.send_all, prefix, f"mp.reply!conn{n}", n, 200, {"capacity": 500})
        for n in range(2)
    ]
    for sender in senders:
        join_ok(sender)
    received = drain(IPCChannelLayer(prefix=prefix, capacity=500), ["mp.reply!"])
    for n in range(2):
        mine = [(c, m["seq"]) for c, m in received if m["sender"] == n]
        assert mine == [(f"mp.reply!conn{n}", seq) for seq in range(200)]


def test_threads_share_one_store(prefix) -> None:
    """L-56.3: threads of one process, several layer instances, no loss or duplicate."""
    layers = [IPCChannelLayer(prefix=prefix, capacity=1000) for _ in range(2)]
    got: list[int] = []
    lock = threading.Lock()

    def produce(base: int) -> None:
        for n in range(200):
            layers[base % 2].send("thr", {"n": base * 1000 + n})

    def consume() -> None:
        give_up = time.monotonic() + JOIN_TIMEOUT
        while time.monotonic() < give_up:
            channel, message = layers[1].receive(["thr"], block=True)
            if channel is None:
                continue
            if message.get("stop"):
                return
            with lock:
                got.append(message["n"])

    producers = [threading.Thread(target=produce, args=(b,)) for b in range(4)]
    consumers = [threading.Thread(target=consume) for _ in range(3)]
    for thread in producers + consumers:
        thread.start()
    for thread in producers:
        thread.join(JOIN_TIMEOUT)
    for _ in consumers:  # queued behind every produced message (FIFO)
        layers[0].send("thr", {"stop": True})
    for thread in producers + consumers:
        thread.join(JOIN_TIMEOUT)
        assert not thread.is_alive()
    assert sorted(got) == sorted(b * 1000 + n for b in range(4) for n in range(200))


def test_kill_inside_transaction_rolls_back(prefix) -> None:
    """L-56.6: SIGKILL while holding the lock mid-write: lock freed, half-write gone."""
    inside = SPAWN.Event()
    child = start(children.die_inside_transaction, prefix, inside)
    assert inside.wait(JOIN_TIMEOUT)
    kill(child)
    layer = IPCChannelLayer(prefix=prefix)
    outcome = []
    worker = threading.Thread(
        target=lambda: outcome.append(
            (layer.receive(["halfway"]), layer.group_channels("halfgroup"))
        )
    )
    worker.start()
    worker.join(JOIN_TIMEOUT)
    assert not worker.is_alive(), "the lock of the killed process was not released"
    assert outcome == [((None, None), [])]
    layer.send("halfway", {"after": True})
    assert layer.receive(["halfway"]) == ("halfway", {"after": True})


def test_kill_while_blocked_leaves_no_trace(prefix) -> None:
    """L-56.6: a receiver killed while blocked does not break later sends."""
    ready = SPAWN.Event()
    child = start(children.die_while_blocked, prefix, "dead.wait", ready)
    assert ready.wait(JOIN_TIMEOUT)
    kill(child)
    layer = IPCChannelLayer(prefix=prefix)
    layer.send("dead.wait", {"n": 1})  # finds the dead waiter and removes it
    layer.send("dead.wait", {"n": 2})
    assert drain(layer, ["dead.wait"]) == [("dead.wait", {"n": 1}), ("dead.wait", {"n": 2})]
    leftovers = [
        entry
        for entry in os.listdir(store_directory())
        if entry.startswith(f"{prefix}-wake-{child.pid}.")
    ]
    assert leftovers == []
    with layer._store().transaction() as db:
        assert db.execute("SELECT count(*) FROM waiters").fetchone()[0] == 0


@pytest.mark.slow
def test_kill_during_operations_others_continue(prefix) -> None:
    """L-56.6: processes SIGKILLed at random points in a send/receive/group loop.

    Meanwhile three other processes exchange 3 x 200 messages on another
    channel: every one arrives exactly once. Afterwards the victims' leftovers
    are all readable and none is duplicated.
    """
    options = {"capacity": 50}
    senders = [start(children.send_all, prefix, "kill.work", n, 200, options) for n in range(2)]
    results = SPAWN.Queue()
    receiver = start(children.receive_until_stop, prefix, ["kill.work"], results, options)
    rng = random.Random(7)
    for _ in range(12):
        running = SPAWN.Event()
        victim = start(children.victim_loop, prefix, running)
        assert running.wait(JOIN_TIMEOUT), "victim did not get going"
        # Not synchronisation: a random delay so the kill lands at varied points.
        time.sleep(rng.uniform(0, 0.05))
        kill(victim)
    for sender in senders:
        join_ok(sender)
    layer = IPCChannelLayer(prefix=prefix, capacity=50)
    children.send_retrying(layer, "kill.work", {"stop": True})
    batch = results.get(timeout=JOIN_TIMEOUT)
    join_ok(receiver)
    assert Counter((s, q) for _, s, q in batch) == Counter(
        (s, q) for s in range(2) for q in range(200)
    )
    leftovers = drain(layer, ["victim", "victim!"] + [f"victim.g{n}" for n in range(5)])
    keys = [(channel, m["pid"], m["seq"]) for channel, m in leftovers]
    assert len(keys) == len(set(keys))
    assert all(isinstance(m["seq"], int) for _, m in leftovers)
    layer.send("kill.after", {"ok": True})
    assert layer.receive(["kill.after"]) == ("kill.after", {"ok": True})


@pytest.mark.skipif(not hasattr(os, "pidfd_open"), reason="needs fork and pidfd_open")
def test_forked_child_opens_its_own_store(prefix) -> None:
    """L-56.3: a layer built before fork works in the child (own connection and lock)."""
    layer = IPCChannelLayer(prefix=prefix)
    layer.send("fork.before", {"n": 0})  # the parent's store is open and used
    pid = os.fork()
    if pid == 0:  # child: exit status says whether its operations worked
        code = 1
        try:
            if layer.receive(["fork.before"]) == ("fork.before", {"n": 0}):
                layer.send("fork.after", {"n": 1})
                code = 0
        finally:
            os._exit(code)
    exited = os.pidfd_open(pid)
    try:  # a bounded wait for the child's exit
        if not select.select([exited], [], [], JOIN_TIMEOUT)[0]:
            os.kill(pid, signal.SIGKILL)
    finally:
        os.close(exited)
    _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0
    assert layer.receive(["fork.after"]) == ("fork.after", {"n": 1})
    layer.send("fork.parent", {"n": 2})  # the parent's own connection still works
    assert layer.receive(["fork.parent"]) == ("fork.parent", {"n": 2})
