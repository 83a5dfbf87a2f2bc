"""Checks of the request head daphne itself reads, answered 400 (issue 15 items 8, 9).

Each check is a few dictionary lookups and C-level byte operations per request: no
regular expression, nothing done for headers daphne does not interpret. Everything
else (cookies, ``Origin``, ``Sec-WebSocket-*``) is passed to the application as bytes
and never decoded here.
"""

from __future__ import annotations

import string
from typing import Any
from urllib.parse import unquote

from .errors import PeerError

__all__ = ["BadRequestHeader", "host_problem", "request_headers"]

# RFC 3986 §3.2.2/§3.2.3: reg-name (unreserved, pct-encoded, sub-delims), IP literals
# in brackets, and ":" before the port. Deleted by `bytes.translate`; anything left over
# is a byte no Host value may contain.
_HOST_BYTES = (string.ascii_letters + string.digits + "-._~%!$&'()*+,;=:[]").encode("ascii")


# RFC 9112 §3.2: only HTTP/1.1 (and later) requests must carry Host.
_HOST_OPTIONAL = frozenset({b"HTTP/1.0", b"HTTP/0.9"})


class BadRequestHeader(PeerError, ValueError):
    """A header daphne interprets cannot be read: the request gets 400 and the connection
    is closed after it (issue 15)."""


def _port_ok(port: bytes) -> bool:
    # RFC 3986 §3.2.3: port = *DIGIT (an empty port is allowed).
    return not port or port.isdigit()


def host_problem(values: list[bytes] | None, version: bytes) -> str | None:
    """What is wrong with the request's ``Host`` lines, or None (RFC 9112 §3.2).

    HTTP/1.1 requires exactly one Host line; HTTP/1.0 may omit it. An empty value is
    valid (a target URI without authority).
    """
    if values is None:
        if version in _HOST_OPTIONAL:
            return None
        return "the request has no Host header"
    if len(values) > 1:
        return "the request has more than one Host header"
    value = values[0]
    if value.translate(None, _HOST_BYTES):
        return "the Host header is not a valid host[:port]"
    # `find`, not `in`: CPython's ``bytes in bytes`` first tries the operand as an int
    # and raises (and clears) a TypeError, ~1k instructions each (issue 20).
    if value[:1] == b"[":
        end = value.find(b"]")
        rest = value[end + 1 :]
        valid = (
            end > 1
            and value.find(b"[", 1, end) < 0
            and rest.find(b"]") < 0
            and (not rest or (rest[:1] == b":" and _port_ok(rest[1:])))
        )
    else:
        host, _, port = value.partition(b":")
        valid = (
            value.find(b"[") < 0
            and value.find(b"]") < 0
            and port.find(b":") < 0
            and (not port or port.isdigit())  # `_port_ok`, without its call
        )
    return None if valid else "the Host header is not a valid host[:port]"


def root_path_value(raw: bytes) -> str:
    """A ``Daphne-Root-Path`` header's value: UTF-8 (ASCII included), URL-unquoted (D-29).

    Raises `BadRequestHeader` for bytes that are not UTF-8 (issue 15 item 8; 1.4
    answered 500 with a traceback).
    """
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        raise BadRequestHeader("the Daphne-Root-Path header is not UTF-8")
    return unquote(text)


def request_headers(raw_headers: Any, default_root_path: str) -> tuple[list, str]:
    """``(header pairs, root_path)`` of a request per D-29.

    `raw_headers` is Twisted's ``Headers``. Raises `BadRequestHeader` for an
    unreadable ``Daphne-Root-Path``.
    """
    headers = []
    root_path = default_root_path
    for name, values in raw_headers.getAllRawHeaders():
        lower = name.lower()
        if lower.find(b"_") >= 0:  # not `in`: see `host_problem`
            continue  # CVE-2015-0219: "_" and "-" collide in WSGI-style names
        if lower == b"daphne-root-path":
            root_path = root_path_value(values[0])
            continue
        for value in values:
            headers.append((lower, value))  # D-29, A-73: tuples, as in 1.4
    return headers, root_path
