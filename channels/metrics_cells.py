"""Metric values as plain Python numbers, exported at scrape time (issue 18).

prometheus_client's ``Counter.inc`` and ``Histogram.observe`` take a lock and make 3-4
Python calls per value; W2's echo paid four of them in daphne and two in the worker
(benchmarks/PROFILE.md, sessions 6 and 7). Here a value lives in a *cell*, a list
the hot path changes in place with no call at all:

- a counter or gauge child: ``[value]``, moved by ``cell[0] += n``;
- a histogram child: one count per bucket, the last one +Inf, then the sum::

      cell[bisect_left(bounds, seconds)] += 1   # bounds: the finite upper bounds
      cell[-1] += seconds

  (``bisect_left`` finds the first bound >= the value, as ``Histogram.observe`` does).

`MetricSet` is the custom collector (prometheus_client's ``Collector`` protocol). It
declares the families (name, HELP text, label names, buckets, the children that
exist from the start), hands out `Cells`, one per writer, and at scrape time sums
every writer's cells into ``CounterMetricFamily``, ``GaugeMetricFamily`` and
``HistogramMetricFamily``: the same names, HELP, labels, ``_total``, cumulative
``_bucket``, ``_count``, ``_sum`` and ``_created`` samples, in the same order, as
prometheus_client's own metrics gave, so ``/metrics`` reads as before.

Threads: a cell has ONE writer, so ``+=`` loses nothing and takes no lock. Code whose
calls all run on one thread (daphne's reactor) holds one `Cells`; the worker gives
each thread's ``Worker`` its own (`channels.metrics.WorkerRecorder`). The collector
runs on another thread (the scrape) and only reads: a dict is copied and a cell
sliced before use, both single C-level operations under the GIL, so a histogram's
buckets and sum are read together.

daphne imports this module only when its metrics are on (D-4: no `channels` import at
import time); it depends on the standard library and prometheus_client only.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterable, Iterator, Sequence

from prometheus_client import metrics as _client_metrics
from prometheus_client.core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
    Metric,
    Sample,
)
from prometheus_client.registry import Collector
from prometheus_client.utils import floatToGoString

__all__ = ["Cell", "Cells", "Family", "MetricSet", "UnknownLabel"]

INF = float("inf")

# A counter's or gauge's ``[value]``; a histogram's bucket counts then its sum.
Cell = list[float]

Labels = tuple[str, ...]


class UnknownLabel(ValueError):
    """A call site passed a label value outside the family's fixed list.

    Raised rather than exported: an open-ended label is how a metric's cardinality
    explodes, so the fixed lists are the contract. (daphne has its own class of the
    same name: it cannot import this module at import time, D-4.)
    """


class Family:
    """One metric family: what `MetricSet` exports, and its children in first-use order."""

    __slots__ = ("kind", "name", "documentation", "labelnames", "bounds", "created")

    def __init__(
        self,
        kind: str,
        name: str,
        documentation: str,
        labelnames: Sequence[str] = (),
        bounds: Sequence[float] = (),
    ) -> None:
        self.kind = kind  # "counter", "gauge" or "histogram"
        self.name = name
        self.documentation = documentation
        self.labelnames: Labels = tuple(labelnames)
        # Finite upper bounds, ascending; +Inf is always the last bucket.
        self.bounds: tuple[float, ...] = tuple(float(b) for b in bounds if float(b) != INF)
        if kind == "histogram":
            if not self.bounds or list(self.bounds) != sorted(self.bounds):
                raise ValueError(f"{name}: buckets must be ascending and not empty")
            if "le" in self.labelnames:
                raise ValueError(f"{name}: a histogram cannot have an 'le' label")
        # label values -> when the child was first used (its ``_created``), in that order.
        self.created: dict[Labels, float] = {}

    def new_cell(self) -> Cell:
        if self.kind == "histogram":
            counts: Cell = [0] * (len(self.bounds) + 1)
            return [*counts, 0.0]
        return [0]

    def describe(self) -> Metric:
        return _empty(self)


class Cells:
    """One writer's cells for every family of a `MetricSet` (see the module's notes)."""

    __slots__ = ("_owner", "_cells")

    def __init__(self, owner: MetricSet) -> None:
        self._owner = owner
        self._cells: dict[Family, dict[Labels, Cell]] = {}

    def child(self, family: Family, labels: Labels = ()) -> Cell:
        """This writer's cell for the child of `family` with label values `labels`,
        created (and its ``_created`` noted) on first use. Cache it: this is the slow path."""
        cells = self._cells.get(family)
        if cells is None:
            cells = self._cells.setdefault(family, {})
        cell = cells.get(labels)
        if cell is None:
            self._owner.add_child(family, labels)
            cell = cells[labels] = family.new_cell()
        return cell

    def fixed(self, family: Family, values: Iterable[str]) -> dict[str, Cell]:
        """Value -> cell of a one-label family, for its fixed list of `values`: the hot
        path's lookup, whose KeyError is the caller's `UnknownLabel`."""
        return {value: self.child(family, (value,)) for value in values}

    def snapshot(self, family: Family) -> dict[Labels, Cell]:
        return self._cells.get(family, {}).copy()


class MetricSet(Collector):
    """A custom collector exporting the `Cells` of its writers, summed, at scrape time.

    Declare the families, register the set on a registry, then hand each writer
    (a thread, or code confined to one thread) its own `cells`.
    """

    def __init__(self) -> None:
        self.families: list[Family] = []
        self._writers: list[Cells] = []
        self._lock = threading.Lock()  # first use of a child, a new writer: not per value

    # -- declaring -------------------------------------------------------------------

    def counter(
        self,
        name: str,
        documentation: str,
        labelnames: Sequence[str] = (),
        children: Iterable[Labels | str] = (),
    ) -> Family:
        """A counter (exported as ``name_total``). `children`, label value tuples (or
        plain values of a one-label family), are exported at 0 from the start."""
        return self._declare(Family("counter", name, documentation, labelnames), children)

    def gauge(
        self,
        name: str,
        documentation: str,
        labelnames: Sequence[str] = (),
        children: Iterable[Labels | str] = (),
    ) -> Family:
        """A gauge; `children` as for `counter`."""
        return self._declare(Family("gauge", name, documentation, labelnames), children)

    def histogram(
        self,
        name: str,
        documentation: str,
        buckets: Sequence[float],
        labelnames: Sequence[str] = (),
    ) -> Family:
        return self._declare(Family("histogram", name, documentation, labelnames, buckets), ())

    def _declare(self, family: Family, children: Iterable[Labels | str]) -> Family:
        if any(each.name == family.name for each in self.families):
            raise ValueError(f"{family.name} is declared twice")
        self.families.append(family)
        if not family.labelnames:
            children = [()]  # an unlabelled family is its one child, there from the start
        for labels in children:
            self.add_child(family, (labels,) if isinstance(labels, str) else labels)
        return family

    def add_child(self, family: Family, labels: Labels) -> None:
        if len(labels) != len(family.labelnames) or not all(type(v) is str for v in labels):
            raise ValueError(f"{family.name} takes {len(family.labelnames)} str label values")
        if labels not in family.created:
            with self._lock:
                family.created.setdefault(labels, time.time())

    # -- writing ---------------------------------------------------------------------

    def cells(self) -> Cells:
        """A new writer's cells: only one thread may write them."""
        cells = Cells(self)
        with self._lock:
            self._writers = [*self._writers, cells]
        return cells

    # -- the Collector protocol ----------------------------------------------------------

    def describe(self) -> Iterator[Metric]:
        """The families without samples: lets the registry refuse duplicate names."""
        for family in self.families:
            yield family.describe()

    def collect(self) -> Iterator[Metric]:
        with_created = getattr(_client_metrics, "_use_created", True)
        writers = self._writers  # replaced, never changed in place
        for family in self.families:
            children = family.created.copy()
            snapshots = [writer.snapshot(family) for writer in writers]
            metric = _empty(family)
            for labels, created in children.items():
                cells = [
                    cell[:] for snapshot in snapshots if (cell := snapshot.get(labels)) is not None
                ]
                if family.kind == "histogram":
                    _add_histogram(metric, family, labels, cells, created if with_created else None)
                elif family.kind == "counter":
                    value = float(sum(cell[0] for cell in cells))
                    assert isinstance(metric, CounterMetricFamily)
                    metric.add_metric(labels, value, created if with_created else None)
                else:
                    assert isinstance(metric, GaugeMetricFamily)
                    metric.add_metric(labels, float(sum(cell[0] for cell in cells)))
            yield metric


def _empty(family: Family) -> Metric:
    if family.kind == "counter":
        return CounterMetricFamily(family.name, family.documentation, labels=family.labelnames)
    if family.kind == "gauge":
        return GaugeMetricFamily(family.name, family.documentation, labels=family.labelnames)
    return HistogramMetricFamily(family.name, family.documentation, labels=family.labelnames)


def _add_histogram(
    metric: Metric, family: Family, labels: Labels, cells: list[Cell], created: float | None
) -> None:
    size = len(family.bounds) + 1
    counts: Cell = [0] * size
    total = 0.0
    for cell in cells:
        for index in range(size):
            counts[index] += cell[index]
        total += cell[size]
    buckets = []
    running = 0.0
    for bound, count in zip((*family.bounds, INF), counts, strict=True):
        running += count
        buckets.append((floatToGoString(bound), running))
    assert isinstance(metric, HistogramMetricFamily)
    metric.add_metric(labels, buckets, total)
    if created is not None:
        named = dict(zip(family.labelnames, labels, strict=True))
        metric.samples.append(Sample(f"{family.name}_created", named, created))
