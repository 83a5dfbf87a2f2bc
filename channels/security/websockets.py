"""Origin checks for WebSocket connects (C-64, C-65, C-89).

Browsers send the page's origin with every WebSocket handshake and, unlike XHR, do not
enforce the same-origin policy on WebSockets: any page can open a socket to any server with
the user's cookies. Checking ``Origin`` on ``websocket.connect`` is what stops a foreign page
from riding the user's session. A refused connect raises ``DenyConnection``, which the worker
turns into ``{"close": True}`` (the server then refuses the handshake with 403).
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any
from urllib.parse import SplitResult, urlsplit

from django.conf import settings
from django.http.request import validate_host

from ..exceptions import DenyConnection

__all__ = [
    "AllowedHostsOnlyOriginValidator",
    "BaseOriginValidator",
    "allowed_hosts_only",
    "allowed_origins",
]

# C-65: what an empty ALLOWED_HOSTS means under DEBUG, as in Django's own host check.
DEBUG_ALLOWED_HOSTS = ["localhost", "127.0.0.1", "[::1]"]

_DEFAULT_PORTS = {"http": 80, "ws": 80, "https": 443, "wss": 443}


class BaseOriginValidator:
    """Decorator for a ``websocket.connect`` consumer that denies unwanted origins (C-64).

    Subclasses implement ``validate_origin(message, origin)``.
    """

    def __init__(self, func: Callable[..., Any]) -> None:
        functools.update_wrapper(self, func)
        self.func = func

    def __call__(self, message: Any, *args: Any, **kwargs: Any) -> Any:
        origin = self.get_origin(message)
        if not self.validate_origin(message, origin):
            raise DenyConnection
        return self.func(message, *args, **kwargs)

    def get_header(self, message: Any, name: bytes | str) -> list[Any]:
        """The values after the name of the first ``name`` header; ``KeyError`` if absent.

        Headers are ASGI's ``[[name, value], ...]`` list; the dict form the 1.x test client
        sends (``{"origin": b"..."}``) is accepted too.
        """
        wanted = _header_name(name)
        headers = message.content.get("headers", [])
        if isinstance(headers, dict):
            for key, value in headers.items():
                if _header_name(key) == wanted:
                    return [value]
        else:
            for header in headers:
                # A header without a value cannot say anything; skip it (C-64).
                if len(header) >= 2 and _header_name(header[0]) == wanted:
                    return list(header[1:])
        raise KeyError(f"No header named {wanted.decode('latin-1')!r} in the message")

    def get_origin(self, message: Any) -> str:
        """The ``Origin`` header as text; a missing or non-ASCII one denies (C-64)."""
        try:
            value = self.get_header(message, b"origin")[0]
        except (KeyError, IndexError):
            raise DenyConnection
        if isinstance(value, str):
            value = value.encode("utf-8")
        try:
            return value.decode("ascii")
        except UnicodeDecodeError:
            raise DenyConnection

    def validate_origin(self, message: Any, origin: str) -> bool:
        raise NotImplementedError(
            f"{type(self).__qualname__} must implement validate_origin(message, origin)"
        )


class AllowedHostsOnlyOriginValidator(BaseOriginValidator):
    """Accepts origins whose host passes ``settings.ALLOWED_HOSTS`` (C-65)."""

    def validate_origin(self, message: Any, origin: str) -> bool:
        allowed_hosts = settings.ALLOWED_HOSTS
        if settings.DEBUG and not allowed_hosts:
            allowed_hosts = DEBUG_ALLOWED_HOSTS
        parsed = _parse_origin(origin)
        return parsed is not None and validate_host(_host_for_matching(parsed), allowed_hosts)


allowed_hosts_only = AllowedHostsOnlyOriginValidator


@dataclass(frozen=True)
class OriginPattern:
    """One ``allowed_origins`` entry: a host pattern with optional scheme and port."""

    host: str
    scheme: str | None = None
    port: int | None = None

    @classmethod
    def parse(cls, pattern: str) -> OriginPattern:
        if not isinstance(pattern, str) or not pattern:
            raise ValueError(
                f"allowed_origins() patterns are non-empty strings such as 'example.com', "
                f"'.example.com' or 'https://example.com:8443', got {pattern!r}."
            )
        has_scheme = "://" in pattern
        try:
            parsed = urlsplit(pattern if has_scheme else "//" + pattern)
            port = parsed.port
        except ValueError as error:
            raise ValueError(f"Cannot parse allowed origin {pattern!r}: {error}") from error
        if not parsed.hostname or parsed.path not in ("", "/") or parsed.query:
            raise ValueError(
                f"Allowed origin {pattern!r} must be a host, optionally with scheme and "
                f"port, like 'https://example.com:8443' (no path)."
            )
        return cls(
            host=_host_for_matching(parsed),
            scheme=parsed.scheme.lower() if has_scheme else None,
            port=port,
        )

    def matches(self, origin: SplitResult) -> bool:
        if not validate_host(_host_for_matching(origin), [self.host]):
            return False
        if self.scheme is not None and origin.scheme.lower() != self.scheme:
            return False
        return self.port is None or _effective_port(origin) == self.port


class AllowedOriginsValidator(BaseOriginValidator):
    """Accepts origins matching one of an explicit list of patterns (C-89)."""

    def __init__(self, func: Callable[..., Any], patterns: Iterable[OriginPattern]) -> None:
        super().__init__(func)
        self.patterns = tuple(patterns)

    def validate_origin(self, message: Any, origin: str) -> bool:
        parsed = _parse_origin(origin)
        return parsed is not None and any(p.matches(parsed) for p in self.patterns)


def allowed_origins(*patterns: str) -> Callable[[Callable[..., Any]], AllowedOriginsValidator]:
    """Decorator allowing only origins that match ``patterns`` (C-89).

    ``"example.com"`` matches that host on any scheme and port, ``".example.com"`` it and
    its subdomains, ``"*"`` anything, ``"https://example.com:8443"`` only that scheme and
    port (a default port counts: ``https://example.com`` is port 443).
    """
    if not patterns:
        raise ValueError("allowed_origins() needs at least one pattern, e.g. 'example.com'.")
    parsed = tuple(OriginPattern.parse(p) for p in patterns)

    def decorator(func: Callable[..., Any]) -> AllowedOriginsValidator:
        return AllowedOriginsValidator(func, parsed)

    return decorator


def _header_name(name: bytes | str) -> bytes:
    if isinstance(name, str):
        name = name.encode("latin-1")
    return name.lower()


def _parse_origin(origin: str) -> SplitResult | None:
    """The origin as URL parts, or None when it has no host (``null``, empty, garbage)."""
    try:
        parsed = urlsplit(origin)
        parsed.port  # noqa: B018 - raises ValueError for a malformed port
    except ValueError:
        return None
    if not parsed.scheme or not parsed.hostname:
        return None
    return parsed


def _host_for_matching(parsed: SplitResult) -> str:
    """The host as ALLOWED_HOSTS writes it: lower case, IPv6 literals in brackets."""
    host = parsed.hostname or ""
    return f"[{host}]" if ":" in host else host


def _effective_port(parsed: SplitResult) -> int | None:
    return parsed.port if parsed.port is not None else _DEFAULT_PORTS.get(parsed.scheme.lower())
