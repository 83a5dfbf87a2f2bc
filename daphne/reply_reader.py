"""Pulls reply messages off the process-specific prefix and hands them to the reactor
(D-14, D-15, A-20, A-50).

`ReactorReader` (native Twisted mode, D-15) is used when the layer offers
`socket_receive` (asgi_redis): the reactor watches the socket of a blocking pop
and parses replies as they arrive, with no thread in between (issue 9: each
thread hand-over cost two wake-ups under the GIL). Every other layer, and
``--force-sync``, gets `ThreadReader`.

`ThreadReader` runs ONE long-lived thread (also for other layers listing the
`twisted` extension: a `receive_twisted` costs a thread-pool hop and a Deferred chain
per message, issue 9). The thread blocks in ``receive([prefix], block=True)``; once
that returns, it drains whatever else is ready with non-blocking receives (a layer
that prefetches several entries per round trip, like asgi_redis on a ``!`` list, has
them in a local buffer) and hands the whole batch to the reactor with ONE
`callFromThread`. Reader errors (a layer that lost its backend) are logged and
retried after a growing delay of at most 1 s; the thread never exits on its own and
never spins. An outage (`layer_api.unavailable_errors`) is logged once at ERROR naming
the layer and once at INFO when it is over (`LayerHealth`, issue 14), not at every
retry; any other error is a bug, logged with its traceback at each try, and retried the
same way, so the reader never stops.
"""

from __future__ import annotations

import functools
import logging
import threading
import time
from collections.abc import Callable
from typing import Any

from twisted.internet import threads

from .layer_api import unavailable_errors
from .layer_health import LayerHealth
from .metrics import NULL_METRICS
from .retry import ReactorBackoff

logger = logging.getLogger("daphne.server")

ERROR_FIRST_DELAY = 0.1
# Capped well under the 5 s allowed: after a Redis restart replies should flow again
# within about a second (issue 9, W6), and one failed try per second costs nothing.
ERROR_MAX_DELAY = 1.0
# A layer that ignores block=True returns at once; back off so the thread cannot spin.
EMPTY_FAST_RETURN = 0.01
EMPTY_MAX_DELAY = 0.05
# Bounds one hand-over, so a flood of replies still reaches the reactor in slices
# and the reactor never runs one drain for unbounded time.
MAX_BATCH = 256
# How often a reader waiting for the reactor to take a batch checks for `stop`.
HAND_OVER_WAIT = 0.5

Dispatch = Callable[[str, dict], None]
# (reply channels, the message they all get, the logged dispatch of one reply)
FanOut = Callable[[list[str], dict, Dispatch], None]
Batch = list[tuple[str, dict]]

RECEIVING = "trying to receive messages"


class _Reader:
    """What both readers hold: where replies come from and where they go."""

    # Issue 18: `ThreadReader` reports its hand-over lag here (`Server` sets it).
    metrics: Any = NULL_METRICS

    def __init__(
        self,
        reactor: Any,
        channel_layer: Any,
        prefix: str,
        dispatch: Dispatch,
        health: LayerHealth | None = None,
    ) -> None:
        self.reactor = reactor
        self.channel_layer = channel_layer
        self.prefix = prefix
        self.dispatch = dispatch
        # Issue 20: with `fan_out` (the server sets `HTTPFactory.fan_out`), the copies of
        # one group message go to it as a run (`ws_fanout`); else one by one.
        self.fan_out: FanOut | None = None
        self.health = health or LayerHealth(channel_layer)
        # What the layer raises while its backend is away (issue 16 item 2).
        self.unavailable = unavailable_errors(channel_layer)

    def _bug(self, error: BaseException) -> None:
        """A receive failed with an error the layer does not name: its traceback."""
        logger.error(
            "Receiving replies on %s failed with an error the channel layer does not name",
            self.prefix,
            exc_info=error,
        )


