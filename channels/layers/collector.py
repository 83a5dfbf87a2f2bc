"""The channel layer as Prometheus metrics, read at scrape time (issue 18).

`LayerCollector` is a custom collector: it holds no metrics of its own but
takes a `snapshot` of the layer whenever the registry is collected, so the
figures cost nothing between scrapes. Register it with the registry of the
process that serves metrics (daphne's or the worker's)::

    registry.register(LayerCollector(channel_layer, alias="default"))

Families (label ``layer`` is the alias):

- ``channels_layer_up``: 1 when the last read worked, else 0 (the layer is away);
- ``channels_layer_queue_depth{channel}`` and
  ``channels_layer_oldest_message_age_seconds{channel}``: per channel family;
- ``channels_layer_groups``, ``channels_layer_group_size_max``: from the bounded sample;
- ``channels_layer_dropped_total{reason}``: the layer's own drop counters;
- ``channels_layer_dead_letters{channel}``: dead letters kept, per family (issue 17);
- ``channels_layer_read_truncated``: 1 when a bounded read stopped early;
- ``channels_layer_read_seconds``: what the read cost.

Family labels are capped (`MAX_FAMILIES` deepest, the rest summed as ``other``);
a read is reused for `min_interval` seconds so several scrapers do not multiply
the load on the layer.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Iterator
from typing import Any

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
from prometheus_client.registry import Collector

from .families import OTHER_FAMILY
from .inspect import FamilyStats, LayerSnapshot, snapshot

__all__ = ["MAX_FAMILIES", "LayerCollector"]

logger = logging.getLogger("channels.layers")

# Channel families exported one by one; deeper queues first.
MAX_FAMILIES = 50


def _capped(families: dict[str, FamilyStats]) -> list[FamilyStats]:
    ranked = sorted(families.values(), key=lambda stats: (-stats.depth, stats.family))
    kept, rest = ranked[:MAX_FAMILIES], ranked[MAX_FAMILIES:]
    if rest:
        kept.append(
            FamilyStats(
                OTHER_FAMILY,
                sum(stats.depth for stats in rest),
                max(stats.oldest_age for stats in rest),
                sum(stats.channels for stats in rest),
            )
        )
    return kept


class LayerCollector(Collector):
    """Exports `snapshot(layer)` as ``channels_layer_*`` families at collect time."""

    def __init__(self, layer: Any, alias: str = "default", min_interval: float = 1.0) -> None:
        self.layer = layer
        self.alias = alias
        self.min_interval = min_interval
        self._lock = threading.Lock()
        self._last: tuple[float, LayerSnapshot | None, float] | None = None
        self._failing = False

    def read(self) -> tuple[LayerSnapshot | None, float]:
        """The latest snapshot (None when the layer did not answer) and its cost in seconds."""
        with self._lock:
            now = time.monotonic()
            if self._last is not None and now - self._last[0] < self.min_interval:
                return self._last[1], self._last[2]
            try:
                snap: LayerSnapshot | None = snapshot(self.layer)
            except Exception as error:  # any backend failure: the scrape must still answer
                if not self._failing:
                    logger.warning(
                        "Cannot read channel layer %r for metrics: %s", self.alias, error
                    )
                self._failing = True
                snap = None
            else:
                if self._failing:
                    logger.info("Reading channel layer %r for metrics works again", self.alias)
                self._failing = False
            cost = time.monotonic() - now
            self._last = (now, snap, cost)
            return snap, cost

    def describe(self) -> Iterator[Any]:
        # Names only (no read of the layer), so registering checks for duplicates.
        yield from self._families(None)

    def collect(self) -> Iterator[Any]:
        yield from self._families(self.read())

    def _families(self, reading: tuple[LayerSnapshot | None, float] | None) -> Iterator[Any]:
        alias = [self.alias]
        snap, cost = reading if reading is not None else (None, 0.0)
        up = GaugeMetricFamily(
            "channels_layer_up",
            "1 when the channel layer answered the last read.",
            labels=["layer"],
        )
        depth = GaugeMetricFamily(
            "channels_layer_queue_depth",
            "Queue entries waiting, by channel family.",
            labels=["layer", "channel"],
        )
        age = GaugeMetricFamily(
            "channels_layer_oldest_message_age_seconds",
            "Age of the oldest waiting message, by channel family.",
            labels=["layer", "channel"],
        )
        groups = GaugeMetricFamily(
            "channels_layer_groups", "Groups with at least one member.", labels=["layer"]
        )
        largest = GaugeMetricFamily(
            "channels_layer_group_size_max",
            "Members of the largest group (of a bounded sample).",
            labels=["layer"],
        )
        dropped = CounterMetricFamily(
            "channels_layer_dropped",
            "Messages the layer dropped, by reason (its own statistics).",
            labels=["layer", "reason"],
        )
        dead = GaugeMetricFamily(
            "channels_layer_dead_letters",
            "Dead letters kept (at-least-once messages past max_deliveries), by channel family.",
            labels=["layer", "channel"],
        )
        truncated = GaugeMetricFamily(
            "channels_layer_read_truncated",
            "1 when the last read of the layer stopped at its bound.",
            labels=["layer"],
        )
        seconds = GaugeMetricFamily(
            "channels_layer_read_seconds",
            "Seconds the last read of the layer took.",
            labels=["layer"],
        )
        if reading is not None:
            up.add_metric(alias, 1 if snap is not None else 0)
            seconds.add_metric(alias, cost)
        if snap is not None:
            for stats in _capped(snap.families):
                depth.add_metric([self.alias, stats.family], stats.depth)
                age.add_metric([self.alias, stats.family], stats.oldest_age)
            if snap.group_count is not None:
                groups.add_metric(alias, snap.group_count)
            largest.add_metric(alias, max(snap.group_sizes.values(), default=0))
            for reason, count in sorted(snap.drops.items()):
                dropped.add_metric([self.alias, reason], count)
            for family, count in snap.dead_letter_families.items():
                dead.add_metric([self.alias, family], count)
            truncated.add_metric(alias, 1 if snap.truncated else 0)
        yield from (up, depth, age, groups, largest, dropped, dead, truncated, seconds)
