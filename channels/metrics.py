"""The worker's Prometheus metrics: one registry per process, one method per event (issue 18).

`WorkerMetrics` owns a private `CollectorRegistry` with the ``channels_worker_``
families; the worker calls its methods. With metrics off a worker holds
`NULL_WORKER_METRICS`, whose methods do nothing, so no call site branches. All
threads of a ``runworker --threads N`` share one instance (prometheus_client's
metrics are thread-safe), served by one endpoint (`channels.metrics_http`).

Families (``_total`` is added to counters by the exposition):

- ``channels_worker_messages_consumed_total{channel, outcome}``: channel family
  (`channels.layers.families`) and ``ok``, ``exception``, ``no_route``, ``consume_later``.
- ``channels_worker_consumer_seconds{consumer}``: histogram of a consumer's run time,
  by its dotted path (`channels.utils.name_that_thing`).
- ``channels_worker_layer_errors_total{operation}``: ``receive``, ``send`` (a reply or a
  requeue the layer failed to take; a full channel is not an error here).
- ``channels_worker_in_flight``: messages being handled right now.
- ``channels_worker_redeliveries_total{channel}`` and
  ``channels_worker_dead_letters_total{channel}``: for at-least-once delivery; zero until then.

Channel and consumer labels come from the routing, so they are few; `FamilyCap`
folds anything past 200 distinct values into ``other`` all the same.
"""

from __future__ import annotations

import functools
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

from .layers.families import FamilyCap, channel_family
from .utils import name_that_thing

__all__ = [
    "CONSUME_OUTCOMES",
    "LAYER_OPERATIONS",
    "NULL_WORKER_METRICS",
    "NullWorkerMetrics",
    "UnknownLabel",
    "WorkerMetrics",
    "consumer_name",
]

CONSUME_OUTCOMES = ("ok", "exception", "no_route", "consume_later")
LAYER_OPERATIONS = ("receive", "send")

# A consumer from a fast cache lookup (~1 ms) to a slow view (30 s).
CONSUMER_BUCKETS = (
    0.0005,
    0.001,
    0.0025,
    0.005,
    0.01,
    0.025,
    0.05,
    0.1,
    0.25,
    0.5,
    1.0,
    2.5,
    5.0,
    10.0,
    30.0,
)


# Entries of the per-argument caches of `WorkerMetrics` before they start over.
_REMEMBERED = 1000


class UnknownLabel(ValueError):
    """A call site passed an outcome or operation outside the fixed lists above."""


