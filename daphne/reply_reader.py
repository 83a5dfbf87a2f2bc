"""Pulls reply messages off the process-specific prefix and hands them to the reactor
(D-14, D-15, A-20, A-50).

`ThreadReader` runs ONE thread blocking in ``receive([prefix], block=True)``; each
message goes into a deque, and the reactor is woken at most once per batch
(`callFromThread` is only called when no drain is already scheduled), so a burst
of replies costs one wake-up. Reader errors (a layer that lost its backend) are
logged and retried after a growing delay of at most 1 s; the thread never exits
on its own and never spins.
"""

from __future__ import annotations

import collections
import logging
import threading
import time
from collections.abc import Callable
from typing import Any

from twisted.internet import defer, task

logger = logging.getLogger("daphne.server")

ERROR_FIRST_DELAY = 0.1
# Capped well under the 5 s allowed: after a Redis restart replies should flow again
# within about a second (issue 9, W6), and one failed try per second costs nothing.
ERROR_MAX_DELAY = 1.0
# A layer that ignores block=True returns at once; back off so the thread cannot spin.
EMPTY_FAST_RETURN = 0.01
EMPTY_MAX_DELAY = 0.05

Dispatch = Callable[[str, dict], None]


def _dispatch_logged(dispatch: Dispatch, channel: str, message: dict) -> None:
    try:
        dispatch(channel, message)
    except Exception as error:
        # D-14: a bad reply (or a bug handling it) must not stop the reader.
        logger.error("HTTP/WS send decode error: %s", error, exc_info=True)


class ThreadReader:
    """One thread blocking on the process prefix; the reactor gets batches (D-14 note)."""

    def __init__(self, reactor: Any, channel_layer: Any, prefix: str, dispatch: Dispatch) -> None:
        self.reactor = reactor
        self.channel_layer = channel_layer
        self.prefix = prefix
        self.dispatch = dispatch
        self.stopping = threading.Event()
        self._inbox: collections.deque[tuple[str, dict]] = collections.deque()
        self._drain_scheduled = False
        self.thread = threading.Thread(target=self._run, name="daphne-reply-reader", daemon=True)

    def start(self) -> None:
        self.thread.start()

    def stop(self) -> None:
        """Ask the thread to end after its current receive (bounded by the layer, A-32)."""
        self.stopping.set()

    def _run(self) -> None:
        receive = self.channel_layer.receive
        channels = [self.prefix]
        error_delay = ERROR_FIRST_DELAY
        empty_delay = 0.0
        while not self.stopping.is_set():
            started = time.monotonic()
            try:
                channel, message = receive(channels, block=True)
            except Exception as error:
                # L-62.5: e.g. Redis is down. Log, wait, retry; never exit.
                logger.error("Error trying to receive messages: %s", error)
                self.stopping.wait(error_delay)
                error_delay = min(error_delay * 2, ERROR_MAX_DELAY)
                continue
            error_delay = ERROR_FIRST_DELAY
            if channel is None:
                if time.monotonic() - started < EMPTY_FAST_RETURN:
                    empty_delay = min(max(empty_delay * 2, 0.001), EMPTY_MAX_DELAY)
                    self.stopping.wait(empty_delay)
                continue
            empty_delay = 0.0
            self._inbox.append((channel, message))
            if not self._drain_scheduled:
                self._drain_scheduled = True
                self.reactor.callFromThread(self._drain)

    def _drain(self) -> None:
        # Reset first: a message appended after this line schedules another drain.
        self._drain_scheduled = False
        inbox = self._inbox
        dispatch = self.dispatch
        while inbox:
            channel, message = inbox.popleft()
            _dispatch_logged(dispatch, channel, message)


class TwistedReader:
    """Loops on the layer's ``receive_twisted`` on the reactor thread (D-15, A-50)."""

    def __init__(self, reactor: Any, channel_layer: Any, prefix: str, dispatch: Dispatch) -> None:
        self.reactor = reactor
        self.channel_layer = channel_layer
        self.prefix = prefix
        self.dispatch = dispatch
        self.stopping = False

    def start(self) -> defer.Deferred:
        return self._run()

    def stop(self) -> None:
        self.stopping = True

    @defer.inlineCallbacks
    def _run(self):
        channels = [self.prefix]
        delay = ERROR_FIRST_DELAY
        while not self.stopping and self.reactor.running:
            try:
                channel, message = yield self.channel_layer.receive_twisted(channels)
            except Exception as error:
                logger.error("Error trying to receive messages: %s", error)
                yield task.deferLater(self.reactor, delay, lambda: None)
                delay = min(delay * 2, ERROR_MAX_DELAY)
                continue
            delay = ERROR_FIRST_DELAY
            if channel:
                _dispatch_logged(self.dispatch, channel, message)
