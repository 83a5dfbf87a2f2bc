"""What the channel layer's answers do to a WebSocket, and when it stops reading its
client (issue 15, A-89).

`LayerSends` carries out what the session (`ws_state`) decides when a
``websocket.connect`` or a frame comes back from the outbox: wait for room and retry,
refuse the handshake with 503, close with 1009 or 1013, send the disconnect that waited.
A send failing with an error the layer contract does not name (`layer_api`: not a full
channel, not too large, not the backend away) is a bug: the handshake is refused with
500, an open socket closed with 1011, and the traceback logged once.

A connection stops reading for two reasons, kept as bits of `_read_blocks`, so one
ending does not resume reading while the other holds: the transport's outbound buffer
is full (`FlowControl`, the transport's producer after the hand-over; `backpressure`
bounds the buffer), and frames wait for room on the layer (`HeldFrames`: a full
channel or an unreachable layer, retried through the outbox from a reactor timer,
never blocking the reactor).
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any

from . import ws_state as st
from .backpressure import cancel_outbound_timer, check_outbound
from .drops import FullChannelReporter, send_reliably
from .layer_api import is_unavailable
from .outbox import OutboxFull
from .retry import RETRY_MAX_DELAY, ReactorBackoff
from .ws_state import (
    CLOSE_INTERNAL_ERROR,
    CLOSE_POLICY_VIOLATION,
    CLOSE_TOO_BIG,
    CLOSE_TRY_AGAIN_LATER,
)

__all__ = ["FlowControl", "HeldFrames", "LayerSends", "classify", "full_channels"]

logger = logging.getLogger("daphne.ws_protocol")
full_channels = FullChannelReporter(logger)

# A-89, issue 17 item 3: a frame refused for a full channel is retried
# (`retry.ReactorBackoff`) for as long as the channel stays full, the socket unread
# meanwhile, so TCP slows the client down: a full channel means busy workers (or
# workers restarting), not lost ones, and closing would only bring the client back.
# Frames held while the layer's backend is unreachable, before closing with 1013; a
# backend comes back in seconds, so those retries back off up to a second.
BACKEND_GIVE_UP = 30.0
BACKEND_MAX_DELAY = 1.0

# Why a socket stopped reading from its client (bits of `_read_blocks`).
_HELD = 1  # frames wait for room on the layer
_WRITE_FULL = 2  # the transport's outbound buffer is full (issue 15)


def classify(error: BaseException, layer: Any) -> st.Outcome:
    """What a failed send means for the session: a refusal the layer names, its backend
    away (`layer_api.is_unavailable`), or anything else, a bug (FAILED)."""
    if isinstance(error, layer.ChannelFull):
        return st.Outcome.FULL
    if isinstance(error, layer.MessageTooLarge):
        return st.Outcome.TOO_LARGE
    if isinstance(error, OutboxFull):
        return st.Outcome.OUTBOX_FULL
    if is_unavailable(layer, error):
        return st.Outcome.UNAVAILABLE
    return st.Outcome.FAILED


def log_failure(channel: str, reply_channel: Any, error: BaseException) -> None:
    """A send failed for a bug: its traceback, once per socket (it closes)."""
    logger.error(
        "Sending %s for %s failed with an error the channel layer does not name",
        channel,
        reply_channel,
        exc_info=error,
    )


class _Socket:
    """What the mixins below use of `ws_protocol.WebSocketProtocol` and autobahn's
    protocol (declared for mypy only: autobahn's attributes are untyped)."""

    if TYPE_CHECKING:
        main_factory: Any
        channel_layer: Any
        session: st.WebSocketSession
        transport: Any
        reply_channel: Any
        request_info: Any
        state: Any
        STATE_OPEN: Any
        STATE_CLOSED: Any
        sendCloseFrame: Any
        dropConnection: Any
        duration: Any
        _refuse: Any
        _block_reading: Any
        _unblock_reading: Any
        _send_disconnect: Any
        _mute_and_close: Any
        _arm_timer: Any
        _read_blocks: int
        _fail_connection: Any
        data: bytes
        current_frame: Any


class FlowControl(_Socket):
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
            if self.main_factory is not None:
                self.main_factory.metrics.backpressure("reads_paused")
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


class HeldFrames(_Socket):
    """Mixin for `WebSocketProtocol`: retries the frames its session holds (A-89).

    The session (`ws_state`) decides what is held and in which order; this sends the
    first held message again from a reactor timer, through the outbox (never blocking).
    """

    _held_backoff: ReactorBackoff  # set by `_hold`, before any retry

    def _hold(self, backend: bool) -> None:
        """The session began holding frames: stop reading and retry from a timer."""
        give_up = BACKEND_GIVE_UP if backend else None
        self._held_backoff = backoff = ReactorBackoff(
            self.main_factory.reactor, give_up_after=give_up
        )
        self._block_reading(_HELD)
        self.main_factory.holding_sockets.add(self)
        backoff.later(self._retry_pending)

    def _hold_ended(self) -> None:
        """Nothing is held any more (delivered, or given up): a stop may end."""
        self.session.held = None
        factory = self.main_factory
        factory.holding_sockets.discard(self)
        factory.request_finished()

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
            self._arm_timer()  # pings again (none while held, `ws_state.ping_due`)
            self._hold_ended()
            return
        if isinstance(error, layer.MessageTooLarge):
            self._hold_ended()
            self.main_factory.metrics.dropped(channel, "too_large")
            self._mute_and_close(CLOSE_TOO_BIG, "message too big for the channel layer")
            return
        full = isinstance(error, layer.ChannelFull)
        if not full and classify(error, layer) is st.Outcome.FAILED:
            log_failure(channel, self.reply_channel, error)
            self._hold_ended()
            self._mute_and_close(CLOSE_INTERNAL_ERROR, "the channel layer send failed")
            return
        if full:
            backoff.deadline = None  # no give-up while the layer answers "full"
        else:  # the backend is (still) away, nothing lost yet: give up after BACKEND_GIVE_UP
            self.main_factory.ws_reporter.unavailable(error)
            backoff.give_up_after = BACKEND_GIVE_UP
            if backoff.deadline is None:
                backoff.deadline = backoff.clock.seconds() + BACKEND_GIVE_UP
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
        held = self.session.held
        self._hold_ended()
        metrics = self.main_factory.metrics
        for channel, message in held or ():
            if channel == "websocket.disconnect":
                self._send_disconnect(message)  # the client is gone: keep trying that one
            else:
                metrics.dropped(channel, "expired")
        self._mute_and_close(CLOSE_TRY_AGAIN_LATER, "channel layer unavailable")


class LayerSends(HeldFrames):
    """Mixin for `WebSocketProtocol`: the outcomes of its sends to the layer."""

    _connect_backoff: ReactorBackoff | None = None

    def _connect_sent(self, channel: str, message: dict, error: BaseException | None) -> None:
        """The outcome of the first ``websocket.connect`` send."""
        self._connect_outcome(error, retried=False)

    def _connect_retried(self, channel: str, message: dict, error: BaseException | None) -> None:
        """The outcome of a retried ``websocket.connect`` (through the outbox, issue 15)."""
        self._connect_outcome(error, retried=True)

    def _connect_outcome(self, error: BaseException | None, retried: bool) -> None:
        session = self.session
        factory = self.main_factory
        kind = None if error is None else classify(error, self.channel_layer)
        expired = retried and self.duration() >= factory.config.websocket_connect_timeout
        action = session.connect_outcome(kind, retried, expired)
        if action is st.DELIVERED:
            if not retried:
                factory.ws_reporter.worked()  # INFO if the layer had been reported down
        elif action is st.QUEUE:
            # the outcome of a full connect channel is 503, but a burst of
            # handshakes drains within milliseconds, so wait for room first (up to the
            # connect timeout) instead of refusing at once (issue 9, W4/W5).
            if self._connect_backoff is None:
                self._connect_backoff = ReactorBackoff(factory.reactor)
            remaining = factory.config.websocket_connect_timeout - self.duration()
            self._connect_backoff.later(self._retry_connect, at_most=max(remaining, 0.0))
        elif action is st.REFUSE_FULL:
            factory.ws_reporter.full("websocket.connect", "refused a handshake with 503")
            factory.metrics.backpressure("http_503")
            self._refuse(503, "Connection queue at capacity")
        elif action is st.REFUSE_UNAVAILABLE:
            factory.ws_reporter.failed("websocket.connect", "refused a handshake with 503", error)
            self._refuse(503, "Channel layer unavailable")
        elif action is st.REFUSE_FAILED or action is st.CLOSE_FOR_ERROR:
            assert error is not None  # FAILED is an error's outcome
            log_failure("websocket.connect", self.reply_channel, error)
            if action is st.REFUSE_FAILED:
                self._refuse(500, "Internal Server Error")
            else:  # accepted before the outcome came
                self._close_for_layer(CLOSE_INTERNAL_ERROR)
        elif kind is st.Outcome.FAILED:  # DROPPED: the handshake was answered already
            assert error is not None
            log_failure("websocket.connect", self.reply_channel, error)
        elif not retried and kind is not st.Outcome.FULL:  # DROPPED
            factory.ws_reporter.failed("websocket.connect", "refused a handshake with 503", error)
        self._settled()

    def _retry_connect(self) -> None:
        if self.session.retry_connect():
            self.main_factory.outbox.send(
                "websocket.connect", self.request_info, self._connect_retried, self
            )

    def _frame_sent(self, channel: str, message: dict, error: BaseException | None) -> None:
        """The outcome of a frame's send, in the order the frames came."""
        session = self.session
        if error is None:
            disconnect = session.landed()
        else:
            action = session.frame_refused(classify(error, self.channel_layer), channel, message)
            if action is not st.IGNORE:
                self._frame_refused(action, channel, error)
            disconnect = session.settled()
        if disconnect is not None:
            self._send_disconnect(disconnect)

    def _frame_refused(self, action: str, channel: str, error: BaseException) -> None:
        reporter = self.main_factory.ws_reporter
        if action is st.HOLD:
            self._hold(backend=False)
        elif action is st.HOLD_BACKEND:
            # The layer lost its backend (Redis restarting, L-62): hold the frames
            # and retry, so a short outage closes no socket.
            reporter.unavailable(error)
            self._hold(backend=True)
        elif action is st.CLOSE_FOR_SIZE:
            # A socket that began closing in the same tick finishes its closing
            # handshake: aborting it would lose the close frame already sent.
            self.main_factory.metrics.dropped(channel, "too_large")
            if self.state == self.STATE_OPEN:
                self._close_for_layer(st.CLOSE_TOO_BIG)
        elif action is st.CLOSE_FOR_ERROR:
            # A bug, or an error the layer does not name: retrying would not help.
            log_failure(channel, self.reply_channel, error)
            self._close_for_layer(CLOSE_INTERNAL_ERROR)
        else:  # CLOSE_FOR_ROOM: daphne holds all it may for the layer (issue 15)
            reporter.failed(channel, "closed a socket with 1013", error)
            self._close_for_layer(st.CLOSE_TRY_AGAIN_LATER)

    def _settled(self) -> None:
        """Send the disconnect that waited for this connection's sends in flight."""
        disconnect = self.session.settled()
        if disconnect is not None:
            self._send_disconnect(disconnect)

    def _send_disconnect(self, message: dict) -> None:
        # Retried until the layer's expiry rather than dropped: a lost disconnect
        # leaves the socket in its groups for group_expiry (issue 15).
        factory = self.main_factory
        send_reliably(
            factory.outbox,
            factory.reactor,
            "websocket.disconnect",
            message,
            "dropped a disconnect",
            factory.ws_reporter,
            getattr(self.channel_layer, "expiry", 60),
        )

    def _mute_and_close(self, code: int, reason: str) -> None:
        self.session.give_up()
        self._close_for_layer(code)

    def _close_for_layer(self, code: int) -> None:
        """Close for the layer's sake (1009, 1013); the session is silent already."""
        self._read_blocks = 0
        if self.transport is not None:
            self.transport.resumeProducing()  # the client's close frame must be read
        if self.state == self.STATE_OPEN:
            self.sendCloseFrame(code=code, isReply=False)
        else:
            self.dropConnection(abort=True)
