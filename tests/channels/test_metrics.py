"""The worker's metric families and its thread-served endpoint (issue 18)."""

from __future__ import annotations

import socket
import urllib.error
import urllib.request

import pytest
from prometheus_client.parser import text_string_to_metric_families

from channels.layers.families import OTHER_FAMILY, FamilyCap, channel_family
from channels.metrics import (
    CONSUME_OUTCOMES,
    NULL_WORKER_METRICS,
    NullWorkerMetrics,
    UnknownLabel,
    WorkerMetrics,
    consumer_name,
)
from channels.metrics_http import (
    MetricsEndpointRunning,
    MetricsListenFailed,
    serve_metrics,
)

FAMILIES = {
    "channels_worker_messages_consumed",
    "channels_worker_consumer_seconds",
    "channels_worker_layer_errors",
    "channels_worker_in_flight",
    "channels_worker_redeliveries",
    "channels_worker_dead_letters",
}


def value(metrics: WorkerMetrics, name: str, **labels: str) -> float | None:
    return metrics.registry.get_sample_value(name, labels)


def test_a_handled_message_is_counted_timed_and_leaves_in_flight() -> None:
    metrics = WorkerMetrics()
    metrics.started()
    assert value(metrics, "channels_worker_in_flight") == 1
    metrics.finished("websocket.receive", "ok", "chat.consumers.ws_message", 0.004)
    metrics.started()
    metrics.finished("http.request", "exception", "chat.views.broken", 0.2)
    metrics.started()
    metrics.finished("websocket.send!AbCdEf", "no_route", None, 0.0)
    metrics.consumed("websocket.receive", "consume_later")
    assert value(metrics, "channels_worker_in_flight") == 0
    consumed = "channels_worker_messages_consumed_total"
    assert value(metrics, consumed, channel="websocket.receive", outcome="ok") == 1
    assert value(metrics, consumed, channel="websocket.receive", outcome="consume_later") == 1
    assert value(metrics, consumed, channel="http.request", outcome="exception") == 1
    assert value(metrics, consumed, channel="websocket.send!", outcome="no_route") == 1
    seconds = "channels_worker_consumer_seconds"
    assert value(metrics, seconds + "_count", consumer="chat.consumers.ws_message") == 1
    assert value(metrics, seconds + "_bucket", consumer="chat.views.broken", le="0.25") == 1
    assert value(metrics, seconds + "_bucket", consumer="chat.views.broken", le="0.1") == 0


def a_consumer(message) -> None:
    pass


class ClassConsumer:
    def __call__(self, message) -> None:
        pass


def test_a_consumer_object_is_labelled_by_its_dotted_path() -> None:
    metrics = WorkerMetrics()
    for _ in range(2):
        metrics.started()
        metrics.finished("http.request", "ok", a_consumer, 0.001)
    metrics.started()
    metrics.finished("http.request", "ok", ClassConsumer(), 0.001)
    seconds = "channels_worker_consumer_seconds_count"
    path = f"{__name__}.a_consumer"
    assert consumer_name(a_consumer) == path
    assert value(metrics, seconds, consumer=path) == 2
    assert value(metrics, seconds, consumer=f"{__name__}.ClassConsumer") == 1


def test_layer_errors_redeliveries_dead_letters() -> None:
    metrics = WorkerMetrics()
    metrics.layer_error("receive")
    metrics.layer_error("receive")
    metrics.layer_error("send")
    metrics.redelivered("http.request")
    metrics.dead_lettered("http.request")
    assert value(metrics, "channels_worker_layer_errors_total", operation="receive") == 2
    assert value(metrics, "channels_worker_layer_errors_total", operation="send") == 1
    assert value(metrics, "channels_worker_redeliveries_total", channel="http.request") == 1
    assert value(metrics, "channels_worker_dead_letters_total", channel="http.request") == 1


def test_fixed_label_lists_are_enforced() -> None:
    metrics = WorkerMetrics()
    with pytest.raises(UnknownLabel):
        metrics.consumed("http.request", "lost")
    with pytest.raises(UnknownLabel):
        metrics.layer_error("flush")


def test_family_cap_folds_the_excess_into_other() -> None:
    cap = FamilyCap(limit=2)
    assert [cap(v) for v in ("a", "b", "c", "a", "d")] == ["a", "b", OTHER_FAMILY, "a", "other"]
    metrics = WorkerMetrics()
    metrics._family = FamilyCap(limit=1)
    metrics.consumed("first.channel", "ok")
    metrics.consumed("second.channel", "ok")
    consumed = "channels_worker_messages_consumed_total"
    assert value(metrics, consumed, channel="other", outcome="ok") == 1


def test_channel_family_is_shared_with_daphne() -> None:
    from daphne.metrics import channel_family as daphne_family

    assert daphne_family is channel_family
    assert channel_family("daphne.response.QwErTyUiOp!abc") == "daphne.response!"


def test_null_worker_metrics_has_the_same_interface() -> None:
    public = {name for name in vars(WorkerMetrics) if not name.startswith("_")}
    assert public <= set(vars(NullWorkerMetrics)), public - set(vars(NullWorkerMetrics))
    NULL_WORKER_METRICS.started()
    NULL_WORKER_METRICS.finished("x", CONSUME_OUTCOMES[0], "c", 1.0)
    NULL_WORKER_METRICS.layer_error("receive")
    assert not NULL_WORKER_METRICS.enabled


