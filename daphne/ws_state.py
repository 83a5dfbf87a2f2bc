"""The ASGI-1 side of one WebSocket as a state machine, with no I/O (D-38..D-43, A-83..A-89).

`WebSocketSession` knows what the application has been told about a socket and what it
is owed; `ws_protocol.WebSocketProtocol` feeds it what autobahn and the outbox report and
does what it answers. Inputs are events; an event the table below does not list for the
current state raises `IllegalTransition` and leaves the state as it was. The main
paths (`_TRANSITIONS` has them all)::

    CONNECTING ─connect─▶ AWAITING_APP ─accept─▶ OPEN ─client_gone─▶ CLOSED
                            │      ▲   └─reject─▶ REJECTED ─client_gone─▶ CLOSED
                connect_full│      │connect_delivered
                            ▼      │
                 CONNECT_QUEUED ─retry─▶ CONNECT_RETRY

    connect_lost (HTTP 503), give_up (close 1009/1013), failed (HTTP 500, close 1011) ─▶ SILENT
    OPEN ─stop─▶ STOPPING ─client_gone─▶ CLOSED   (a graceful stop closes with 1012)

    OPEN ─fail─▶ FAILING ─fail_close─▶ CLOSING ─client_gone─▶ CLOSED

- AWAITING_APP: ``websocket.connect`` is sent (or its outcome is on the way); the 101 is
  held until the application answers (A-83, D-38 step 8).
- CONNECT_QUEUED: the layer had no room for ``websocket.connect``; a timer retries it
  (A-89); the application has not seen it. CONNECT_RETRY: a retried one is on the way.
- REJECTED: the handshake was refused after the application could see the connect
  (its ``accept: False``, the connect timeout, a stop): a disconnect is still owed (D-41).
- SILENT: daphne tells the application nothing more about this socket, neither frames
  nor a disconnect (1.x's ``muted``): websocket.connect could not be delivered (HTTP 503),
  or daphne closed the socket for the layer (1009 too big, 1013 no room; D-40), or a send
  failed with an error the layer contract does not name, a bug (HTTP 500, close 1011).
- STOPPING: a graceful stop closed the socket with 1012 (service restart; issue 17
  item 4, D-17 with the deviation in docs/differences.rst): frames the client sent
  before it saw the close are still forwarded, replies are not sent, and the
  disconnect carries 1012 whatever the client answers.
- FAILING: the client broke the protocol (RFC 6455 §7.1.7: a bad frame, invalid UTF-8);
  nothing more is read from it, and replies to the messages it sent before are still
  written, for at most a short while, before the close frame (issue 21). CLOSING: that
  close frame is out; replies are dropped, the disconnect is still owed.
- CLOSED: the client is gone; its ``websocket.disconnect`` is sent or waits (A-85).

Two things are data, not states, because they outlive the socket: the count of sends
whose outcome is unknown (`in_flight`) and the frames held for room on the layer
(`held`, A-89). The disconnect waits behind both, so it never overtakes a frame the
layer may still refuse (A-19) nor follows a connect the layer refused (A-85).

The pieces, one module each: `ws_transitions` (the states, events, outcomes, the table,
the actions and close codes, and `SessionFields`, which applies the table),
`ws_handshake` (the handshake's inputs), `ws_deadlines` (the timer's questions); the
frames, replies and closing stay here. Every name stays importable from this module.
"""

from __future__ import annotations

from collections import deque
from typing import Any

from .errors import ApplicationError, IllegalTransition
from .ws_deadlines import SessionDeadlines
from .ws_handshake import SessionHandshake

# The states, events, outcomes, the table, the actions and the close codes live in
# `ws_transitions`; all of them stay importable from here (ws_protocol, ws_flow and the
# tests read them as `ws_state.X`), hence the names this module itself does not use.
from .ws_transitions import (  # noqa: F401 (re-exported)
    _ANSWERABLE,
    _CONNECT_TIMED,
    _FORWARDS_FRAMES,
    _NOT_READING,
    _OWES_DISCONNECT,
    _TRANSITIONS,
    ACCEPT,
    CLOSE,
    CLOSE_ABNORMAL,
    CLOSE_FOR_ERROR,
    CLOSE_FOR_ROOM,
    CLOSE_FOR_SIZE,
    CLOSE_GOING_AWAY,
    CLOSE_INTERNAL_ERROR,
    CLOSE_NO_STATUS,
    CLOSE_NORMAL,
    CLOSE_POLICY_VIOLATION,
    CLOSE_SERVICE_RESTART,
    CLOSE_TOO_BIG,
    CLOSE_TRY_AGAIN_LATER,
    DELIVERED,
    DROPPED,
    HOLD,
    HOLD_BACKEND,
    IGNORE,
    QUEUE,
    REFUSE_FAILED,
    REFUSE_FULL,
    REFUSE_UNAVAILABLE,
    REJECT,
    SEND,
    Event,
    Outcome,
    SocketState,
)

