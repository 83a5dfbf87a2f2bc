"""Messages the layer refused for lack of room, or could not take at all (A-89).

Drops are counted (`FullChannelReporter.totals`) and logged at WARNING as one summary
line per channel and interval: the first drop at once, the rest of the interval's with
their true count when the interval ends (a reactor timer, so a burst that is never
followed by another drop is still reported, issue 15). A channel found full is not
hammered with sends whose only outcome is another drop (`send_best_effort`).

``websocket.disconnect`` is not dropped on a full channel: `send_reliably` retries it
from a reactor timer with a growing back-off until the layer's message expiry, so a
burst of closes (a restart, a load balancer reset) cannot leave sockets in their groups
for ``group_expiry`` (issue 15).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from typing import Any, Protocol

from twisted.internet.base import DelayedCall

from .layer_api import ChannelLayer, is_unavailable
from .outbox import Outbox, OutboxFull
from .retry import ReactorBackoff

__all__ = ["DropReporter", "FullChannelReporter", "send_best_effort", "send_reliably"]

# A layer error that is neither a full channel nor an outage: a bug, with its traceback.
logger = logging.getLogger("daphne.server")

# send_reliably's back-off: from ~1 ms, doubling, at most this many seconds.
RELIABLE_FIRST_DELAY = 0.001
RELIABLE_MAX_DELAY = 1.0


class DropReporter(Protocol):
    """What `send_best_effort` and `send_reliably` report to: a `FullChannelReporter`,
    or `daphne.layer_health.HealthReporter` (outages to the layer's health instead)."""

    def recently_full(self, channel: str) -> bool: ...

    def found_full(self, channel: str) -> None: ...

    def full(self, channel: str, what: str) -> None: ...

    def failed(self, channel: str, what: str, error: BaseException) -> None: ...


class FullChannelReporter:
    """Logs messages dropped or refused for a full channel at WARNING (A-89), merged to one
    line per channel at most every `interval` seconds with the count.

    An unconsumed channel (nobody routes ``http.disconnect``, say) stays full, and one
    line per request would cost more than the request itself.
    """

    interval = 10.0
    # Channels whose drops are routine, counted but logged at DEBUG only (issue 14):
    # nothing may consume http.disconnect, and a full one loses the application nothing.
    routine = frozenset({"http.disconnect"})
    # Seconds a channel found full is not tried again by `send_best_effort`.
    probe_interval = 0.1

    def __init__(
        self,
        logger: logging.Logger,
        clock: Callable[[], float] | None = None,
        reactor: Any = None,
    ) -> None:
        self.logger = logger
        self.clock = clock or time.monotonic
        self._reactor = reactor  # for the end-of-interval line; Twisted's by default
        # (kind, channel) -> [time of last line, drops since, what, error]
        self._state: dict[tuple[str, str], list[Any]] = {}
        # channel -> when a send last raised ChannelFull
        self._found_full: dict[str, float] = {}
        # (kind, channel) -> messages dropped since start, whatever was logged
        self.totals: dict[tuple[str, str], int] = {}
        self._flush_call: DelayedCall | None = None

    def found_full(self, channel: str) -> None:
        self._found_full[channel] = self.clock()

    def recently_full(self, channel: str) -> bool:
        found = self._found_full.get(channel)
        return found is not None and self.clock() - found < self.probe_interval

    def full(self, channel: str, what: str) -> None:
        self._count("full", channel, what, None)

    def failed(self, channel: str, what: str, error: BaseException) -> None:
        """The layer raised something else (its backend is down): same merging, ERROR."""
        self._count("error", channel, what, error)

    def _count(self, kind: str, channel: str, what: str, error: BaseException | None) -> None:
        key = (kind, channel)
        self.totals[key] = self.totals.get(key, 0) + 1
        now = self.clock()
        state = self._state.get(key)
        if state is None:
            state = self._state[key] = [now - self.interval, 0, what, error]
        state[1] += 1
        state[2], state[3] = what, error
        if now - state[0] < self.interval:
            self._schedule_flush(state[0] + self.interval - now)
            return
        self._log(key, state, now)

    def _log(self, key: tuple[str, str], state: list[Any], now: float) -> None:
        count, state[0], state[1] = state[1], now, 0
        kind, channel = key
        plural = "" if count == 1 else "s"
        if kind == "full":
            log = self.logger.debug if channel in self.routine else self.logger.warning
            log(
                "%s is full: %s (%d time%s since the last report)", channel, state[2], count, plural
            )
        else:
            self.logger.error(
                "Cannot send to %s: %s: %s (%d time%s since the last report)",
                channel,
                state[2],
                state[3],
                count,
                plural,
            )

    def flush(self) -> None:
        """Log every count still waiting for the end of its interval (the timer's job)."""
        self._flush_call = None
        now = self.clock()
        waiting = False
        for key, state in self._state.items():
            if not state[1]:
                continue
            if now - state[0] >= self.interval:
                self._log(key, state, now)
            else:
                waiting = True
        if waiting:
            self._schedule_flush(self.interval)

    def _schedule_flush(self, delay: float) -> None:
        if self._flush_call is not None:
            return
        reactor = self._reactor
        if reactor is None:
            from twisted.internet import reactor
            from twisted.python.threadable import isInIOThread

            # Twisted's thread check is untyped.
            if not isInIOThread():  # type: ignore[no-untyped-call, unused-ignore]
                return  # not the reactor's thread (a test's clock): the next drop logs it
        try:
            self._flush_call = reactor.callLater(max(delay, 0.0), self.flush)
        except Exception:  # no reactor to run it: the next drop logs the count
            self._flush_call = None


def send_best_effort(
    outbox: Outbox, channel: str, message: dict[str, Any], what: str, reporter: DropReporter
) -> None:
    """Send a message the protocol may drop (disconnects, A-89) through `outbox`.

    A full channel is reported (merged); a layer that cannot reach its backend (Redis
    down, L-62) or the outbox full of sends it does not answer goes to
    `reporter.failed`; any other error the layer raises is a bug, logged at ERROR with
    its traceback. Connection teardown never fails on any of them.

    A channel found full is not tried again for `reporter.probe_interval` seconds: such
    a message would only be dropped, and on a networked layer each try costs a round
    trip (an ``http.disconnect`` nobody consumes stays full for good). Skipped
    messages are counted in the warning, not by the layer.
    """
    if reporter.recently_full(channel):
        reporter.full(channel, what)
        return
    outbox.send(channel, message, _BestEffort(outbox.channel_layer, what, reporter))


def _refused(layer: ChannelLayer, error: BaseException) -> bool:
    """Whether `error` is a refusal to retry later: the outbox full of unanswered sends,
    or the layer's backend away (`daphne.layer_api.is_unavailable`). A full channel
    is the caller's to test first."""
    return isinstance(error, OutboxFull) or is_unavailable(layer, error)


def _unexpected(channel: str, what: str, error: BaseException) -> None:
    logger.error(
        "Cannot send to %s: %s: unexpected error from the channel layer",
        channel,
        what,
        exc_info=error,
    )


class _BestEffort:
    """The outcome callback of `send_best_effort`: report a drop, never raise."""

    __slots__ = ("layer", "what", "reporter")

    def __init__(self, layer: ChannelLayer, what: str, reporter: DropReporter) -> None:
        self.layer = layer
        self.what = what
        self.reporter = reporter

    def __call__(self, channel: str, message: dict[str, Any], error: BaseException | None) -> None:
        if error is None:
            return
        if isinstance(error, self.layer.ChannelFull):
            self.reporter.found_full(channel)
            self.reporter.full(channel, self.what)
        elif _refused(self.layer, error):
            self.reporter.failed(channel, self.what, error)
        else:
            _unexpected(channel, self.what, error)


def send_reliably(
    outbox: Outbox,
    reactor: Any,
    channel: str,
    message: dict[str, Any],
    what: str,
    reporter: DropReporter,
    give_up_after: float,
) -> None:
    """Send through `outbox`, retrying a refusal (full channel, layer unreachable, the
    outbox full) with a growing back-off for up to `give_up_after` seconds (the layer's
    message expiry): only then is the message dropped, and counted (issue 15). Any
    other error is not retried: it is logged at ERROR with its traceback at once."""
    backoff = ReactorBackoff(reactor, RELIABLE_FIRST_DELAY, RELIABLE_MAX_DELAY, give_up_after)
    outbox.send(channel, message, _Reliable(outbox, what, reporter, backoff))


class _Reliable:
    """The outcome callback of `send_reliably`."""

    __slots__ = ("outbox", "what", "reporter", "backoff")

    def __init__(
        self, outbox: Outbox, what: str, reporter: DropReporter, backoff: ReactorBackoff
    ) -> None:
        self.outbox = outbox
        self.what = what
        self.reporter = reporter
        self.backoff = backoff  # `expired` at the layer's message expiry

    def __call__(self, channel: str, message: dict[str, Any], error: BaseException | None) -> None:
        if error is None:
            return
        layer = self.outbox.channel_layer
        full = isinstance(error, layer.ChannelFull)
        if not full and not _refused(layer, error):
            _unexpected(channel, self.what, error)
            return
        if self.backoff.expired():
            gave_up = getattr(self.reporter, "gave_up", None)
            if gave_up is not None:  # a `HealthReporter`: counted as expired (issue 18)
                gave_up(channel, self.what, error, full)
            elif full:
                self.reporter.full(channel, self.what)
            else:
                self.reporter.failed(channel, self.what, error)
            return
        self.backoff.later(self.outbox.send, channel, message, self)
