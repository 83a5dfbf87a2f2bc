"""Waking a blocked `receive` in another process without polling (L-56.7).

Each thread that blocks in `receive` owns a named pipe (FIFO)
``{prefix}-wake-{waiter}`` in the store directory and keeps it open for
reading. While it waits it is registered in the store's ``waiters`` table for
each name it receives on; it registers in the same locked transaction that
found those names empty, so a send either happens before that transaction (and
the receiver finds the message) or after it (and sees the registration). The
sender writes one byte to each registered waiter's pipe after committing,
which makes the waiter's ``poll`` return at once.

Why one pipe per waiter rather than one per channel: a byte in a pipe shared
by several readers can be drained by a reader it was not meant for, losing
the wake-up of the one it was meant for.

A waiter whose process died leaves a pipe nobody reads: opening it for
writing fails with ``ENXIO`` (or ``ENOENT`` once removed), which tells the
sender to drop the registration and the file.
"""

from __future__ import annotations

import contextlib
import errno
import os
import secrets
import select
import sys
import weakref

__all__ = ["Waker", "notify", "waker_pid", "wake_path"]

WAKE_INFIX = "-wake-"


def wake_path(directory: str, prefix: str, waiter: str) -> str:
    return os.path.join(directory, f"{prefix}{WAKE_INFIX}{waiter}")


def waker_pid(waiter: str) -> int | None:
    """The process id encoded in a waiter name, or None if it is not one of ours."""
    pid, _, _ = waiter.partition(".")
    return int(pid) if pid.isdigit() else None


class Waker:
    """The receiving end: a FIFO owned by one thread of this process."""

    def __init__(self, directory: str, prefix: str) -> None:
        # The pid lets a later process remove pipes of dead processes; the
        # random part keeps a reused pid from colliding with a stale file.
        self.name = f"{os.getpid()}.{secrets.token_hex(6)}"
        self.path = wake_path(directory, prefix, self.name)
        os.mkfifo(self.path, 0o600)
        self.fd = os.open(self.path, os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC)
        # Our own writer keeps the pipe from reporting hang-up (POLLHUP, which
        # never clears) once the first sender has opened and closed it; it
        # dies with us, so a stale pipe still has no reader for `notify`.
        self._keep_open = os.open(self.path, os.O_WRONLY | os.O_NONBLOCK | os.O_CLOEXEC)
        # The pipe goes when the owning thread's local storage is collected,
        # or at interpreter exit.
        self._finalizer = weakref.finalize(self, _remove, (self.fd, self._keep_open), self.path)

    def wait(self, timeout: float) -> bool:
        """Block until a sender writes to the pipe or `timeout` passes; True if woken."""
        readable = _wait_readable(self.fd, timeout)
        if readable:
            self.drain()
        return readable

    def drain(self) -> None:
        # Several sends may have written before we woke; one re-check covers them.
        with contextlib.suppress(BlockingIOError):
            while os.read(self.fd, 4096):
                pass

    def close(self) -> None:
        self._finalizer()


def notify(path: str) -> bool:
    """Wake the waiter behind `path`. False when nobody reads it any more (stale)."""
    try:
        fd = os.open(path, os.O_WRONLY | os.O_NONBLOCK | os.O_CLOEXEC)
    except OSError as error:
        if error.errno in (errno.ENXIO, errno.ENOENT):
            return False
        raise
    try:
        os.write(fd, b"\0")
    except BlockingIOError:
        pass  # the pipe is full of earlier wake-ups: the waiter is already woken
    except BrokenPipeError:
        return False  # the reader closed it after our open: its thread has ended
    finally:
        os.close(fd)
    return True


def _remove(fds: tuple[int, ...], path: str) -> None:
    for fd in fds:
        os.close(fd)
    with contextlib.suppress(FileNotFoundError):
        os.unlink(path)


if hasattr(select, "poll") and sys.platform != "darwin":

    def _wait_readable(fd: int, timeout: float) -> bool:
        # poll, not select: select cannot watch descriptors above 1023, which
        # a busy protocol server reaches.
        poller = select.poll()
        poller.register(fd, select.POLLIN)
        return bool(poller.poll(max(0, int(timeout * 1000) + 1)))

else:  # macOS: poll() on FIFOs is unreliable there

    def _wait_readable(fd: int, timeout: float) -> bool:
        readable, _, _ = select.select([fd], [], [], max(0.0, timeout))
        return bool(readable)
