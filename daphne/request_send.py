"""Sending a request's ``http.request`` and acting on the outcome (D-27, D-31, D-63, A-76).

`RequestSending`, a mixin for `web_request.WebRequest`, builds the message (the first
body chunk in it, the rest on a body channel, D-63), sends it through the factory's
outbox and handles the outcome: a full channel is retried for up to
``http_queue_timeout`` (`QueueWait`, issue 17 item 3) and then answered 503, an
unreachable layer 503 with Retry-After (issue 14), anything else 500 (D-27).
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any

from .error_page import LAYER_UNREACHABLE, PROCESSING_ERROR, QUEUE_FULL
from .layer_api import is_unavailable
from .outbox import OutboxFull
from .request_body import BODY_CHUNK_SIZE, BodyPump
from .retry import ReactorBackoff

__all__ = ["RETRY_AFTER", "SENDING", "QueueWait", "RequestSending"]

# The logger 1.4 used for requests: `channels.log.setup_logger` configures it (C-76).
logger = logging.getLogger("daphne.http_protocol")

# Retry-After (seconds) on a 503 for an unreachable layer or a stopping server.
RETRY_AFTER = 5
# LayerHealth activity of the request sends.
SENDING = "sending http.request"


class RequestSending:
    """Mixin for `WebRequest`: its ``http.request`` send and the send's outcome."""

    if TYPE_CHECKING:
        factory: Any
        content: Any
        method: bytes
        uri: bytes
        clientproto: bytes
        requestHeaders: Any
        client_scheme: str
        client_addr: list | None
        server_addr: list | None
        reply_channel: str | None
        _exchange: Any
        _disconnected: bool
        _body_pump: BodyPump | None
        _queue_wait: QueueWait | None
        _timed: bool
        basic_error: Any
        waiting_for_response: Any

    def _send_request(self) -> None:
        factory = self.factory
        content = self.content
        body = content.read(BODY_CHUNK_SIZE)
        message = self._exchange.request_message(
            self.method,
            self.uri,
            self.clientproto,
            self.requestHeaders,
            factory.config.root_path,
            self.client_scheme,
            self.client_addr,
            self.server_addr,
            body,
        )
        if content.read(1):
            # D-63: the rest of a large body follows on a single-reader channel.
            content.seek(len(body))
            message["body_channel"] = factory.outbox.new_channel("http.request.body?")
        factory.outbox.send("http.request", message, self._request_sent)

    def _request_sent(self, channel: str, message: dict, error: BaseException | None) -> None:
        """The outcome of the ``http.request`` send (at once, or from the outbox's flush)."""
        if error is None:
            if self.factory.layer_health.down:
                self.factory.layer_health.ok(SENDING)
            # Issue 15 item 6: answered at once if it expires unread in the layer
            # (unless already answered or gone: then nothing would cancel the watch).
            if self._timed:
                self.factory.expired_requests.watch(self, self.factory.reactor.seconds())
            body_channel = message.get("body_channel")
            if body_channel is not None:
                self._body_pump = BodyPump(self, body_channel)
                if self._disconnected:
                    # Gone before the request was even stored: the consumer still waits
                    # for the body, so tell it (C-35).
                    self._body_pump.client_gone()
                else:
                    self._body_pump.pump()
            return
        if isinstance(error, (self.factory.channel_layer.ChannelFull, OutboxFull)):
            if self._wait_for_room(message):
                return
            # D-31, A-76, after `http_queue_timeout` (issue 17): Retry-After tells
            # clients and proxies when to come back. Counted in the metrics (issue 18).
            self.factory.http_reporter.full("http.request", "answered 503")
            self.factory.metrics.backpressure("http_503")
            self.basic_error(*QUEUE_FULL, close_connection=True, retry_after=RETRY_AFTER)
            return
        if not self._exchange.unanswered:
            return
        layer = self.factory.channel_layer
        if not is_unavailable(layer, error):
            # D-27: MessageTooLarge, as when `process` raised it; any other error the
            # layer contract does not name is a bug (issue 16 item 2).
            if isinstance(error, layer.MessageTooLarge):
                self.factory.metrics.dropped("http.request", "too_large")
            logger.error("HTTP processing error for %s", self.reply_channel, exc_info=error)
            self.basic_error(*PROCESSING_ERROR)
            return
        # The layer's backend is unreachable (Redis down): 503 with Retry-After is what
        # proxies and clients act on, 500 was not (issue 14). Logged once per outage.
        self.factory.http_reporter.failed("http.request", "answered 503", error)
        self.basic_error(*LAYER_UNREACHABLE, retry_after=RETRY_AFTER)

    def _wait_for_room(self, message: dict) -> bool:
        """No room for ``http.request``: True while the request waits (`QueueWait`)."""
        if not self._exchange.unanswered or self._disconnected:
            return True  # answered (a stop's 503) or gone: nothing left to do
        if self._queue_wait is None:
            self._queue_wait = QueueWait(self)
        return self._queue_wait.retry(message)


class QueueWait:
    """Retries of one request's ``http.request`` while the layer has no room for it.

    Issue 17 item 3: a full channel (or outbox) usually frees up within milliseconds, so
    the message is sent again with a growing delay (`retry.ReactorBackoff`, from a reactor
    timer, never blocking it) for up to ``http_queue_timeout`` seconds (at most
    ``http_timeout``), after which `retry` says the 503 is due. A request answered or gone
    meanwhile sends nothing more.
    """

    __slots__ = ("request", "backoff")

    def __init__(self, request: RequestSending) -> None:
        self.request = request
        config = request.factory.config
        limit = min(config.http_queue_timeout, config.http_timeout)
        self.backoff = ReactorBackoff(request.factory.reactor, give_up_after=limit)

    def retry(self, message: dict) -> bool:
        """Send `message` again later: False when the time is up (the 503 is due)."""
        backoff = self.backoff
        if backoff.expired() or backoff.deadline is None:
            return False
        remaining = backoff.deadline - backoff.clock.seconds()
        backoff.later(self._send_again, message, at_most=remaining)
        return True

    def _send_again(self, message: dict) -> None:
        request = self.request
        if request.waiting_for_response() and not request._disconnected:
            request.factory.outbox.send("http.request", message, request._request_sent)

    def cancel(self) -> None:
        self.backoff.cancel()