__all__ = ["SocketState", "Event", "Outcome", "WebSocketSession"]

# Defined here, not imported: a method call on an imported name compiles to a plain
# attribute load (a bound method per call), and `reply` runs once per message.
_REPLY_KEYS = frozenset({"accept", "text", "bytes", "close"})
_ACCEPT_ACTION = (ACCEPT,)
_REJECT_ACTION = (REJECT,)


def _one_empty_payload(data_bytes: Any, data_text: Any) -> bool:
    """Exactly one of bytes/text present and empty, the other absent or None."""
    if data_bytes is None:
        return data_text is not None and len(data_text) == 0
    return data_text is None and len(data_bytes) == 0


class WebSocketSession(SessionHandshake, SessionDeadlines):
    """What one WebSocket told the application, and what it still owes it."""

    __slots__ = ()  # the fields are `SessionFields`' slots

    # -- a graceful stop (D-17, issue 17 item 4) -----------------------------------------

    def stop(self) -> bool:
        """A graceful stop reaches this open socket: True when it is closed now (with
        `CLOSE_SERVICE_RESTART`); False when it was closed, refused or gone already.
        A handshake still waiting for the application is refused instead (`reject`)."""
        before = self.state
        return self._event(Event.STOP) is SocketState.STOPPING and before is SocketState.OPEN

    # -- frames in (D-40, A-84) ----------------------------------------------------------

    def receive(self, payload: bytes, binary: bool, now: float) -> dict | None:
        """A frame arrived: the ``websocket.receive`` to send now, or None (held, silent)."""
        state = self.state
        if state is not SocketState.OPEN and state not in _FORWARDS_FRAMES:
            if state in _NOT_READING:
                return None
            raise IllegalTransition(
                f"WebSocket {self.reply_channel}: no frame can arrive while {self.state.value}"
            )
        self.received += 1
        self.last_data = now
        message: dict[str, Any] = {
            "reply_channel": self.reply_channel,
            "path": self.path,
            "order": self.received,
        }
        if binary:
            message["bytes"] = payload
        else:
            message["text"] = payload.decode("utf8")
        if self.held:
            self.held.append(("websocket.receive", message))
            return None
        self.in_flight += 1
        return message

    def landed(self) -> dict | None:
        """A frame's send succeeded: the disconnect that waited for it, if now due."""
        self.in_flight -= 1
        if self.in_flight or self.disconnect_waiting is None:
            return None
        return self.settled()

    def frame_refused(self, error: Outcome, channel: str, message: dict) -> str:
        """A frame's send failed: HOLD, HOLD_BACKEND, CLOSE_FOR_SIZE, CLOSE_FOR_ROOM,
        CLOSE_FOR_ERROR or IGNORE.

        Call `settled` after acting on it.
        """
        self.in_flight -= 1
        if self.state is SocketState.SILENT:
            return IGNORE
        if self.held:
            # An earlier frame was refused in the same flush (the outbox gave this one
            # the same error without sending it): keep the order.
            self.held.append((channel, message))
            return IGNORE
        if error is Outcome.FULL or error is Outcome.UNAVAILABLE:
            # keep order, stop reading so TCP pushes back, retry from a timer; a
            # backend that went away (Redis restarting, L-62) gets longer.
            self.held = deque([(channel, message)])
            return HOLD if error is Outcome.FULL else HOLD_BACKEND
        if error is Outcome.FAILED:
            # A bug, or an error the layer does not name: retrying would not help, and
            # holding frames would only delay the close (1011, internal error).
            self._event(Event.FAILED)
            return CLOSE_FOR_ERROR
        self._event(Event.GIVE_UP)
        # D-40, D-65: the envelope pushed the frame over the layer's limit; or daphne
        # holds all it may for a layer that does not answer (issue 15).
        return CLOSE_FOR_SIZE if error is Outcome.TOO_LARGE else CLOSE_FOR_ROOM

    def give_up(self) -> None:
        """Daphne closes the socket for the layer: nothing more goes to the application."""
        self._event(Event.GIVE_UP)

    # -- replies (D-39, A-86) ------------------------------------------------------------

    def reply(self, message: dict) -> tuple:
        """Check a reply message and return the actions it asks for, in order.

        Raises `ApplicationError` (and changes nothing) for a message breaking A-86.
        """
        if not _REPLY_KEYS.issuperset(message):
            unknown = set(message) - _REPLY_KEYS
            raise ApplicationError(
                f"Got invalid WebSocket reply message on {self.reply_channel} - contains "
                f"unknown keys {sorted(unknown)} (allowed: accept, text, bytes, close)"
            )
        data_bytes = message.get("bytes")
        data_text = message.get("text")
        if data_bytes and data_text:
            raise ApplicationError(
                f"Got invalid WebSocket reply message on {self.reply_channel} - "
                "contains both bytes and text keys; send them as two messages"
            )
        state = self.state
        close = message.get("close")
        if state is SocketState.FAILING:
            state = SocketState.OPEN  # replies still go out (RFC 6455 §7.1.7)
        if state is SocketState.OPEN:
            if self.answered < self.received and (data_text is not None or data_bytes is not None):
                self.answered += 1
            if not close and _one_empty_payload(data_bytes, data_text):
                # Deviation from A-86, see docs/differences.rst: on an open socket a reply
                # holding only an empty text or bytes sends one empty frame of that type
                # (an echo of an empty message, Autobahn cases 1.1.1, 1.2.1, 6.1.1, 6.1.2).
                # With the other data key, with close, or during the handshake, empty
                # still counts as absent.
                if data_bytes is None:
                    return ((SEND, data_text, False),)
                return ((SEND, data_bytes, True),)
            if close is None:  # the common case: one frame
                if data_text:
                    return ((SEND, data_text, False),)
                if data_bytes:
                    return ((SEND, data_bytes, True),)
                return ()
            actions: list = []
        elif state in _ANSWERABLE:
            accept = message.get("accept")
            if accept is False:
                self._event(Event.REJECT)
                return (_REJECT_ACTION,)  # D-39 step 2: the rest is ignored
            actions = []
            if accept or data_bytes or data_text:
                self._event(Event.ACCEPT)  # sending content implies acceptance
                actions.append(_ACCEPT_ACTION)
            elif close:
                self._event(Event.REJECT)  # D-39 step 5: the code is ignored
                return (_REJECT_ACTION,)
        elif state is SocketState.CONNECTING or state is SocketState.CONNECT_QUEUED:
            raise IllegalTransition(
                f"WebSocket {self.reply_channel}: no reply can come while {state.value}"
            )
        else:
            return ()  # refused, given up or gone: nothing to send on
        if data_bytes:
            actions.append((SEND, data_bytes, True))
        if data_text:
            actions.append((SEND, data_text, False))
        if close:
            actions.append((CLOSE, close))
        return tuple(actions)

    # -- failing the connection (RFC 6455 §7.1.7, issue 21) -------------------------------

    def fail(self) -> bool:
        """The client broke the protocol: True when the close frame waits for replies to
        messages already forwarded (FAILING), False when it goes out now (none owed, or
        the socket is not open)."""
        if self.state is not SocketState.OPEN or self.answered >= self.received:
            return False
        self._event(Event.FAIL)
        return True

    @property
    def replies_written(self) -> bool:
        """FAILING, and every forwarded message has had a reply: close now."""
        return self.state is SocketState.FAILING and self.answered >= self.received

    def fail_close(self) -> None:
        """The close frame goes out (replies written, or FAIL_WAIT passed)."""
        self._event(Event.FAIL_CLOSE)

    # -- closing (D-41, A-85) ------------------------------------------------------------

    def client_gone(self, code: int) -> dict | None:
        """The socket closed: the ``websocket.disconnect`` to send now, or None (none
        owed, or it waits behind frames still held or in flight)."""
        owed = self.state in _OWES_DISCONNECT
        if self.state is SocketState.STOPPING:
            code = CLOSE_SERVICE_RESTART  # D-17: the code daphne closed with
        self._event(Event.CLIENT_GONE)
        if not owed:
            return None
        message = {
            "reply_channel": self.reply_channel,
            "code": code,
            "path": self.path,
            "order": self.received + 1,
        }
        if self.held:
            self.held.append(("websocket.disconnect", message))
        elif self.in_flight:
            self.disconnect_waiting = message
        else:
            return message
        return None

    def settled(self) -> dict | None:
        """After an outcome: the disconnect that waited for this socket's sends, if due."""
        if self.in_flight or self.disconnect_waiting is None:
            return None
        message, self.disconnect_waiting = self.disconnect_waiting, None
        if self.state is SocketState.SILENT:
            return None  # the connect was refused, or the socket closed for the layer
        if self.held:
            self.held.append(("websocket.disconnect", message))
            return None
        return message
