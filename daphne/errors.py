"""The two roots of daphne's errors: the application broke the contract, or the peer
broke the protocol (STYLE: h11's split)."""

from __future__ import annotations

__all__ = ["ApplicationError", "PeerError", "IllegalTransition", "ListenFailed"]


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


class ListenFailed(OSError):
    """The server cannot listen on one of its endpoints (port taken, no permission...).

    `Server.run()` raises it instead of running without that endpoint (D-62, issue 14):
    the CLI prints ``daphne: error: <str(error)>`` and exits 1; an embedding program
    (runserver) can catch it and word it its own way. ``errno`` is the socket error's
    (e.g. ``errno.EADDRINUSE``) when there is one, else None; `address` is
    ``host:port`` (or the endpoint description) and `reason` the cause in words.
    """

    def __init__(
        self, endpoint: str, address: str, reason: str, error_number: int | None = None
    ) -> None:
        if error_number is None:
            super().__init__(reason)
        else:
            super().__init__(error_number, reason)
        self.endpoint = endpoint
        self.address = address
        self.reason = reason

    def __str__(self) -> str:
        return f"cannot listen on {self.address}: {self.reason}"
