"""Messages the layer refused for lack of room, or could not take at all (A-89).

Drops are logged at WARNING, merged to one line per channel at most every 10 s, and a
channel found full is not hammered with sends whose only outcome is another drop.
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .outbox import Outbox

__all__ = ["FullChannelReporter", "send_best_effort"]


class FullChannelReporter:
    """Logs messages dropped or refused for a full channel at WARNING (A-89), merged to one
    line per channel at most every `interval` seconds with the count.

    An unconsumed channel (nobody routes ``http.disconnect``, say) stays full, and one
    line per request would cost more than the request itself.
    """

    interval = 10.0
    # Seconds a channel found full is not tried again by `send_best_effort`.
    probe_interval = 0.1

    def __init__(self, logger: Any, clock: Any = None) -> None:
        self.logger = logger
        self.clock = clock or time.monotonic
        # channel -> [time of last line, drops since]
        self._state: dict[str, list] = {}
        # channel -> when a send last raised ChannelFull
        self._found_full: dict[str, float] = {}

    def found_full(self, channel: str) -> None:
        self._found_full[channel] = self.clock()

    def recently_full(self, channel: str) -> bool:
        found = self._found_full.get(channel)
        return found is not None and self.clock() - found < self.probe_interval

    def full(self, channel: str, what: str) -> None:
        now = self.clock()
        state = self._state.get(channel)
        if state is None:
            state = self._state[channel] = [now - self.interval, 0]
        state[1] += 1
        if now - state[0] < self.interval:
            return
        count, state[0], state[1] = state[1], now, 0
        self.logger.warning(
            "%s is full: %s (%d time%s since the last report)",
            channel,
            what,
            count,
            "" if count == 1 else "s",
        )

    def failed(self, channel: str, what: str, error: BaseException) -> None:
        """The layer raised something else (its backend is down): same merging, ERROR."""
        now = self.clock()
        key = "error:" + channel
        state = self._state.get(key)
        if state is None:
            state = self._state[key] = [now - self.interval, 0]
        state[1] += 1
        if now - state[0] < self.interval:
            return
        count, state[0], state[1] = state[1], now, 0
        self.logger.error(
            "Cannot send to %s: %s: %s (%d time%s since the last report)",
            channel,
            what,
            error,
            count,
            "" if count == 1 else "s",
        )


def send_best_effort(
    outbox: Outbox, channel: str, message: dict, what: str, reporter: FullChannelReporter
) -> None:
    """Send a message the protocol may drop (disconnects, A-89) through `outbox`.

    A full channel is reported (merged); a layer that cannot reach its backend (Redis
    down, L-62) is logged with the error, so connection teardown never fails on it.

    A channel found full is not tried again for `reporter.probe_interval` seconds: such
    a message would only be dropped, and on a networked layer each try costs a round
    trip (an ``http.disconnect`` nobody consumes stays full for good). Skipped
    messages are counted in the warning, not by the layer.
    """
    if reporter.recently_full(channel):
        reporter.full(channel, what)
        return
    outbox.send(channel, message, _BestEffort(outbox.channel_layer, what, reporter))


class _BestEffort:
    """The outcome callback of `send_best_effort`: report a drop, never raise."""

    __slots__ = ("layer", "what", "reporter")

    def __init__(self, layer: Any, what: str, reporter: FullChannelReporter) -> None:
        self.layer = layer
        self.what = what
        self.reporter = reporter

    def __call__(self, channel: str, message: dict, error: BaseException | None) -> None:
        if error is None:
            return
        if isinstance(error, self.layer.ChannelFull):
            self.reporter.found_full(channel)
            self.reporter.full(channel, self.what)
        else:  # the layer's backend errors have no common base class
            self.reporter.failed(channel, self.what, error)
