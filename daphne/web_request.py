"""`WebRequest`: one HTTP/1.1 request ⇄ ASGI-1 ``http.*`` messages (D-26..D-37, D-63, D-64).

`HTTPChannel` (in `http_channel`) adds D-64's edge limits to Twisted's parser;
`WebRequest` is the adapter between one parsed request and its `HttpExchange`
(`http_state`, the sans-I/O decisions): Twisted's callbacks go in, the exchange's
answers become Twisted calls. 1.4 imported it from ``daphne.http_protocol``, which
re-exports it.
"""

from __future__ import annotations

import logging
import os
import string
from typing import TYPE_CHECKING, Any

from twisted.python.failure import Failure
from twisted.web import http
from zope.interface import provider

from .access import log_http_complete
from .drops import FullChannelReporter, send_best_effort
from .error_page import (
    ERROR_TEMPLATE,
    PROCESSING_ERROR,
    RESTARTING,
    TIMED_OUT,
    error_response,
)
from .errors import PeerError
from .expired_requests import EXPIRED
from .http_channel import HTTPChannel, connection_facts
from .http_state import HttpExchange, decode_path, forwarded_peer
from .metrics import UnknownLabel
from .request_body import BodyPump
from .request_checks import BadRequestHeader
from .request_send import RETRY_AFTER, SENDING, QueueWait, RequestSending

__all__ = ["RETRY_AFTER", "SENDING", "WS_SENDING", "WebRequest"]

# The logger 1.4 used for requests: `channels.log.setup_logger` configures it (C-76).
logger = logging.getLogger("daphne.http_protocol")
full_channels = FullChannelReporter(logger)

# 256 byte values → letters; values 0-47 map to letters twice as often by one in
# five, which still leaves ~57 bits in 10 letters. One urandom + translate costs a
# fraction of random.choices per request (issue 9 profile).
_LETTER_TABLE = bytes((string.ascii_letters * 5)[:256], "ascii")


WS_SENDING = "sending WebSocket messages"

# Read once: `twisted.web.http` is a deprecation proxy module, whose attribute reads
# are three Python calls each (issue 20).
_request_write = http.Request.write


# Letters are drawn from one urandom read of this many bytes at a time: a read (a
# getrandom syscall) per request was part of its cost (issue 20).
_POOL_SIZE = 4096
_pool = {"letters": ""}


def _reset_pool() -> None:
    _pool["letters"] = ""  # a forked child must not reuse its parent's letters


os.register_at_fork(after_in_child=_reset_pool)


def _letters(count: int) -> str:
    letters = _pool["letters"]
    if len(letters) < count:
        letters = os.urandom(max(_POOL_SIZE, count)).translate(_LETTER_TABLE).decode("ascii")
    _pool["letters"] = letters[count:]
    return letters[:count]


