"""The two roots of daphne's errors: the application broke the contract, or the peer
broke the protocol (STYLE: h11's split)."""

from __future__ import annotations

__all__ = ["ApplicationError", "PeerError", "IllegalTransition"]


class ApplicationError(ValueError):
    """A reply message broke the ASGI-1 contract (A-79, A-80, A-86).

    A `ValueError`, as daphne 1.4 raised, so `dispatch_reply` callers see the same type.
    """


class PeerError(Exception):
    """The client broke HTTP; carries the status to answer with."""

    def __init__(self, msg: str, error_status_hint: int = 400) -> None:
        super().__init__(msg)
        self.error_status_hint = error_status_hint


class IllegalTransition(RuntimeError):
    """A connection state machine was asked for a transition its table does not allow."""
