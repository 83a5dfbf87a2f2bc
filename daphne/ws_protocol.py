"""WebSocket connections ⇄ ASGI-1 ``websocket.*`` messages on autobahn (D-38..D-46, D-65).

`WebSocketProtocol` is an adapter: it turns autobahn's callbacks and the outbox's
outcomes into inputs of a `ws_state.WebSocketSession` (the states, what the application
is owed) and carries out what the session answers. The handshake is held open until the
application accepts or rejects (A-83). Each connection has one deadline in the factory's
`DeadlineSweep` (one reactor timer for all sockets) that enforces the connect timeout,
the keepalive ping and the lifetime limit (D-24, D-43), re-armed lazily so the
per-message cost is one float assignment.
"""

from __future__ import annotations

import logging
from collections import deque
from typing import TYPE_CHECKING, Any
from urllib.parse import unquote

from autobahn.twisted.websocket import (
    ConnectionDeny,
    WebSocketServerFactory,
    WebSocketServerProtocol,
)
from twisted.internet import defer
from twisted.internet.interfaces import IPushProducer
from twisted.internet.protocol import connectionDone
from twisted.python.failure import Failure
from zope.interface import implementer

from . import autobahn_patches, ws_deflate, ws_memory
from . import ws_state as st
from .backpressure import cancel_outbound_timer, check_outbound
from .errors import IllegalTransition
from .proxy import parse_x_forwarded_for, transport_addresses
from .ws_failing import StrictClose
from .ws_flow import _WRITE_FULL, FlowControl, LayerSends
from .ws_flow import full_channels as full_channels  # read by http_protocol and tests
from .ws_state import SocketState, WebSocketSession
from .ws_timers import SocketTimers
from .ws_write import write_now

__all__ = ["WebSocketProtocol", "WebSocketFactory"]

logger = logging.getLogger(__name__)

# RFC 6455 §5.2: opcodes 0x8-0xF are control frames (close, ping, pong).
_CONTROL = 0x08

# Seconds a client has to answer a stop's close frame (issue 17 item 4); autobahn's timer
# fires on the whole second after the delay ends, so this is 1 to 2 s in effect.
STOP_CLOSE_HANDSHAKE_TIMEOUT = 2


class _Muted:
    """1.x's ``muted`` (D-38, D-40): False on the class; on a connection, whether daphne
    tells the application nothing more about it (`SocketState.SILENT`)."""

    def __get__(self, protocol: Any, owner: Any = None) -> bool:
        return False if protocol is None else protocol.session.state is SocketState.SILENT

    def __set__(self, protocol: Any, value: bool) -> None:
        if value:
            protocol.session.give_up()
        elif protocol.session.state is SocketState.SILENT:
            raise IllegalTransition("A silenced WebSocket cannot speak to the application again")


