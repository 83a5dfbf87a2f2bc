"""A WebSocket's deadline: connect timeout, keepalive ping, lifetime limit (D-24, D-43).

`SocketTimers`, a mixin for `ws_protocol.WebSocketProtocol`, keeps one deadline per
connection in the factory's `DeadlineSweep` (one reactor timer for all sockets); the
session (`ws_state`) says when it falls due and what is due then.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from .ws_flow import _Socket

__all__ = ["SocketTimers"]


class SocketTimers(_Socket):
    """Mixin for `WebSocketProtocol`: its deadline and the checks run when it falls due."""

    if TYPE_CHECKING:
        _now: Any
        _refused_as: str
        _sendAutoPing: Any
        serverClose: Any
        serverReject: Any

    def duration(self) -> float:
        return self._now() - self.session.opened_at

    def _arm_timer(self) -> None:
        factory = self.main_factory
        config = factory.config
        deadline = self.session.deadline(
            config.websocket_connect_timeout, config.ping_interval, config.websocket_timeout
        )
        if deadline is not None:
            factory.deadlines.schedule(self, deadline, self._on_timer)

    def _cancel_timer(self) -> None:
        if self.main_factory is not None:
            self.main_factory.deadlines.cancel(self)

    def _on_timer(self) -> None:
        self.check_timeouts()
        self._arm_timer()

    def check_timeouts(self) -> None:
        """Lifetime limit, then the connect/ping checks (D-24)."""
        if self.session.lifetime_over(self._now(), self.main_factory.config.websocket_timeout):
            self.serverClose()
            return
        self.check_ping()

    def check_ping(self) -> None:
        """Reject a handshake left pending too long; ping an idle socket (D-43)."""
        config = self.main_factory.config
        session = self.session
        if session.connect_expired(self._now(), config.websocket_connect_timeout):
            self._refused_as = "timed_out"  # counted once, as timed out (issue 18)
            self.serverReject()
        elif self.state == self.STATE_OPEN and session.ping_due(self._now(), config.ping_interval):
            self._sendAutoPing()
