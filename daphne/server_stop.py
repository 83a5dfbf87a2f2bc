"""The server's graceful stop (D-17) and the signals that start it.

The first SIGINT/SIGTERM stops listening, lets in-flight HTTP requests finish for up to
``graceful_timeout`` and closes WebSockets with 1012 spread over ``websocket_drain_time``;
then requests still waiting for the application are answered 503 and everything else is
dropped. A second signal goes to that last step at once.
"""

from __future__ import annotations

import logging
import signal
from typing import TYPE_CHECKING, Any

from twisted.internet import defer
from twisted.internet.base import DelayedCall

from .draining import websocket_spread
from .server_metrics import close_metrics

if TYPE_CHECKING:
    from .server import Server

__all__ = ["ANSWER_FLUSH_TIMEOUT", "GracefulStop"]

logger = logging.getLogger("daphne.server")

# Seconds the last step of a graceful stop waits for its 503 answers to be written.
ANSWER_FLUSH_TIMEOUT = 1.0


class GracefulStop:
    """One `Server`'s stop sequence. It reads the server's reactor, listeners, factory
    and timeouts when it runs (tests assign them after construction)."""

    def __init__(self, server: Server) -> None:
        self.server = server
        self.stopping: defer.Deferred[None] | None = None  # a graceful stop in progress
        self._drain_timer: DelayedCall | None = None
        self._finishing = False

    # -- signals ---------------------------------------------------------------------

    def install_signal_handlers(self) -> None:
        # Installed after Twisted's own, replacing them for SIGINT/SIGTERM.
        for signum in (signal.SIGINT, signal.SIGTERM):
            signal.signal(signum, self._on_signal)

    def _on_signal(self, signum: int, frame: Any) -> None:
        self.server.reactor.callFromThread(self.server._stop_requested)

    def requested(self) -> None:
        """A stop signal: the first starts a graceful stop (through
        `Server.graceful_stop`, which a subclass may extend), the next finishes it now."""
        if self.stopping is None:
            self.server.graceful_stop().addBoth(lambda _: self._stop_reactor())
        else:
            self.finish()

    def _stop_reactor(self) -> None:
        reactor = self.server.reactor
        if reactor.running:
            reactor.stop()

    # -- the sequence ----------------------------------------------------------------

    def begin(self) -> defer.Deferred[None]:
        """D-17 steps 1-4; the Deferred fires once every connection is gone."""
        if self.stopping is not None:
            return self.stopping
        server = self.server
        stopping = self.stopping = defer.Deferred()
        self.stop_listening()
        factory = server._started_factory()
        drained: defer.Deferred[None] = defer.Deferred()
        count = len(factory.in_flight_requests())
        logger.info(
            "Stopping: draining %d HTTP requests for up to %s s", count, server.graceful_timeout
        )
        drained.addCallback(lambda _: self.finish())
        self._drain_timer = server.reactor.callLater(server.graceful_timeout, self.finish)
        spread = websocket_spread(server.websocket_drain_time, server.graceful_timeout)
        sockets = factory.start_drain(drained, spread)
        if sockets:  # issue 17 item 4
            logger.info("Stopping: closing %d WebSockets with 1012 over %s s", sockets, spread)
        return stopping

    def stop_listening(self) -> None:
        for listener in self.server.listeners:
            port = getattr(listener, "result", None)
            if port is not None and hasattr(port, "stopListening"):
                port.stopListening()

    def finish(self) -> None:
        """D-17 step 4. Requests still waiting for the application get 503 (issue 14):
        their connections close once that is written (bounded by `ANSWER_FLUSH_TIMEOUT`),
        everything else is dropped at once."""
        if self.stopping is None or self.stopping.called or self._finishing:
            return
        self._finishing = True
        if self._drain_timer is not None and self._drain_timer.active():
            self._drain_timer.cancel()
        server = self.server
        factory = server._started_factory()
        closing = factory.answer_waiting()
        if closing:
            logger.info(
                "Stopping: answered %d HTTP request%s still waiting for the application with 503",
                len(closing),
                "" if len(closing) == 1 else "s",
            )
        # WebSockets whose batch was not due yet close now (1012), not dropped (issue 17).
        closing += factory.close_remaining_websockets()
        factory.drop_all(keep=closing)
        if not closing:
            self._stopped()
            return
        # What this tick queued goes now; the closing connections' disconnects follow.
        self.drain_outbox()
        flushed: defer.Deferred[None] = defer.Deferred()
        timer = server.reactor.callLater(ANSWER_FLUSH_TIMEOUT, flushed.callback, None)
        flushed.addCallback(lambda _: timer.cancel() if timer.active() else None)
        flushed.addBoth(lambda _: self._stopped())
        factory.notify_when_idle(flushed)

    def _stopped(self) -> None:
        stopping = self.stopping
        if stopping is None or stopping.called:
            return
        server = self.server
        server._started_factory().drop_all()
        self.drain_outbox()
        server._stop_readers()
        # Last: /readyz answered 503 ("draining") while the server stopped (issue 18).
        close_metrics(server)
        stopping.callback(None)

    def drain_outbox(self) -> None:
        """Send what the factory's outbox still holds (also a "before shutdown" trigger:
        sends queued in the last tick, such as dropped connections' disconnects)."""
        factory = self.server.factory
        if factory is not None:
            try:
                factory.outbox.drain()
            except Exception:
                logger.exception("Error sending the last queued messages")