class WorkerMetrics:
    """The ``channels_worker_`` families on a registry of their own (issue 18)."""

    enabled = True

    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry if registry is not None else CollectorRegistry()
        r = self.registry
        self.messages_consumed = Counter(
            "channels_worker_messages_consumed",
            "Messages handled, by channel family and outcome.",
            ["channel", "outcome"],
            registry=r,
        )
        self.consumer_seconds = Histogram(
            "channels_worker_consumer_seconds",
            "Seconds a consumer ran, by consumer.",
            ["consumer"],
            buckets=CONSUMER_BUCKETS,
            registry=r,
        )
        self.layer_errors = Counter(
            "channels_worker_layer_errors",
            "Channel layer calls that failed (backend unavailable), by operation.",
            ["operation"],
            registry=r,
        )
        self.in_flight = Gauge(
            "channels_worker_in_flight", "Messages being handled right now.", registry=r
        )
        self.redeliveries = Counter(
            "channels_worker_redeliveries",
            "Messages delivered again after a worker failed to acknowledge them.",
            ["channel"],
            registry=r,
        )
        self.dead_letters = Counter(
            "channels_worker_dead_letters",
            "Messages moved to the dead-letter list after their last delivery.",
            ["channel"],
            registry=r,
        )
        self._layer_errors = {op: self.layer_errors.labels(op) for op in LAYER_OPERATIONS}
        self._consumed: dict[tuple[str, str], Any] = {}
        self._durations: dict[str, Any] = {}
        self._family = FamilyCap()
        self._consumer = FamilyCap()
        # Per message only a list append and pop (atomic under the GIL, so threads
        # share it): the gauge reads its length at scrape time. Gauge.inc and dec took
        # a lock and four Python calls each (issue 18).
        self._busy: list[None] = []
        self.in_flight.set_function(self._busy.__len__)
        # The children by the worker's own arguments, so a message skips naming the
        # channel family and the consumer (issue 18): (channel, outcome) -> counter
        # child, consumer -> histogram child. Bounded: cleared when full.
        self._consumed_by_channel: dict[tuple[str, str], Any] = {}
        self._durations_by_consumer: dict[Any, Any] = {}

    def started(self) -> None:
        """A message is about to be routed and handled."""
        self._busy.append(None)

    def finished(self, channel: str, outcome: str, consumer: Any, seconds: float) -> None:
        """The message `started` announced is done: counted, and its consumer timed.

        `consumer` is the consumer callable (named once by `consumer_name`) or its
        name; None when no consumer ran (``no_route``).
        """
        busy = self._busy
        if busy:
            busy.pop()
        child = self._consumed_by_channel.get((channel, outcome))
        if child is None:
            self.consumed(channel, outcome)  # names the family once, then remembers
        else:
            child.inc()
        if consumer is not None:
            try:
                child = self._durations_by_consumer.get(consumer)
            except TypeError:  # an unhashable consumer object
                child = self._duration_child(consumer)
            else:
                if child is None:
                    child = self._duration_child(consumer)
                    remembered = self._durations_by_consumer
                    if len(remembered) >= _REMEMBERED:
                        remembered.clear()
                    remembered[consumer] = child
            child.observe(seconds)

    def _duration_child(self, consumer: Any) -> Any:
        name = self._consumer(consumer if type(consumer) is str else consumer_name(consumer))
        child = self._durations.get(name)
        if child is None:
            child = self._durations[name] = self.consumer_seconds.labels(name)
        return child

    def consumed(self, channel: str, outcome: str) -> None:
        remembered = self._consumed_by_channel
        child = remembered.get((channel, outcome))
        if child is None:
            key = (self._family(channel_family(channel)), outcome)
            child = self._consumed.get(key)
            if child is None:
                if outcome not in CONSUME_OUTCOMES:
                    raise UnknownLabel(f"outcome {outcome!r} is not one of {CONSUME_OUTCOMES}")
                child = self._consumed[key] = self.messages_consumed.labels(*key)
            if len(remembered) >= _REMEMBERED:
                remembered.clear()  # many distinct names (reply channels): start over
            remembered[(channel, outcome)] = child
        child.inc()

    def layer_error(self, operation: str) -> None:
        try:
            self._layer_errors[operation].inc()
        except KeyError:
            raise UnknownLabel(
                f"operation {operation!r} is not one of {LAYER_OPERATIONS}"
            ) from None

    def redelivered(self, channel: str) -> None:
        self.redeliveries.labels(self._family(channel_family(channel))).inc()

    def dead_lettered(self, channel: str) -> None:
        self.dead_letters.labels(self._family(channel_family(channel))).inc()


def consumer_name(consumer: Any) -> str:
    """The dotted path of `consumer` (`channels.utils.name_that_thing`), remembered per
    consumer object: routes hold the same callables for the process's life."""
    try:
        return _consumer_name(consumer)
    except TypeError:  # an unhashable consumer object
        return name_that_thing(consumer)


@functools.lru_cache(maxsize=1024)
def _consumer_name(consumer: Any) -> str:
    return name_that_thing(consumer)


class NullWorkerMetrics:
    """`WorkerMetrics`' interface doing nothing: what a worker holds with metrics off."""

    enabled = False
    registry = None

    def started(self) -> None:
        pass

    def finished(self, channel: str, outcome: str, consumer: Any, seconds: float) -> None:
        pass

    def consumed(self, channel: str, outcome: str) -> None:
        pass

    def layer_error(self, operation: str) -> None:
        pass

    def redelivered(self, channel: str) -> None:
        pass

    def dead_lettered(self, channel: str) -> None:
        pass


NULL_WORKER_METRICS = NullWorkerMetrics()
"""One shared `NullWorkerMetrics`: it holds no state."""
