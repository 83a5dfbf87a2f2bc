"""Request bodies over 1 MiB travel as Request Body Chunks on `body_channel` (D-63, A-78)."""

from __future__ import annotations

import logging
from typing import Any

from .drops import FullChannelReporter, send_best_effort
from .layer_api import is_unavailable
from .outbox import OutboxFull
from .retry import ReactorBackoff

__all__ = ["BODY_CHUNK_SIZE", "BodyPump"]

logger = logging.getLogger("daphne.http_protocol")
full_channels = FullChannelReporter(logger)

# D-63: bodies up to this size travel whole in `body`; larger ones use `body_channel`.
BODY_CHUNK_SIZE = 1024 * 1024

_NOT_YET: Any = object()


class BodyPump:
    """Sends the rest of a large request body as Request Body Chunks (D-63, A-78).

    Each chunk is read from Twisted's request buffer (a temporary file for large
    bodies) only when the previous one was accepted, so memory stays bounded; a
    full channel is retried from a reactor timer with a growing backoff (A-89,
    `retry.ReactorBackoff`).
    """

    def __init__(self, request: Any, channel: str) -> None:
        self.request = request
        self.channel = channel
        self.layer = request.factory.channel_layer
        self.reactor = request.factory.reactor
        self.backoff = ReactorBackoff(self.reactor)
        self.pending: dict | None = None
        self.done = False
        self._sending = False  # a chunk's outcome is awaited
        self._inside_send = False

    def pump(self) -> None:
        """Send chunks through the outbox (never waiting on the layer, issue 15).

        A layer answering before `send` returns (in-memory) is sent to in a loop, not
        recursively; otherwise `_sent` goes on when the outcome arrives.
        """
        if self.done or self._sending:
            return
        self._sending = True
        while True:
            if self.pending is None:
                self.pending = self._next_chunk()
            self._inside_send = True
            self._outcome: Any = _NOT_YET
            self.request.factory.outbox.send(self.channel, self.pending, self._sent, self)
            self._inside_send = False
            if self._outcome is _NOT_YET:
                return  # `_sent` goes on
            if not self._advance(self._outcome):  # an error or None by now
                break
        self._sending = False

    def _sent(self, channel: str, message: dict, error: BaseException | None) -> None:
        if self._inside_send:
            self._outcome = error
            return
        self._sending = False
        if self.done or message is not self.pending:
            return  # stopped meanwhile (timeout, client gone)
        if self._advance(error):
            self.pump()

    def _advance(self, error: BaseException | None) -> bool:
        """Account for the last chunk's outcome; True when the next one goes now."""
        if self.done:
            return False
        if error is not None:
            if isinstance(error, (self.layer.ChannelFull, OutboxFull)) or is_unavailable(
                self.layer, error
            ):
                # A full channel, or the layer not answering: retry from a timer
                # until the request's HTTP timeout stops the pump.
                self.backoff.later(self.pump)
                return False
            if isinstance(error, self.layer.MessageTooLarge):
                self.request.factory.metrics.dropped(self.channel, "too_large")
            # Too large, or a bug: retrying would not help. The consumer's wait for the
            # next chunk ends at its own timeout; the request's answer is the
            # application's (or daphne's HTTP timeout).
            logger.error(
                "Sending a request body chunk to %s failed; the rest of the body is dropped",
                self.channel,
                exc_info=error,
            )
            self.stop()
            return False
        self.backoff.reset()
        assert self.pending is not None  # the chunk whose outcome this is
        more = self.pending["more_content"]
        self.pending = None
        if not more:
            self.done = True
        return more

    def _next_chunk(self) -> dict:
        content = self.request.content
        data = content.read(BODY_CHUNK_SIZE)
        more = bool(content.read(1))
        if more:
            content.seek(-1, 1)
        return {"content": data, "more_content": more}

    def stop(self) -> None:
        self.done = True
        self.backoff.cancel()

    def client_gone(self) -> None:
        """The client left mid-body: tell the consumer once, best effort (C-35)."""
        if self.done:
            return
        self.stop()
        send_best_effort(
            self.request.factory.outbox,
            self.channel,
            {"closed": True},
            "dropped a client-gone chunk",
            full_channels,
        )
