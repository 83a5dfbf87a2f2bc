"""The ASGI-1 side of one HTTP request/response as a sans-I/O state machine (D-26..D-37).

`HttpExchange` holds where one request is (its head being read, waiting for the
application, streaming the reply, finished) and decides what each input means; it never
touches a transport. `WebRequest` (`http_protocol`) feeds it Twisted's callbacks and
carries out what it returns, as h11's ``Connection`` does for a socket loop.

Inputs and the states they move the exchange between are one table, `_TRANSITIONS`. An
input the table does not allow in the current state raises and leaves the state as it
was: `ApplicationError` for a reply message that breaks the contract (A-79, A-80, D-34),
`IllegalTransition` for anything else. A request the client got wrong raises `PeerError`
with the status to answer (D-27 steps 3, 4 and 6; issue 15).
"""

from __future__ import annotations

import enum
from typing import Any
from urllib.parse import unquote, unquote_plus

from .errors import ApplicationError, IllegalTransition, PeerError
from .proxy import UndecodableHeader, parse_x_forwarded_for
from .request_checks import BadRequestHeader, request_headers

__all__ = ["ExchangeState", "HttpExchange", "decode_path", "forwarded_peer"]


class ExchangeState(enum.Enum):
    """Where one request/response exchange is."""

    __hash__ = object.__hash__  # identity, as `ws_state.SocketState` (issue 16)

    RECEIVING = "reading the request"
    WAITING = "waiting for the application's Response"
    STREAMING = "streaming Response Chunks"
    FINISHED = "finished"


RECEIVING = ExchangeState.RECEIVING
WAITING = ExchangeState.WAITING
STREAMING = ExchangeState.STREAMING
FINISHED = ExchangeState.FINISHED

# Inputs.
REQUEST = "request"  # the request and its body are in: `process()` (D-27)
RESPONSE = "Response"  # a message with `status`, the application's or daphne's own
CHUNK = "Response Chunk"  # a message without `status`
FINISH = "finish"  # the response is complete (D-34)
HAND_OVER = "hand over"  # the connection now belongs to a WebSocket (D-28)
CLOSE = "connection lost"  # (D-37)

# state -> input -> next state. Daphne answers on its own (413, 400) before the request
# is complete, hence RESPONSE from RECEIVING; FINISH twice is harmless, as in Twisted.
_TRANSITIONS: dict[ExchangeState, dict[str, ExchangeState]] = {
    RECEIVING: {REQUEST: WAITING, RESPONSE: STREAMING, FINISH: FINISHED, CLOSE: FINISHED},
    WAITING: {RESPONSE: STREAMING, FINISH: FINISHED, HAND_OVER: FINISHED, CLOSE: FINISHED},
    STREAMING: {CHUNK: STREAMING, FINISH: FINISHED, CLOSE: FINISHED},
    FINISHED: {FINISH: FINISHED, CLOSE: FINISHED},
}

# D-34: what the application did wrong when a reply is not in the table.
_REPLY_ERRORS = {
    RESPONSE: "Got multiple Response messages for {}!",
    CHUNK: "Specifying a status code is required for a Response message.",
}

# What `receive_reply` returns for a message after the response finished.
IGNORED = None


def decode_path(value: bytes, plus_as_space: bool = False) -> str:
    """ASCII-decode then URL-unquote (D-33); `UnicodeDecodeError` for other bytes."""
    text = value.decode("ascii")
    return unquote_plus(text) if plus_as_space else unquote(text)


def forwarded_peer(headers: Any, config: Any, client: Any, scheme: str) -> tuple[Any, str]:
    """``(client, scheme)`` after the proxy headers `config` names (D-27 step 3, D-66).

    `config` has the factory's ``proxy_forwarded_*_header`` and ``forwarded_allow_ips``
    attributes. A value that is not UTF-8 is `BadRequestHeader` (issue 15).
    """
    try:
        client, forwarded_scheme = parse_x_forwarded_for(
            headers,
            config.proxy_forwarded_address_header,
            config.proxy_forwarded_port_header,
            config.proxy_forwarded_proto_header,
            client,
            scheme,
            forwarded_allow_ips=config.forwarded_allow_ips,
        )
    except UndecodableHeader as error:
        raise BadRequestHeader(str(error)) from error
    # None only for a None `scheme`, which daphne never passes.
    return client, scheme if forwarded_scheme is None else forwarded_scheme


