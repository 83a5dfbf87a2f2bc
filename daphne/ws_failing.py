"""Failing a WebSocket strictly (RFC 6455 §7.1.7, issue 21 item 2).

When a client breaks the protocol (a bad opcode, reserved bits, an unmasked frame,
invalid UTF-8 in a text message...) autobahn fails the connection at once, and a
worker's reply to a message the client sent just before, still crossing the layer, is
lost. `StrictClose`, a mixin for `ws_protocol.WebSocketProtocol`, defers autobahn's
close: the session goes FAILING (`ws_state`), nothing more is read from the client, and
the close frame (1002, or 1007 for invalid UTF-8) follows once every forwarded message
has had a reply, or after `FAIL_WAIT` seconds, whichever comes first.
"""

from __future__ import annotations

from typing import Any

from .ws_flow import _Socket
from .ws_state import SocketState

__all__ = ["FAIL_WAIT", "StrictClose"]

# Seconds a failed connection waits for replies in flight before its close frame.
FAIL_WAIT = 1.0
_FAILING = 4  # a bit of `_read_blocks` (ws_flow): stop reading while failing

CLOSE_PROTOCOL_ERROR = 1002
CLOSE_INVALID_PAYLOAD = 1007


class StrictClose(_Socket):
    """Mixin for `WebSocketProtocol`: autobahn's protocol errors, deferred."""

    # (code, reason, timer) while FAILING; read per chunk by `dataReceived`.
    _failing: tuple[int, str, Any] | None = None

    def _protocol_violation(self, reason: str) -> bool:
        if self._defer_failure(CLOSE_PROTOCOL_ERROR, reason):
            return True  # stop parsing: nothing more is read
        violation: bool = super()._protocol_violation(reason)  # type: ignore[misc]
        return violation

    def _invalid_payload(self, reason: str) -> bool:
        if self._defer_failure(CLOSE_INVALID_PAYLOAD, reason):
            return True
        invalid: bool = super()._invalid_payload(reason)  # type: ignore[misc]
        return invalid

    def _defer_failure(self, code: int, reason: str) -> bool:
        """True when the close waits for replies (the session went FAILING)."""
        if self.state != self.STATE_OPEN or self._failing is not None:
            return False
        if not self.session.fail():
            return False  # nothing forwarded is unanswered: autobahn closes now
        timer = self.main_factory.reactor.callLater(FAIL_WAIT, self._fail_now)
        self._failing = (code, reason, timer)
        self._block_reading(_FAILING)
        return True

    def _replied(self) -> None:
        """After a reply: close once every forwarded message has had one."""
        if self.session.replies_written:
            self._fail_now()

    def _fail_now(self) -> None:
        failing, self._failing = self._failing, None
        if failing is None:
            return
        code, reason, timer = failing
        if timer.active():
            timer.cancel()
        if self.session.state is not SocketState.FAILING:
            return  # closed for the layer, or the client left meanwhile
        self.session.fail_close()
        # What the client sent after the bad frame is never parsed: the buffer starts
        # afresh for its close frame.
        self.data = b""
        self.current_frame = None
        if self.state == self.STATE_OPEN:
            self._fail_connection(code, reason)
        self._unblock_reading(_FAILING)  # the client's close frame must be read
