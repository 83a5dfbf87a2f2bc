"""A worker's receive that fails (L-62): counted, logged once per outage, retried.

The worker never stops receiving: a layer whose backend is away (its ``Unavailable``)
is waited out with a growing delay, logged at ERROR once when the outage starts and at
INFO when it ends (once per process, see `LayerHealth`); anything else the layer raises
is a bug in it, logged with its traceback each time, and waited out too.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

from .log import LayerHealth, describe_layer
from .retry import Backoff

if TYPE_CHECKING:
    from .worker import Worker

__all__ = ["ReceiveOutage"]

logger = logging.getLogger("django.channels")


class ReceiveOutage:
    """The state of one receive loop's failures; each failure returns the delay to wait.

    The delays are the worker's ``receive_retry_first`` / ``receive_retry_cap`` when
    the loop starts; the metrics are read from the worker when a failure is counted.
    """

    __slots__ = ("worker", "backoff", "health", "failing")

    def __init__(self, worker: Worker) -> None:
        self.worker = worker
        self.backoff = Backoff(worker.receive_retry_first, worker.receive_retry_cap)
        self.health = LayerHealth.of(worker.channel_layer)
        # Whether the last receive met the layer's outage error (reset by `recovered`).
        self.failing = False

    def unavailable(self, error: BaseException) -> float:
        """The backend is away (L-62); logged when the outage starts."""
        worker = self.worker
        worker.metrics.layer_error("receive")
        if not self.failing and self.health.failed():
            logger.error(
                "Cannot receive from channel layer %s (%s); retrying until it answers",
                describe_layer(worker.channel_layer),
                error,
            )
        self.failing = True
        return self.backoff.next()

    def crashed(self) -> float:
        """The layer raised something else: logged with its traceback (call it from the
        ``except`` clause)."""
        worker = self.worker
        worker.metrics.layer_error("receive")
        logger.exception(
            "Receiving from channel layer %s failed", describe_layer(worker.channel_layer)
        )
        return self.backoff.next()

    def recovered(self) -> None:
        """A receive worked after an outage."""
        if self.health.recovered():
            logger.info(
                "Receiving from channel layer %s works again",
                describe_layer(self.worker.channel_layer),
            )
        self.failing = False
        self.backoff.reset()
