"""`channels.metrics_cells` (issue 18): plain cells exported at scrape time read exactly as
prometheus_client's own metrics did, and no count is lost with one writer per thread."""

from __future__ import annotations

import re
import sys
import threading
from bisect import bisect_left
from collections.abc import Iterator

import pytest
from prometheus_client import (
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    disable_created_metrics,
    enable_created_metrics,
    generate_latest,
)

from channels.metrics_cells import Cell, MetricSet

BUCKETS = (0.001, 0.01, 0.1, 1.0)
THREADS = 4
PER_THREAD = 20_000
TIMEOUT = 60  # seconds, for every join


def observe(cell: Cell, seconds: float) -> None:
    cell[bisect_left(BUCKETS, seconds)] += 1
    cell[-1] += seconds


def reference() -> tuple[CollectorRegistry, dict]:
    """The same families as `cells_set`, as prometheus_client metrics."""
    registry = CollectorRegistry()
    metrics = {
        "requests": Counter("t_requests", "Requests, by kind.", ["kind"], registry=registry),
        "drops": Counter("t_drops", "Drops.", ["channel", "reason"], registry=registry),
        "open": Gauge("t_open", "Open things.", ["protocol"], registry=registry),
        "busy": Gauge("t_busy", "Busy now.", registry=registry),
        "lag": Histogram("t_lag_seconds", "Lag.", buckets=BUCKETS, registry=registry),
        "took": Histogram(
            "t_took_seconds", "Took, by consumer.", ["consumer"], buckets=BUCKETS, registry=registry
        ),
    }
    for kind in ("a", "b"):
        metrics["requests"].labels(kind)
    for protocol in ("h1", "h2"):
        metrics["open"].labels(protocol)
    return registry, metrics


def cells_set() -> tuple[CollectorRegistry, MetricSet, dict]:
    registry = CollectorRegistry()
    families = MetricSet()
    declared = {
        "requests": families.counter("t_requests", "Requests, by kind.", ["kind"], ("a", "b")),
        "drops": families.counter("t_drops", "Drops.", ["channel", "reason"]),
        "open": families.gauge("t_open", "Open things.", ["protocol"], [("h1",), ("h2",)]),
        "busy": families.gauge("t_busy", "Busy now."),
        "lag": families.histogram("t_lag_seconds", "Lag.", BUCKETS),
        "took": families.histogram("t_took_seconds", "Took, by consumer.", BUCKETS, ["consumer"]),
    }
    registry.register(families)
    return registry, families, declared


def same_events(metrics: dict, families: MetricSet, declared: dict) -> None:
    """One sequence of events on both: prometheus_client's metrics and two writers' cells."""
    first, second = families.cells(), families.cells()
    for writer, factor in ((first, 1), (second, 3)):
        for _ in range(factor):
            metrics["requests"].labels("b").inc()
            writer.child(declared["requests"], ("b",))[0] += 1
        metrics["drops"].labels("websocket.send!", "too_large").inc(2 * factor)
        writer.child(declared["drops"], ("websocket.send!", "too_large"))[0] += 2 * factor
        metrics["open"].labels("h2").inc(factor)
        writer.child(declared["open"], ("h2",))[0] += factor
        metrics["busy"].inc()
        writer.child(declared["busy"])[0] += 1
        # Binary fractions: sums are exact whichever writer's cell is added first.
        for seconds in (2**-11, 2**-10, 2**-4, 2**-3, 8.0, 2**-7 * factor):
            metrics["lag"].observe(seconds)
            observe(writer.child(declared["lag"]), seconds)
            metrics["took"].labels(f"app.c{factor}").observe(seconds)
            observe(writer.child(declared["took"], (f"app.c{factor}",)), seconds)
            metrics["took"].labels("app.shared").observe(seconds / 2)
            observe(writer.child(declared["took"], ("app.shared",)), seconds / 2)
    metrics["open"].labels("h2").dec()
    first.child(declared["open"], ("h2",))[0] -= 1


def page(registry: CollectorRegistry) -> str:
    """The exposition, creation times blanked (they are when each object was made)."""
    text = generate_latest(registry).decode()
    return re.sub(r"^(\w+_created(?:\{[^}]*\})?) \S+$", r"\1 T", text, flags=re.MULTILINE)


@pytest.fixture
def created_off() -> Iterator[None]:
    disable_created_metrics()
    try:
        yield
    finally:
        enable_created_metrics()


def test_the_exposition_is_prometheus_clients_own() -> None:
    expected_registry, metrics = reference()
    registry, families, declared = cells_set()
    assert page(registry) == page(expected_registry)  # children declared up front, at 0
    same_events(metrics, families, declared)
    text = page(registry)
    assert text == page(expected_registry)
    assert 't_took_seconds_bucket{consumer="app.c3",le="0.1"} 4.0' in text
    assert 't_took_seconds_count{consumer="app.c3"} 6.0' in text
    assert 't_requests_total{kind="b"} 4.0' in text
    assert 't_requests_created{kind="b"} T' in text


