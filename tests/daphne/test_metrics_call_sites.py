"""The protocols report to ``factory.metrics`` (issue 18): driven over a StringTransport
and a fake clock, with a real `DaphneMetrics` read back from its registry."""

from __future__ import annotations

from twisted.internet import task, testing

from channels.layers.inmemory import ChannelLayer
from daphne.http_factory import HTTPFactory
from daphne.metrics import NULL_METRICS, DaphneMetrics
from daphne.tests import factories

GET = b"GET / HTTP/1.1\r\nHost: x\r\n\r\n"


def value(metrics: DaphneMetrics, name: str, **labels: str) -> float:
    return metrics.registry.get_sample_value(name, labels) or 0.0


def serve(layer: ChannelLayer, **options):
    """A factory with metrics on, over a fake clock; `connect()` opens a connection."""
    clock = task.Clock()
    factory = HTTPFactory(layer, send_channel="test!", **options)
    assert factory.metrics is NULL_METRICS  # off unless the server turns it on
    factory.reactor = clock
    factory.metrics = metrics = DaphneMetrics()

    def connect():
        protocol = factory.buildProtocol(("127.0.0.1", 0))
        transport = testing.StringTransport()
        protocol.makeConnection(transport)
        return protocol, transport

    return factory, metrics, clock, connect


def test_http_request_connection_response_and_first_reply():
    layer = ChannelLayer()
    factory, metrics, clock, connect = serve(layer)
    protocol, transport = connect()
    assert value(metrics, "daphne_open_connections", protocol="http/1.1") == 1
    protocol.dataReceived(GET)
    _, request = layer.receive(["http.request"])
    clock.advance(0.25)
    factory.dispatch_reply(request["reply_channel"], {"status": 204})
    assert transport.value().startswith(b"HTTP/1.1 204")
    assert value(metrics, "daphne_http_responses_total", status_class="2xx") == 1
    assert value(metrics, "daphne_http_first_reply_seconds_count") == 1
    assert value(metrics, "daphne_http_first_reply_seconds_sum") == 0.25
    # A reply for a request that is gone is counted by its channel family.
    factory.dispatch_reply(request["reply_channel"], {"status": 200})
    assert (
        value(
            metrics,
            "daphne_messages_dropped_total",
            channel="test!",
            reason="reply_channel_unknown",
        )
        == 1
    )
    protocol.connectionLost(None)
    assert value(metrics, "daphne_open_connections", protocol="http/1.1") == 0


def test_refusals_and_full_channel_503():
    layer = ChannelLayer(channel_capacity={"http.request": 1})
    factory, metrics, clock, connect = serve(layer)
    factory.http_queue_timeout = 0  # answer a full http.request at once (issue 17 waits)
    bad, bad_transport = connect()
    bad.dataReceived(b"NOT HTTP AT ALL\r\n\r\n")
    assert bad_transport.value().startswith(b"HTTP/1.1 400")
    assert value(metrics, "daphne_http_responses_total", status_class="4xx") == 1
    first, _ = connect()
    first.dataReceived(GET)
    second, second_transport = connect()
    second.dataReceived(GET)
    factory.outbox.flush()
    assert second_transport.value().startswith(b"HTTP/1.1 503")
    assert value(metrics, "daphne_http_responses_total", status_class="5xx") == 1
    assert (
        value(
            metrics, "daphne_messages_dropped_total", channel="http.request", reason="channel_full"
        )
        == 1
    )
    assert value(metrics, "daphne_backpressure_events_total", event="http_503") == 1
    assert value(metrics, "daphne_http_first_reply_seconds_count") == 0  # daphne's own 503


def test_websocket_handshakes_accepted_and_timed_out_once():
    layer = ChannelLayer()
    factory, metrics, clock, connect = serve(layer, websocket_connect_timeout=2)
    opened, _ = connect()
    opened.dataReceived(factories.build_websocket_upgrade("/ws/", [], []))
    _, message = layer.receive(["websocket.connect"])
    factory.dispatch_reply(message["reply_channel"], {"accept": True})
    assert value(metrics, "daphne_websocket_handshakes_total", outcome="accepted") == 1
    assert value(metrics, "daphne_open_connections", protocol="websocket") == 1
    assert value(metrics, "daphne_open_connections", protocol="http/1.1") == 0
    waiting, transport = connect()
    waiting.dataReceived(factories.build_websocket_upgrade("/ws/", [], []))
    clock.advance(3)
    assert b"403" in transport.value().split(b"\r\n", 1)[0]
    assert value(metrics, "daphne_websocket_handshakes_total", outcome="timed_out") == 1
    assert value(metrics, "daphne_websocket_handshakes_total", outcome="rejected") == 0
