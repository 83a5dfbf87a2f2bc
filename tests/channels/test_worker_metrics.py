"""`Worker.handle` reports to its `WorkerMetrics` (issue 18): outcome per channel family,
consumer durations, in-flight; a receive the layer fails is a layer error. Real
in-memory layers, and a real redis-server that is stopped for the receive errors."""

from __future__ import annotations

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
