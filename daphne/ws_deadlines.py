"""When a WebSocket session's timer should look at it, and what it finds (D-24, D-43, A-89).

`SessionDeadlines` is a mixin of `ws_state.WebSocketSession`: the connect timeout, the
socket's lifetime (``websocket_timeout``) and the idle ping, as pure decisions on the
session's clock readings; `deadlines.DeadlineSweep` and `ws_protocol` do the waiting.
"""

from __future__ import annotations

from .ws_transitions import _CONNECT_TIMED, SessionFields, SocketState

__all__ = ["SessionDeadlines"]


class SessionDeadlines(SessionFields):
    """Mixin of `WebSocketSession`: its timer's questions."""

    __slots__ = ()  # no fields of its own (no __dict__ per socket)

    def deadline(
        self, connect_timeout: float, ping_interval: float | None, lifetime: float | None
    ) -> float | None:
        """When the timer should next look at this socket, or None."""
        state = self.state
        if state in _CONNECT_TIMED:
            return self.opened_at + connect_timeout
        if state is not SocketState.OPEN:
            return None
        deadline = None
        if ping_interval and ping_interval > 0 and not self.held:
            deadline = self.last_data + ping_interval
        if lifetime is not None and lifetime >= 0:
            end = self.opened_at + lifetime
            if deadline is None or end < deadline:
                deadline = end
        return deadline

    def lifetime_over(self, now: float, lifetime: float | None) -> bool:
        """D-24: an open socket past ``websocket_timeout`` is closed with 1000."""
        return (
            self.state is SocketState.OPEN
            and lifetime is not None
            and lifetime >= 0
            and now - self.opened_at >= lifetime
        )

    def connect_expired(self, now: float, connect_timeout: float) -> bool:
        """D-43: the application left the handshake unanswered too long (403).

        Not while websocket.connect waits for room: its retry answers 503 at the connect
        timeout (A-89); the application never saw it.
        """
        return self.state is SocketState.AWAITING_APP and now - self.opened_at >= connect_timeout

    def ping_due(self, now: float, ping_interval: float | None) -> bool:
        """D-43: idle for `ping_interval` seconds; counts the ping as data when True.

        Not while frames are held (A-89): the client is not read then, so its pong could
        not be, and autobahn would drop a live client for not answering.
        """
        if (
            self.state is SocketState.OPEN
            and not self.held
            and ping_interval
            and now - self.last_data >= ping_interval
        ):
            self.last_data = now
            return True
        return False
