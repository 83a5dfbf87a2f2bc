"""WebSocket flow control: when a connection stops reading its client (issue 15, A-89).

Two reasons, kept as bits of `_read_blocks`, so one ending does not resume reading
while the other holds: the transport's outbound buffer is full (`FlowControl`, the
transport's producer after the hand-over; `backpressure` bounds the buffer), and
frames wait for room on the layer (`HeldFrames`: a full channel or an unreachable
layer, retried through the outbox from a reactor timer, never blocking the reactor).
"""

from __future__ import annotations

import logging
from typing import Any

from .backpressure import cancel_outbound_timer, check_outbound
from .full_channels import FullChannelReporter
from .retry import RETRY_MAX_DELAY, ReactorBackoff
from .ws_state import CLOSE_POLICY_VIOLATION, CLOSE_TOO_BIG, CLOSE_TRY_AGAIN_LATER

__all__ = ["FlowControl", "HeldFrames", "full_channels"]

logger = logging.getLogger("daphne.ws_protocol")
full_channels = FullChannelReporter(logger)

# a frame refused for a full channel is retried (`retry.ReactorBackoff`); after
# this many seconds without progress the socket is closed with 1013.
RETRY_GIVE_UP = 5.0
# Frames held while the layer's backend is unreachable, before closing with 1013; a
# backend comes back in seconds, so those retries back off up to a second.
BACKEND_GIVE_UP = 30.0
BACKEND_MAX_DELAY = 1.0

# Why a socket stopped reading from its client (bits of `_read_blocks`).
_HELD = 1  # frames wait for room on the layer
_WRITE_FULL = 2  # the transport's outbound buffer is full (issue 15)


class FlowControl:
    """Mixin for `WebSocketProtocol`: the transport's IPushProducer."""

    _read_blocks = 0  # _HELD | _WRITE_FULL
    _outbound_timer: Any = None
    _local_close_code: int | None = None  # the code daphne closed with, for the disconnect

    def pauseProducing(self) -> None:
        """The transport's buffer is full: stop reading from the client meanwhile."""
        self._block_reading(_WRITE_FULL)
        if self.main_factory is not None:
            check_outbound(self, self.main_factory)

    def resumeProducing(self) -> None:
        cancel_outbound_timer(self)
        self._unblock_reading(_WRITE_FULL)

    def stopProducing(self) -> None:
        cancel_outbound_timer(self)

    def _block_reading(self, reason: int) -> None:
        if not self._read_blocks and self.transport is not None:
            self.transport.pauseProducing()
        self._read_blocks |= reason

    def _unblock_reading(self, reason: int) -> None:
        if not self._read_blocks & reason:
            return
        self._read_blocks &= ~reason
        if not self._read_blocks and self.transport is not None and self.state != self.STATE_CLOSED:
            self.transport.resumeProducing()

    def outbound_overflow(self) -> None:
        """The client has not read its replies: close with 1008 and drop (backpressure)."""
        self._local_close_code = CLOSE_POLICY_VIOLATION
        if self.state == self.STATE_OPEN:
            self.sendCloseFrame(code=CLOSE_POLICY_VIOLATION, isReply=False)
        # The close frame sits behind what the client does not read: abort, which
        # frees the buffer now (autobahn's close timeout would hold it a while).
        self.dropConnection(abort=True)


class HeldFrames:
    """Mixin for `WebSocketProtocol`: retries the frames its session holds (A-89).

    The session (`ws_state`) decides what is held and in which order; this sends the
    first held message again from a reactor timer, through the outbox (never blocking).
    """

    _held_backoff: ReactorBackoff | None = None

    def _hold(self, backend: bool) -> None:
        """The session began holding frames: stop reading and retry from a timer."""
        give_up = BACKEND_GIVE_UP if backend else RETRY_GIVE_UP
        self._held_backoff = backoff = ReactorBackoff(
            self.main_factory.reactor, give_up_after=give_up
        )
        self._block_reading(_HELD)
        backoff.later(self._retry_pending)

    def _retry_pending(self) -> None:
        held = self.session.held
        if not held:
            return
        channel, message = held[0]
        self.main_factory.outbox.send(channel, message, self._retried, self)

    def _retried(self, channel: str, message: dict, error: BaseException | None) -> None:
        held = self.session.held
        if not held or held[0][1] is not message:
            return  # given up (closed) meanwhile
        layer = self.channel_layer
        backoff = self._held_backoff
        if error is None:
            held.popleft()
            backoff.reset()
            if held:
                self._retry_pending()
                return
            self.session.held = None
            self.main_factory.ws_reporter.worked()  # INFO if the layer had been reported down
            self._unblock_reading(_HELD)
            return
        if isinstance(error, layer.MessageTooLarge):
            self.session.held = None
            self._mute_and_close(CLOSE_TOO_BIG, "message too big for the channel layer")
            return
        full = isinstance(error, layer.ChannelFull)
        if not full:  # the backend is still away
            self.main_factory.ws_reporter.failed(
                channel, "holding frames until the layer is back", error
            )
        if backoff.expired():
            self._give_up_pending()
            return
        # A full channel frees up within milliseconds; a backend comes back in seconds.
        backoff.cap = RETRY_MAX_DELAY if full else BACKEND_MAX_DELAY
        backoff.later(self._retry_pending)

    def _give_up_pending(self) -> None:
        logger.warning(
            "The channel layer refused frames for %s s; closing %s with 1013",
            self._held_backoff.give_up_after,
            self.reply_channel,
        )
        held, self.session.held = self.session.held, None
        for channel, message in held or ():
            if channel == "websocket.disconnect":
                self._send_disconnect(message)  # the client is gone: keep trying that one
        self._mute_and_close(CLOSE_TRY_AGAIN_LATER, "channel layer unavailable")
