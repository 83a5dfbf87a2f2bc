"""daphne's metric families and its /metrics, /healthz, /readyz endpoint (issue 18).

The endpoint is served by the shared Twisted reactor thread on a free loopback
port and queried with real HTTP requests.
"""

from __future__ import annotations

import threading
import urllib.error
import urllib.request

import pytest
from prometheus_client import CollectorRegistry
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.parser import text_string_to_metric_families
from twisted.internet import defer, threads
from twisted.internet.threads import blockingCallFromThread

from channels.layers import conformance
from daphne.metrics import (
    BACKPRESSURE_EVENTS,
    DROP_REASONS,
    HANDSHAKE_OUTCOMES,
    NULL_METRICS,
    PROTOCOLS,
    DaphneMetrics,
    NullMetrics,
    UnknownLabel,
    channel_family,
    status_class,
)
from daphne.metrics_http import DEFAULT_METRICS_HOST, listen_metrics

FAMILIES = {
    "daphne_open_connections",
    "daphne_http_responses",
    "daphne_websocket_frames",
    "daphne_websocket_bytes",
    "daphne_websocket_handshakes",
    "daphne_http_first_reply_seconds",
    "daphne_messages_dropped",
    "daphne_backpressure_events",
    "daphne_reply_reader_lag_seconds",
}


@pytest.mark.parametrize(
    ("name", "family"),
    [
        ("daphne.response.abc!xyz", "daphne.response!"),
        ("daphne.response.AbCdEfGhIj!", "daphne.response!"),
        ("websocket.send!abc", "websocket.send!"),
        ("http.response!q1w2e3", "http.response!"),
        ("http.request.body?xyz", "http.request.body?"),
        ("http.request", "http.request"),
        ("websocket.receive", "websocket.receive"),
        ("daphne.response!", "daphne.response!"),
    ],
)
def test_channel_family(name: str, family: str) -> None:
    assert channel_family(name) == family


def test_status_class() -> None:
    assert [status_class(s) for s in (101, 200, 304, 404, 503)] == [
        "1xx",
        "2xx",
        "3xx",
        "4xx",
        "5xx",
    ]
    with pytest.raises(UnknownLabel):
        status_class(99)


def value(metrics: DaphneMetrics, name: str, **labels: str) -> float | None:
    return metrics.registry.get_sample_value(name, labels)


def test_each_method_moves_its_family() -> None:
    metrics = DaphneMetrics()
    metrics.connection_opened("websocket")
    metrics.connection_opened("websocket")
    metrics.connection_opened("h2")
    metrics.connection_closed("websocket")
    metrics.response_started(200)
    metrics.response_started(503)
    metrics.frame_in(10)
    metrics.frame_out(3)
    metrics.frame_out(4)
    metrics.handshake("accepted")
    metrics.handshake("timed_out")
    metrics.first_reply(0.003)
    metrics.dropped("daphne.response.abcdefghij!xyz", "reply_channel_unknown")
    metrics.dropped("websocket.receive", "channel_full", 3)
    metrics.backpressure("reads_paused")
    metrics.reader_lag(0.0002)

    assert value(metrics, "daphne_open_connections", protocol="websocket") == 1
    assert value(metrics, "daphne_open_connections", protocol="h2") == 1
    assert value(metrics, "daphne_open_connections", protocol="http/1.1") == 0
    assert value(metrics, "daphne_http_responses_total", status_class="2xx") == 1
    assert value(metrics, "daphne_http_responses_total", status_class="5xx") == 1
    assert value(metrics, "daphne_websocket_frames_total", direction="in") == 1
    assert value(metrics, "daphne_websocket_frames_total", direction="out") == 2
    assert value(metrics, "daphne_websocket_bytes_total", direction="in") == 10
    assert value(metrics, "daphne_websocket_bytes_total", direction="out") == 7
    assert value(metrics, "daphne_websocket_handshakes_total", outcome="accepted") == 1
    assert value(metrics, "daphne_websocket_handshakes_total", outcome="rejected") == 0
    assert value(metrics, "daphne_websocket_handshakes_total", outcome="timed_out") == 1
    assert value(metrics, "daphne_http_first_reply_seconds_count") == 1
    assert value(metrics, "daphne_http_first_reply_seconds_bucket", le="0.005") == 1
    assert value(metrics, "daphne_http_first_reply_seconds_bucket", le="0.0025") == 0
    assert (
        value(
            metrics,
            "daphne_messages_dropped_total",
            channel="daphne.response!",
            reason="reply_channel_unknown",
        )
        == 1
    )
    assert (
        value(
            metrics,
            "daphne_messages_dropped_total",
            channel="websocket.receive",
            reason="channel_full",
        )
        == 3
    )
    assert value(metrics, "daphne_backpressure_events_total", event="reads_paused") == 1
    assert value(metrics, "daphne_backpressure_events_total", event="http_503") == 0
    assert value(metrics, "daphne_reply_reader_lag_seconds_count") == 1


