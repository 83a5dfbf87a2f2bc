"""Socket-free checks driven by a fake clock: timeouts, body chunks, warnings, readers.

`HTTPFactory.reactor` is what daphne's timers use, so assigning a
`twisted.internet.task.Clock` makes timeouts testable without waiting (D-24, D-43,
D-63, A-89, D-14, D-15).
"""

from __future__ import annotations

import logging
import threading

from twisted.internet import error, task, threads
from twisted.python import failure
from twisted.test import proto_helpers

from channels.layers import conformance
from channels.layers.inmemory import ChannelLayer
from daphne.full_channels import FullChannelReporter
from daphne.http_protocol import HTTPFactory
from daphne.reply_reader import ThreadReader
from daphne.tests import factories
from tests.daphne.live import LiveServer, Responder, send_retrying


def connect(layer: ChannelLayer, **options) -> tuple[HTTPFactory, object, object, task.Clock]:
    clock = task.Clock()
    factory = HTTPFactory(layer, send_channel="test!", **options)
    factory.reactor = clock
    protocol = factory.buildProtocol(("127.0.0.1", 0))
    transport = proto_helpers.StringTransport()
    protocol.makeConnection(transport)
    return factory, protocol, transport, clock


def test_http_timeout_by_clock():
    """D-24: 503 once `timeout` seconds pass without a response start."""
    layer = ChannelLayer()
    factory, protocol, transport, clock = connect(layer, timeout=30)
    protocol.dataReceived(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
    clock.advance(29)
    assert transport.value() == b""
    clock.advance(2)
    assert transport.value().startswith(b"HTTP/1.1 503 Service Unavailable")
    assert b"Worker server failed to respond within time limit." in transport.value()


def test_started_response_is_not_timed_out():
    layer = ChannelLayer()
    factory, protocol, transport, clock = connect(layer, timeout=30)
    protocol.dataReceived(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
    _, message = layer.receive(["http.request"])
    factory.dispatch_reply(message["reply_channel"], {"status": 200, "more_content": True})
    clock.advance(100)
    assert b"503" not in transport.value()


def test_head_timeout_by_clock():
    """D-64: 408 for a head trickling in for 60 s, even while bytes keep coming."""
    layer = ChannelLayer()
    factory, protocol, transport, clock = connect(layer)
    for _ in range(59):
        protocol.dataReceived(b"X")
        clock.advance(1)
    assert transport.value() == b""
    clock.advance(1.5)
    assert transport.value().startswith(b"HTTP/1.1 408")
    assert transport.disconnecting


def websocket_connect(layer: ChannelLayer, **options):
    factory, protocol, transport, clock = connect(layer, **options)
    protocol.dataReceived(factories.build_websocket_upgrade("/ws/", [], []))
    _, message = layer.receive(["websocket.connect"])
    return factory, protocol, transport, clock, message


def test_websocket_connect_timeout_by_clock():
    """D-43: a handshake nobody answers is refused with 403 after the connect timeout."""
    layer = ChannelLayer()
    factory, protocol, transport, clock, message = websocket_connect(
        layer, websocket_connect_timeout=5
    )
    clock.advance(4)
    assert transport.value() == b""
    clock.advance(2)
    assert transport.value().startswith(b"HTTP/1.1 403")


def test_websocket_ping_and_lifetime_by_clock():
    """D-43 ping after ping_interval idle seconds; D-24 close 1000 after websocket_timeout."""
    layer = ChannelLayer()
    factory, protocol, transport, clock, message = websocket_connect(
        layer, ping_interval=10, websocket_timeout=25
    )
    factory.dispatch_reply(message["reply_channel"], {"accept": True})
    transport.clear()
    clock.advance(11)
    assert transport.value()[:1] == b"\x89"  # ping frame
    transport.clear()
    clock.advance(15)
    assert transport.value() == b"\x88\x02\x03\xe8"  # close 1000


def test_large_body_chunks_retried_and_client_gone_chunk():
    """D-63: chunks wait for room (timer backoff); a client leaving sends {"closed": True}."""
    layer = ChannelLayer(channel_capacity={"http.request.body*": 1})
    factory, protocol, transport, clock = connect(layer)
    body = b"a" * (1024 * 1024) + b"b" * (1024 * 1024) + b"c" * 10
    protocol.dataReceived(
        b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: %d\r\n\r\n" % len(body) + body
    )
    _, message = layer.receive(["http.request"])
    assert message["body"] == b"a" * (1024 * 1024)
    body_channel = message["body_channel"]
    _, first = layer.receive([body_channel])
    assert first == {"content": b"b" * (1024 * 1024), "more_content": True}
    assert layer.receive([body_channel]) == (None, None)  # second chunk waits for room
    clock.advance(0.01)
    _, second = layer.receive([body_channel])
    assert second == {"content": b"c" * 10, "more_content": False}
    protocol.connectionLost(failure.Failure(error.ConnectionDone()))  # frees the spill file

    # A client that leaves mid-body: the consumer is told once.
    factory, protocol, transport, clock = connect(layer)
    protocol.dataReceived(
        b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: %d\r\n\r\n" % len(body) + body
    )
    _, message = layer.receive(["http.request"])
    layer.receive([message["body_channel"]])  # first chunk read; second is pending
    protocol.connectionLost(failure.Failure(error.ConnectionDone()))
    assert layer.receive([message["body_channel"]]) == (message["body_channel"], {"closed": True})
    clock.advance(1)
    assert layer.receive([message["body_channel"]]) == (None, None)


def test_full_channel_reporter_merges_lines(caplog):
    """A-89: drops are logged, but at most one line per channel per interval."""
    clock = task.Clock()
    reporter = FullChannelReporter(logging.getLogger("test.daphne.reporter"), clock.seconds)
    with caplog.at_level(logging.WARNING, logger="test.daphne.reporter"):
        for _ in range(50):
            reporter.full("http.disconnect", "dropped a disconnect")
        clock.advance(10)
        reporter.full("http.disconnect", "dropped a disconnect")
    lines = [r.getMessage() for r in caplog.records]
    assert lines == [
        "http.disconnect is full: dropped a disconnect (1 time since the last report)",
        "http.disconnect is full: dropped a disconnect (50 times since the last report)",
    ]


class FlakyLayer(ChannelLayer):
    """An in-memory layer whose first receives fail, like a Redis that is still down."""

    def __init__(self, failures: int) -> None:
        super().__init__()
        self.failures = failures

    def receive(self, channels, block=False):
        if self.failures:
            self.failures -= 1
            raise ConnectionError("backend unreachable")
        return super().receive(channels, block=block)


def test_thread_reader_survives_errors_and_keeps_order(caplog):
    """D-14 note, L-62.5: errors are logged and retried; replies arrive in FIFO order."""
    reactor = conformance.run_reactor_in_thread()
    layer = FlakyLayer(failures=2)
    received: list[tuple[str, dict]] = []
    done = threading.Event()

    def dispatch(channel, message):
        received.append((channel, message))
        if len(received) == 30:
            done.set()

    reader = ThreadReader(reactor, layer, "test.reader!", dispatch)
    with caplog.at_level(logging.ERROR, logger="daphne.server"):
        reader.start()
        for index in range(30):
            send_retrying(layer, f"test.reader!c{index % 3}", {"n": index})
        assert done.wait(10)
    reader.stop()
    reader.thread.join(timeout=5)
    assert not reader.thread.is_alive()
    assert [m["n"] for _, m in received] == list(range(30))
    assert [r.getMessage() for r in caplog.records][:2] == [
        "Error trying to receive messages: backend unreachable"
    ] * 2


class ThreadedTwistedLayer(ChannelLayer):
    """The in-memory layer plus a `receive_twisted` (A-50) run in Twisted's thread pool."""

    extensions = [*ChannelLayer.extensions, "twisted"]

    def receive_twisted(self, channels):
        return threads.deferToThread(self.receive, channels, True)


def test_twisted_reader_mode_serves_requests():
    """D-13 step 5, D-15: a layer listing `twisted` is read with receive_twisted."""
    import http.client

    layer = ThreadedTwistedLayer()
    with LiveServer(layer) as live:
        responder = Responder(
            layer,
            ["http.request"],
            lambda layer, channel, m: send_retrying(
                layer, m["reply_channel"], {"status": 200, "content": b"twisted"}
            ),
        ).start()
        try:
            assert type(live.server.reader).__name__ == "TwistedReader"
            connection = http.client.HTTPConnection("127.0.0.1", live.port, timeout=10)
            connection.request("GET", "/")
            assert connection.getresponse().read() == b"twisted"
            connection.close()
        finally:
            live.server.reader.stop()
            responder.stop()


def test_full_disconnect_channel_is_probed_not_hammered(caplog):
    """A full http.disconnect is tried at most once per probe interval (A-89 drop)."""
    from daphne.full_channels import send_best_effort

    class CountingLayer(ChannelLayer):
        sends = 0

        def send(self, channel, message):
            self.sends += 1
            super().send(channel, message)

    clock = task.Clock()
    layer = CountingLayer(channel_capacity={"http.disconnect": 1})
    reporter = FullChannelReporter(logging.getLogger("test.daphne.probe"), clock.seconds)
    results = [
        send_best_effort(layer, "http.disconnect", {"n": n}, "dropped", reporter) for n in range(10)
    ]
    assert results == [True] + [False] * 9
    assert layer.sends == 2  # the stored one and one ChannelFull; the rest skipped
    clock.advance(0.2)
    layer.receive(["http.disconnect"])
    assert send_best_effort(layer, "http.disconnect", {"n": 10}, "dropped", reporter)
    assert layer.sends == 3


def test_stalled_request_body_gets_408():
    """A body that stops arriving for body_idle_timeout → 408; a trickling one is fine."""
    layer = ChannelLayer()
    factory, protocol, transport, clock = connect(layer)
    protocol.dataReceived(b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\n")
    for _ in range(5):
        clock.advance(50)
        protocol.dataReceived(b"x" * 10)
    assert transport.value() == b""
    clock.advance(61)
    assert transport.value().startswith(b"HTTP/1.1 408")
    assert layer.receive(["http.request"]) == (None, None)
