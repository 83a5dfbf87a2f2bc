"""What becomes of a message once the worker handled it, or chose not to.

An at-least-once message (issue 17) is acknowledged, or delivered again after a back-off
when its consumer raised, or handed back untouched when the worker stops before starting
it. A consumer raising ``ConsumeLater`` puts its message back on its channel (C-32).
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

from .channel import Channel
from .layers.base import DELIVERY_KEY
from .message import Message
from .retry import send_retrying

if TYPE_CHECKING:
    from .worker import Worker

__all__ = ["Deliveries"]

logger = logging.getLogger("django.channels")


class Deliveries:
    """Settles a `Worker`'s messages with its layer.

    The back-off and retry figures are read from the worker when used: they are class
    attributes a subclass or a test may set on the worker.
    """

    __slots__ = ("worker",)

    def __init__(self, worker: Worker) -> None:
        self.worker = worker

    def settle(self, channel: str, message: Message, failed: bool, later: bool) -> None:
        """Acknowledge `message` or, when its consumer raised, have it delivered again.

        With `later` (the receive loop runs), a layer that can send the ack with the
        next receive (Redis' ``ack_later``) does so.
        """
        worker = self.worker
        layer = worker.channel_layer
        try:
            if failed:
                delay = min(
                    worker.redelivery_delay_cap,
                    worker.redelivery_delay_first * 2 ** (message.delivery_count - 1),
                )
                layer.nack(channel, message.delivery_id, delay)
            else:
                ack = getattr(layer, "ack_later", None) if later else None
                (ack or layer.ack)(channel, message.delivery_id)
        except Exception as error:  # the lease then ends by itself: delivered again
            logger.warning(
                "Could not %s message on %s (%s); it will be delivered again",
                "nack" if failed else "acknowledge",
                channel,
                error,
            )

    def hand_back(self, channel: str, content: dict) -> None:
        """Release a message received while stopping, so another worker takes it now."""
        try:
            self.worker.channel_layer.release(channel, content[DELIVERY_KEY]["id"])
        except Exception as error:
            logger.warning(
                "Could not hand back message on %s (%s); it will be delivered again "
                "after the ack timeout",
                channel,
                error,
            )

    def flush_acks(self) -> None:
        """Send the acks a layer holds for the next receive: the loop has ended."""
        flush = getattr(self.worker.channel_layer, "flush_acks", None)
        if flush is None:
            return
        try:
            flush()
        except Exception as error:  # the leases end by themselves: delivered again
            logger.warning("Could not acknowledge the last messages (%s)", error)

    def requeue(self, message: Message) -> None:
        """Put the message back on its channel, up to `message_retries` times (C-32)."""
        worker = self.worker
        content = message.content
        content["__retries__"] = content.get("__retries__", 0) + 1
        channel = message.channel.name
        if content["__retries__"] > worker.message_retries:
            logger.warning(
                "Exceeded number of retries for message on channel %s: %s",
                channel,
                repr(content)[:100],
            )
            return
        refused = send_retrying(
            Channel(channel, channel_layer=worker.channel_layer),
            content,
            tries=worker.requeue_tries,
            cap=worker.requeue_retry_cap,
        )
        if refused is not None:
            logger.warning(
                "Could not requeue message on channel %s after %d tries: the channel "
                "stayed full; message dropped",
                channel,
                worker.requeue_tries,
            )