def test_fixed_label_lists_are_enforced() -> None:
    metrics = DaphneMetrics()
    for call in (
        lambda: metrics.connection_opened("spdy"),
        lambda: metrics.handshake("maybe"),
        lambda: metrics.dropped("http.request", "gremlins"),
        lambda: metrics.backpressure("slow"),
        lambda: metrics.response_started(700),
    ):
        with pytest.raises(UnknownLabel):
            call()


def test_registries_are_private() -> None:
    """Two servers in one process keep separate counts, and the global registry is untouched."""
    first, second = DaphneMetrics(), DaphneMetrics()
    first.handshake("rejected")
    assert value(first, "daphne_websocket_handshakes_total", outcome="rejected") == 1
    assert value(second, "daphne_websocket_handshakes_total", outcome="rejected") == 0
    shared = CollectorRegistry()
    DaphneMetrics(shared)
    assert shared.get_sample_value("daphne_open_connections", {"protocol": "h2"}) == 0


def test_null_metrics_has_the_same_interface() -> None:
    public = {name for name in vars(DaphneMetrics) if not name.startswith("_")}
    assert public <= set(vars(NullMetrics)), public - set(vars(NullMetrics))
    assert not NULL_METRICS.enabled
    for protocol in PROTOCOLS:
        NULL_METRICS.connection_opened(protocol)
    NULL_METRICS.dropped("x", DROP_REASONS[0])
    NULL_METRICS.handshake(HANDSHAKE_OUTCOMES[0])
    NULL_METRICS.backpressure(BACKPRESSURE_EVENTS[0])


# -- the endpoint ------------------------------------------------------------------------


def get(url: str) -> tuple[int, str, str]:
    try:
        with urllib.request.urlopen(url, timeout=10) as response:
            return response.status, response.headers["content-type"], response.read().decode()
    except urllib.error.HTTPError as error:
        return error.code, error.headers["content-type"], error.read().decode()


class Readiness:
    def __init__(self) -> None:
        self.answer: tuple[bool, str] = (True, "layer answers")

    def __call__(self) -> tuple[bool, str]:
        return self.answer


@pytest.fixture
def endpoint():
    reactor = conformance.run_reactor_in_thread()
    metrics = DaphneMetrics()
    ready = Readiness()
    port = blockingCallFromThread(
        reactor, listen_metrics, reactor, DEFAULT_METRICS_HOST, 0, metrics.registry, ready
    )
    base = f"http://127.0.0.1:{port.getHost().port}"
    yield base, metrics, ready, port
    blockingCallFromThread(reactor, port.stopListening)


def test_metrics_page_lists_every_family(endpoint) -> None:
    base, metrics, _, port = endpoint
    assert port.getHost().host == "127.0.0.1"
    metrics.response_started(404)
    metrics.dropped("websocket.send!abc", "too_large")
    status, content_type, text = get(base + "/metrics")
    assert status == 200
    assert content_type.startswith("text/plain; version=")
    families = {family.name: family for family in text_string_to_metric_families(text)}
    assert set(families) >= FAMILIES
    samples = {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in families.values()
        for sample in family.samples
    }
    assert samples[("daphne_http_responses_total", (("status_class", "4xx"),))] == 1
    key = (
        "daphne_messages_dropped_total",
        (("channel", "websocket.send!"), ("reason", "too_large")),
    )
    assert samples[key] == 1


def test_healthz(endpoint) -> None:
    base, *_ = endpoint
    assert get(base + "/healthz")[::2] == (200, "ok\n")


def test_readyz_follows_the_ready_callable(endpoint) -> None:
    base, _, ready, _ = endpoint
    assert get(base + "/readyz")[::2] == (200, "layer answers\n")
    ready.answer = (False, "draining")
    assert get(base + "/readyz")[::2] == (503, "draining\n")
    ready.answer = (True, "back")
    assert get(base + "/readyz")[0] == 200


