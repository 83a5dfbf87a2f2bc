"""WebSocket connections ⇄ ASGI-1 ``websocket.*`` messages on autobahn (D-38..D-46, D-65).

A connection moves CONNECTING → OPEN → CLOSED (or CONNECTING → CLOSED when refused);
the handshake is held open until the application accepts or rejects (A-83).
Each connection has one deadline in the factory's `DeadlineSweep` (one reactor timer
for all sockets) that enforces the connect timeout, the keepalive ping and the
lifetime limit (D-24, D-43), re-armed lazily so the per-message cost is one float
assignment.
"""

from __future__ import annotations

import enum
import logging
from typing import Any
from urllib.parse import unquote

from autobahn.twisted.websocket import (
    ConnectionDeny,
    WebSocketServerFactory,
    WebSocketServerProtocol,
)
from twisted.internet import defer
from twisted.internet.interfaces import IPushProducer
from zope.interface import implementer

from . import autobahn_costs
from .backpressure import cancel_outbound_timer, check_outbound
from .errors import ApplicationError, IllegalTransition
from .full_channels import send_reliably
from .outbox import OutboxFull
from .utils import parse_x_forwarded_for, transport_addresses
from .ws_flow import (
    _WRITE_FULL,
    BACKEND_GIVE_UP,
    CLOSE_TOO_BIG,
    CLOSE_TRY_AGAIN_LATER,
    RETRY_FIRST_DELAY,
    RETRY_GIVE_UP,
    RETRY_MAX_DELAY,
    FlowControl,
    HeldFrames,
    full_channels,
)

__all__ = ["WebSocketProtocol", "WebSocketFactory"]

logger = logging.getLogger(__name__)
autobahn_costs.install()

CLOSE_NORMAL = 1000
CLOSE_GOING_AWAY = 1001
CLOSE_NO_STATUS = 1005
CLOSE_ABNORMAL = 1006

_REPLY_KEYS = frozenset({"accept", "text", "bytes", "close"})


def _one_empty_payload(data_bytes: Any, data_text: Any) -> bool:
    """Exactly one of bytes/text present and empty, the other absent or None."""
    if data_bytes is None:
        return data_text is not None and len(data_text) == 0
    return data_text is None and len(data_bytes) == 0


class SocketState(enum.Enum):
    CONNECTING = "connecting"
    OPEN = "open"
    CLOSED = "closed"


_SOCKET_TRANSITIONS = {
    SocketState.CONNECTING: {SocketState.OPEN, SocketState.CLOSED},
    SocketState.OPEN: {SocketState.CLOSED},
    SocketState.CLOSED: set(),
}