# Provides no interface itself, as before, but says so in a class attribute of its own:
# Twisted's parser asks ``INonQueuedRequestFactory.providedBy(requestFactory)`` per
# request, and for a subclass of `http.Request` (whose declaration names `Request`
# alone) zope took its slow path through a caught AttributeError, about 3 us (issue 20).
@provider()
class WebRequest(RequestSending, http.Request):
    """One HTTP request: Twisted's callbacks in, `HttpExchange`'s decisions out (D-26..D-37).

    Sending its ``http.request`` and acting on the send's outcome is `RequestSending`'s.
    """

    error_template = ERROR_TEMPLATE
    # Identity, as Twisted's `Request.__hash__` (``hash(id(self))``), without its Python
    # call per dictionary operation: a request is a key in the factory's deadlines.
    __hash__ = object.__hash__
    # Whether the request's deadlines (`check_timeout`, the layer expiry) may be set.
    _timed = False
    if TYPE_CHECKING:
        # Twisted types these loosely (None before a connection, zope interfaces):
        # daphne's `HTTPChannel` or an HTTP/2 stream, the body buffer, the transport.
        channel: Any
        content: Any
        transport: Any

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.factory = self.channel.factory
        # D-26: registered from creation so a reply can always find it.
        self.reply_channel = self.factory.make_send_channel()
        self.factory.reply_protocols[self.reply_channel] = self
        self._exchange = HttpExchange(self.reply_channel)
        self.request_start: float | None = None
        self._body_received = 0
        self._body_pump: BodyPump | None = None
        # Retries of an http.request the layer had no room for (issue 17 item 3).
        self._queue_wait: QueueWait | None = None
        self.client_addr: list | None = None
        self.server_addr: list | None = None
        self.client_scheme = "http"

    # -- 1.4 API (D-26, D-32..D-34) -------------------------------------------------

    def duration(self) -> float:
        """Seconds since the request was processed, 0 before that (D-26)."""
        if self.request_start is None:
            return 0
        return self.factory.reactor.seconds() - self.request_start

    def serverResponse(self, message: dict) -> None:
        """Write one Response or Response Chunk message (A-79, A-80, D-34)."""
        reply = self._exchange.receive_reply(message)  # ApplicationError for a bad one
        if reply is None:
            logger.debug("Ignoring reply for finished request %s", self.reply_channel)
            return
        status, headers, content, more_content = reply
        if status is not None:
            self._start_response(status, headers)
        if self._disconnected:
            return
        # HTTP/1.1 (not an HTTP/2 stream): the channel holds the head for the body's first
        # write, and a whole response until it is done: one transport write (issue 20).
        channel = self.channel
        whole = isinstance(channel, HTTPChannel)
        if whole and not more_content:
            channel.hold_response()
        _request_write(self, content)
        if not more_content:
            self.finish()  # the channel's `requestDone` writes what it holds
        elif whole:
            channel.flush_held()  # a streamed response's head goes at once

    def basic_error(
        self,
        status: int,
        status_text: bytes,
        body: str,
        *,
        close_connection: bool = False,
        retry_after: int | None = None,
    ) -> None:
        """Answer with a small HTML error page (D-32)."""
        if close_connection and self.channel is not None:
            self.channel.persistent = False
        message = error_response(
            self.error_template, status, status_text, body, close_connection, retry_after
        )
        self.serverResponse(message)

    @classmethod
    def unquote(cls, value: bytes, plus_as_space: bool = False) -> str:
        """ASCII-decode then URL-unquote (D-33)."""
        return decode_path(value, plus_as_space)

    # -- request side ------------------------------------------------------------

    def handleContentChunk(self, data: bytes) -> None:
        self._body_received += len(data)
        limit = self.factory.config.http_max_body_size
        if not limit or self._body_received <= limit:
            super().handleContentChunk(data)
            return
        # D-64: a chunked body that grows past the limit.
        refuse = getattr(self.channel, "refuse", None)
        if refuse is not None:  # HTTP/1.1: answer and close the connection
            refuse(413, b"Payload Too Large")
        elif self._exchange.unanswered:
            # HTTP/2: answer on this stream alone; the connection's other streams go on.
            self.basic_error(413, b"Payload Too Large", "The request body is too large")

    def parseCookies(self) -> None:
        """Twisted parses the Cookie header into ``received_cookies`` for its resources;
        daphne passes the header on as bytes (D-29) and never reads them (issue 20)."""

    def requestReceived(self, command: bytes, path: bytes, version: bytes) -> None:
        if not self._exchange.unanswered:
            return  # an HTTP/2 stream already refused for its body (D-64)
        # Twisted's version also parses the query string and form bodies into
        # `args`; daphne forwards raw bytes, so that work is skipped.
        self.content.seek(0, 0)
        self.args = {}
        self.method, self.uri = command, path
        self.clientproto = version
        self.path = path.split(b"?", 1)[0]
        self.process()

    def process(self) -> None:
        try:
            self._process()
        except PeerError as error:
            self._refuse_peer(error)
        except Exception:
            # D-27: anything unexpected (the layer's MessageTooLarge included) is a 500.
            logger.exception("HTTP processing error for %s", self.reply_channel)
            if self._exchange.unanswered:
                self.basic_error(*PROCESSING_ERROR)

    def _process(self) -> None:
        factory = self.factory
        self.request_start = factory.reactor.seconds()
        self.client_addr, self.server_addr, self.client_scheme = connection_facts(self.channel)
        if factory.config.proxy_forwarded_address_header:
            self.client_addr, self.client_scheme = forwarded_peer(
                self.requestHeaders, factory.config, self.client_addr, self.client_scheme
            )
        self._exchange.receive_request(self.path)
        upgrade = self.requestHeaders.getRawHeaders(b"Upgrade")
        if upgrade and upgrade[0].lower() == b"websocket":
            self._upgrade_to_websocket(self.uri.partition(b"?")[2])
            return
        # On the factory's sweep (1 s resolution): no DelayedCall per request.
        self._timed = True
        factory.request_deadlines.schedule(
            self, self.request_start + factory.config.http_timeout, self.check_timeout
        )
        self._send_request()

    def _refuse_peer(self, error: PeerError) -> None:
        """The client got the request wrong: answer the status it carries (D-27)."""
        logger.debug("Bad request from %s: %s", self.client_addr, error)
        # Issue 15: an unreadable header daphne reads, or a WebSocket handshake with "_" in
        # a header name (D-27 step 6), also closes the connection.
        close = isinstance(error, BadRequestHeader)
        if not close:
            self.path = b"/"  # D-27 step 4
        if self._exchange.unanswered:
            status = error.error_status_hint
            reason = http.RESPONSES.get(status, b"Bad Request")
            self.basic_error(status, reason, str(error), close_connection=close)

    # -- WebSocket hand-over (D-27 step 6, D-28) ---------------------------------

    def _upgrade_to_websocket(self, query_string: bytes) -> None:
        # D-27 step 6: "_" in a header name refuses the handshake (BadRequestHeader).
        head = self._exchange.websocket_head(self.method, self.uri, self.requestHeaders)
        factory = self.factory
        protocol = factory.ws_factory.buildProtocol(self.transport.getPeer())
        if not protocol:
            logger.warning("Could not make WebSocket protocol")
            self.basic_error(500, b"Internal Server Error", "Could not make WebSocket protocol")
            return
        protocol._raw_query_string = query_string
        protocol.set_main_factory(factory)
        self.transport = None
        self.handed_over()
        self.channel.hand_over(protocol, head + self.content.read())

    def handed_over(self) -> None:
        """The connection now belongs to a WebSocket: this request is done (D-28)."""
        self.factory.reply_protocols.pop(self.reply_channel, None)
        self.reply_channel = None
        self._exchange.hand_over()

    # -- response side (D-34, D-35) ------------------------------------------------

    def _start_response(self, status: int, headers: list | None) -> None:
        add = self.responseHeaders.addRawHeader
        for name, value in headers or ():
            add(name, value)
        if self._timed:
            self._cancel_timeout()
        self.setResponseCode(status)
        metrics = self.factory.metrics
        if metrics.enabled:  # no call per response with metrics off (issue 16)
            try:
                metrics.response_started(status)
            except UnknownLabel:  # a status outside 100..599 is sent, not counted
                pass
        if self.factory.draining:
            # D-17: responses finished during a drain close their connection.
            self.responseHeaders.setRawHeaders(b"Connection", [b"close"])
            if self.channel is not None:
                self.channel.persistent = False

    def finish(self) -> None:
        self._exchange.finish()
        if self._timed:
            self._cancel_timeout()
        if self._queue_wait is not None:
            self._queue_wait.cancel()
        if self._body_pump is not None:
            # Answered: the rest of the body has no reader (a refused upload, issue 15).
            self._body_pump.stop()
        self._send_disconnect()
        super().finish()
        log_http_complete(self)
        self.factory.request_finished()

    def connectionLost(self, reason: Failure) -> None:
        self._cancel_timeout()
        if self._queue_wait is not None:
            self._queue_wait.cancel()
        if self._body_pump is not None:
            self._body_pump.client_gone()
        self._send_disconnect()
        self._exchange.connection_lost()
        super().connectionLost(reason)
        self.factory.request_finished()

    def _send_disconnect(self) -> None:
        """Send ``http.disconnect`` once, if the request is still registered (D-37)."""
        factory = self.factory
        if (
            self.reply_channel is None
            or factory.reply_protocols.pop(self.reply_channel, None) is None
        ):
            return
        path = self._exchange.path
        if path is None:
            return
        if not factory.routed.http_disconnect or factory.layer_health.failing(SENDING):
            # Issue 14: nothing would consume it (the workers announced their routing),
            # or requests cannot reach the layer and A-89 drops it anyway (logged once).
            return
        send_best_effort(
            factory.outbox,
            "http.disconnect",
            {"reply_channel": self.reply_channel, "path": path},
            "dropped a disconnect",
            factory.http_reporter,
        )

    # -- timeouts and stopping (D-17, D-24) ---------------------------------------------

    def _cancel_timeout(self) -> None:
        if self._timed:  # once: a response's start and its finish both call this
            self._timed = False
            self.factory.request_deadlines.cancel(self)
            self.factory.expired_requests.forget(self)

    def waiting_for_response(self) -> bool:
        return self._exchange.unanswered

    def refuse_for_stop(self) -> None:
        """D-17 step 4: the server stops before the application answered (issue 14)."""
        if self._body_pump is not None:
            self._body_pump.stop()
        self.basic_error(*RESTARTING, close_connection=True, retry_after=RETRY_AFTER)

    def expired_in_layer(self) -> None:
        """No worker took the ``http.request`` within the layer's expiry (A-27): 503
        now rather than at the HTTP timeout (issue 15 item 6, `expired_requests`)."""
        if self._body_pump is not None:
            self._body_pump.stop()
        self.basic_error(*EXPIRED, retry_after=RETRY_AFTER)

    def check_timeout(self) -> None:
        """503 when the application did not start a response in time (D-24)."""
        if (
            self._exchange.unanswered
            and self.request_start is not None
            and self.duration() >= self.factory.config.http_timeout
        ):
            if self._body_pump is not None:
                self._body_pump.stop()
            self.basic_error(*TIMED_OUT)