class ThreadReader(_Reader):
    """One thread blocking on the process prefix; the reactor gets batches (D-14 note)."""

    def __init__(
        self,
        reactor: Any,
        channel_layer: Any,
        prefix: str,
        dispatch: Dispatch,
        health: LayerHealth | None = None,
    ) -> None:
        super().__init__(reactor, channel_layer, prefix, dispatch, health)
        self.stopping = threading.Event()
        self._dispatched = threading.Event()
        self.thread = threading.Thread(target=self._run, name="daphne-reply-reader", daemon=True)

    def start(self) -> None:
        self.thread.start()

    def stop(self) -> None:
        """Ask the thread to end after its current receive (bounded by the layer, A-32)."""
        self.stopping.set()
        self._dispatched.set()

    def _run(self) -> None:
        receive = self.channel_layer.receive
        channels = [self.prefix]
        # Only its delays: the thread waits on `stopping`, not on the reactor.
        backoff = ReactorBackoff(self.reactor, ERROR_FIRST_DELAY, ERROR_MAX_DELAY)
        empty_delay = 0.0
        health = self.health
        while not self.stopping.is_set():
            started = time.monotonic()
            try:
                channel, message = receive(channels, block=True)
            except self.unavailable as error:
                # L-62.5: e.g. Redis is down. Log (once per outage), wait, retry; never exit.
                health.failed(RECEIVING, error)
                self.stopping.wait(backoff.next_delay())
                continue
            except Exception as error:
                self._bug(error)  # a bug: its traceback, then the same back-off
                self.stopping.wait(backoff.next_delay())
                continue
            if health.down:
                health.ok(RECEIVING)
            backoff.reset()
            if channel is None:
                if time.monotonic() - started < EMPTY_FAST_RETURN:
                    empty_delay = min(max(empty_delay * 2, 0.001), EMPTY_MAX_DELAY)
                    self.stopping.wait(empty_delay)
                continue
            empty_delay = 0.0
            batch = [(channel, message)]
            self._drain_ready(receive, channels, batch)
            self._hand_over(batch)

    def _hand_over(self, batch: Batch) -> None:
        """One `callFromThread` for the batch; then wait until the reactor ran it.

        Waiting lets the next replies gather in the layer while the reactor writes
        this batch, so the next receive takes them in one pop instead of paying a
        round trip and a wake-up each (issue 9). It is bounded, and `stop` ends it.
        """
        self._dispatched.clear()
        self.reactor.callFromThread(self._dispatch_batch, batch, time.monotonic())
        while not self._dispatched.wait(HAND_OVER_WAIT) and not self.stopping.is_set():
            pass

    def _drain_ready(self, receive: Callable, channels: list[str], batch: Batch) -> None:
        """Append what a non-blocking receive still returns, up to MAX_BATCH.

        A layer that keeps popped messages in memory (asgi_redis's ``receive_buffered``)
        is drained from there only: asking the server once more would cost a round
        trip per batch that usually finds nothing, and the next blocking receive
        takes whatever arrived meanwhile anyway.
        """
        take = getattr(self.channel_layer, "receive_buffered", None) or (
            lambda channels: receive(channels, block=False)
        )
        while len(batch) < MAX_BATCH:
            try:
                channel, message = take(channels)
            except self.unavailable as error:
                # Hand over what was popped already (nothing accepted is lost); the
                # blocking receive that follows meets the error again and backs off.
                self.health.failed(RECEIVING, error)
                return
            except Exception as error:
                self._bug(error)  # as above, with its traceback
                return
            if channel is None:
                return
            batch.append((channel, message))

    def _dispatch_batch(self, batch: Batch, handed: float | None = None) -> None:
        if handed is not None:  # batch complete -> the reactor runs it (issue 18)
            self.metrics.reader_lag(time.monotonic() - handed)
        try:
            dispatch_each(self.dispatch, batch, self.fan_out)
        finally:
            self._dispatched.set()


def dispatch_each(dispatch: Dispatch, batch: Batch, fan_out: FanOut | None = None) -> None:
    """Hand each reply to `dispatch`; one that fails is logged, the others still go.

    With `fan_out`, a run of equal one-key messages (the copies of a group send, next
    to each other in a batch, A-93) goes to it at once, with the reply channels in
    order; it hands what it does not send itself to the logged `dispatch` (issue 20).
    """
    if fan_out is None or len(batch) < 2:
        for channel, message in batch:
            _dispatch_one(dispatch, channel, message)
        return
    one = functools.partial(_dispatch_one, dispatch)
    index, end = 0, len(batch)
    while index < end:
        channel, message = batch[index]
        after = index + 1
        if type(message) is dict and len(message) == 1:
            while after < end:
                other = batch[after][1]
                try:
                    if other is not message and other != message:
                        break
                except Exception:  # a value that cannot be compared: not a copy
                    break
                after += 1
        if after - index == 1:
            _dispatch_one(dispatch, channel, message)
        else:
            try:
                fan_out([name for name, _ in batch[index:after]], message, one)
            except Exception as error:
                logger.error("HTTP/WS send decode error: %s", error, exc_info=True)
        index = after