@implementer(IPushProducer)
class WebSocketProtocol(FlowControl, HeldFrames, WebSocketServerProtocol):
    """One WebSocket connection (D-38); the transport's producer after the hand-over, so
    a client that stops reading stops being read (issue 15, `backpressure`)."""

    muted = False
    reply_channel = None
    main_factory = None
    # Set by the HTTP hand-over (D-28); the raw bytes after "?".
    _raw_query_string = b""
    _socket_state = SocketState.CONNECTING
    _connect_retry_delay: float | None = None  # set while websocket.connect waits for room
    # Messages handed to the outbox whose outcome is not known yet, and the
    # websocket.disconnect that waits for them: it must not overtake a frame the layer
    # may still refuse, nor follow a connect the layer refused.
    _in_flight = 0
    _disconnect_waiting: dict | None = None
    # The HTTP channel that handed this connection over; released at close so neither
    # keeps the other alive (issue 15).
    _http_channel: Any = None

    def set_main_factory(self, main_factory: Any) -> None:
        self.main_factory = main_factory
        self.channel_layer = main_factory.channel_layer

    def _now(self) -> float:
        return self.main_factory.reactor.seconds()

    def _move_to(self, state: SocketState) -> None:
        if state not in _SOCKET_TRANSITIONS[self._socket_state]:
            raise IllegalTransition(
                f"WebSocket {self.reply_channel} cannot go from {self._socket_state.value} "
                f"to {state.value}"
            )
        self._socket_state = state

    # -- autobahn's per-frame debug formatting, skipped (issue 9) ---------------------
    # autobahn evaluates hltype()/hlval() (click styling) for a debug line on every
    # frame in and out even when debug logging is off: 13% of daphne's CPU under echo
    # load. These overrides do the same work without the log lines.

    def _connectionMade(self) -> None:
        with autobahn_costs.lazy_pformat():
            super()._connectionMade()

    def dataReceived(self, data: bytes) -> None:
        self._dataReceived(data)

    def sendData(self, data: bytes, sync: bool = False, chopsize: int | None = None) -> None:
        if sync or chopsize or self.send_queue or self.state != self.STATE_OPEN:
            super().sendData(data, sync, chopsize)
        else:
            self.transport.write(data)
            self.trafficStats.outgoingOctetsWireLevel += len(data)
            if self.logOctets:
                self.logTxOctets(data, False)
        if self._read_blocks & _WRITE_FULL:
            check_outbound(self, self.main_factory)

    def connectionLost(self, reason: Any) -> None:
        super().connectionLost(reason)
        cancel_outbound_timer(self)
        channel, self._http_channel = self._http_channel, None
        if channel is not None:
            channel.released()
        # autobahn resolves is_closed with the protocol itself: a cycle that kept every
        # closed socket (and its unsent data) alive until a full garbage collection.
        self.is_closed = defer.succeed(None)

    # -- handshake (D-38) ------------------------------------------------------------

    def onConnect(self, request: Any) -> defer.Deferred:
        self.request = request
        self.packets_received = 0
        self.protocol_to_accept = None
        self.socket_opened = self.last_data = self._now()
        factory = self.main_factory
        self.clean_headers = []
        for name, value in request.headers.items():
            name = name.encode("ascii")
            if b"_" in name:
                continue  # CVE-2015-0219; daphne's hand-over already refuses these
            self.clean_headers.append((name.lower(), value.encode("latin-1")))
        # Everything that may fail on odd input happens before the reply channel exists,
        # so a failed handshake leaves nothing registered and sends no disconnect.
        self.path = request.path.encode("ascii")
        self.decoded_path = self.unquote(self.path)
        reply_channel = factory.make_send_channel()
        self.client_addr, self.server_addr = transport_addresses(self.transport)
        if factory.proxy_forwarded_address_header:
            self.client_addr, _ = parse_x_forwarded_for(
                dict(request.headers),
                factory.proxy_forwarded_address_header,
                factory.proxy_forwarded_port_header,
                factory.proxy_forwarded_proto_header,
                self.client_addr,
                None,
                forwarded_allow_ips=factory.forwarded_allow_ips,
            )
        self.request_info = {
            "reply_channel": reply_channel,
            "path": self.decoded_path,
            "headers": self.clean_headers,
            "query_string": self._raw_query_string,
            "client": self.client_addr,
            "server": self.server_addr,
            "order": 0,
        }
        if factory.ws_protocols and "sec-websocket-protocol" in request.headers:
            for offered in request.headers["sec-websocket-protocol"].split(","):
                if offered.strip() in factory.ws_protocols:
                    self.protocol_to_accept = offered.strip()
                    break
        self.reply_channel = reply_channel
        factory.reply_protocols[reply_channel] = self
        self.handshake_deferred = defer.Deferred()
        self._in_flight += 1
        factory.outbox.send("websocket.connect", self.request_info, self._connect_sent, self)
        if self.handshake_deferred.called:
            return self.handshake_deferred  # refused at once: the layer is unreachable
        factory.log_action(
            "websocket", "connecting", {"path": request.path, "client": self._client_text()}
        )
        self._arm_timer()
        return self.handshake_deferred

    def _connect_sent(self, channel: str, message: dict, error: BaseException | None) -> None:
        """The outcome of the first ``websocket.connect`` send."""
        self._in_flight -= 1
        if error is None:
            self.main_factory.ws_reporter.worked()  # INFO if the layer had been reported down
        elif isinstance(error, self.channel_layer.ChannelFull):
            # the outcome of a full connect channel is 503, but a burst of
            # handshakes drains within milliseconds, so wait for room first (up to the
            # connect timeout) instead of refusing at once (issue 9, W4/W5).
            self._start_connect_retry()
        else:  # the layer's backend errors have no common base class
            self.muted = True
            if self._socket_state is SocketState.CONNECTING and not self.handshake_deferred.called:
                self._refuse_connect("Channel layer unavailable", error)
            else:
                self.main_factory.ws_reporter.failed(
                    "websocket.connect", "refused a handshake with 503", error
                )
        self._settled()

    def _start_connect_retry(self) -> None:
        # Muted until websocket.connect is delivered: a client leaving meanwhile must
        # not send a websocket.disconnect for a connect nobody saw.
        self.muted = True
        self._connect_retry_delay = RETRY_FIRST_DELAY
        self.main_factory.reactor.callLater(self._connect_retry_delay, self._retry_connect)

    def _connect_retry_pending(self) -> bool:
        return self._connect_retry_delay is not None

    def _retry_connect(self) -> None:
        if self._socket_state is not SocketState.CONNECTING or self.handshake_deferred.called:
            self._connect_retry_delay = None  # the client left, or a stop refused it
            return
        self._in_flight += 1
        self.main_factory.outbox.send(
            "websocket.connect", self.request_info, self._connect_retried, self
        )

    def _connect_retried(self, channel: str, message: dict, error: BaseException | None) -> None:
        """The outcome of a retried ``websocket.connect`` (through the outbox, issue 15)."""
        self._in_flight -= 1
        if error is None:
            self._connect_retry_delay = None
            self.muted = False  # delivered: a disconnect may follow now
        elif self._socket_state is not SocketState.CONNECTING or self.handshake_deferred.called:
            self._connect_retry_delay = None  # gone meanwhile: nothing was delivered
        elif not isinstance(error, self.channel_layer.ChannelFull):
            # The layer's backend errors have no common base class; OutboxFull too.
            self._refuse_connect("Channel layer unavailable", error)
        else:
            remaining = self.main_factory.websocket_connect_timeout - self.duration()
            if remaining <= 0:
                self._refuse_connect("Connection queue at capacity", None)
            else:
                self._connect_retry_delay = min(self._connect_retry_delay * 2, RETRY_MAX_DELAY)
                delay = min(self._connect_retry_delay, remaining)
                self.main_factory.reactor.callLater(delay, self._retry_connect)
        self._settled()

    def _refuse_connect(self, reason: str, error: BaseException | None) -> None:
        """A-89: websocket.connect could not be delivered: refuse the handshake with 503."""
        self._connect_retry_delay = None
        if error is None:
            full_channels.full("websocket.connect", "refused a handshake with 503")
        else:
            self.main_factory.ws_reporter.failed(
                "websocket.connect", "refused a handshake with 503", error
            )
        self.handshake_deferred.errback(ConnectionDeny(503, reason))
        self.cleanup()

    def _client_text(self) -> str | None:
        client = self.client_addr
        return f"{client[0]}:{client[1]}" if client else None

    def onOpen(self) -> None:
        self._move_to(SocketState.OPEN)
        self.last_data = self._now()
        self._cancel_timer()
        self._arm_timer()
        self.main_factory.log_action(
            "websocket", "connected", {"path": self.request.path, "client": self._client_text()}
        )

    def serverAccept(self) -> None:
        """Send the 101 response (D-39 step 1)."""
        if self._socket_state is SocketState.CONNECTING and not self.handshake_deferred.called:
            self.handshake_deferred.callback(self.protocol_to_accept)

    def serverReject(self, code: int = 403, reason: str = "Access denied") -> None:
        """Refuse the pending handshake (D-39 step 2, D-41)."""
        if self._socket_state is not SocketState.CONNECTING or self.handshake_deferred.called:
            return
        self.handshake_deferred.errback(ConnectionDeny(code, reason))
        self.cleanup()
        self.main_factory.log_action(
            "websocket", "rejected", {"path": self.request.path, "client": self._client_text()}
        )

    # -- frames in (D-40) --------------------------------------------------------------

    def onMessage(self, payload: bytes, isBinary: bool) -> None:
        if self.muted:
            return
        self.packets_received += 1
        self.last_data = self._now()
        message = {
            "reply_channel": self.reply_channel,
            "path": self.decoded_path,
            "order": self.packets_received,
        }
        if isBinary:
            message["bytes"] = payload
        else:
            message["text"] = payload.decode("utf8")
        self._send_or_queue("websocket.receive", message)

    def _send_or_queue(self, channel: str, message: dict) -> None:
        if self._pending:
            self._pending.append((channel, message))
            return
        self._in_flight += 1
        self.main_factory.outbox.send(channel, message, self._frame_sent, self)

    def _frame_sent(self, channel: str, message: dict, error: BaseException | None) -> None:
        """The outcome of a `_send_or_queue` send, in the order the frames came."""
        self._in_flight -= 1
        if error is not None and not self.muted:
            layer = self.channel_layer
            if self._pending:
                # An earlier frame of this connection was refused in the same flush
                # (the outbox gave this one the same error without sending it).
                self._pending.append((channel, message))
            elif isinstance(error, layer.ChannelFull):
                # keep order, stop reading so TCP pushes back, retry from a timer.
                self._hold(channel, message, RETRY_GIVE_UP)
            elif isinstance(error, layer.MessageTooLarge):
                # D-40, D-65: the envelope pushed the frame over the layer's limit. A
                # socket that began closing in the same tick finishes its closing
                # handshake: aborting it would lose the close frame already sent.
                if self.state == self.STATE_OPEN:
                    self._mute_and_close(CLOSE_TOO_BIG, "message too big for the channel layer")
                else:
                    self.muted = True
            elif isinstance(error, OutboxFull):
                # The layer has not answered for a while and daphne holds all it may
                # for it (issue 15): refuse like a full channel, 1013.
                self.main_factory.ws_reporter.failed(channel, "closed a socket with 1013", error)
                self._mute_and_close(CLOSE_TRY_AGAIN_LATER, "channel layer unavailable")
            else:  # the layer's backend errors have no common base class
                # The layer lost its backend (Redis restarting, L-62): hold the frames
                # and retry, so a short outage closes no socket.
                self.main_factory.ws_reporter.failed(
                    channel, "holding frames until the layer is back", error
                )
                self._hold(channel, message, BACKEND_GIVE_UP)
        self._settled()

    def _settled(self) -> None:
        """Send the disconnect that waited for this connection's sends in flight."""
        if self._in_flight or self._disconnect_waiting is None:
            return
        message, self._disconnect_waiting = self._disconnect_waiting, None
        if self.muted:
            return  # the connect was refused, or the socket closed for a too-large frame
        if self._pending:
            self._pending.append(("websocket.disconnect", message))
        else:
            self._send_disconnect(message)

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
        self.muted = True
        self._read_blocks = 0
        if self.transport is not None:
            self.transport.resumeProducing()  # the client's close frame must be read
        if self.state == self.STATE_OPEN:
            self.sendCloseFrame(code=code, isReply=False)
        else:
            self.dropConnection(abort=True)

    # -- replies (D-39) ---------------------------------------------------------------

    def dispatch_reply(self, message: dict) -> None:
        if not _REPLY_KEYS.issuperset(message):
            unknown = set(message) - _REPLY_KEYS
            raise ApplicationError(
                f"Got invalid WebSocket reply message on {self.reply_channel} - contains "
                f"unknown keys {sorted(unknown)} (allowed: accept, text, bytes, close)"
            )
        data_bytes = message.get("bytes")
        data_text = message.get("text")
        if data_bytes and data_text:
            raise ApplicationError(
                f"Got invalid WebSocket reply message on {self.reply_channel} - "
                "contains both bytes and text keys; send them as two messages"
            )
        connecting = self._socket_state is SocketState.CONNECTING
        accept = message.get("accept")
        if accept and connecting:
            self.serverAccept()
        if accept is False and connecting:
            self.serverReject()
            return
        close = message.get("close")
        if not connecting and not close and _one_empty_payload(data_bytes, data_text):
            # Deviation from A-86, see docs/differences.rst: on an open socket a reply
            # holding only an empty text or bytes sends one empty frame of that type
            # (an echo of an empty message, Autobahn cases 1.1.1, 1.2.1, 6.1.1, 6.1.2).
            # Combined with the other data key, with close, or during the handshake,
            # empty still counts as absent.
            self.serverSend(data_text if data_bytes is None else data_bytes, data_text is None)
            return
        if data_bytes:
            self.serverSend(data_bytes, True)
        if data_text:
            self.serverSend(data_text, False)
        if close:
            if self._socket_state is SocketState.CONNECTING and not self.handshake_deferred.called:
                self.serverReject()
            else:
                self.serverClose(close)

    def serverSend(self, content: bytes | str, binary: bool = False) -> None:
        if self._local_close_code is not None and self.state != self.STATE_OPEN:
            return  # closed for a client that does not read (issue 15): nothing to add
        if self._socket_state is SocketState.CONNECTING:
            self.serverAccept()
        self.last_data = self._now()
        if binary:
            self.sendMessage(content, True)
        else:
            self.sendMessage(content.encode("utf8"), False)

    def serverClose(self, code: Any = True) -> None:
        """Close with `code`: True → 1000; 1000 or 3000-4999 as given; else 1000 (A-86)."""
        if code is True:
            code = CLOSE_NORMAL
        elif type(code) is not int or not (code == CLOSE_NORMAL or 3000 <= code <= 4999):
            logger.error(
                "Invalid close code %r for %s: use True, 1000 or 3000-4999; closing with 1000",
                code,
                self.reply_channel,
            )
            code = CLOSE_NORMAL
        self.sendClose(code=code)

    def close_going_away(self) -> None:
        """D-17: a graceful stop closes open sockets with 1001 and refuses pending handshakes."""
        if self._socket_state is SocketState.CONNECTING:
            self.serverReject(503, "Service Unavailable")
        elif self.state == self.STATE_OPEN:
            self.sendCloseFrame(code=CLOSE_GOING_AWAY, isReply=False)

    # -- closing (D-41) ---------------------------------------------------------------

    def onClose(self, wasClean: bool, code: int | None, reason: str | None) -> None:
        self._cancel_timer()
        if self._socket_state is not SocketState.CLOSED:
            self._move_to(SocketState.CLOSED)
        if self.reply_channel is None:
            return  # autobahn refused the handshake before onConnect (D-44)
        self.cleanup()
        # Muted while a retried websocket.connect is in flight: whether a disconnect is
        # owed depends on its outcome (`_connect_retried`, then `_settled`).
        if not self.muted or (self._connect_retry_pending() and self._in_flight):
            if self._local_close_code is not None:
                code = self._local_close_code  # aborted by daphne: the peer never answered
            elif code is None:
                code = CLOSE_NO_STATUS if wasClean else CLOSE_ABNORMAL
            message = {
                "reply_channel": self.reply_channel,
                "code": code,
                "path": self.decoded_path,
                "order": self.packets_received + 1,
            }
            if self._pending:
                self._pending.append(("websocket.disconnect", message))
            elif self._in_flight:
                self._disconnect_waiting = message
            else:
                self._send_disconnect(message)
        self.main_factory.log_action(
            "websocket", "disconnected", {"path": self.request.path, "client": self._client_text()}
        )
        self.main_factory.request_finished()

    def cleanup(self) -> None:
        """Forget the reply channel (D-45)."""
        if self.main_factory is not None and self.reply_channel is not None:
            self.main_factory.reply_protocols.pop(self.reply_channel, None)

    # -- timers (D-24, D-43) ----------------------------------------------------------

    def duration(self) -> float:
        return self._now() - self.socket_opened

    def _next_deadline(self) -> float | None:
        factory = self.main_factory
        if self._socket_state is SocketState.CONNECTING:
            return self.socket_opened + factory.websocket_connect_timeout
        if self._socket_state is not SocketState.OPEN:
            return None
        deadlines = []
        if factory.ping_interval and factory.ping_interval > 0:
            deadlines.append(self.last_data + factory.ping_interval)
        if factory.websocket_timeout is not None and factory.websocket_timeout >= 0:
            deadlines.append(self.socket_opened + factory.websocket_timeout)
        return min(deadlines) if deadlines else None

    def _arm_timer(self) -> None:
        deadline = self._next_deadline()
        if deadline is not None:
            self.main_factory.deadlines.schedule(self, deadline, self._on_timer)

    def _cancel_timer(self) -> None:
        if self.main_factory is not None:
            self.main_factory.deadlines.cancel(self)

    def _on_timer(self) -> None:
        self.check_timeouts()
        if self._socket_state is not SocketState.CLOSED:
            self._arm_timer()

    def check_timeouts(self) -> None:
        """Lifetime limit, then the connect/ping checks (D-24)."""
        timeout = self.main_factory.websocket_timeout
        if (
            self._socket_state is SocketState.OPEN
            and timeout is not None
            and timeout >= 0
            and self.duration() >= timeout
        ):
            self.serverClose()
            return
        self.check_ping()

    def check_ping(self) -> None:
        """Reject a handshake left pending too long; ping an idle socket (D-43)."""
        factory = self.main_factory
        if self._socket_state is SocketState.CONNECTING:
            # While websocket.connect waits for room, its retry answers 503 at the
            # connect timeout; the application never saw it, so no 403 here.
            if self._connect_retry_pending():
                return
            if self.duration() >= factory.websocket_connect_timeout:
                self.serverReject()
        elif self._socket_state is SocketState.OPEN and self.state == self.STATE_OPEN:
            now = self._now()
            if factory.ping_interval and now - self.last_data >= factory.ping_interval:
                self._sendAutoPing()
                self.last_data = now

    @classmethod
    def unquote(cls, value: bytes) -> str:
        return unquote(value.decode("ascii"))


class WebSocketFactory(WebSocketServerFactory):
    """autobahn's factory, tied to the `HTTPFactory` that hands connections over (D-46)."""

    def __init__(self, main_factory: Any, *args: Any, **kwargs: Any) -> None:
        self.main_factory = main_factory
        super().__init__(*args, **kwargs)

    def log_action(self, *args: Any, **kwargs: Any) -> None:
        self.main_factory.log_action(*args, **kwargs)
