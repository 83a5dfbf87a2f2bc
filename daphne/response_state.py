"""The reply side of one HTTP request as a small state machine (D-34, D-35)."""

from __future__ import annotations

import enum
from typing import Any

from .errors import IllegalTransition

__all__ = ["ResponseState", "transition"]


class ResponseState(enum.Enum):
    """Where a request's response is (the reply side of one HTTP request)."""

    WAITING = "waiting for the application's Response"
    STREAMING = "streaming Response Chunks"
    FINISHED = "finished"


# Allowed transitions: event -> (from states, to state).
_RESPONSE_TRANSITIONS = {
    "start": ({ResponseState.WAITING}, ResponseState.STREAMING),
    "finish": ({ResponseState.WAITING, ResponseState.STREAMING}, ResponseState.FINISHED),
}


def transition(request: Any, event: str) -> ResponseState:
    """The state `request`'s response moves to on `event`; `IllegalTransition` if the
    event is not allowed in its current state."""
    allowed, target = _RESPONSE_TRANSITIONS[event]
    if request._response_state not in allowed:
        raise IllegalTransition(
            f"Cannot {event} the response of {request.reply_channel}: it is "
            f"{request._response_state.value}"
        )
    return target