# -- the endpoint ----------------------------------------------------------------------


def get(url: str) -> tuple[int, str]:
    try:
        with urllib.request.urlopen(url, timeout=10) as response:
            return response.status, response.read().decode()
    except urllib.error.HTTPError as error:
        return error.code, error.read().decode()


class Readiness:
    def __init__(self) -> None:
        self.answer: tuple[bool, str] | Exception = (True, "layer answers")

    def __call__(self) -> tuple[bool, str]:
        if isinstance(self.answer, Exception):
            raise self.answer
        return self.answer


@pytest.fixture
def endpoint():
    metrics = WorkerMetrics()
    ready = Readiness()
    server = serve_metrics(metrics.registry, ready, port=0)
    try:
        yield f"http://127.0.0.1:{server.port}", metrics, ready, server
    finally:
        server.close()


def test_metrics_page_lists_every_family(endpoint) -> None:
    base, metrics, _, _ = endpoint
    metrics.started()
    metrics.finished("http.request", "ok", "app.views.index", 0.01)
    status, text = get(base + "/metrics")
    assert status == 200
    families = {family.name for family in text_string_to_metric_families(text)}
    assert families >= FAMILIES
    assert (
        'channels_worker_messages_consumed_total{channel="http.request",outcome="ok"} 1.0' in text
    )


def test_healthz_and_readyz(endpoint) -> None:
    base, _, ready, _ = endpoint
    assert get(base + "/healthz") == (200, "ok\n")
    assert get(base + "/readyz") == (200, "layer answers\n")
    ready.answer = (False, "stopping")
    assert get(base + "/readyz") == (503, "stopping\n")
    ready.answer = ConnectionError("redis at 127.0.0.1:1 refused")
    status, text = get(base + "/readyz")
    assert status == 503
    assert "redis at 127.0.0.1:1 refused" in text
    assert get(base + "/nothing")[0] == 404


def test_a_failing_collector_gives_500(endpoint) -> None:
    base, metrics, _, _ = endpoint

    class Broken:
        def collect(self):
            raise RuntimeError("collector bug")
            yield  # pragma: no cover

    metrics.registry.register(Broken())
    assert get(base + "/metrics") == (500, "cannot render metrics\n")
    assert get(base + "/healthz")[0] == 200


def test_one_endpoint_per_process(endpoint) -> None:
    _, metrics, ready, server = endpoint
    assert server.host == "127.0.0.1"
    with pytest.raises(MetricsEndpointRunning):
        serve_metrics(metrics.registry, ready, port=0)
    server.close()
    again = serve_metrics(metrics.registry, ready, port=0)  # free once closed
    again.close()


def test_a_busy_port_is_a_specific_error() -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        with pytest.raises(MetricsListenFailed, match=f"127.0.0.1:{port}"):
            serve_metrics(WorkerMetrics().registry, Readiness(), port=port)
    # the failed start did not leave a half-registered endpoint behind
    serve_metrics(WorkerMetrics().registry, Readiness(), port=0).close()


# -- the Grafana dashboard in docs/ --------------------------------------------------------


def exported_series_names() -> set[str]:
    """Every series name the daphne, worker and layer families can export."""
    from prometheus_client import CollectorRegistry

    from channels.layers.collector import LayerCollector
    from channels.layers.inmemory import ChannelLayer
    from daphne.metrics import DaphneMetrics

    registry = CollectorRegistry()
    DaphneMetrics(registry)
    WorkerMetrics(registry)
    registry.register(LayerCollector(ChannelLayer()))
    suffixes = {"counter": ["_total"], "histogram": ["_bucket", "_count", "_sum"], "gauge": [""]}
    return {
        family.name + suffix for family in registry.collect() for suffix in suffixes[family.type]
    }


def test_the_grafana_dashboard_queries_only_exported_series() -> None:
    """docs/grafana-dashboard.json must not drift from the families' names."""
    import json
    import re
    from pathlib import Path

    path = Path(__file__).resolve().parents[2] / "docs" / "grafana-dashboard.json"
    dashboard = json.loads(path.read_text())
    exprs = [target["expr"] for panel in dashboard["panels"] for target in panel.get("targets", [])]
    used = {
        name
        for expr in exprs
        for name in re.findall(r"\b(?:daphne|channels_worker|channels_layer)_[a-z_]+", expr)
    }
    assert used, "no queries found"
    assert used - exported_series_names() == set()


def test_worker_ready_follows_the_layer_health_and_stop() -> None:
    """Real worker and layer; a receive loop marks the shared health exactly like this."""
    from channels.layers.inmemory import ChannelLayer
    from channels.log import LayerHealth
    from channels.metrics_http import worker_ready
    from channels.worker import Worker
    from tests.channels.helpers import fresh_layer

    with fresh_layer() as wrapper:
        worker = Worker(channel_layer=wrapper, signal_handlers=False)
        ready = worker_ready(worker)
        assert ready() == (True, "ready")
        health = LayerHealth.of(wrapper)
        health.failed()
        ok, reason = ready()
        assert not ok
        assert "unreachable" in reason
        assert "ChannelLayer" in reason
        health.recovered()
        assert ready() == (True, "ready")
        worker.stop()
        assert ready() == (False, "stopping")
    assert isinstance(wrapper.channel_layer, ChannelLayer)
