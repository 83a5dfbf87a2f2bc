"""The handshake of a WebSocket session (D-38, D-39, D-43, A-83, A-89), without I/O.

`SessionHandshake` is a mixin of `ws_state.WebSocketSession`: the ``websocket.connect``
message, what its send's outcome means for the handshake (delivered, queued for room,
refused with 503 or 500), its retry, and the application's answer to it.
"""

from __future__ import annotations

from typing import Any

from .ws_transitions import (
    _ANSWERABLE,
    CLOSE_FOR_ERROR,
    DELIVERED,
    DROPPED,
    QUEUE,
    REFUSE_FAILED,
    REFUSE_FULL,
    REFUSE_UNAVAILABLE,
    Event,
    Outcome,
    SessionFields,
    SocketState,
)

__all__ = ["SessionHandshake"]


class SessionHandshake(SessionFields):
    """Mixin of `WebSocketSession`: the handshake's inputs."""

    __slots__ = ()  # no fields of its own (no __dict__ per socket)

    def connect(
        self,
        reply_channel: str,
        path: str,
        headers: list,
        query_string: bytes,
        client: Any,
        server: Any,
        now: float,
    ) -> dict:
        """The handshake arrived: the ``websocket.connect`` message to send (order 0)."""
        self._event(Event.CONNECT)
        self.reply_channel = reply_channel
        self.path = path
        self.opened_at = self.last_data = now
        self.in_flight += 1
        return {
            "reply_channel": reply_channel,
            "path": path,
            "headers": headers,
            "query_string": query_string,
            "client": client,
            "server": server,
            "order": 0,
        }

    def connect_outcome(self, error: Outcome | None, retried: bool, expired: bool) -> str:
        """A ``websocket.connect`` send came back: DELIVERED, QUEUE, REFUSE_*,
        CLOSE_FOR_ERROR or DROPPED.

        `expired`: the connect timeout has passed (a full channel is then refused, A-89).
        """
        self.in_flight -= 1
        if error is None:
            self._event(Event.CONNECT_DELIVERED)
            return DELIVERED
        waiting = self.state in _ANSWERABLE
        if error is Outcome.FAILED:
            was_open = self.state is SocketState.OPEN
            self._event(Event.FAILED)
            if waiting:
                return REFUSE_FAILED
            return CLOSE_FOR_ERROR if was_open else DROPPED
        if error is Outcome.FULL and not (waiting and retried and expired):
            # a burst of handshakes drains within milliseconds; wait for room.
            queued = self._event(Event.CONNECT_FULL) is SocketState.CONNECT_QUEUED
            return QUEUE if queued else DROPPED
        self._event(Event.CONNECT_LOST)
        if not waiting:
            return DROPPED
        return REFUSE_FULL if error is Outcome.FULL else REFUSE_UNAVAILABLE

    def retry_connect(self) -> bool:
        """The retry timer fired: True when websocket.connect goes out again."""
        if self.state is not SocketState.CONNECT_QUEUED:
            return False  # the client left, or a stop refused it
        self._event(Event.RETRY)
        self.in_flight += 1
        return True

    def accept(self) -> bool:
        """The application accepts (D-39 step 1): True when the 101 goes out now."""
        before = self.state
        return self._event(Event.ACCEPT) is not before

    def reject(self) -> bool:
        """The application, the connect timeout or a stop refuses: True when the
        handshake is refused now (D-39 step 2, D-43, D-17)."""
        before = self.state
        return self._event(Event.REJECT) is not before

    @property
    def answerable(self) -> bool:
        return self.state in _ANSWERABLE
