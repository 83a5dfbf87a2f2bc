"""Request bodies over 1 MiB travel as Request Body Chunks on `body_channel` (D-63, A-78)."""

from __future__ import annotations

import logging
from typing import Any

from .full_channels import FullChannelReporter, send_best_effort

__all__ = ["BODY_CHUNK_SIZE", "BodyPump"]

logger = logging.getLogger("daphne.http_protocol")
full_channels = FullChannelReporter(logger)

# D-63: bodies up to this size travel whole in `body`; larger ones use `body_channel`.
BODY_CHUNK_SIZE = 1024 * 1024

# retries after ChannelFull start at ~1 ms, double, and stop growing at 1.x's 50 ms.
RETRY_FIRST_DELAY = 0.001
RETRY_MAX_DELAY = 0.05


class BodyPump:
    """Sends the rest of a large request body as Request Body Chunks (D-63, A-78).

    Each chunk is read from Twisted's request buffer (a temporary file for large
    bodies) only when the previous one was accepted, so memory stays bounded; a
    full channel is retried from a reactor timer with a growing backoff (A-89).
    """

    def __init__(self, request: Any, channel: str) -> None:
        self.request = request
        self.channel = channel
        self.layer = request.factory.channel_layer
        self.reactor = request.factory.reactor
        self.delay = RETRY_FIRST_DELAY
        self.pending: dict | None = None
        self.call = None
        self.done = False

    def pump(self) -> None:
        self.call = None
        while not self.done:
            if self.pending is None:
                self.pending = self._next_chunk()
            try:
                self.layer.send(self.channel, self.pending)
            except self.layer.ChannelFull:
                self.call = self.reactor.callLater(self.delay, self.pump)
                self.delay = min(self.delay * 2, RETRY_MAX_DELAY)
                return
            self.delay = RETRY_FIRST_DELAY
            if not self.pending["more_content"]:
                self.done = True
            self.pending = None

    def _next_chunk(self) -> dict:
        content = self.request.content
        data = content.read(BODY_CHUNK_SIZE)
        more = bool(content.read(1))
        if more:
            content.seek(-1, 1)
        return {"content": data, "more_content": more}

    def stop(self) -> None:
        self.done = True
        if self.call is not None and self.call.active():
            self.call.cancel()
        self.call = None

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