class HttpExchange:
    """One HTTP request and its response, as ASGI-1 sees them.

    `state` is an `ExchangeState`; `path` is the decoded path once the request has one,
    and None again if the request is refused with a `PeerError` (D-37: an
    ``http.disconnect`` follows only a request with a path).
    """

    __slots__ = ("reply_channel", "state", "path")

    def __init__(self, reply_channel: str | None) -> None:
        self.reply_channel = reply_channel
        self.state = RECEIVING
        self.path: str | None = None

    def _next(self, event: str) -> ExchangeState:
        """The state `event` leads to; `IllegalTransition` if the table has none."""
        target = _TRANSITIONS[self.state].get(event)
        if target is None:
            raise IllegalTransition(
                f"Cannot take {event!r} for {self.reply_channel}: it is {self.state.value}"
            )
        return target

    @property
    def unanswered(self) -> bool:
        """No response has started (daphne may still answer on its own)."""
        return self.state is WAITING or self.state is RECEIVING

    # -- the request side -----------------------------------------------------------

    def receive_request(self, path: bytes) -> None:
        """The request is complete (D-27): decode its path (D-33).

        A path that is not ASCII is `PeerError` 400 (D-27 step 4).
        """
        target = _TRANSITIONS[self.state].get(REQUEST) or self._next(REQUEST)
        try:
            self.path = decode_path(path)
        except UnicodeDecodeError:
            raise PeerError("Invalid characters in path") from None
        self.state = target

    def request_message(
        self,
        method: bytes,
        uri: bytes,
        version: bytes,
        raw_headers: Any,
        root_path: str,
        scheme: str,
        client: Any,
        server: Any,
        body: bytes,
    ) -> dict:
        """The ``http.request`` message, without ``body_channel`` (D-29, D-30, A-77).

        `raw_headers` is Twisted's ``Headers`` (anything with ``getAllRawHeaders()``).
        An unreadable ``Daphne-Root-Path`` is `BadRequestHeader`; no message goes out,
        so the exchange forgets its path (no ``http.disconnect``, D-37).
        """
        if self.state is not WAITING:
            raise IllegalTransition(f"No request to send for {self.reply_channel}")
        try:
            headers, root_path = request_headers(raw_headers, root_path)
        except BadRequestHeader:
            self.path = None
            raise
        query = uri.partition(b"?")[2]
        return {
            "reply_channel": self.reply_channel,
            "http_version": version.split(b"/", 1)[-1].decode("ascii"),
            "method": method.decode("latin-1"),
            "path": self.path,
            "root_path": root_path,
            "scheme": scheme,
            "query_string": query,  # raw bytes, never decoded
            "headers": headers,
            "body": body,
            "client": client,
            "server": server,
        }

    def websocket_head(self, method: bytes, uri: bytes, raw_headers: Any) -> bytes:
        """The request head to replay to the WebSocket protocol (D-28).

        One line per header name, its values joined by ``","``; `raw_headers` is
        Twisted's ``Headers``. A header name with ``_`` refuses the handshake (D-27 step
        6): `BadRequestHeader`, and the exchange forgets its path (no ``http.disconnect``).
        """
        if self.state is not WAITING:
            raise IllegalTransition(f"No request to hand over for {self.reply_channel}")
        lines = [b"%s %s HTTP/1.1\r\n" % (method, uri)]
        for name, values in raw_headers.getAllRawHeaders():
            if b"_" in name:
                self.path = None
                raise BadRequestHeader("Header names must not contain underscores.")
            lines.append(b"%s: %s\r\n" % (name, b",".join(values)))
        lines.append(b"\r\n")
        return b"".join(lines)

    def hand_over(self) -> None:
        """The connection becomes a WebSocket (D-28): this exchange is done."""
        self.state = self._next(HAND_OVER)

    # -- the response side (D-34, D-35) ------------------------------------------------

    def receive_reply(self, message: dict) -> tuple[int | None, list | None, Any, bool] | None:
        """Check one reply message against the state (A-79, A-80, D-34).

        Returns `IGNORED` after the response finished (A-80), else ``(status, headers,
        content, more_content)``: status and header pairs (names as bytes) for a
        Response, both None for a Response Chunk. A message the state does not allow,
        or a Response with a bad status, headers or content, is `ApplicationError` and
        changes nothing.
        """
        state = self.state
        if state is FINISHED:
            return IGNORED
        is_response = "status" in message
        event = RESPONSE if is_response else CHUNK
        target = _TRANSITIONS[state].get(event)
        if target is None:
            raise ApplicationError(_REPLY_ERRORS[event].format(self.reply_channel))
        content = message.get("content", b"")
        if type(content) is not bytes and not isinstance(content, (bytes, bytearray, memoryview)):
            raise ApplicationError(f"Response content must be bytes, not {type(content).__name__}")
        status = headers = None
        if is_response:
            status = message["status"]
            if type(status) is not int:
                raise ApplicationError(f"Response status must be an int, not {status!r}")
            headers = []
            for header in message.get("headers", ()):
                try:
                    name, value = header
                except (TypeError, ValueError):
                    raise ApplicationError(f"A Response header must be a pair, not {header!r}")
                if isinstance(name, str):  # D-34: str names are latin-1 encoded
                    header = (name.encode("latin-1"), value)
                headers.append(header)
        self.state = target
        return status, headers, content, message.get("more_content", False)

    def finish(self) -> None:
        """The response is complete (D-34)."""
        self.state = _TRANSITIONS[self.state].get(FINISH) or self._next(FINISH)

    def connection_lost(self) -> None:
        """The client went away (D-37)."""
        self.state = self._next(CLOSE)