def test_readyz_waits_for_a_deferred_and_treats_errors_as_not_ready() -> None:
    reactor = conformance.run_reactor_in_thread()

    def slow_check() -> defer.Deferred:
        return threads.deferToThread(lambda: (True, "pinged"))

    def broken_check() -> tuple[bool, str]:
        raise ConnectionError("redis is away")

    ports = []
    try:
        for check in (slow_check, broken_check):
            ports.append(
                blockingCallFromThread(
                    reactor, listen_metrics, reactor, "127.0.0.1", 0, CollectorRegistry(), check
                )
            )
        first, second = (f"http://127.0.0.1:{p.getHost().port}/readyz" for p in ports)
        assert get(first)[::2] == (200, "pinged\n")
        status, _, text = get(second)
        assert status == 503
        assert "redis is away" in text
    finally:
        for port in ports:
            blockingCallFromThread(reactor, port.stopListening)


def test_unknown_path_is_404(endpoint) -> None:
    base, *_ = endpoint
    assert get(base + "/nothing")[0] == 404


class BlockingCollector:
    """A collector that waits (bounded) until released, like a layer read on a hung Redis."""

    def __init__(self) -> None:
        self.entered = threading.Event()
        self.release = threading.Event()

    def collect(self):
        self.entered.set()
        self.release.wait(10)
        yield GaugeMetricFamily("slow_layer_depth", "A slow read.", value=7)


def test_metrics_render_off_the_reactor_thread(endpoint) -> None:
    """A collector waiting for Redis must not stop the reactor (issue 15)."""
    base, metrics, _, _ = endpoint
    slow = BlockingCollector()
    metrics.registry.register(slow)
    result: list = []
    scrape = threading.Thread(target=lambda: result.append(get(base + "/metrics")))
    scrape.start()
    try:
        assert slow.entered.wait(10)
        assert get(base + "/healthz")[0] == 200  # served while the scrape waits
    finally:
        slow.release.set()
        scrape.join(10)
    status, _, text = result[0]
    assert status == 200
    assert "slow_layer_depth 7.0" in text


def test_a_failing_collector_gives_500_not_a_hung_scrape(endpoint) -> None:
    base, metrics, _, _ = endpoint

    class Broken:
        def collect(self):
            raise RuntimeError("collector bug")
            yield  # pragma: no cover

    metrics.registry.register(Broken())
    status, _, text = get(base + "/metrics")
    assert (status, text) == (500, "cannot render metrics\n")


def test_server_ready_follows_draining_and_the_layer_health(caplog) -> None:
    from channels.layers.inmemory import ChannelLayer
    from daphne.http_protocol import HTTPFactory
    from daphne.metrics_http import server_ready

    factory = HTTPFactory(ChannelLayer(), send_channel="daphne.response.test!")
    ready = server_ready(factory)
    assert ready() == (True, "ready")
    factory.layer_health.failed("sending requests", ConnectionError("refused"))
    ok, reason = ready()
    assert not ok
    assert "ChannelLayer" in reason
    assert "unreachable" in reason
    factory.layer_health.ok("sending requests")
    assert ready() == (True, "ready")
    factory.draining = True
    assert ready() == (False, "draining: the server is stopping")


def test_layer_families_on_the_daphne_endpoint_with_redis_stopped(endpoint, redis_server) -> None:
    """The layer collector on daphne's endpoint: depth from a real Redis, then up 0
    (and still a 200 page) while that Redis is stopped."""
    from asgi_redis import RedisChannelLayer
    from channels.layers.collector import LayerCollector

    base, metrics, _, _ = endpoint
    layer = RedisChannelLayer(hosts=[redis_server.url], prefix="t-endpoint:")
    metrics.registry.register(LayerCollector(layer, alias="default", min_interval=0))
    layer.send("http.request", {})
    layer.send("http.request", {})

    def scrape() -> dict:
        status, _, text = get(base + "/metrics")
        assert status == 200
        return {
            (sample.name, tuple(sorted(sample.labels.items()))): sample.value
            for family in text_string_to_metric_families(text)
            for sample in family.samples
        }

    samples = scrape()
    depth = ("channels_layer_queue_depth", (("channel", "http.request"), ("layer", "default")))
    assert samples[depth] == 2
    assert samples[("channels_layer_up", (("layer", "default"),))] == 1
    redis_server.stop()
    samples = scrape()
    assert samples[("channels_layer_up", (("layer", "default"),))] == 0
    assert depth not in samples
