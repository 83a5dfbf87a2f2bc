"""The states of a WebSocket session (`ws_state`), the events that move it, the transition
table, the actions and send outcomes it trades with the adapter, and the session's fields.

No I/O: `SessionFields` holds a session's data and applies the table (`_event`);
`ws_state.WebSocketSession` and its mixins (`ws_handshake`, `ws_deadlines`) build on it.
`ws_protocol` and `ws_flow` read the action names and close codes (re-exported by
`ws_state`). The diagram of the main
paths is in `ws_state`'s docstring; `_TRANSITIONS` has them all (D-38..D-43, A-83..A-89).
"""

from __future__ import annotations

import enum
from collections import deque

from .errors import IllegalTransition

__all__ = ["SocketState", "Event", "Outcome", "SessionFields"]

CLOSE_NORMAL = 1000
CLOSE_GOING_AWAY = 1001
CLOSE_NO_STATUS = 1005
CLOSE_ABNORMAL = 1006
CLOSE_POLICY_VIOLATION = 1008
CLOSE_TOO_BIG = 1009
CLOSE_INTERNAL_ERROR = 1011
CLOSE_SERVICE_RESTART = 1012  # RFC 6455 §7.4.1 (IANA registry): the server restarts
CLOSE_TRY_AGAIN_LATER = 1013


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


class SessionFields:
    """The fields of a `ws_state.WebSocketSession`, and the one place its state changes
    (`_event`, by `_TRANSITIONS`). The session's mixins (`ws_handshake.SessionHandshake`,
    `ws_deadlines.SessionDeadlines`) and the session itself add methods, no fields."""

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
