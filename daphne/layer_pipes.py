"""The reactor's side of a layer's socket sends (asgi_redis `socket_sender`, issue 15).

`PipeWatch` registers one shard's `ShardPipe` with the reactor: readable → parse
replies, writable → write what is still queued. A pipe without a connection is
connected in the reactor's thread pool: connecting (and a Sentinel lookup) may
wait on the network, which must never happen on the reactor thread.
"""

from __future__ import annotations

import logging
import select
import time
from typing import Any

from twisted.internet import threads
from twisted.internet.interfaces import IReadDescriptor, IWriteDescriptor
from zope.interface import implementer

__all__ = ["PipeWatch", "pump_until_answered"]

logger = logging.getLogger("daphne.server")


@implementer(IReadDescriptor, IWriteDescriptor)
class PipeWatch:
    """One `ShardPipe` watched by the reactor while it is open."""

    def __init__(self, reactor: Any, pipe: Any, unsupported: Any = None) -> None:
        self.reactor = reactor
        self.pipe = pipe
        # Called when connecting shows sockets cannot be used (TLS found late).
        self.unsupported = unsupported
        self._fd = -1  # the descriptor registered with the reactor, -1 for none
        self._writing = False
        pipe.on_close = self._unwatch

    def ensure(self) -> None:
        """After a write to the pipe: connect it, or watch for room to write the rest."""
        state = self.pipe.state
        if state == "new":
            self.pipe.state = "connecting"
            opening = threads.deferToThreadPool(
                self.reactor, self.reactor.getThreadPool(), self.pipe.connect
            )
            opening.addCallbacks(self._opened, self._not_opened)
        elif state == "open":
            self._update()

    def _opened(self, connected: Any) -> None:
        self.pipe.opened(connected)
        self.pipe.write_some()
        self._update()

    def _not_opened(self, failure: Any) -> None:
        self.pipe.state = "new"
        if isinstance(failure.value, NotImplementedError) and self.unsupported is not None:
            self.unsupported()
        self.pipe.fail(failure.value)  # every queued message hears the error

    def _update(self) -> None:
        fd = self.pipe.fileno() if self.pipe.state == "open" else -1
        if fd != self._fd:
            self._unwatch()
            if fd >= 0:
                self._fd = fd
                self.reactor.addReader(self)
        if self._fd < 0:
            return
        wants = self.pipe.wants_write()
        if wants and not self._writing:
            self._writing = True
            self.reactor.addWriter(self)
        elif not wants and self._writing:
            self._writing = False
            self.reactor.removeWriter(self)

    def _unwatch(self) -> None:
        if self._fd < 0:
            return
        # Removed while `fileno` still names the registered descriptor.
        try:
            self.reactor.removeReader(self)
            if self._writing:
                self.reactor.removeWriter(self)
        finally:
            self._fd = -1
            self._writing = False

    # -- IReadDescriptor / IWriteDescriptor -------------------------------------------

    def fileno(self) -> int:
        return self._fd

    def doRead(self) -> None:
        self._step(self.pipe.read)

    def doWrite(self) -> None:
        self._step(self.pipe.write_some)

    def _step(self, action: Any) -> None:
        fd = self._fd
        if self.pipe.state == "open" and self.pipe.fileno() == fd:
            action()
        if self.pipe.state != "open" or self.pipe.fileno() != fd:
            self._unwatch()  # failed: its socket is gone, the next write reconnects
        else:
            self._update()

    def connectionLost(self, reason: Any) -> None:
        self._unwatch()

    def logPrefix(self) -> str:
        return "daphne-layer-sender"


def pump_until_answered(watches: list[PipeWatch], timeout: float) -> None:
    """Drive open pipes from the calling thread until nothing waits, or `timeout`.

    For a stop that runs no more reactor ticks (D-17): the last messages still go
    out, but a Redis that does not answer holds the stop for `timeout` at most.
    """
    deadline = time.monotonic() + timeout
    while True:
        open_watches = [w for w in watches if w.pipe.state == "open" and w.pipe.waiting]
        if not open_watches:
            return
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            logger.warning("The channel layer did not answer the last sends within %s s", timeout)
            return
        poller = select.poll()
        by_fd = {}
        for watch in open_watches:
            fd = watch.pipe.fileno()
            by_fd[fd] = watch
            poller.register(fd, select.POLLIN | (select.POLLOUT if watch.pipe.wants_write() else 0))
        for fd, events in poller.poll(remaining * 1000):
            watch = by_fd[fd]
            if events & select.POLLOUT:
                watch.doWrite()
            if events & (select.POLLIN | select.POLLERR | select.POLLHUP):
                watch.doRead()
