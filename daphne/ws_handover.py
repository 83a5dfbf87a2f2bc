"""The hand-over of an HTTP request that asks for a WebSocket upgrade (D-27 step 6, D-28).

The request's transport moves from Twisted's HTTP channel to a new autobahn protocol,
which replays the request as bytes and holds the handshake until the application
answers.
"""

from __future__ import annotations

import logging
from typing import Any

from twisted.protocols.policies import ProtocolWrapper

from .http_channel import NoPushProducer

__all__ = ["handshake_timeout", "upgrade_to_websocket"]

logger = logging.getLogger("daphne.http_protocol")

# Seconds autobahn's handshake timer waits beyond the connect timeout (issue 14).
HANDSHAKE_TIMEOUT_MARGIN = 3


def handshake_timeout(autobahn_timeout: float, connect_timeout: float) -> float:
    """autobahn's opening-handshake timeout: never before the connect timeout.

    autobahn drops a handshake still open after it (no HTTP answer, a bare 1006 in the
    browser); the application's decision is bounded by ``websocket_connect_timeout``
    instead, which answers 403 (issue 14; D-43 took the smaller of the two). The margin
    covers the deadline sweep's 1 s resolution.
    """
    return max(autobahn_timeout, connect_timeout + HANDSHAKE_TIMEOUT_MARGIN)


def upgrade_to_websocket(request: Any, query_string: bytes) -> None:
    """Give `request`'s connection to a `WebSocketProtocol` (D-28)."""
    for name, _ in request.requestHeaders.getAllRawHeaders():
        if b"_" in name:
            # D-27: a handshake with "_" in a header name is refused outright.
            request.basic_error(
                400,
                b"Bad Request",
                "Header names must not contain underscores.",
                close_connection=True,
            )
            return
    protocol = request.factory.ws_factory.buildProtocol(request.transport.getPeer())
    if not protocol:
        logger.warning("Could not make WebSocket protocol")
        request.basic_error(500, b"Internal Server Error", "Could not make WebSocket protocol")
        return
    protocol._raw_query_string = query_string
    protocol.set_main_factory(request.factory)
    channel = request.channel
    transport, request.transport = request.transport, None
    if isinstance(transport, ProtocolWrapper):
        transport.wrappedProtocol = protocol  # TLS wraps the connection's protocol
    else:
        transport.protocol = protocol
    pending = channel.hand_over(protocol)
    if getattr(transport, "producer", None) is channel:
        # autobahn unregisters "its" producer when it drops the connection.
        transport.unregisterProducer()
        transport.registerProducer(NoPushProducer(), True)
    protocol.makeConnection(transport)
    lines = [b"%s %s HTTP/1.1\r\n" % (request.method, request.uri)]
    for name, values in request.requestHeaders.getAllRawHeaders():
        lines.append(b"%s: %s\r\n" % (name, b",".join(values)))
    lines.append(b"\r\n")
    request.handed_over()
    protocol.dataReceived(b"".join(lines) + request.content.read() + pending)
    # Twisted pauses a channel's transport while a request is outstanding.
    transport.resumeProducing()
