"""Listening on the server's endpoints, and saying why one cannot (D-12, issue 14).

`listen` starts one Twisted endpoint description (with a larger accept queue, and
``SO_REUSEPORT`` under ``--reuse-port``); `listen_failure` words what went wrong as a
`ListenFailed`, which `Server.run()` raises.
"""

from __future__ import annotations

import errno
import os
from typing import Any

from twisted.internet import defer
from twisted.internet.endpoints import serverFromString
from twisted.internet.error import CannotListenError

from . import reuse_port as so_reuseport
from .errors import ListenFailed

__all__ = ["LISTEN_BACKLOG", "listen", "listen_failure", "with_listen_backlog"]

# Twisted's default accept queue is 50: a burst of 200 handshakes (issue 9, W4/W5)
# overflows it and leaves clients to SYN retries a second later. The kernel caps
# this at net.core.somaxconn.
LISTEN_BACKLOG = 1024
_BACKLOG_ENDPOINTS = frozenset({"tcp", "tcp6", "ssl", "unix"})


def listen_failure(description: str, error: BaseException) -> ListenFailed:
    """The `ListenFailed` for `error` raised listening on `description` (issue 14)."""
    if isinstance(error, CannotListenError):
        socket_error = error.socketError
        host = error.interface
        if host is None:  # a UNIX socket: Twisted puts the path in `port`
            address = str(error.port)
        else:
            host = host or "0.0.0.0"
            address = f"[{host}]:{error.port}" if ":" in host else f"{host}:{error.port}"
        reason = getattr(socket_error, "strerror", None) or str(socket_error)
        reason = reason[:1].lower() + reason[1:]
        return ListenFailed(description, address, reason, getattr(socket_error, "errno", None))
    reason = str(error) or type(error).__name__
    address = description
    if description.startswith("unix:") and isinstance(error, OSError) and error.strerror:
        # Twisted's lock file next to the socket fails first, naming the lock's odd
        # paths ('29876' -> b'/run/x/d.sock.lock'): word it about the socket instead.
        address = description.split(":", 2)[1]
        reason = error.strerror[:1].lower() + error.strerror[1:]
        if error.errno == errno.ENOENT:
            reason += f" (the directory {os.path.dirname(address) or '.'} does not exist)"
    return ListenFailed(description, address, reason, getattr(error, "errno", None))


def with_listen_backlog(description: str) -> str:
    """`description` with ``backlog=LISTEN_BACKLOG`` added for listening endpoint types
    that take it, unless it names a backlog itself."""
    kind = description.split(":", 1)[0].lower()
    if kind not in _BACKLOG_ENDPOINTS or "backlog=" in description:
        return description
    return f"{description}:backlog={LISTEN_BACKLOG}"


def listen(reactor: Any, description: str, factory: Any, reuse_port: bool) -> defer.Deferred[Any]:
    """Listen on the endpoint `description`; the Deferred fails as the listen does."""
    try:
        listening = with_listen_backlog(description)
        if reuse_port and so_reuseport.applies(listening):
            # Issue 19: several processes on one port (see `daphne.reuse_port`).
            return so_reuseport.listen(reactor, listening, factory)
        # Twisted's parser is untyped.
        endpoint = serverFromString(reactor, listening)  # type: ignore[no-untyped-call, unused-ignore]
        return endpoint.listen(factory)
    except Exception as error:  # e.g. an unknown endpoint type in -e
        return defer.fail(error)
