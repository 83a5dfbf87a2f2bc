"""`Worker.handle` reports to its `WorkerMetrics` (issue 18): outcome per channel family,
consumer durations, in-flight; a receive the layer fails is a layer error. Real
in-memory layers, and a real redis-server that is stopped for the receive errors."""

from __future__ import annotations

import sys
import threading

import pytest

from channels import route
from channels.exceptions import ConsumeLater
from channels.metrics import NULL_WORKER_METRICS, WorkerMetrics
from channels.worker import Worker
from support.redis_harness import RedisServer, redis_server_path
from tests.channels.helpers import fresh_layer


def value(metrics: WorkerMetrics, name: str, **labels: str) -> float:
    return metrics.registry.get_sample_value(name, labels) or 0.0


def ok(message):
    pass


def crash(message):
    raise RuntimeError("on purpose")


def later(message):
    raise ConsumeLater()


def test_handle_counts_each_outcome_and_times_consumers():
    routes = [
        route("test.ok", ok),
        route("test.crash", crash),
        route("test.later", later),
        route("test.picky", ok, path=r"^/yes/$"),
    ]
    with fresh_layer(routes) as layer:
        worker = Worker(layer, signal_handlers=False)
        assert worker.metrics is NULL_WORKER_METRICS  # off unless runworker turns it on
        worker.metrics = metrics = WorkerMetrics()
        worker.handle("test.ok", {"n": 1})
        worker.handle("test.ok", {"n": 2})
        worker.handle("test.crash", {})
        worker.handle("test.later", {})
        worker.handle("test.picky", {"path": "/no/"})
    consumed = "channels_worker_messages_consumed_total"
    assert value(metrics, consumed, channel="test.ok", outcome="ok") == 2
    assert value(metrics, consumed, channel="test.crash", outcome="exception") == 1
    assert value(metrics, consumed, channel="test.later", outcome="consume_later") == 1
    assert value(metrics, consumed, channel="test.picky", outcome="no_route") == 1
    assert value(metrics, "channels_worker_in_flight") == 0
    seconds = "channels_worker_consumer_seconds_count"
    module = __name__
    assert value(metrics, seconds, consumer=f"{module}.ok") == 2
    assert value(metrics, seconds, consumer=f"{module}.crash") == 1
    assert value(metrics, seconds, consumer=f"{module}.later") == 1


class StopAtLayerError(WorkerMetrics):
    """Stops the worker once a failing receive is counted (the loop would retry forever)."""

    def __init__(self, worker: Worker) -> None:
        super().__init__()
        self.worker = worker
        self.counted = threading.Event()

    def layer_error(self, operation: str) -> None:
        super().layer_error(operation)
        if operation == "receive":
            self.counted.set()
            self.worker.stop()


@pytest.mark.skipif(redis_server_path() is None, reason="redis-server is not installed")
def test_a_failing_receive_is_a_layer_error():
    from asgi_redis import RedisChannelLayer
    from channels.asgi import ChannelLayerWrapper

    with RedisServer() as redis:
        backend = RedisChannelLayer(hosts=[redis.url])
        layer = ChannelLayerWrapper(backend, "default", [route("test.ok", ok)])
        worker = Worker(layer, signal_handlers=False)
        worker.metrics = metrics = StopAtLayerError(worker)
        worker.receive_retry_first = worker.receive_retry_cap = 0.01
        redis.stop()
        thread = threading.Thread(target=worker.receive_loop, args=(["test.ok"], worker.handle))
        thread.start()
        assert metrics.counted.wait(30), "no failing receive was counted"
        thread.join(30)
    assert value(metrics, "channels_worker_layer_errors_total", operation="receive") >= 1


def test_threads_lose_no_count():
    """runworker --threads N: every thread's worker records into counters of its own
    (no lock per message), summed at scrape time; the shared methods (a layer error in
    any thread) take a lock. Threads switch as often as CPython allows, so a shared
    ``+=`` would lose counts; bounded counts, bounded joins."""
    threads, per_thread = 4, 2_000
    metrics = WorkerMetrics()
    with fresh_layer([route("test.ok", ok), route("test.crash", crash)]) as layer:
        workers = [Worker(layer, signal_handlers=False) for _ in range(threads)]
        for worker in workers:
            worker.metrics = metrics
        assert all(worker.metrics is metrics for worker in workers)
        assert len({id(worker._recorder) for worker in workers}) == threads

        def work(worker: Worker) -> None:
            for n in range(per_thread):
                worker.handle("test.ok", {"n": n})
                worker.metrics.layer_error("send")
            worker.handle("test.crash", {})

        interval = sys.getswitchinterval()
        sys.setswitchinterval(1e-6)
        try:
            running = [threading.Thread(target=work, args=(worker,)) for worker in workers]
            for thread in running:
                thread.start()
            for thread in running:
                thread.join(60)
                assert not thread.is_alive()
        finally:
            sys.setswitchinterval(interval)
    total = threads * per_thread
    consumed = "channels_worker_messages_consumed_total"
    assert value(metrics, consumed, channel="test.ok", outcome="ok") == total
    assert value(metrics, consumed, channel="test.crash", outcome="exception") == threads
    assert value(metrics, "channels_worker_layer_errors_total", operation="send") == total
    assert value(metrics, "channels_worker_in_flight") == 0
    seconds = "channels_worker_consumer_seconds_count"
    assert value(metrics, seconds, consumer=f"{__name__}.ok") == total
    assert value(metrics, seconds, consumer=f"{__name__}.crash") == threads
