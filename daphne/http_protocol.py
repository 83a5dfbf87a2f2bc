"""HTTP/1.1 requests ⇄ ASGI-1 ``http.*`` messages (D-18..D-37, D-63, D-64).

`HTTPChannel` (in `http_channel`) adds D-64's edge limits to Twisted's parser; `WebRequest` turns
one parsed request into an ``http.request`` message and writes the reply messages
back; `HTTPFactory` (in `http_factory`, importable from here as in 1.4) owns the
reply-channel registry that the reply reader dispatches into (D-22).
"""

from __future__ import annotations

import logging
import os
import string
from typing import Any
from urllib.parse import unquote, unquote_plus

from twisted.web import http

from .error_page import ERROR_TEMPLATE
from .errors import ApplicationError
from .full_channels import FullChannelReporter, send_best_effort
from .http_channel import HTTPChannel, connection_facts
from .outbox import OutboxFull
from .request_body import BODY_CHUNK_SIZE, BodyPump
from .request_checks import BAD_HEADER_ERRORS, request_headers
from .response_state import ResponseState, transition
from .utils import parse_x_forwarded_for
from .ws_handover import upgrade_to_websocket

__all__ = ["HTTPFactory", "WebRequest", "HTTPChannel"]  # noqa: F822 (HTTPFactory: __getattr__)

logger = logging.getLogger(__name__)
full_channels = FullChannelReporter(logger)

try:  # D-25: HTTP/2 needs Twisted's http2 and tls extras.
    from twisted.web._http2 import H2Connection  # noqa: F401

    HTTP2_AVAILABLE = True
except ImportError:
    HTTP2_AVAILABLE = False


# 256 byte values → letters; values 0-47 map to letters twice as often by one in
# five, which still leaves ~57 bits in 10 letters. One urandom + translate costs a
# fraction of random.choices per request (issue 9 profile).
_LETTER_TABLE = bytes((string.ascii_letters * 5)[:256], "ascii")


# Retry-After (seconds) on a 503 for an unreachable layer or a stopping server.
RETRY_AFTER = 5
# LayerHealth activity of the request sends.
SENDING = "sending http.request"
WS_SENDING = "sending WebSocket messages"


def _letters(count: int) -> str:
    return os.urandom(count).translate(_LETTER_TABLE).decode("ascii")


