"""HTTP requests whose ``http.request`` expired unread get 503 at once (issue 15 item 6).

A message no worker receives within the layer's ``expiry`` (60 s) is discarded
(A-27), so its client used to wait for the whole ``http_timeout`` (120 s, D-24)
for a 503 that was certain from the moment the message expired.

Once a request has waited ``expiry`` seconds since the layer took its message, with
no response started, daphne asks the layer how old the oldest message still waiting
on ``http.request`` is (``messages_max_age`` of `channel_statistics`, L-40). That
read runs in the reactor's thread pool, so a hung Redis never blocks the reactor
(issue 15 item 2); one read serves every request due at the time. The layer hands
a channel's messages out oldest first (a sender's messages stay in order, A-25), so
when the oldest waiting message is at least as old as this request's, this request
was never received and has expired: the client gets 503 with Retry-After, the drop
is counted (``daphne_messages_dropped_total{reason="expired"}``) and logged, merged
to one WARNING line per interval whose count is flushed by a timer.

A younger oldest message means a worker took the request and is still working on
it: it keeps its ``http_timeout``. So does every request when the layer has no
``channel_statistics`` or cannot be read (an outage has its own handling, issue 14).

A backlog (workers that run but lag by more than the expiry) is covered as well: a
worker drops expired messages only as it pops, so while it works on a view the
expired ones wait at the head and are seen. Missed: a request whose expired message a
worker dropped just before the read with only younger ones behind it (the worker
counts and logs it, ``expired_count``); that client still gets the ``http_timeout``.
"""

from __future__ import annotations

import logging
from typing import Any

from twisted.internet import threads

from .deadlines import OrderedDeadlines

__all__ = ["ExpiredRequests", "EXPIRED"]

logger = logging.getLogger("daphne.server")

# The answer to a request that expired unread in the layer (with Retry-After).
EXPIRED = (
    503,
    b"Service Unavailable",
    "No worker took the request within the channel layer's expiry; try again shortly.",
)
# `messages_max_age` is whole seconds (truncated): an oldest message this much
# younger than the request is still the request's own (or older).
AGE_RESOLUTION = 1.0
CHANNEL = "http.request"


class ExpiredRequests:
    """Finds requests whose ``http.request`` expired unread and answers them 503."""

    interval = 10.0  # seconds between two WARNING lines

    def __init__(self, factory: Any) -> None:
        self.factory = factory
        self._due: dict[Any, float] = {}  # request -> when the layer took its message
        # The watched requests' expiries: in order, as they share the layer's expiry.
        self._deadlines = OrderedDeadlines(lambda: self.factory.reactor)
        self._reading = False
        self._unlogged = 0
        self._log_timer: Any = None
        self.total = 0

    def expiry(self) -> float | None:
        """The layer's message expiry, when reading its statistics can tell anything."""
        layer = self.factory.outbox.channel_layer  # the factory's, one property less
        expiry = getattr(layer, "expiry", None)
        if not callable(getattr(layer, "channel_statistics", None)):
            return None
        if not isinstance(expiry, (int, float)) or expiry <= 0:
            return None
        if expiry >= self.factory.config.http_timeout:
            return None  # the HTTP timeout answers first anyway
        if not hasattr(self.factory.reactor, "getThreadPool"):
            return None  # a test's Clock: no thread to read the layer from
        return float(expiry)

    def watch(self, request: Any, sent_at: float) -> None:
        """The layer took `request`'s message at `sent_at`: check it at its expiry."""
        expiry = self.expiry()
        if expiry is None:
            return
        self._deadlines.schedule(request, sent_at + expiry, lambda: self._expired(request, sent_at))

    def forget(self, request: Any) -> None:
        self._deadlines.cancel(request)
        self._due.pop(request, None)

    def _expired(self, request: Any, sent_at: float) -> None:
        if not request.waiting_for_response():
            return
        self._due[request] = sent_at
        if not self._reading:
            self._read()

    def _read(self) -> None:
        reactor = self.factory.reactor
        due, self._due = self._due, {}
        self._reading = True
        layer = self.factory.channel_layer
        reading = threads.deferToThreadPool(
            reactor, reactor.getThreadPool(), layer.channel_statistics, CHANNEL
        )
        reading.addCallbacks(self._answer, self._unreadable, callbackArgs=(due, reactor.seconds()))
        reading.addBoth(self._read_done)

    def _read_done(self, _: Any) -> None:
        self._reading = False
        if self._due:
            self._read()  # requests that fell due during the read

    def _answer(self, figures: Any, due: dict[Any, float], now: float) -> None:
        try:
            oldest = float(figures["messages_max_age"])
        except (KeyError, TypeError, ValueError):
            return  # the layer does not say: the HTTP timeout answers
        expired = 0
        for request, sent_at in due.items():
            if not request.waiting_for_response() or getattr(request, "_disconnected", False):
                continue  # answered, or the client left during the read
            if oldest + AGE_RESOLUTION >= now - sent_at:
                request.expired_in_layer()
                expired += 1
        if expired:
            self.total += expired
            self.factory.metrics.dropped(CHANNEL, "expired", expired)
            self._report(expired)

    def _unreadable(self, failure: Any) -> None:
        logger.debug("Could not read the http.request statistics: %s", failure.value)

    # -- logging: one line at once, the rest of the interval by a timer ------------

    def _report(self, count: int) -> None:
        if self._log_timer is not None and self._log_timer.active():
            self._unlogged += count
            return
        self._line(count)
        self._log_timer = self.factory.reactor.callLater(self.interval, self._flush)

    def _flush(self) -> None:
        self._log_timer = None
        count, self._unlogged = self._unlogged, 0
        if count:
            self._line(count)
            self._log_timer = self.factory.reactor.callLater(self.interval, self._flush)

    def _line(self, count: int) -> None:
        logger.warning(
            "%d HTTP request%s expired unread on %s (no worker took %s within the channel "
            "layer's expiry): answered 503",
            count,
            "" if count == 1 else "s",
            CHANNEL,
            "it" if count == 1 else "them",
        )
