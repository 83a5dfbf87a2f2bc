"""The worker's Prometheus metrics: one registry per process, one method per event (issue 18).

`WorkerMetrics` owns a private `CollectorRegistry` with the ``channels_worker_``
families; the worker calls its methods. With metrics off a worker holds
`NULL_WORKER_METRICS`, whose methods do nothing, so no call site branches. All
threads of a ``runworker --threads N`` share one instance, served by one endpoint
(`channels.metrics_http`); each thread's `Worker` records into a `WorkerRecorder` of
its own, plain Python counters with one writer (`channels.metrics_cells`), which the
collector sums at scrape time: per message no lock and no prometheus_client call, and
no count lost between threads.

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
import threading
from bisect import bisect_left
from typing import Any

from prometheus_client import CollectorRegistry

from .layers.families import FamilyCap, channel_family
from .metrics_cells import Cell, MetricSet, UnknownLabel
from .utils import name_that_thing

__all__ = [
    "CONSUME_OUTCOMES",
    "LAYER_OPERATIONS",
    "NULL_WORKER_METRICS",
    "NullWorkerMetrics",
    "UnknownLabel",
    "WorkerMetrics",
    "WorkerRecorder",
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


class WorkerMetrics:
    """The ``channels_worker_`` families on a registry of their own (issue 18).

    Each `Worker` records into a `WorkerRecorder` of its own (`recorder`), which the
    registry's collector sums at scrape time. The methods here are for everything
    else (a receive or send the layer failed, tests): thread-safe, under a lock.
    """

    enabled = True

    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry if registry is not None else CollectorRegistry()
        families = self.families = MetricSet()
        self._consumed = families.counter(
            "channels_worker_messages_consumed",
            "Messages handled, by channel family and outcome.",
            ["channel", "outcome"],
        )
        self._consumer_seconds = families.histogram(
            "channels_worker_consumer_seconds",
            "Seconds a consumer ran, by consumer.",
            CONSUMER_BUCKETS,
            ["consumer"],
        )
        self._layer_errors = families.counter(
            "channels_worker_layer_errors",
            "Channel layer calls that failed (backend unavailable), by operation.",
            ["operation"],
            LAYER_OPERATIONS,
        )
        self._in_flight = families.gauge(
            "channels_worker_in_flight", "Messages being handled right now."
        )
        self._redeliveries = families.counter(
            "channels_worker_redeliveries",
            "Messages delivered again after a worker failed to acknowledge them.",
            ["channel"],
        )
        self._dead_letters = families.counter(
            "channels_worker_dead_letters",
            "Messages moved to the dead-letter list after their last delivery.",
            ["channel"],
        )
        self.registry.register(families)
        # Channel families and consumer names, capped, shared by every recorder.
        self._family = FamilyCap()
        self._consumer = FamilyCap()
        self._lock = threading.Lock()
        self._own = self.recorder()

    def recorder(self) -> WorkerRecorder:
        """Plain counters for ONE thread, summed with the others' at scrape time."""
        return WorkerRecorder(self)

    # The same events for callers without a recorder of their own: one lock each.

    def started(self) -> None:
        with self._lock:
            self._own.started()

    def finished(self, channel: str, outcome: str, consumer: Any, seconds: float) -> None:
        with self._lock:
            self._own.finished(channel, outcome, consumer, seconds)

    def consumed(self, channel: str, outcome: str) -> None:
        with self._lock:
            self._own.consumed(channel, outcome)

    def layer_error(self, operation: str) -> None:
        with self._lock:
            self._own.layer_error(operation)

    def redelivered(self, channel: str) -> None:
        with self._lock:
            self._own.redelivered(channel)

    def dead_lettered(self, channel: str) -> None:
        with self._lock:
            self._own.dead_lettered(channel)


class WorkerRecorder:
    """One thread's counters for a `WorkerMetrics`: plain cells with one writer.

    A `Worker` takes one when its metrics are set and calls it per message: no lock,
    and a count is never lost to another thread's ``+=`` (each thread has its own).
    """

    enabled = True

    def __init__(self, metrics: WorkerMetrics) -> None:
        self._metrics = metrics
        self._cells = cells = metrics.families.cells()
        self._busy = cells.child(metrics._in_flight)
        self._layer_errors = cells.fixed(metrics._layer_errors, LAYER_OPERATIONS)
        # The cells by the worker's own arguments, so a message skips naming the
        # channel family and the consumer (issue 18): (channel, outcome) -> counter
        # cell, consumer -> histogram cell. Bounded: cleared when full.
        self._consumed_by_channel: dict[tuple[str, str], Cell] = {}
        self._durations_by_consumer: dict[Any, Cell] = {}

    def recorder(self) -> WorkerRecorder:
        return self

    def started(self) -> None:
        """A message is about to be routed and handled."""
        self._busy[0] += 1

    def finished(self, channel: str, outcome: str, consumer: Any, seconds: float) -> None:
        """The message `started` announced is done: counted, and its consumer timed.

        `consumer` is the consumer callable (named once by `consumer_name`) or its
        name; None when no consumer ran (``no_route``).
        """
        busy = self._busy
        if busy[0]:
            busy[0] -= 1
        cell = self._consumed_by_channel.get((channel, outcome))
        if cell is None:
            self.consumed(channel, outcome)  # names the family once, then remembers
        else:
            cell[0] += 1
        if consumer is not None:
            try:
                cell = self._durations_by_consumer.get(consumer)
            except TypeError:  # an unhashable consumer object
                cell = self._duration_cell(consumer)
            else:
                if cell is None:
                    cell = self._duration_cell(consumer)
                    remembered = self._durations_by_consumer
                    if len(remembered) >= _REMEMBERED:
                        remembered.clear()
                    remembered[consumer] = cell
            cell[bisect_left(CONSUMER_BUCKETS, seconds)] += 1
            cell[-1] += seconds

    def _duration_cell(self, consumer: Any) -> Cell:
        metrics = self._metrics
        name = metrics._consumer(consumer if type(consumer) is str else consumer_name(consumer))
        return self._cells.child(metrics._consumer_seconds, (name,))

    def consumed(self, channel: str, outcome: str) -> None:
        remembered = self._consumed_by_channel
        cell = remembered.get((channel, outcome))
        if cell is None:
            if outcome not in CONSUME_OUTCOMES:
                raise UnknownLabel(f"outcome {outcome!r} is not one of {CONSUME_OUTCOMES}")
            metrics = self._metrics
            key = (metrics._family(channel_family(channel)), outcome)
            cell = self._cells.child(metrics._consumed, key)
            if len(remembered) >= _REMEMBERED:
                remembered.clear()  # many distinct names (reply channels): start over
            remembered[(channel, outcome)] = cell
        cell[0] += 1

    def layer_error(self, operation: str) -> None:
        try:
            self._layer_errors[operation][0] += 1
        except KeyError:
            raise UnknownLabel(
                f"operation {operation!r} is not one of {LAYER_OPERATIONS}"
            ) from None

    def redelivered(self, channel: str) -> None:
        metrics = self._metrics
        family = metrics._family(channel_family(channel))
        self._cells.child(metrics._redeliveries, (family,))[0] += 1

    def dead_lettered(self, channel: str) -> None:
        metrics = self._metrics
        family = metrics._family(channel_family(channel))
        self._cells.child(metrics._dead_letters, (family,))[0] += 1


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

    def recorder(self) -> NullWorkerMetrics:
        return self

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
