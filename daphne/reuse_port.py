"""Listening with ``SO_REUSEPORT``, so several daphne processes share one host:port
(issue 19 item 2, ``--reuse-port``).

With ``SO_REUSEPORT`` the kernel (Linux 3.9+) spreads a port's new connections over every
socket listening on it with the option set, owned by the same user. Each daphne process
then serves its own share with its own reply prefix (`Server.start` draws a random
``daphne.response.<letters>!``), so replies still reach the process holding the
connection. It also makes a restart seamless: a new daphne can listen before the old one
stops, and no connection is refused in between.

Twisted's endpoints (``tcp:``, ``tcp6:``) offer no way to set a socket option before
``bind``: `listen` therefore creates the socket itself with ``SO_REUSEADDR`` (as Twisted
does) and ``SO_REUSEPORT``, binds, listens with the description's backlog, and hands the
listening descriptor to the reactor with ``adoptStreamPort``. Only ``tcp`` and ``tcp6``
descriptions are served so; other endpoints (``ssl``, ``unix``, ``fd``) listen as usual.
A port in use by a socket without the option still fails to bind, with Twisted's
``CannotListenError`` (the one-line `daphne.errors.ListenFailed`).
"""

from __future__ import annotations

import socket
from typing import Any

from twisted.internet import defer
from twisted.internet.error import CannotListenError

__all__ = ["applies", "listen"]

# Twisted's default accept queue, for a description that names none.
_DEFAULT_BACKLOG = 50


def _fields(description: str) -> list[str]:
    """`description` split at its unescaped colons (Twisted's syntax: ``\\:`` is a colon)."""
    fields: list[str] = []
    current: list[str] = []
    escaped = False
    for char in description:
        if escaped:
            current.append(char)
            escaped = False
        elif char == "\\":
            escaped = True
        elif char == ":":
            fields.append("".join(current))
            current = []
        else:
            current.append(char)
    fields.append("".join(current))
    return fields


def applies(description: str) -> bool:
    """Whether `description` is a TCP endpoint `listen` serves."""
    return _fields(description)[0].lower() in ("tcp", "tcp6")


def _parse(description: str) -> tuple[int, str, int]:
    """``(port, interface, backlog)`` of a ``tcp:`` or ``tcp6:`` description."""
    kind, *arguments = _fields(description)
    positional = [argument for argument in arguments if "=" not in argument]
    keywords = dict(argument.split("=", 1) for argument in arguments if "=" in argument)
    port = keywords.get("port", positional[0] if positional else None)
    if port is None:
        raise ValueError(f"{description!r} names no port")
    interface = keywords.get("interface", "::" if kind.lower() == "tcp6" else "")
    backlog = int(keywords.get("backlog", _DEFAULT_BACKLOG))
    return int(port), interface, backlog


def listen(reactor: Any, description: str, factory: Any) -> defer.Deferred[Any]:
    """Listen on the ``tcp:``/``tcp6:`` `description` with ``SO_REUSEPORT``; a Deferred
    firing with the listening port, or failing as an endpoint's ``listen`` would."""
    try:
        port, interface, backlog = _parse(description)
    except ValueError as error:
        return defer.fail(error)
    family = socket.AF_INET6 if ":" in interface else socket.AF_INET
    reuse_port = getattr(socket, "SO_REUSEPORT", None)
    if reuse_port is None:
        return defer.fail(OSError("SO_REUSEPORT is not available on this platform"))
    sock = socket.socket(family, socket.SOCK_STREAM)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.setsockopt(socket.SOL_SOCKET, reuse_port, 1)
        sock.bind((interface or "0.0.0.0", port))
        sock.listen(backlog)
        sock.setblocking(False)
        # The reactor takes a duplicate of the descriptor; this one is closed below.
        return defer.succeed(reactor.adoptStreamPort(sock.fileno(), family, factory))
    except OSError as error:
        return defer.fail(CannotListenError(interface, port, error))
    finally:
        sock.close()
