"""The HTTP connection: Twisted's HTTP/1.1 parser plus daphne's edge limits (D-64) and the
WebSocket hand-over's bookkeeping (D-28), behind the wrapper that switches to Twisted's
HTTP/2 when ALPN picks ``h2`` (D-25)."""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any

from twisted.internet.interfaces import IPushProducer
from twisted.internet.protocol import connectionDone
from twisted.protocols.policies import ProtocolWrapper
from twisted.python.failure import Failure
from twisted.web import http
from zope.interface import implementer

from .backpressure import cancel_outbound_timer, check_outbound
from .http_timers import RequestTimers
from .http_writes import ResponseWrites
from .proxy import transport_addresses
from .request_checks import host_problem

__all__ = ["HTTPChannel", "NegotiatingChannel", "OpenConnection", "connection_facts"]

logger = logging.getLogger("daphne.http_protocol")

# RFC 9113 §3.4: the client connection preface, the first bytes of an h2c connection.
H2C_PREFACE = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"

# Seconds a connection over `max_connections` may take to send its request before its
# 503 is written anyway (issue 15).
OVER_CAP_WAIT = 2.0


def connection_facts(channel: Any) -> tuple[list | None, list | None, str]:
    """``(client, server, scheme)`` of the connection a request arrived on (D-27).

    Daphne's HTTP/1.1 channel computes them once per connection; an HTTP/2 stream
    (Twisted's ``H2Stream``) answers for its connection's transport.
    """
    addresses = getattr(channel, "addresses", None)
    if addresses is not None:
        return addresses[0], addresses[1], channel.scheme
    client, server = transport_addresses(channel)
    return client, server, "https" if channel.isSecure() else "http"


class NegotiatingChannel(http._GenericHTTPChannelProtocol):
    """Twisted's HTTP/1.1-or-HTTP/2 wrapper, telling daphne's channel when ALPN chose h2.

    Twisted then replaces the HTTP/1.1 channel with its ``H2Connection`` without
    ever calling the old channel's ``connectionLost``: left alone, it would stay in
    the factory's connection set for good and be aborted at stop.

    With `h2c` (issue 21) a cleartext connection whose first bytes are the HTTP/2
    preface (RFC 9113 §3.3, prior knowledge) switches to ``H2Connection`` the same way.
    """

    _http1 = None  # the HTTP/1.1 channel ALPN's switch to h2 replaced
    # Issue 21: look for the h2c preface in the connection's first bytes; then the
    # bytes held until there are enough to tell.
    h2c = False
    _h2c_held = b""

    def dataReceived(self, data: bytes) -> None:
        if self.h2c:
            data = self._look_for_preface(data)
            if not data:
                return  # a prefix of the preface: wait for more
        before = self._channel
        super().dataReceived(data)
        if self._channel is not before and isinstance(before, HTTPChannel):
            before.replaced_by_http2()
            self._http1 = before

    def _look_for_preface(self, data: bytes) -> bytes:
        """Hold the first bytes until they show whether the client speaks h2c; switch
        to HTTP/2 if so. Returns the bytes to parse now (none while undecided)."""
        data = self._h2c_held + data
        if len(data) < len(H2C_PREFACE) and H2C_PREFACE.startswith(data):
            self._h2c_held = data  # too short to tell yet
            return b""
        self.h2c = False  # decided: this check never runs again on this connection
        self._h2c_held = b""
        channel: Any = self._channel  # the HTTP/1.1 channel: nothing switched it yet
        if data.startswith(H2C_PREFACE) and not channel.isSecure():
            self._switch_to_h2c()
        return data

    def _switch_to_h2c(self) -> None:
        """As Twisted's ALPN switch (``_GenericHTTPChannelProtocol.dataReceived``)."""
        from twisted.web._http2 import H2Connection

        channel: Any = self._channel
        channel._networkProducer.unregisterProducer()
        channel.setTimeout(None)
        transport = channel.transport
        h2: Any = H2Connection()
        h2.requestFactory = self._requestFactory
        h2.site = self._site
        h2.factory = self._factory
        h2.timeOut = self._timeOut
        h2.callLater = self._callLater
        self._channel = h2
        h2.makeConnection(transport)
        channel._networkProducer.registerProducer(h2, True)
        # Twisted types the class default (None) only.
        self._negotiatedProtocol = b"h2"  # type: ignore[assignment]

    def connectionLost(self, reason: Any) -> None:
        if self._http1 is not None:
            self._http1.uncount()  # the HTTP/2 connection it became is gone
        super().connectionLost(reason)


