"""Drive `HTTPFactory` synchronously over a StringTransport (D-53..D-55)."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any
from urllib import parse

from twisted.internet import testing

from channels.layers.inmemory import ChannelLayer
from daphne.http_protocol import HTTPFactory

Params = Sequence[tuple[Any, Any]] | dict[Any, Any]
Headers = Iterable[tuple[str, str]]


def message_for_request(
    method: str,
    path: str,
    params: Params | None = None,
    headers: Headers | None = None,
    body: str | bytes | None = None,
) -> Any:
    """Build an HTTP request, run it through daphne and return the emitted message."""
    request = _build_request(method, path, params, headers, body)
    message, factory, transport = _run_through_daphne(request, "http.request")
    return message


def response_for_message(message: dict[str, Any]) -> bytes:
    """Return the raw HTTP response daphne writes for reply `message` to a GET /."""
    request = _build_request("GET", "/")
    request_message, factory, transport = _run_through_daphne(request, "http.request")
    factory.dispatch_reply(request_message["reply_channel"], message)
    written: bytes = transport.value()  # type: ignore[no-untyped-call, unused-ignore]
    return written


def _build_request(
    method: str,
    path: str,
    params: Params | None = None,
    headers: Headers | None = None,
    body: str | bytes | None = None,
) -> bytes:
    """Return the bytes of an HTTP/1.1 request built from the parameters."""
    quoted_path = parse.quote(path)
    if params:
        quoted_path += "?" + parse.urlencode(params)
    request = method.encode("ascii") + b" " + quoted_path.encode("ascii") + b" HTTP/1.1\r\n"
    for k, v in headers or []:
        request += k.encode("ascii") + b": " + v.encode("ascii") + b"\r\n"
    request += b"\r\n"
    if body:
        request += body.encode("ascii") if isinstance(body, str) else body
    return request


def build_websocket_upgrade(
    path: str, params: Params | None, headers: list[tuple[str, str]]
) -> bytes:
    ws_headers = [
        ("Host", "somewhere.com"),
        ("Upgrade", "websocket"),
        ("Connection", "Upgrade"),
        ("Sec-WebSocket-Key", "x3JJHMbDL1EzLkh9GBhXDw=="),
        ("Sec-WebSocket-Protocol", "chat, superchat"),
        ("Sec-WebSocket-Version", "13"),
        ("Origin", "http://example.com"),
    ]
    return _build_request("GET", path, params, headers=headers + ws_headers, body=None)


def _run_through_daphne(
    request: bytes, channel_name: str
) -> tuple[Any, HTTPFactory, testing.StringTransport]:
    """Return ``(message on channel_name, factory, transport)`` for request bytes."""
    channel_layer = ChannelLayer()
    factory = HTTPFactory(channel_layer, send_channel="test!")
    proto = factory.buildProtocol(("127.0.0.1", 0))
    transport = testing.StringTransport()  # type: ignore[no-untyped-call, unused-ignore]
    proto.makeConnection(transport)
    proto.dataReceived(request)
    _, message = channel_layer.receive([channel_name])
    return message, factory, transport


def content_length_header(body: str | bytes) -> tuple[str, str]:
    """The Content-Length header for `body`."""
    return "Content-Length", str(len(body))