def test_the_exposition_without_created_series(created_off) -> None:
    expected_registry, metrics = reference()
    registry, families, declared = cells_set()
    same_events(metrics, families, declared)
    text = generate_latest(registry).decode()
    assert "_created" not in text
    assert text == generate_latest(expected_registry).decode()


def test_created_is_when_a_child_was_first_used() -> None:
    registry, families, declared = cells_set()
    families.cells().child(declared["drops"], ("http.request", "expired"))[0] += 1
    labels = {"channel": "http.request", "reason": "expired"}
    created = registry.get_sample_value("t_drops_created", labels)
    again = families.cells()
    again.child(declared["drops"], ("http.request", "expired"))[0] += 1
    assert registry.get_sample_value("t_drops_created", labels) == created
    assert registry.get_sample_value("t_drops_total", labels) == 2


def test_bucket_edges_are_inclusive_as_prometheus_reads_them() -> None:
    registry, families, declared = cells_set()
    lag = families.cells().child(declared["lag"])
    for seconds in (0.001, 0.0010001, 1.0, 1e9):
        observe(lag, seconds)
    bucket = "t_lag_seconds_bucket"
    assert registry.get_sample_value(bucket, {"le": "0.001"}) == 1
    assert registry.get_sample_value(bucket, {"le": "0.01"}) == 2
    assert registry.get_sample_value(bucket, {"le": "1.0"}) == 3
    assert registry.get_sample_value(bucket, {"le": "+Inf"}) == 4
    assert registry.get_sample_value("t_lag_seconds_count", {}) == 4


def test_names_are_checked() -> None:
    registry, families, declared = cells_set()
    with pytest.raises(ValueError, match="Duplicated"):
        registry.register(_clash())
    with pytest.raises(ValueError, match="declared twice"):
        families.counter("t_requests", "Again.")
    with pytest.raises(ValueError, match="2 str label values"):
        families.cells().child(declared["drops"], ("only-one",))
    with pytest.raises(ValueError, match="ascending"):
        families.histogram("t_bad", "Unsorted.", (1.0, 0.1))


def _clash() -> MetricSet:
    other = MetricSet()
    other.counter("t_requests", "The same name on the same registry.")
    return other


# -- threads ------------------------------------------------------------------------------


@pytest.fixture
def busy_switching() -> Iterator[None]:
    """Switch threads as often as CPython allows: writers and scraper interleave most."""
    interval = sys.getswitchinterval()
    sys.setswitchinterval(1e-6)
    try:
        yield
    finally:
        sys.setswitchinterval(interval)


def test_no_count_is_lost_with_a_writer_per_thread(busy_switching) -> None:
    registry, families, declared = cells_set()
    stop_scraping = threading.Event()
    scrapes: list[float] = []
    mismatched: list[object] = []  # scrapes that read a histogram torn, or failed

    def write() -> None:
        cells = families.cells()
        requests = cells.child(declared["requests"], ("a",))
        lag = cells.child(declared["lag"])
        for n in range(PER_THREAD):
            requests[0] += 1
            observe(lag, 0.002 if n % 2 else 0.5)
            # New children appear while the scraper copies and sums them.
            cells.child(declared["drops"], (f"x{n % 50}!", "full"))[0] += 1

    def scrape() -> None:
        try:
            scrape_until_stopped()
        except Exception as error:  # reported by the test's thread below
            mismatched.append(repr(error))

    def scrape_until_stopped() -> None:  # reads while the writers write, as a scraper does
        while not stop_scraping.is_set():
            samples = {
                (sample.name, sample.labels.get("le"), sample.labels.get("kind")): sample.value
                for family in registry.collect()
                for sample in family.samples
            }
            scrapes.append(samples[("t_requests_total", None, "a")])
            # A writer's buckets and sum are read together: the sum is what they hold.
            fast = samples[("t_lag_seconds_bucket", "0.01", None)]
            slow = samples[("t_lag_seconds_count", None, None)] - fast
            held = samples[("t_lag_seconds_sum", None, None)]
            if held != pytest.approx(fast * 0.002 + slow * 0.5):
                mismatched.append(held)

    writers = [threading.Thread(target=write) for _ in range(THREADS)]
    scraper = threading.Thread(target=scrape)
    scraper.start()
    for thread in writers:
        thread.start()
    for thread in writers:
        thread.join(TIMEOUT)
        assert not thread.is_alive()
    stop_scraping.set()
    scraper.join(TIMEOUT)
    total = THREADS * PER_THREAD
    assert registry.get_sample_value("t_requests_total", {"kind": "a"}) == total
    drops = [
        registry.get_sample_value("t_drops_total", {"channel": f"x{n}!", "reason": "full"})
        for n in range(50)
    ]
    assert drops == [total / 50] * 50
    assert registry.get_sample_value("t_lag_seconds_count", {}) == total
    assert registry.get_sample_value("t_lag_seconds_bucket", {"le": "0.01"}) == total / 2
    assert registry.get_sample_value("t_lag_seconds_sum", {}) == pytest.approx(total / 2 * 0.502)
    assert scrapes, "the scraper never read"
    assert scrapes == sorted(scrapes)  # a counter read mid-way never goes back
    assert mismatched == []