class OpenConnection:
    """An open WebSocket's place in its factory's connection count (``max_connections``,
    the open-connection gauge), once its `HTTPChannel` is gone (`HTTPChannel.detach`)."""

    __slots__ = ("factory", "serving")

    def __init__(self, factory: Any, serving: str) -> None:
        self.factory = factory  # None: not counted (over the cap)
        self.serving = serving

    def released(self) -> None:
        """The WebSocket closed: uncounted, once."""
        factory, self.factory = self.factory, None
        if factory is not None:
            factory.open_connections -= 1
            factory.metrics.connection_closed(self.serving)


@implementer(IPushProducer)
class HTTPChannel(RequestTimers, ResponseWrites, http.HTTPChannel):
    """Twisted's HTTP/1.1 parser plus daphne's edge limits (D-64; its head and body timers
    are `RequestTimers`', its response writes `ResponseWrites`') and the hand-over (D-28)."""

    if TYPE_CHECKING:
        # A TCP, UNIX or TLS transport once connected; zope interfaces (ITransport) do
        # not type their implementations' other methods without a zope mypy plugin.
        transport: Any

    _refused = False
    # The WebSocket protocol this connection was handed to (D-28); bytes the
    # parser still holds are forwarded to it. Cleared when that socket closes.
    _upgraded_to = None
    _outbound_timer = None
    # Counted in `factory.open_connections`, or over `max_connections` (issue 15).
    _counted = False
    _over_cap = False
    # The protocol this connection is counted under in the metrics (issue 18).
    _serving = "http/1.1"

    def connectionMade(self) -> None:
        super().connectionMade()
        factory = self.factory
        self.maxHeaders = factory.config.max_header_count
        self.totalHeadersSize = factory.config.max_header_size
        factory.http_channels.add(self)
        # Per connection, not per request: both need syscalls or interface checks.
        self.addresses = transport_addresses(self.transport)
        self.scheme = "https" if self.isSecure() else "http"
        if (
            factory.config.max_connections
            and factory.open_connections >= factory.config.max_connections
        ):
            # Issue 15: over the cap. Answered 503 when the request's first bytes arrive
            # (closing with them unread would reset the connection and lose the answer),
            # or after OVER_CAP_WAIT seconds of silence.
            self._over_cap = True
            factory.connection_refused()
            self._head_timer = self.callLater(OVER_CAP_WAIT, self._refuse_over_cap)
            return
        self._counted = True
        factory.open_connections += 1
        factory.metrics.connection_opened("http/1.1")
        self._start_head_timer()

    # The connection's addresses, for Twisted's `Request.__init__`, which asks for both
    # per request: two address objects and a getsockname syscall each time (issue 20).
    _peer = None
    _host = None

    def getPeer(self) -> Any:
        peer = self._peer
        if peer is None:
            peer = self._peer = self.transport.getPeer()
        return peer

    def getHost(self) -> Any:
        host = self._host
        if host is None:
            host = self._host = self.transport.getHost()
        return host

    def _refuse_over_cap(self) -> None:
        self._head_timer = None
        self.refuse(503, b"Service Unavailable")

    def uncount(self) -> None:
        """The connection (or the WebSocket or HTTP/2 one it became) closed."""
        if self._counted:
            self._counted = False
            self.factory.open_connections -= 1
            self.factory.metrics.connection_closed(self._serving)

    def dataReceived(self, data: bytes) -> None:
        if self._refused:
            return
        if self._over_cap:
            self._refuse_over_cap()
            return
        if not self._handlingRequest:
            self._head_bytes += len(data)
        super().dataReceived(data)

    def rawDataReceived(self, data: bytes) -> None:
        if self._upgraded_to is not None:
            self._upgraded_to.dataReceived(data)
            return
        if self._refused:
            return
        if self._body_timer is not None:
            self._body_active = self.factory.reactor.seconds()
        super().rawDataReceived(data)

    def allContentReceived(self) -> None:
        if self._body_timer is not None:
            self._stop_body_timer()
        if self._refused:
            return  # refused in allHeadersReceived, and the request has no body
        super().allContentReceived()

    def allHeadersReceived(self) -> None:
        self._head_received()
        factory = self.factory
        # Only a `Server` checks Host: an `HTTPFactory` built by itself (1.4's test
        # helpers and the suites written with them, D-53..D-58) takes any Host value.
        if factory.config.require_host:
            problem = host_problem(
                self.requests[-1].requestHeaders.getRawHeaders(b"host"), self._version
            )
            if problem is not None:
                # RFC 9112 §3.2 (issue 15): no (HTTP/1.1), several, or a malformed Host.
                logger.debug("Bad request from %s: %s", self.addresses[0], problem)
                self.refuse(400, b"Bad Request")
                return
        limit = factory.config.http_max_body_size
        if limit and self.length is not None and self.length > limit:
            # D-64: refused before a byte of the body is read (and before Twisted
            # would answer "Expect: 100-continue").
            self.refuse(413, b"Payload Too Large")
            return
        super().allHeadersReceived()
        if self.length != 0 and not self._refused:
            self._start_body_timer()

    def requestDone(self, request: http.Request) -> None:
        self.flush_held()
        super().requestDone(request)
        if self.persistent and self.transport is not None and not self.transport.disconnecting:
            self._start_head_timer()

    # -- D-64: framing two parsers could read differently (RFC 7230 §3.3.3) ---

    def _maybeChooseTransferDecoder(self, header: bytes, data: bytes) -> bool:
        if header == b"Transfer-Encoding":
            if data.lower() != b"chunked":
                # Twisted lets "identity" through, which another parser may frame differently.
                return self._failChooseTransferDecoder()
        elif header != b"Content-Length":
            return True  # as Twisted's answer for any other header, without the call
        return super()._maybeChooseTransferDecoder(header, data)

    # -- refusals ----------------------------------------------------------------

    def refuse(self, status: int, reason: bytes) -> None:
        """Answer `status` without involving the application, then close (D-64)."""
        if self._refused:
            return
        self._refused = True
        self._stop_head_timer()
        self._stop_body_timer()
        self.factory.metrics.response_started(status)
        self.transport.write(
            b"HTTP/1.1 %d %s\r\nConnection: close\r\nContent-Length: 0\r\n\r\n" % (status, reason)
        )
        self.transport.loseConnection()

    def _respondToBadRequestAndDisconnect(self) -> None:
        if (
            self._receivedHeaderSize > self.totalHeadersSize
            or self._receivedHeaderCount > self.maxHeaders
        ):
            # Issue 15: RFC 6585 §5, the header section is too large.
            self.refuse(431, b"Request Header Fields Too Large")
        else:
            self.refuse(400, b"Bad Request")

    def lineLengthExceeded(self, line: bytes) -> None:
        # Twisted's private flag: whether the line is the request line.
        if self._HTTPChannel__first_line:  # type: ignore[attr-defined]
            # Issue 15: the request line alone is too long: RFC 9110 §15.5.15.
            self.refuse(414, b"URI Too Long")
        else:
            self.refuse(431, b"Request Header Fields Too Large")

    def replaced_by_http2(self) -> None:
        """ALPN chose h2: Twisted's H2Connection serves the connection from now on (D-25)."""
        self._stop_head_timer()
        self._stop_body_timer()
        self.factory.http_channels.discard(self)
        self._count_as("h2")
        if self._over_cap:
            self.transport.loseConnection()  # over max_connections (issue 15)

    def _count_as(self, protocol: str) -> None:
        """The connection now serves `protocol`: moved between the open-connection
        gauges (issue 18)."""
        if self._counted:
            metrics = self.factory.metrics
            metrics.connection_closed(self._serving)
            metrics.connection_opened(protocol)
        self._serving = protocol

    # -- D-28: WebSocket hand-over ------------------------------------------------

    def hand_over(self, protocol: Any, head: bytes) -> None:
        """Give the connection to `protocol` and replay the request to it (D-28).

        `head` is the request as bytes (head and body); the bytes the parser already
        read past it follow. `protocol` becomes the transport's producer, so the
        transport's pause (its buffer is full) reaches it (issue 15).
        """
        transport = self.transport
        if isinstance(transport, ProtocolWrapper):
            transport.wrappedProtocol = protocol  # TLS wraps the connection's protocol
        else:
            transport.protocol = protocol
        self._stop_head_timer()
        self._count_as("websocket")
        self._upgraded_to = protocol
        protocol._http_channel = self
        self.factory.http_channels.discard(self)
        if (
            getattr(transport, "producer", None) is self  # TCP, UNIX
            or getattr(getattr(transport, "_producer", None), "_producer", None) is self  # TLS
        ):
            transport.unregisterProducer()
            transport.registerProducer(protocol, True)
        pending = b"".join(self._dataBuffer)
        self._dataBuffer = []
        protocol.makeConnection(transport)
        protocol.dataReceived(head + pending)
        # Twisted pauses a channel's transport while a request is outstanding.
        transport.resumeProducing()

    def released(self) -> None:
        """The WebSocket this connection was handed to closed: drop every reference
        between them and the upgrade's request, so they are freed at once (issue 15)."""
        self.uncount()
        self._forget_upgrade()

    def detach(self) -> OpenConnection:
        """The WebSocket this connection was handed to is open: nothing reads this
        channel any more (its transport delivers to the WebSocket), so it is freed with
        the upgrade's request, and the socket keeps only what its close must undo: the
        connection count (issue 20, W5: about 2 KB per idle socket). Whoever still
        holds the channel (1.4's test helpers feed it bytes) has them forwarded still."""
        for request in self.requests:
            request.channel = None
        self.requests = []
        self._dataBuffer = []
        counted, self._counted = self._counted, False
        return OpenConnection(self.factory if counted else None, self._serving)

    def _forget_upgrade(self) -> None:
        self._upgraded_to = None
        for request in self.requests:
            request.channel = None
        self.requests = []
        self._dataBuffer = []

    # -- bounded outbound buffer (issue 15; the writes are `ResponseWrites`') ----------

    # Twisted's channel already stops reading while the transport's buffer is full
    # (`_waitingForTransport`); a response the application streams faster than the
    # client reads is bounded here.

    def pauseProducing(self) -> None:
        super().pauseProducing()
        check_outbound(self, self.factory)

    def resumeProducing(self) -> None:
        cancel_outbound_timer(self)
        super().resumeProducing()

    def outbound_overflow(self) -> None:
        """The client has not read the response: abort, freeing what is buffered."""
        self.transport.abortConnection()

    def connectionLost(self, reason: Failure = connectionDone) -> None:
        self.uncount()
        cancel_outbound_timer(self)
        self._stop_head_timer()
        self._stop_body_timer()
        self.factory.http_channels.discard(self)
        if self._upgraded_to is not None:
            # Only reached when something still calls the HTTP side (e.g. a test transport).
            self._upgraded_to.connectionLost(reason)
            return
        super().connectionLost(reason)
        self.factory.request_finished()

    # -- D-17: graceful stop --------------------------------------------------------

    def drain(self) -> None:
        """Close an idle keep-alive connection now; a busy one after its response."""
        self.persistent = False
        if not self._handlingRequest:
            self._stop_head_timer()
            self.transport.loseConnection()