def _dispatch_one(dispatch: Dispatch, channel: str, message: dict) -> None:
    try:
        dispatch(channel, message)
    except Exception as error:
        # D-14: a bad reply (or a bug handling it) must not stop the others.
        logger.error("HTTP/WS send decode error: %s", error, exc_info=True)


class ReactorReader(_Reader):
    """The reactor reads replies from the layer's socket (`socket_receive`); no thread.

    Registered with `reactor.addReader`: the reactor calls `doRead` when the
    socket of the pending blocking pop is readable. A failure (Redis down, a
    restart) closes that receive, logs, and opens a new one after a growing
    delay of at most 1 s (L-62.5); nothing here blocks the reactor except the
    connect of a new receive.
    """

    def __init__(
        self,
        reactor: Any,
        channel_layer: Any,
        prefix: str,
        dispatch: Dispatch,
        health: LayerHealth | None = None,
    ) -> None:
        super().__init__(reactor, channel_layer, prefix, dispatch, health)
        self.stopping = False
        self._receive: Any = None
        self._backoff = ReactorBackoff(reactor, ERROR_FIRST_DELAY, ERROR_MAX_DELAY)

    @classmethod
    def open(
        cls,
        reactor: Any,
        channel_layer: Any,
        prefix: str,
        dispatch: Dispatch,
        health: LayerHealth | None = None,
    ) -> ReactorReader | None:
        """A started reader, or `None` when the layer cannot receive on a socket."""
        if not hasattr(channel_layer, "socket_receive"):
            return None
        reader = cls(reactor, channel_layer, prefix, dispatch, health)
        try:
            reader._receive = channel_layer.socket_receive([prefix])
        except NotImplementedError:
            return None  # e.g. TLS to Redis: the thread reader serves it
        except reader.unavailable as error:
            reader._failed(error)  # Redis down at start: retried like any failure
            return reader
        except Exception as error:
            reader._bug(error)
            reader._retry()
            return reader
        reactor.addReader(reader)
        return reader

    def stop(self) -> None:
        """Stop reading (from the reactor thread); a pending pop's connection is closed."""
        self.stopping = True
        self._backoff.cancel()
        self._close()

    # -- IReadDescriptor ------------------------------------------------------------

    def fileno(self) -> int:
        return self._receive.fileno() if self._receive is not None else -1

    def doRead(self) -> None:
        try:
            batch = self._receive.read()
        except self.unavailable as error:
            self._failed(error)
            return
        except Exception as error:
            self._bug(error)
            self._retry()
            return
        backoff = self._backoff
        if backoff.delay != backoff.first:  # after errors only: no call per read (issue 16)
            backoff.reset()  # (no give-up deadline here: the delay is all it resets)
        if batch:
            dispatch_each(self.dispatch, batch, self.fan_out)

    def connectionLost(self, reason: Any) -> None:
        self._close()

    def logPrefix(self) -> str:
        return "daphne-reply-reader"

    # -- failures and reconnects ---------------------------------------------------------

    def _failed(self, error: BaseException) -> None:
        # L-62.5: e.g. Redis is down. Log (once per outage), wait, retry; never give up.
        self.health.failed(RECEIVING, error)
        self._retry()

    def _retry(self) -> None:
        """Close the receive and open a new one after the back-off (an outage or a bug)."""
        self._close()
        if not self.stopping:
            self._backoff.later(self._reopen)

    def _reopen(self) -> None:
        if self.stopping:
            return
        # Connected in a thread: a Redis that drops packets instead of refusing can
        # keep a connect waiting for the OS's timeout, which must not freeze the reactor.
        opening = threads.deferToThreadPool(
            self.reactor,
            self.reactor.getThreadPool(),
            self.channel_layer.socket_receive,
            [self.prefix],
        )
        opening.addCallbacks(self._opened, self._reopen_failed)

    def _reopen_failed(self, failure: Any) -> None:
        error = failure.value
        if isinstance(error, self.unavailable):
            self._failed(error)
        else:
            self._bug(error)
            self._retry()

    def _opened(self, receive: Any) -> None:
        if self.stopping:
            receive.close()
            return
        self._receive = receive
        self.reactor.addReader(self)
        self.health.ok(RECEIVING)

    def _close(self) -> None:
        receive, self._receive = self._receive, None
        if receive is not None:
            self._remove_reader(receive)
            receive.close()

    def _remove_reader(self, receive: Any) -> None:
        # Removed while `fileno` still names the open socket, so the reactor finds it.
        self._receive = receive
        try:
            self.reactor.removeReader(self)
        finally:
            self._receive = None
