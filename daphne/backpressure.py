"""Bounded outbound buffers: a client that stops reading cannot grow daphne (issue 15).

Twisted buffers whatever a protocol writes until the socket takes it. A client
that stops reading while the application keeps sending (an echo, a broadcast, a
streamed response) therefore grew daphne's memory without bound. Every
connection now checks its transport's buffered bytes when the transport has
told it to pause (its buffer passed Twisted's 64 KiB): above the factory's
``max_outbound_buffer`` (default 1 MiB) for ``outbound_full_timeout`` seconds,
or above four times that at any moment, the connection is closed (a WebSocket
with 1008 in its ``websocket.disconnect``, an HTTP response aborted) and counted
in ``factory.outbound_overflows``. WebSockets also stop reading from a client
while its buffer is paused, so a client sending faster than it reads is slowed
by TCP instead of queueing replies.

The channel layer cannot hold a connection's replies back for it: every reply of
a daphne process shares one process-specific list (A-20), so the limit is what
bounds a response the application produces faster than the client reads.
"""

from __future__ import annotations

import logging
from typing import Any

__all__ = ["HARD_LIMIT_FACTOR", "buffered_bytes", "check_outbound", "cancel_outbound_timer"]

logger = logging.getLogger("daphne.server")

# Above limit x this, a connection is closed at once rather than after the grace time.
HARD_LIMIT_FACTOR = 4
# `_outbound_timer` of a connection closed for its buffer: counted once.
_CLOSED = object()


def buffered_bytes(transport: Any) -> int:
    """Bytes written to `transport` that the socket has not taken yet (TCP, TLS, UNIX)."""
    size = 0
    while transport is not None:
        data = getattr(transport, "dataBuffer", None)
        if data is not None:  # twisted.internet.abstract.FileDescriptor
            size += len(data) - getattr(transport, "offset", 0)
            size += getattr(transport, "_tempDataLen", 0)
            return size
        app_buffer = getattr(transport, "_appSendBuffer", None)  # TLS before encryption
        if app_buffer:
            size += sum(len(chunk) for chunk in app_buffer)
        transport = getattr(transport, "transport", None)
    return size


def check_outbound(connection: Any, factory: Any) -> None:
    """After a write while paused: close `connection` if its buffer is over the limit.

    `connection` has ``transport``, ``_outbound_timer`` and ``outbound_overflow()``.
    """
    limit = factory.config.max_outbound_buffer
    if not limit or connection.transport is None or connection._outbound_timer is _CLOSED:
        return
    size = buffered_bytes(connection.transport)
    if size <= limit:
        cancel_outbound_timer(connection)
        return
    if size > limit * HARD_LIMIT_FACTOR:
        _overflow(connection, factory, size)
        return
    if connection._outbound_timer is None:
        connection._outbound_timer = factory.reactor.callLater(
            factory.config.outbound_full_timeout, _expired, connection, factory
        )


def cancel_outbound_timer(connection: Any) -> None:
    timer = connection._outbound_timer
    if timer is _CLOSED:
        return
    connection._outbound_timer = None
    if timer is not None and timer.active():
        timer.cancel()


def _expired(connection: Any, factory: Any) -> None:
    connection._outbound_timer = None
    if connection.transport is None:
        return
    size = buffered_bytes(connection.transport)
    if size > factory.config.max_outbound_buffer:
        _overflow(connection, factory, size)


def _overflow(connection: Any, factory: Any, size: int) -> None:
    cancel_outbound_timer(connection)
    connection._outbound_timer = _CLOSED
    factory.outbound_overflows += 1
    factory.metrics.backpressure("outbound_overflow")
    logger.debug(
        "Closing a connection whose client does not read: %d bytes buffered (limit %d)",
        size,
        factory.config.max_outbound_buffer,
    )
    connection.outbound_overflow()
