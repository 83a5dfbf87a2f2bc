"""The WebSocket hand-over's timing (D-27 step 6, D-28, D-43).

The hand-over itself (the transport moving from Twisted's HTTP channel to a new
autobahn protocol, which replays the request as bytes) is `HTTPChannel.hand_over`;
what the request sends for it is `HttpExchange.websocket_head`.
"""

from __future__ import annotations

import logging

__all__ = ["handshake_timeout"]

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
