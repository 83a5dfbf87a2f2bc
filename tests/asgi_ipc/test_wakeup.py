"""The FIFO wake-up of blocked receivers (L-56.7): woken by a write, stale pipes detected."""

from __future__ import annotations

import fcntl
import os
import threading

import pytest

from asgi_ipc.store import store_directory
from asgi_ipc.wakeup import Waker, notify, waker_pid
from tests.asgi_ipc.helpers import remove_store, unique_prefix


def test_notify_wakes_a_waiting_thread() -> None:
    prefix = unique_prefix("wake")
    waker = Waker(store_directory(), prefix)
    try:
        assert waker_pid(waker.name) == os.getpid()
        outcome = []
        thread = threading.Thread(target=lambda: outcome.append(waker.wait(30)))
        thread.start()
        assert notify(waker.path)
        thread.join(30)
        assert outcome == [True]
        assert waker.wait(0) is False  # drained: nothing left to wake it again
    finally:
        waker.close()
        remove_store(prefix)


@pytest.mark.skipif(not hasattr(fcntl, "F_SETPIPE_SZ"), reason="needs Linux F_SETPIPE_SZ")
def test_a_full_pipe_still_counts_as_woken() -> None:
    """Many sends before the waiter runs: notify never blocks and never fails."""
    prefix = unique_prefix("full")
    waker = Waker(store_directory(), prefix)
    try:
        # Shrink the pipe to one page (Linux) so a few thousand wake-ups overfill it.
        fcntl.fcntl(waker.fd, fcntl.F_SETPIPE_SZ, 4096)
        assert all(notify(waker.path) for _ in range(5000))
        assert waker.wait(0) is True
        assert waker.wait(0) is False
    finally:
        waker.close()
        remove_store(prefix)


def test_stale_pipes_are_reported() -> None:
    """A pipe nobody reads (its thread ended, its process died) is stale, not an error."""
    prefix = unique_prefix("stale")
    directory = store_directory()
    orphan = os.path.join(directory, f"{prefix}-wake-999999.abc")
    os.mkfifo(orphan, 0o600)  # as a killed process leaves it: no reader
    try:
        assert notify(orphan) is False
        waker = Waker(directory, prefix)
        waker.close()
        assert not os.path.exists(waker.path)
        assert notify(waker.path) is False
    finally:
        remove_store(prefix)
