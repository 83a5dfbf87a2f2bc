"""An HTTP/1.1 connection's two timers: the request head must arrive within
``head_timeout`` (D-64), and a request body must keep arriving (daphne's addition to
D-64, issue 15: ``body_idle_timeout`` between chunks, ``http_body_timeout`` in all).

`RequestTimers` is a mixin for `http_channel.HTTPChannel`.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

__all__ = ["RequestTimers"]


class RequestTimers:
    """Mixin for `HTTPChannel`: the head and body timers, and what they refuse."""

    if TYPE_CHECKING:
        factory: Any
        transport: Any
        callLater: Any
        refuse: Any

    _head_timer = None
    _head_bytes = 0
    # Reactor time by which the head must be in; None while no head is awaited.
    _head_deadline: float | None = None
    _body_timer = None
    _body_active = 0.0
    # Issue 15: a request body must be complete by this reactor time (0: no deadline).
    _body_deadline = 0.0

    # -- D-64: the request head must arrive within `head_timeout` --------------
    #
    # A keep-alive connection awaits a head after every response. Rather than a
    # `callLater` and its cancel per request (issue 20), the deadline is an attribute:
    # the head's arrival only clears it, and the timer, when it fires, either finds
    # no deadline (it lapses), a later one (it is set again for the rest) or a
    # deadline that passed (the timeout). It fires at the deadline exactly, as before.

    def _start_head_timer(self) -> None:
        self._head_bytes = 0
        timeout = self.factory.config.head_timeout
        self._head_deadline = self.factory.reactor.seconds() + timeout
        if self._head_timer is None:
            self._head_timer = self.callLater(timeout, self._head_timer_due)

    def _head_received(self) -> None:
        """The head arrived: no deadline, and nothing to cancel (the timer lapses)."""
        self._head_deadline = None

    def _stop_head_timer(self) -> None:
        self._head_deadline = None
        if self._head_timer is not None and self._head_timer.active():
            self._head_timer.cancel()
        self._head_timer = None

    def _head_timer_due(self) -> None:
        self._head_timer = None
        deadline = self._head_deadline
        if deadline is None:
            return  # the head arrived meanwhile
        remaining = deadline - self.factory.reactor.seconds()
        if remaining > 0:  # a later head's deadline: wait for the rest
            self._head_timer = self.callLater(remaining, self._head_timer_due)
            return
        self._head_timed_out()

    def _head_timed_out(self) -> None:
        self._head_deadline = None
        if self._head_bytes:
            self.refuse(408, b"Request Timeout")
        else:
            self.transport.loseConnection()

    # -- a request body must keep arriving (daphne's addition to D-64) ----------

    def _start_body_timer(self) -> None:
        # Without it a client could hold a connection forever by trickling a body,
        # since Twisted's own idle timer is replaced by the head timer.
        factory = self.factory
        now = self._body_active = factory.reactor.seconds()
        total = factory.config.http_body_timeout
        self._body_deadline = now + total if total else 0.0
        first = factory.config.body_idle_timeout
        if total:
            first = min(first, total)
        self._body_timer = self.callLater(first, self._body_idle_check)

    def _stop_body_timer(self) -> None:
        if self._body_timer is not None and self._body_timer.active():
            self._body_timer.cancel()
        self._body_timer = None

    def _body_idle_check(self) -> None:
        self._body_timer = None
        now = self.factory.reactor.seconds()
        next_check = self._body_active + self.factory.config.body_idle_timeout
        deadline = self._body_deadline
        if deadline:
            # Issue 15: a body trickled a byte at a time resets the idle timer forever;
            # the whole body must arrive within `http_body_timeout` of its start.
            next_check = min(next_check, deadline)
        if now >= next_check:
            self.refuse(408, b"Request Timeout")
        else:
            self._body_timer = self.callLater(next_check - now, self._body_idle_check)
