"""The lock that makes every IPC layer operation atomic across processes and threads (L-56.3).

One exclusive POSIX record lock (``fcntl``) on ``{prefix}-lock`` serialises
processes; a `threading.Lock` in front of it serialises the threads of one
process, because POSIX record locks belong to the process, not the thread.

Why POSIX record locks (``lockf``) rather than ``flock``: the kernel drops a
record lock when its owning process dies (SIGKILL included), and a child made
by ``fork`` does not inherit it. An ``flock`` lock belongs to the open file
description, which a forked child shares, so a parent killed while holding it
would leave the lock held for as long as the child lives (L-56.6).

The price of record locks is that closing *any* descriptor of the file drops
the process's lock, so each process opens the lock file exactly once: use
`process_lock(path)`, never the constructor directly.
"""

from __future__ import annotations

import fcntl
import os
import threading
from types import TracebackType

__all__ = ["ProcessLock", "process_lock"]


class ProcessLock:
    """An exclusive lock held by one thread of one process at a time.

    Waiting for it blocks in the kernel (``F_SETLKW``) or on the thread lock:
    no polling.
    """

    def __init__(self, path: str) -> None:
        self.path = path
        self._thread_lock = threading.Lock()
        self._fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)

    def __enter__(self) -> ProcessLock:
        self._thread_lock.acquire()
        try:
            fcntl.lockf(self._fd, fcntl.LOCK_EX)
        except BaseException:
            self._thread_lock.release()
            raise
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        try:
            fcntl.lockf(self._fd, fcntl.LOCK_UN)
        finally:
            self._thread_lock.release()


_registry_lock = threading.Lock()
# (pid, path) -> lock. Keyed by pid so a forked child opens its own descriptor
# and never inherits a thread lock that some parent thread held at fork time.
_registry: dict[tuple[int, str], ProcessLock] = {}


def process_lock(path: str) -> ProcessLock:
    """The one `ProcessLock` of this process for `path`."""
    key = (os.getpid(), path)
    with _registry_lock:
        lock = _registry.get(key)
        if lock is None:
            lock = _registry[key] = ProcessLock(path)
        return lock
