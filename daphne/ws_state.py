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
"""

from __future__ import annotations

import enum
from collections import deque
from typing import Any

from .errors import ApplicationError, IllegalTransition

__all__ = ["SocketState", "Event", "Outcome", "WebSocketSession"]

CLOSE_NORMAL = 1000
CLOSE_GOING_AWAY = 1001
CLOSE_NO_STATUS = 1005
CLOSE_ABNORMAL = 1006
CLOSE_POLICY_VIOLATION = 1008
CLOSE_TOO_BIG = 1009
CLOSE_INTERNAL_ERROR = 1011
CLOSE_SERVICE_RESTART = 1012  # RFC 6455 §7.4.1 (IANA registry): the server restarts
CLOSE_TRY_AGAIN_LATER = 1013

_REPLY_KEYS = frozenset({"accept", "text", "bytes", "close"})


class SocketState(enum.Enum):
    # Members are singletons compared by identity: hashing by identity too spares the
    # Python-level `Enum.__hash__` call in every `in` test and transition lookup
    # (a call per frame, issue 16).
    __hash__ = object.__hash__

    CONNECTING = "connecting"
    AWAITING_APP = "awaiting the application"
    CONNECT_QUEUED = "connect queued"
    CONNECT_RETRY = "connect retried"
    OPEN = "open"
    STOPPING = "closing for a restart"
    FAILING = "failing, writing replies first"  # RFC 6455 §7.1.7 (issue 21)
    CLOSING = "closing after a protocol error"
    REJECTED = "rejected"
    SILENT = "silent"
    CLOSED = "closed"


class Event(enum.Enum):
    __hash__ = object.__hash__  # as for SocketState

    CONNECT = "connect"  # the handshake arrived; websocket.connect goes out
    CONNECT_DELIVERED = "connect delivered"
    CONNECT_FULL = "connect full"  # no room for websocket.connect
    CONNECT_LOST = "connect lost"  # it cannot be delivered: refuse with 503
    RETRY = "retry"  # the retry timer sends websocket.connect again
    ACCEPT = "accept"
    REJECT = "reject"
    GIVE_UP = "give up"  # daphne closes the socket for the layer (1009, 1013)
    FAILED = "send failed"  # a bug or an error the layer does not name (500, 1011)
    STOP = "stop"  # a graceful stop closes the open socket with 1012
    CLIENT_GONE = "client gone"
    FAIL = "protocol error"  # the client broke RFC 6455: replies first, then close
    FAIL_CLOSE = "close after the protocol error"  # replies written or waited for enough


class Outcome(enum.Enum):
    """What became of a message the session asked to send (the adapter classifies)."""

    __hash__ = object.__hash__  # as for SocketState

    FULL = "channel full"
    TOO_LARGE = "message too large"
    OUTBOX_FULL = "outbox full"  # the layer has not answered for a while (issue 15)
    UNAVAILABLE = "layer unavailable"  # its backend is down (L-62)
    FAILED = "failed"  # any other error: a bug, or an error the layer does not name


S, E = SocketState, Event
_TRANSITIONS: dict[SocketState, dict[Event, SocketState]] = {
    S.CONNECTING: {E.CONNECT: S.AWAITING_APP, E.CLIENT_GONE: S.CLOSED},
    S.AWAITING_APP: {
        E.CONNECT_DELIVERED: S.AWAITING_APP,
        E.CONNECT_FULL: S.CONNECT_QUEUED,
        E.CONNECT_LOST: S.SILENT,
        E.FAILED: S.SILENT,  # refused with 500
        E.ACCEPT: S.OPEN,
        E.REJECT: S.REJECTED,
        E.CLIENT_GONE: S.CLOSED,
    },
    S.CONNECT_QUEUED: {
        E.RETRY: S.CONNECT_RETRY,
        E.CONNECT_LOST: S.SILENT,  # the connect timeout passed
        E.REJECT: S.SILENT,  # a stop: the application never saw the connect
        E.CLIENT_GONE: S.SILENT,
    },
    S.CONNECT_RETRY: {
        E.CONNECT_DELIVERED: S.AWAITING_APP,
        E.CONNECT_FULL: S.CONNECT_QUEUED,
        E.CONNECT_LOST: S.SILENT,
        E.FAILED: S.SILENT,  # refused with 500
        E.ACCEPT: S.OPEN,  # the application answered before the outcome came
        E.REJECT: S.REJECTED,
        E.CLIENT_GONE: S.CLOSED,  # its disconnect waits for the outcome
    },
    S.OPEN: {
        E.CONNECT_DELIVERED: S.OPEN,
        E.CONNECT_FULL: S.SILENT,
        E.CONNECT_LOST: S.SILENT,
        E.ACCEPT: S.OPEN,  # D-39: accept on an open socket is ignored
        E.REJECT: S.OPEN,
        E.GIVE_UP: S.SILENT,
        E.FAILED: S.SILENT,  # closed with 1011
        E.STOP: S.STOPPING,
        E.CLIENT_GONE: S.CLOSED,
        E.FAIL: S.FAILING,
    },
    # RFC 6455 §7.1.7 (issue 21): the client broke the protocol. Nothing more is read;
    # replies to what it sent before are written, then the close frame (FAIL_CLOSE).
    S.FAILING: {
        E.CONNECT_DELIVERED: S.FAILING,
        E.CONNECT_FULL: S.SILENT,
        E.CONNECT_LOST: S.SILENT,
        E.ACCEPT: S.FAILING,
        E.REJECT: S.FAILING,
        E.GIVE_UP: S.SILENT,
        E.FAILED: S.SILENT,
        E.STOP: S.FAILING,  # closing already: the stop waits for its close
        E.CLIENT_GONE: S.CLOSED,
        E.FAIL_CLOSE: S.CLOSING,
    },
    # The close frame is out: replies are dropped; the disconnect is still owed.
    S.CLOSING: {
        E.CONNECT_DELIVERED: S.CLOSING,
        E.CONNECT_FULL: S.SILENT,
        E.CONNECT_LOST: S.SILENT,
        E.ACCEPT: S.CLOSING,
        E.REJECT: S.CLOSING,
        E.GIVE_UP: S.SILENT,
        E.FAILED: S.SILENT,
        E.STOP: S.CLOSING,
        E.CLIENT_GONE: S.CLOSED,
    },
    S.STOPPING: {
        E.CONNECT_DELIVERED: S.STOPPING,
        E.CONNECT_FULL: S.SILENT,
        E.CONNECT_LOST: S.SILENT,
        E.ACCEPT: S.STOPPING,
        E.REJECT: S.STOPPING,
        E.GIVE_UP: S.SILENT,  # held frames given up: the socket closes for the layer
        E.FAILED: S.SILENT,
        E.STOP: S.STOPPING,  # the stop's last step closes what is left
        E.CLIENT_GONE: S.CLOSED,  # the disconnect carries 1012
    },
    S.REJECTED: {
        E.CONNECT_DELIVERED: S.REJECTED,
        E.CONNECT_FULL: S.SILENT,  # refused before it was delivered: nothing owed
        E.CONNECT_LOST: S.SILENT,
        E.FAILED: S.SILENT,
        E.ACCEPT: S.REJECTED,
        E.REJECT: S.REJECTED,
        E.STOP: S.REJECTED,  # refused already: nothing to close
        E.CLIENT_GONE: S.CLOSED,
    },
    S.SILENT: {
        E.CONNECT_DELIVERED: S.SILENT,
        E.CONNECT_FULL: S.SILENT,
        E.CONNECT_LOST: S.SILENT,
        E.ACCEPT: S.SILENT,
        E.REJECT: S.SILENT,
        E.GIVE_UP: S.SILENT,
        E.FAILED: S.SILENT,
        E.STOP: S.SILENT,
        E.CLIENT_GONE: S.SILENT,
    },
    S.CLOSED: {
        E.CONNECT_DELIVERED: S.CLOSED,
        E.CONNECT_FULL: S.SILENT,  # the waiting disconnect is dropped
        E.CONNECT_LOST: S.SILENT,
        E.ACCEPT: S.CLOSED,
        E.REJECT: S.CLOSED,
        E.GIVE_UP: S.SILENT,  # held frames given up after the client left
        E.FAILED: S.SILENT,  # the waiting disconnect is dropped, as for GIVE_UP
        E.STOP: S.CLOSED,  # gone before its turn in the stop's batches
    },
}
del S, E

# The handshake is still open and the application may answer it (D-39 "still connecting").
_ANSWERABLE = frozenset({SocketState.AWAITING_APP, SocketState.CONNECT_RETRY})
# A disconnect is owed when the client leaves in these states (D-41).
_OWES_DISCONNECT = frozenset(
    {
        SocketState.AWAITING_APP,
        SocketState.CONNECT_RETRY,
        SocketState.OPEN,
        SocketState.STOPPING,
        SocketState.FAILING,
        SocketState.CLOSING,
        SocketState.REJECTED,
    }
)
# Frames from the client are forwarded in these (a stopping socket's until its close).
_FORWARDS_FRAMES = frozenset({SocketState.OPEN, SocketState.STOPPING})
# Nothing more is read from the client in these (RFC 6455 §7.1.7).
_NOT_READING = frozenset({SocketState.SILENT, SocketState.FAILING, SocketState.CLOSING})
# The connect timeout runs in these (D-43); a queued connect is refused by its retry.
_CONNECT_TIMED = frozenset(
    {SocketState.AWAITING_APP, SocketState.CONNECT_QUEUED, SocketState.CONNECT_RETRY}
)

# Actions for the adapter. A reply's are tuples: (SEND, payload, binary), (CLOSE, code),
# (ACCEPT,), (REJECT,). A refused frame's are the bare names.
SEND = "send"
CLOSE = "close"
ACCEPT = "accept"
REJECT = "reject"
HOLD = "hold"  # keep the frame and retry: the channel is full
HOLD_BACKEND = "hold for the backend"  # keep it and retry: the layer's backend is away
CLOSE_FOR_SIZE = "close 1009"
CLOSE_FOR_ROOM = "close 1013"
CLOSE_FOR_ERROR = "close 1011"  # a send failed for a bug (connect or frame)
IGNORE = "ignore"
# A websocket.connect's outcome.
DELIVERED = "delivered"
QUEUE = "queue"  # retry from a timer
REFUSE_UNAVAILABLE = "refuse 503, layer unavailable"
REFUSE_FULL = "refuse 503, connection queue at capacity"
REFUSE_FAILED = "refuse 500, the send failed"  # a bug, not the layer being away
DROPPED = "dropped"  # not delivered, but the handshake was already answered

_ACCEPT_ACTION = (ACCEPT,)
_REJECT_ACTION = (REJECT,)


def _one_empty_payload(data_bytes: Any, data_text: Any) -> bool:
    """Exactly one of bytes/text present and empty, the other absent or None."""
    if data_bytes is None:
        return data_text is not None and len(data_text) == 0
    return data_text is None and len(data_bytes) == 0


class WebSocketSession:
    """What one WebSocket told the application, and what it still owes it."""

    __slots__ = (
        "state",
        "reply_channel",
        "path",
        "received",
        "answered",
        "opened_at",
        "last_data",
        "in_flight",
        "held",
        "disconnect_waiting",
    )

    def __init__(self) -> None:
        self.state = SocketState.CONNECTING
        self.reply_channel: str | None = None
        self.path: str | None = None  # unquoted
        self.received = 0  # frames forwarded: their orders are 1..received (A-87, D-42)
        # Replies with data, counted up to `received`: ASGI-1 does not say which message
        # a reply answers, so a protocol error's close waits until there are as many
        # replies as messages (an echo's shape), or for FAIL_WAIT (issue 21).
        self.answered = 0
        self.opened_at = 0.0
        self.last_data = 0.0  # the last frame in or out, for the ping (D-43)
        self.in_flight = 0
        self.held: deque | None = None  # (channel, message) waiting for room
        self.disconnect_waiting: dict | None = None

    def _event(self, event: Event) -> SocketState:
        try:
            state = _TRANSITIONS[self.state][event]
        except KeyError:
            raise IllegalTransition(
                f"WebSocket {self.reply_channel}: {event.value!r} is not possible "
                f"while {self.state.value}"
            ) from None
        self.state = state
        return state

    # -- the handshake (D-38, A-83) ------------------------------------------------------

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

    # -- timers (D-24, D-43) -------------------------------------------------------------

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