class WebRequest(http.Request):
    """One HTTP request: sends ``http.request`` and writes the reply messages (D-26..D-37)."""

    error_template = ERROR_TEMPLATE

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.factory = self.channel.factory
        # D-26: registered from creation so a reply can always find it.
        self.reply_channel = self.factory.make_send_channel()
        self.factory.reply_protocols[self.reply_channel] = self
        self._got_response_start = False
        self._response_state = ResponseState.WAITING
        self.request_start = None
        self._decoded_path = None
        self._body_received = 0
        self._body_pump = None
        self.client_addr = None
        self.server_addr = None
        self.client_scheme = "http"

    # -- request side ------------------------------------------------------------

    def handleContentChunk(self, data: bytes) -> None:
        self._body_received += len(data)
        limit = self.factory.http_max_body_size
        if limit and self._body_received > limit:
            # D-64: a chunked body that grows past the limit.
            self._refuse_body()
            return
        super().handleContentChunk(data)

    def _refuse_body(self) -> None:
        refuse = getattr(self.channel, "refuse", None)
        if refuse is not None:  # HTTP/1.1: answer and close the connection
            refuse(413, b"Payload Too Large")
        elif self._response_state is ResponseState.WAITING:
            # HTTP/2: answer on this stream alone; the connection's other streams go on.
            self.basic_error(413, b"Payload Too Large", "The request body is too large")

    def requestReceived(self, command: bytes, path: bytes, version: bytes) -> None:
        if self._response_state is not ResponseState.WAITING:
            return  # an HTTP/2 stream already refused for its body (D-64)
        # Twisted's version also parses the query string and form bodies into
        # `args`; daphne forwards raw bytes, so that work is skipped.
        self.content.seek(0, 0)
        self.args = {}
        self.method, self.uri = command, path
        self.clientproto = version
        self.path = path.split(b"?", 1)[0]
        self.process()

    def duration(self) -> float:
        """Seconds since the request was processed, 0 before that (D-26)."""
        if self.request_start is None:
            return 0
        return self.factory.reactor.seconds() - self.request_start

    def process(self) -> None:
        try:
            self._process()
        except BAD_HEADER_ERRORS as error:
            # Issue 15: a header daphne reads is unreadable: the client's fault, 400.
            logger.debug("Bad request from %s: %s", self.client_addr, error)
            self._decoded_path = None  # no http.request went out: no http.disconnect
            if self._response_state is ResponseState.WAITING:
                self.basic_error(400, b"Bad Request", str(error), close_connection=True)
        except Exception:
            # D-27: anything unexpected (the layer's MessageTooLarge included) is a 500.
            logger.exception("HTTP processing error for %s", self.reply_channel)
            if self._response_state is ResponseState.WAITING:
                self.basic_error(500, b"Internal Server Error", "HTTP processing error")

    def _process(self) -> None:
        factory = self.factory
        self.request_start = factory.reactor.seconds()
        self.client_addr, self.server_addr, self.client_scheme = connection_facts(self.channel)
        if factory.proxy_forwarded_address_header:
            self.client_addr, self.client_scheme = parse_x_forwarded_for(
                self.requestHeaders,
                factory.proxy_forwarded_address_header,
                factory.proxy_forwarded_port_header,
                factory.proxy_forwarded_proto_header,
                self.client_addr,
                self.client_scheme,
                forwarded_allow_ips=factory.forwarded_allow_ips,
            )
        try:
            self._decoded_path = self.unquote(self.path)
        except UnicodeDecodeError:
            self.path = b"/"
            self.basic_error(400, b"Bad Request", "Invalid characters in path")
            return
        uri_parts = self.uri.split(b"?", 1)
        query_string = uri_parts[1] if len(uri_parts) == 2 else b""
        upgrade = self.requestHeaders.getRawHeaders(b"Upgrade")
        if upgrade and upgrade[0].lower() == b"websocket":
            self._upgrade_to_websocket(query_string)
            return
        # On the factory's sweep (1 s resolution): no DelayedCall per request.
        factory.deadlines.schedule(self, self.request_start + factory.timeout, self.check_timeout)
        self._send_request(query_string)

    def _send_request(self, query_string: bytes) -> None:
        headers, root_path = request_headers(self.requestHeaders, self.factory.root_path)
        content = self.content
        body = content.read(BODY_CHUNK_SIZE)
        more_body = bool(content.read(1))
        message = {
            "reply_channel": self.reply_channel,
            "http_version": self.clientproto.split(b"/", 1)[-1].decode("ascii"),
            "method": self.method.decode("latin-1"),
            "path": self._decoded_path,
            "root_path": root_path,
            "scheme": self.client_scheme,
            "query_string": query_string,
            "headers": headers,
            "body": body,
            "client": self.client_addr,
            "server": self.server_addr,
        }
        factory = self.factory
        if more_body:
            # D-63: the rest of a large body follows on a single-reader channel.
            content.seek(len(body))
            message["body_channel"] = factory.outbox.new_channel("http.request.body?")
        factory.outbox.send("http.request", message, self._request_sent)

    def _request_sent(self, channel: str, message: dict, error: BaseException | None) -> None:
        """The outcome of the ``http.request`` send (at once, or from the outbox's flush)."""
        if error is None:
            if self.factory.layer_health.down:
                self.factory.layer_health.ok(SENDING)
            body_channel = message.get("body_channel")
            if body_channel is not None:
                self._body_pump = BodyPump(self, body_channel)
                if self._disconnected:
                    # Gone before the request was even stored: the consumer still waits
                    # for the body, so tell it (C-35).
                    self._body_pump.client_gone()
                else:
                    self._body_pump.pump()
            return
        if isinstance(error, (self.factory.channel_layer.ChannelFull, OutboxFull)):
            # D-31, A-76.
            full_channels.full("http.request", "answered 503")
            self.basic_error(
                503, b"Service Unavailable", "Request queue full.", close_connection=True
            )
            return
        if self._response_state is not ResponseState.WAITING:
            return
        if isinstance(error, self.factory.channel_layer.MessageTooLarge):
            # D-27: as when `process` raised it.
            logger.error("HTTP processing error for %s", self.reply_channel, exc_info=error)
            self.basic_error(500, b"Internal Server Error", "HTTP processing error")
            return
        # The layer's backend is unreachable (Redis down): 503 with Retry-After is what
        # proxies and clients act on, 500 was not (issue 14). Logged once per outage.
        self.factory.layer_health.failed(SENDING, error)
        self.basic_error(
            503,
            b"Service Unavailable",
            "The channel layer is unreachable; try again shortly.",
            retry_after=RETRY_AFTER,
        )

    # -- WebSocket hand-over (D-27 step 6, D-28) ---------------------------------

    def _upgrade_to_websocket(self, query_string: bytes) -> None:
        upgrade_to_websocket(self, query_string)

    def handed_over(self) -> None:
        """The connection now belongs to a WebSocket: this request is done (D-28)."""
        self.factory.reply_protocols.pop(self.reply_channel, None)
        self.reply_channel = None
        self._response_state = ResponseState.FINISHED

    # -- response side (D-34, D-35) ------------------------------------------------

    def serverResponse(self, message: dict) -> None:
        """Write one Response or Response Chunk message (A-79, A-80)."""
        state = self._response_state
        if state is ResponseState.FINISHED:
            logger.debug("Ignoring reply for finished request %s", self.reply_channel)
            return
        if "status" in message:
            if state is not ResponseState.WAITING:
                raise ApplicationError(f"Got multiple Response messages for {self.reply_channel}!")
            self._start_response(message)
        elif state is ResponseState.WAITING:
            raise ApplicationError("Specifying a status code is required for a Response message.")
        if self._disconnected:
            return
        http.Request.write(self, message.get("content", b""))
        if not message.get("more_content", False):
            self.finish()

    def _start_response(self, message: dict) -> None:
        status = message["status"]
        if type(status) is not int:
            raise ApplicationError(f"Response status must be an int, not {status!r}")
        headers = message.get("headers", ())
        add = self.responseHeaders.addRawHeader
        for header in headers:
            name, value = header
            if isinstance(name, str):
                name = name.encode("latin-1")
            add(name, value)
        self._response_state = transition(self, "start")
        self._got_response_start = True
        self._cancel_timeout()
        self.setResponseCode(status)
        if self.factory.draining:
            # D-17: responses finished during a drain close their connection.
            self.responseHeaders.setRawHeaders(b"Connection", [b"close"])
            if self.channel is not None:
                self.channel.persistent = False

    def finish(self) -> None:
        if self._response_state is not ResponseState.FINISHED:
            self._response_state = transition(self, "finish")
        self._cancel_timeout()
        if self._body_pump is not None:
            # Answered: the rest of the body has no reader (a refused upload, issue 15).
            self._body_pump.stop()
        self._send_disconnect()
        super().finish()
        self._log_complete()
        self.factory.request_finished()

    def _log_complete(self) -> None:
        if self.factory.action_logger is None:
            return
        client = self.client_addr
        try:
            self.factory.log_action(
                "http",
                "complete",
                {
                    "path": self.uri.decode("ascii", "replace"),
                    "status": self.code,
                    "method": self.method.decode("ascii", "replace"),
                    "client": f"{client[0]}:{client[1]}" if client else None,
                    "time_taken": self.duration(),
                    "size": self.sentLength,
                },
            )
        except Exception:
            # D-36: a broken access logger must not break the response.
            logger.exception("Error writing the access log")

    def connectionLost(self, reason: Any) -> None:
        self._cancel_timeout()
        if self._body_pump is not None:
            self._body_pump.client_gone()
        self._send_disconnect()
        self._response_state = ResponseState.FINISHED
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
        if self._decoded_path is None:
            return
        if not factory.routed.http_disconnect or factory.layer_health.failing(SENDING):
            # Issue 14: nothing would consume it (the workers announced their routing),
            # or requests cannot reach the layer and A-89 drops it anyway (logged once).
            return
        send_best_effort(
            factory.outbox,
            "http.disconnect",
            {"reply_channel": self.reply_channel, "path": self._decoded_path},
            "dropped a disconnect",
            factory.http_reporter,
        )

    # -- timeouts and errors -------------------------------------------------------

    def _cancel_timeout(self) -> None:
        self.factory.deadlines.cancel(self)

    def waiting_for_response(self) -> bool:
        return self._response_state is ResponseState.WAITING

    def refuse_for_stop(self) -> None:
        """D-17 step 4: the server stops before the application answered (issue 14)."""
        if self._body_pump is not None:
            self._body_pump.stop()
        self.basic_error(
            503,
            b"Service Unavailable",
            "The server is restarting; try again shortly.",
            close_connection=True,
            retry_after=RETRY_AFTER,
        )

    def check_timeout(self) -> None:
        """503 when the application did not start a response in time (D-24)."""
        if (
            self._response_state is ResponseState.WAITING
            and self.request_start is not None
            and self.duration() >= self.factory.timeout
        ):
            if self._body_pump is not None:
                self._body_pump.stop()
            self.basic_error(
                503, b"Service Unavailable", "Worker server failed to respond within time limit."
            )

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
        title = "{} {}".format(status, status_text.decode("ascii"))
        page = self.error_template.format(title=title, body=body)
        headers = [(b"Content-Type", b"text/html; charset=utf-8")]
        if retry_after is not None:
            headers.append((b"Retry-After", str(retry_after).encode("ascii")))
        if close_connection:
            headers.append((b"Connection", b"close"))
            if self.channel is not None:
                self.channel.persistent = False
        self.serverResponse(
            {"status": status, "headers": headers, "content": " ".join(page.split()).encode()}
        )

    @classmethod
    def unquote(cls, value: bytes, plus_as_space: bool = False) -> str:
        """ASCII-decode then URL-unquote (D-33)."""
        text = value.decode("ascii")
        return unquote_plus(text) if plus_as_space else unquote(text)


def __getattr__(name: str) -> Any:
    # `HTTPFactory` lives in `http_factory`, which imports this module; 1.4's
    # ``daphne.http_protocol.HTTPFactory`` is the same class (D-18).
    if name == "HTTPFactory":
        from .http_factory import HTTPFactory

        globals()["HTTPFactory"] = HTTPFactory
        return HTTPFactory
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