@implementer(IPushProducer)
# autobahn's own two bases disagree on `peer` and `_transport_details` (autobahn's gap).
class WebSocketProtocol(  # type: ignore[misc]
    FlowControl, LayerSends, StrictClose, SocketTimers, WebSocketServerProtocol
):
    """One WebSocket connection (D-38); the transport's producer after the hand-over, so
    a client that stops reading stops being read (issue 15, `backpressure`). Its deadline
    (D-24, D-43: `check_timeouts`, `check_ping`, `duration`) is `SocketTimers`'."""

    muted = _Muted()
    reply_channel: str | None = None
    main_factory: Any = None  # the HTTPFactory, set at the hand-over
    # Set by the HTTP hand-over (D-28); the raw bytes after "?".
    _raw_query_string = b""
    # The HTTP channel that handed this connection over; released at close so neither
    # keeps the other alive (issue 15).
    _http_channel: Any = None
    # How a refused handshake is counted in the metrics (issue 18).
    _refused_as = "rejected"
    if TYPE_CHECKING:
        logOctets: bool  # set from the factory's protocol options by autobahn

    def __init__(self) -> None:
        super().__init__()
        self.session = WebSocketSession()

    def set_main_factory(self, main_factory: Any) -> None:
        self.main_factory = main_factory
        self.channel_layer = main_factory.channel_layer

    def _now(self) -> float:
        return self.main_factory.reactor.seconds()

    # D-38, D-40, D-43 attribute names, kept by the session.
    @property
    def packets_received(self) -> int:
        return self.session.received

    @packets_received.setter
    def packets_received(self, value: int) -> None:
        self.session.received = value

    @property
    def socket_opened(self) -> float:
        return self.session.opened_at

    @socket_opened.setter
    def socket_opened(self, value: float) -> None:
        self.session.opened_at = value

    @property
    def last_data(self) -> float:
        return self.session.last_data

    @last_data.setter
    def last_data(self, value: float) -> None:
        self.session.last_data = value

    # -- autobahn's per-frame debug formatting, skipped (issue 9) ---------------------
    # autobahn evaluates hltype()/hlval() (click styling) for a debug line on every
    # frame in and out even when debug logging is off: 13% of daphne's CPU under echo
    # load. These overrides do the same work without the log lines.

    def _connectionMade(self) -> None:
        # autobahn copies each option from the factory only where `hasattr` finds none,
        # and `ws_memory` makes the options of open sockets class attributes: copy them
        # onto the instance first, so this socket gets its own factory's.
        attributes = self.__dict__
        factory = self.factory
        for name in self.CONFIG_ATTRS:
            if name not in attributes:
                attributes[name] = getattr(factory, name)
        with autobahn_patches.lazy_pformat():
            super()._connectionMade()

    def dataReceived(self, data: bytes) -> None:
        if self._failing is None:  # failing: nothing more is read (RFC 6455 §7.1.7)
            self._dataReceived(data)

    def sendData(self, data: bytes, sync: bool = False, chopsize: int | None = None) -> None:
        if sync or chopsize or self.send_queue or self.state != self.STATE_OPEN:
            if type(self.send_queue) is tuple:  # released while idle (`ws_memory`)
                self.send_queue = deque()
            super().sendData(data, sync, chopsize)
        else:
            if self.send_state == self.SEND_STATE_GROUND and data and not data[0] & _CONTROL:
                # A whole data frame: sent at once when nothing is buffered (issue 20).
                write_now(self.transport, data)
            else:
                # Control frames (ping, pong, close) keep Twisted's buffer, written on the
                # reactor's next pass: a stop's 1012 still leaves after the listening
                # socket closed (D-17), as before.
                self.transport.write(data)
            self.trafficStats.outgoingOctetsWireLevel += len(data)
            if self.logOctets:
                self.logTxOctets(data, False)
        if self._read_blocks & _WRITE_FULL:
            check_outbound(self, self.main_factory)

    def connectionLost(self, reason: Failure = connectionDone) -> None:
        super().connectionLost(reason)
        cancel_outbound_timer(self)
        channel, self._http_channel = self._http_channel, None
        if channel is not None:
            channel.released()
        # autobahn resolves is_closed with the protocol itself: a cycle that kept every
        # closed socket (and its unsent data) alive until a full garbage collection.
        self.is_closed = defer.succeed(None)

    # -- handshake (D-38) ------------------------------------------------------------

    # autobahn's stub omits the Deferred its onConnect may return (autobahn's gap).
    def onConnect(self, request: Any) -> defer.Deferred[Any]:  # type: ignore[override]
        self.request = request
        self.protocol_to_accept = None
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
        config = factory.config
        if config.proxy_forwarded_address_header:
            self.client_addr, _ = parse_x_forwarded_for(
                dict(request.headers),
                config.proxy_forwarded_address_header,
                config.proxy_forwarded_port_header,
                config.proxy_forwarded_proto_header,
                self.client_addr,
                None,
                forwarded_allow_ips=config.forwarded_allow_ips,
            )
        if config.ws_protocols and "sec-websocket-protocol" in request.headers:
            for offered in request.headers["sec-websocket-protocol"].split(","):
                if offered.strip() in config.ws_protocols:
                    self.protocol_to_accept = offered.strip()
                    break
        self.request_info = self.session.connect(
            reply_channel,
            self.decoded_path,
            self.clean_headers,
            self._raw_query_string,
            self.client_addr,
            self.server_addr,
            self._now(),
        )
        self.reply_channel = reply_channel
        factory.reply_protocols[reply_channel] = self
        self.handshake_deferred: defer.Deferred[Any] = defer.Deferred()
        factory.outbox.send("websocket.connect", self.request_info, self._connect_sent, self)
        if self.session.state is SocketState.SILENT:
            return self.handshake_deferred  # refused at once: the layer is unreachable
        factory.log_action(
            "websocket", "connecting", {"path": request.path, "client": self._client_text()}
        )
        self._arm_timer()
        return self.handshake_deferred

    def succeedHandshake(self, res: Any) -> None:
        super().succeedHandshake(res)
        ws_deflate.bound(self)  # issue 21: no zlib state held between messages
        if self.state == self.STATE_OPEN:  # issue 20: W5 memory per idle socket
            channel = self._http_channel
            if channel is not None and hasattr(channel, "detach"):
                self._http_channel = channel.detach()
            ws_memory.release_handshake(self)

    def _refuse(self, code: int, reason: str) -> None:
        """Answer the pending handshake with an HTTP error and forget the reply channel."""
        self.main_factory.metrics.handshake(self._refused_as)
        self.handshake_deferred.errback(ConnectionDeny(code, reason))
        self.cleanup()

    def _client_text(self) -> str | None:
        client = self.client_addr
        return f"{client[0]}:{client[1]}" if client else None

    def onOpen(self) -> None:
        if self.session.state is not SocketState.OPEN:
            raise IllegalTransition(f"WebSocket {self.reply_channel} opened without an accept")
        self.session.last_data = self._now()
        self._cancel_timer()
        self._arm_timer()
        self.main_factory.metrics.handshake("accepted")
        self.main_factory.log_action(
            "websocket", "connected", {"path": self.request.path, "client": self._client_text()}
        )

    def serverAccept(self) -> None:
        """Send the 101 response (D-39 step 1)."""
        if self.session.accept():
            self.handshake_deferred.callback(self.protocol_to_accept)

    def serverReject(self, code: int = 403, reason: str = "Access denied") -> None:
        """Refuse the pending handshake (D-39 step 2, D-41)."""
        if self.session.reject():
            self._rejected(code, reason)

    def _rejected(self, code: int, reason: str) -> None:
        self._refuse(code, reason)
        self.main_factory.log_action(
            "websocket", "rejected", {"path": self.request.path, "client": self._client_text()}
        )

    # -- frames in (D-40) --------------------------------------------------------------

    def onMessageEnd(self) -> None:
        # autobahn's version also fires its "message" event for `.on()` observers: with
        # none registered (daphne registers none) that builds a Deferred already fired
        # with [] and adds an errback to it, about ten calls per frame that do nothing
        # (issue 20, W2). Skipped only then; with observers or timings, autobahn's own.
        if self._listeners is not None or self.trackedTimings:
            super().onMessageEnd()
            return
        if not self.failedByMe:
            self._onMessage(b"".join(self.message_data), self.message_is_binary)
        self.message_data = None

    def onMessage(self, payload: bytes, isBinary: bool) -> None:
        factory = self.main_factory
        metrics = factory.metrics
        if metrics.enabled:  # no call per frame with metrics off (issue 16)
            metrics.frame_in(len(payload))
        message = self.session.receive(payload, isBinary, self._now())
        if message is not None:
            factory.outbox.send("websocket.receive", message, self._frame_sent, self)

    # -- replies (D-39) ---------------------------------------------------------------

    def dispatch_reply(self, message: dict) -> None:
        for action in self.session.reply(message):
            kind = action[0]
            if kind is st.SEND:
                self._send_frame(action[1], action[2])
            elif kind is st.ACCEPT:
                self.handshake_deferred.callback(self.protocol_to_accept)
            elif kind is st.REJECT:
                self._rejected(403, "Access denied")
            else:
                self.serverClose(action[1])
        if self._failing is not None:
            self._replied()  # issue 21: the close frame may be due now

    def serverSend(self, content: bytes | str, binary: bool = False) -> None:
        if self.session.answerable:
            self.serverAccept()
        self._send_frame(content, binary)

    def _send_frame(self, content: Any, binary: bool) -> None:
        if self._local_close_code is not None and self.state != self.STATE_OPEN:
            return  # closed for a client that does not read (issue 15): nothing to add
        self.session.last_data = self._now()
        if not binary:
            content = content.encode("utf8")
        size = len(content)
        metrics = self.main_factory.metrics
        if metrics.enabled:
            metrics.frame_out(size)
        # On a permessage-deflate socket, short messages go in stored blocks (`ws_deflate`).
        self.sendMessage(content, binary)

    def serverClose(self, code: Any = True) -> None:
        """Close with `code`: True → 1000; 1000 or 3000-4999 as given; else 1000 (A-86)."""
        if code is True:
            code = st.CLOSE_NORMAL
        elif type(code) is not int or not (code == st.CLOSE_NORMAL or 3000 <= code <= 4999):
            logger.error(
                "Invalid close code %r for %s: use True, 1000 or 3000-4999; closing with 1000",
                code,
                self.reply_channel,
            )
            code = st.CLOSE_NORMAL
        self.sendClose(code=code)

    def close_for_restart(self) -> None:
        """A graceful stop (D-17, issue 17 item 4): an open socket is closed with 1012
        (service restart), a handshake still waiting for the application refused with 503."""
        session = self.session
        state = session.state
        if state is SocketState.CONNECTING:
            return  # its handshake has not arrived: dropped with the rest at the end
        if session.answerable or state is SocketState.CONNECT_QUEUED:
            self.serverReject(503, "Service Unavailable")
        elif self.state == self.STATE_OPEN and session.stop():
            # autobahn's timer rounds to whole seconds, so its 1 s default can leave a
            # client a few milliseconds to answer; a stop gives it one to two seconds.
            self.closeHandshakeTimeout = STOP_CLOSE_HANDSHAKE_TIMEOUT
            self.sendCloseFrame(code=st.CLOSE_SERVICE_RESTART, isReply=False)

    # -- closing (D-41) ---------------------------------------------------------------

    def onClose(self, wasClean: bool, code: int | None, reason: str | None) -> None:
        self._cancel_timer()
        if self._local_close_code is not None:
            code = self._local_close_code  # aborted by daphne: the peer never answered
        elif code is None:
            code = st.CLOSE_NO_STATUS if wasClean else st.CLOSE_ABNORMAL
        disconnect = self.session.client_gone(code)
        if self.reply_channel is None:
            return  # autobahn refused the handshake before onConnect (D-44)
        self.cleanup()
        if disconnect is not None:
            self._send_disconnect(disconnect)
        self.main_factory.log_action(
            "websocket", "disconnected", {"path": self.request.path, "client": self._client_text()}
        )
        self.main_factory.request_finished()

    def cleanup(self) -> None:
        """Forget the reply channel (D-45)."""
        if self.main_factory is not None and self.reply_channel is not None:
            self.main_factory.reply_protocols.pop(self.reply_channel, None)

    @classmethod
    def unquote(cls, value: bytes) -> str:
        return unquote(value.decode("ascii"))


class WebSocketFactory(WebSocketServerFactory):
    """autobahn's factory, tied to the `HTTPFactory` that hands connections over (D-46)."""

    def __init__(self, main_factory: Any, *args: Any, **kwargs: Any) -> None:
        self.main_factory = main_factory
        # reply channel → its open or pending WebSocketProtocol (D-45); the HTTPFactory
        # shares its own dict here.
        self.reply_protocols: dict[str, Any] = {}
        super().__init__(*args, **kwargs)

    def buildProtocol(self, addr: Any) -> Any:
        """A protocol already tied to the `HTTPFactory` (D-28 calls `set_main_factory` too)."""
        protocol: Any = super().buildProtocol(addr)
        if protocol is not None:
            protocol.set_main_factory(self.main_factory)
        return protocol

    def log_action(self, *args: Any, **kwargs: Any) -> None:
        self.main_factory.log_action(*args, **kwargs)
