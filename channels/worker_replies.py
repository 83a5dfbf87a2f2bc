"""Carrying a consumer's replies with the worker's next receive (C-19, issue 9).

On a layer with ``send_many`` (Redis) the worker does not flush what a consumer queued at
``consumer_finished``: the receive loop sends it with its next receive, in one layer
call (`ReplyCarrier.send_then_receive`). Everywhere else, and whenever the batch cannot
go that way, the replies are sent one at a time as the flush always did (`send`).
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any

from .layers.base import ReceiveFailed
from .pending import Entry, pending_message_store
from .retry import layer_out_of_memory
from .utils import name_that_thing

if TYPE_CHECKING:
    from .worker import Worker

__all__ = ["ReplyCarrier"]

logger = logging.getLogger("django.channels")


class ReplyCarrier:
    """Sends the replies a `Worker`'s last consumer queued (C-19).

    It reads the worker's layer and metrics when it sends (``runworker --metrics-port``
    assigns ``worker.metrics`` after construction). On a layer that offers a
    ``lookahead`` (Redis, issue 20) the worker may hold its next message while the
    replies of the last one travel; `holding` says so, and `finish` settles and puts
    back what is left when the loop ends.
    """

    __slots__ = ("worker", "quick", "_layer", "_lookahead", "_unsettled")

    def __init__(self, worker: Worker) -> None:
        self.worker = worker
        # Whether the last message was handled quickly (set by the receive loop): only
        # then may the layer hold a second message (`asgi_redis.lookahead`).
        self.quick = False
        self._layer: Any = None
        self._lookahead: Any = None
        # The consumer and replies whose sends went out without their outcomes.
        self._unsettled: tuple[Any, list[Entry]] | None = None

    @property
    def holding(self) -> bool:
        """Whether a message is held or replies are still travelling."""
        lookahead = self._lookahead
        return lookahead is not None and lookahead.holding

    def send_then_receive(
        self, replies: tuple[Any, list[Entry]], channels: list[str]
    ) -> tuple[str | None, dict | None]:
        """Send the last consumer's replies and look for the next message in one layer
        call (one Redis round trip), non-blocking: a worker under load finds its next
        message there; an idle one then blocks in a plain receive, where a shutdown
        signal can end it at once.

        C-19 as users see it: every reply is sent before the next message is handled;
        a full one is retried (retry_time / retry_interval) and a failure logged as
        the consumer's error, as when `consumer_finished` flushed them. A reply queued
        with its own retry policy (a view's last response message, C-40) is retried
        with that one. With a lookahead, replies sent behind a held message are
        settled at the next call, before anything else is sent.
        """
        consumer, queued = replies
        worker = self.worker
        layer = worker.channel_layer
        lookahead = self._lookahead_of(layer)
        try:
            if lookahead is not None:
                self._collect(lookahead)
            batchable = pending_message_store.batchable
            pairs = []
            for sender, message, _ in queued:
                if not batchable(sender, layer):
                    # Groups, other layers, Channel subclasses: the flush as it always was.
                    self.send(consumer, queued)
                    return self._held(lookahead)
                pairs.append((sender.name, message))
            try:
                if lookahead is not None:
                    outcomes, received = lookahead.send_then_take(pairs, channels, self.quick)
                else:
                    outcomes, received = layer.send_many_then_receive(pairs, channels, block=False)
            except ReceiveFailed as failed:
                self.settle(consumer, queued, failed.outcomes)
                raise failed.error from None  # the receive's outage (L-62)
            except (TypeError, AssertionError, layer.MessageTooLarge):
                # A reply the layer refuses (or a bad channel name, which the plain
                # receive then raises): nothing was sent; one at a time, as before.
                self.send(consumer, queued)
                return self._held(lookahead)
            except Exception as error:
                if not layer_out_of_memory(error):
                    raise
                # Issue 15: the sends were refused for memory before anything was
                # received; each one's outcome, so a view's reply waits it out (C-40).
                self.settle(consumer, queued, [error] * len(queued))
                return self._held(lookahead)
            if outcomes is None:
                self._unsettled = (consumer, queued)  # settled by the next call
            elif any(outcomes):  # an outcome is None or the send's error
                self.settle(consumer, queued, outcomes)
            return received
        finally:
            # The replies are out (or travel behind a held message, which keeps the
            # worker busy): a shutdown signal may now end an idle worker at once.
            worker.in_job = self.holding

    def finish(self, replies: tuple[Any, list[Entry]] | None) -> None:
        """The receive loop ends: settle the replies still travelling, send the last
        consumer's, and put a held message back at the head of its list."""
        lookahead = self._lookahead
        try:
            if lookahead is not None:
                self._collect(lookahead)
            if replies is not None:
                self.send(*replies)
        finally:
            if lookahead is not None:
                lookahead.put_back()

    def _lookahead_of(self, layer: Any) -> Any:
        if layer is not self._layer:
            self._layer = layer
            make = getattr(layer, "lookahead", None)
            self._lookahead = make() if make is not None else None
        return self._lookahead

    def _collect(self, lookahead: Any) -> None:
        """Settle the replies sent behind the held message (C-19: before any other send)."""
        unsettled, self._unsettled = self._unsettled, None
        try:
            outcomes = lookahead.collect()
        except ReceiveFailed as failed:
            # The connection failed under them: each one's outcome is the error
            # (logged); the next send meets the outage, or finds Redis back.
            outcomes = failed.outcomes
        if unsettled is not None and outcomes is not None:
            self.settle(*unsettled, outcomes)

    @staticmethod
    def _held(lookahead: Any) -> tuple[str | None, dict | None]:
        return lookahead.take_held() if lookahead is not None else (None, None)

    def settle(self, consumer: Any, queued: list[Entry], outcomes: list[Exception | None]) -> None:
        """Retry or report each reply by its send's outcome."""
        try:
            pending_message_store.settle(queued, outcomes)
        except Exception:  # logged as when consumer_finished flushed the replies
            self.worker.metrics.layer_error("send")
            logger.exception(
                "Error processing message with consumer %s:", name_that_thing(consumer)
            )

    def send(self, consumer: Any, queued: list[Entry]) -> None:
        """Send the replies one at a time, as `consumer_finished`'s flush does."""
        try:
            pending_message_store.send_all(queued)
        except Exception:
            self.worker.metrics.layer_error("send")
            logger.exception(
                "Error processing message with consumer %s:", name_that_thing(consumer)
            )
