"""WebSocket flow control: when a connection stops reading its client (issue 15, A-89).

Two reasons, kept as bits of `_read_blocks`, so one ending does not resume reading
while the other holds: the transport's outbound buffer is full (`FlowControl`, the
transport's producer after the hand-over; `backpressure` bounds the buffer), and
frames wait for room on the layer (`HeldFrames`: a full channel or an unreachable
layer, retried through the outbox from a reactor timer, never blocking the reactor).
"""

from __future__ import annotations

import collections
import logging
from typing import Any

from .backpressure import cancel_outbound_timer, check_outbound
from .full_channels import FullChannelReporter

__all__ = ["FlowControl", "HeldFrames", "full_channels"]

logger = logging.getLogger("daphne.ws_protocol")
full_channels = FullChannelReporter(logger)

# after ChannelFull a frame is retried from ~1 ms, doubling to 50 ms; after
# this many seconds without progress the socket is closed with 1013.
RETRY_FIRST_DELAY = 0.001
RETRY_MAX_DELAY = 0.05
RETRY_GIVE_UP = 5.0
# Frames held while the layer's backend is unreachable, before closing with 1013.
BACKEND_GIVE_UP = 30.0

CLOSE_POLICY_VIOLATION = 1008
CLOSE_TOO_BIG = 1009
CLOSE_TRY_AGAIN_LATER = 1013

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
    """Mixin for `WebSocketProtocol`: frames held while the layer refuses them (A-89)."""

    _pending: collections.deque | None = None  # frames waiting for room on the layer

    def _hold(self, channel: str, message: dict, give_up_after: float) -> None:
        self._pending = collections.deque([(channel, message)])
        self._retry_delay = RETRY_FIRST_DELAY
        self._give_up_after = give_up_after
        self._retry_deadline = self._now() + give_up_after
        self._block_reading(_HELD)
        self.main_factory.reactor.callLater(self._retry_delay, self._retry_pending)

    def _retry_pending(self) -> None:
        """Send the first held message again, through the outbox (never blocking)."""
        if not self._pending:
            return
        channel, message = self._pending[0]
        self.main_factory.outbox.send(channel, message, self._retried, self)

    def _retried(self, channel: str, message: dict, error: BaseException | None) -> None:
        pending = self._pending
        if not pending or pending[0][1] is not message:
            return  # given up (closed) meanwhile
        layer = self.channel_layer
        if error is None:
            pending.popleft()
            self._retry_deadline = self._now() + self._give_up_after
            self._retry_delay = RETRY_FIRST_DELAY
            if pending:
                self._retry_pending()
                return
            self._pending = None
            self.main_factory.ws_reporter.worked()  # INFO if the layer had been reported down
            self._unblock_reading(_HELD)
            return
        if isinstance(error, layer.MessageTooLarge):
            self._pending = None
            self._mute_and_close(CLOSE_TOO_BIG, "message too big for the channel layer")
            return
        if not isinstance(error, layer.ChannelFull):  # the backend is still away
            self.main_factory.ws_reporter.failed(
                channel, "holding frames until the layer is back", error
            )
        if self._now() >= self._retry_deadline:
            self._give_up_pending()
            return
        self._retry_delay = min(self._retry_delay * 2, self._max_delay(error))
        self.main_factory.reactor.callLater(self._retry_delay, self._retry_pending)

    def _max_delay(self, error: BaseException) -> float:
        # A full channel frees up within milliseconds; a backend comes back in seconds.
        return RETRY_MAX_DELAY if isinstance(error, self.channel_layer.ChannelFull) else 1.0

    def _give_up_pending(self) -> None:
        logger.warning(
            "The channel layer refused frames for %s s; closing %s with 1013",
            self._give_up_after,
            self.reply_channel,
        )
        pending, self._pending = self._pending, None
        for channel, message in pending or ():
            if channel == "websocket.disconnect":
                self._send_disconnect(message)  # the client is gone: keep trying that one
        self._mute_and_close(CLOSE_TRY_AGAIN_LATER, "channel layer unavailable")
