"""Socket-free checks driven by a fake clock: timeouts, body chunks, warnings, readers.

`HTTPFactory.reactor` is what daphne's timers use, so assigning a
`twisted.internet.task.Clock` makes timeouts testable without waiting (D-24, D-43,
D-63, A-89, D-14, D-15).
"""

from __future__ import annotations

import logging
import threading

import pytest
from twisted.internet import error, task
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


def full_connect_channel_handshake(**options):
    layer = ChannelLayer(channel_capacity={"websocket.connect": 1})
    layer.send("websocket.connect", {"filler": True})
    factory, protocol, transport, clock = connect(layer, **options)
    protocol.dataReceived(factories.build_websocket_upgrade("/ws/", [], []))
    return layer, factory, protocol, transport, clock


def test_full_connect_channel_waits_for_room_then_delivers():
    """A-89 (how to wait is free): a full websocket.connect is retried from ~1 ms,
    doubling to 50 ms, and delivered once there is room; the handshake then goes on."""
    layer, factory, protocol, transport, clock = full_connect_channel_handshake(
        websocket_connect_timeout=5
    )
    clock.advance(0.5)
    assert transport.value() == b""  # still waiting, not refused
    assert layer.receive(["websocket.connect"]) == ("websocket.connect", {"filler": True})
    clock.advance(0.05)  # one capped retry interval
    channel, message = layer.receive(["websocket.connect"])
    assert channel == "websocket.connect" and message["path"] == "/ws/"
    clock.advance(10)  # delivered: only the application's answer or the 403 timeout count
    assert transport.value().startswith(b"HTTP/1.1 403")


def test_full_connect_channel_refused_with_503_at_the_connect_timeout():
    """A-89: still full when the connect timeout passes → 503; the application never saw
    the connect, so no websocket.disconnect follows (A-85)."""
    layer, factory, protocol, transport, clock = full_connect_channel_handshake(
        websocket_connect_timeout=3
    )
    for _ in range(25):
        clock.advance(0.1)
    assert transport.value() == b""
    for _ in range(15):
        clock.advance(0.1)
    assert transport.value().startswith(b"HTTP/1.1 503")
    protocol.connectionLost(failure.Failure(error.ConnectionDone()))
    assert layer.receive(["websocket.disconnect"]) == (None, None)
    assert factory.reply_protocols == {}


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


def test_answered_request_sends_no_more_body_chunks():
    """Issue 15 (item 5), D-63: a response before the body was read (the worker refused
    it) stops the chunks: nothing more is queued on the body channel."""
    layer = ChannelLayer(channel_capacity={"http.request.body*": 1})
    factory, protocol, transport, clock = connect(layer)
    body = b"a" * (1024 * 1024) + b"b" * (1024 * 1024) + b"c" * (1024 * 1024)
    protocol.dataReceived(
        b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: %d\r\n\r\n" % len(body) + body
    )
    _, message = layer.receive(["http.request"])
    body_channel = message["body_channel"]
    factory.dispatch_reply(message["reply_channel"], {"status": 400, "content": b"too big"})
    assert transport.value().startswith(b"HTTP/1.1 400")
    _, first = layer.receive([body_channel])  # sent before the answer
    assert first["more_content"] is True
    clock.advance(1)  # the pump would have retried the next chunk by now
    assert layer.receive([body_channel]) == (None, None)
    protocol.connectionLost(failure.Failure(error.ConnectionDone()))


def test_full_channel_reporter_merges_lines(caplog):
    """A-89: drops are logged, but at most one line per channel per interval."""
    clock = task.Clock()
    reporter = FullChannelReporter(logging.getLogger("test.daphne.reporter"), clock.seconds)
    with caplog.at_level(logging.WARNING, logger="test.daphne.reporter"):
        for _ in range(50):
            reporter.full("websocket.receive", "closed a socket with 1013")
        clock.advance(10)
        reporter.full("websocket.receive", "closed a socket with 1013")
    lines = [r.getMessage() for r in caplog.records]
    assert lines == [
        "websocket.receive is full: closed a socket with 1013 (1 time since the last report)",
        "websocket.receive is full: closed a socket with 1013 (50 times since the last report)",
    ]


def test_routine_drops_are_counted_and_logged_at_debug_only(caplog):
    """Issue 14: a full http.disconnect (nothing may consume it) is counted, never a
    WARNING in normal operation."""
    clock = task.Clock()
    reporter = FullChannelReporter(logging.getLogger("test.daphne.reporter"), clock.seconds)
    with caplog.at_level(logging.DEBUG, logger="test.daphne.reporter"):
        for _ in range(20):
            reporter.full("http.disconnect", "dropped a disconnect")
        clock.advance(10)
        reporter.full("http.disconnect", "dropped a disconnect")
    assert reporter.totals == {("full", "http.disconnect"): 21}
    assert {r.levelno for r in caplog.records} == {logging.DEBUG}
    assert [r.getMessage() for r in caplog.records][-1] == (
        "http.disconnect is full: dropped a disconnect (20 times since the last report)"
    )


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
    # Issue 14: one ERROR per outage (naming the layer), not one per retry.
    errors = [r.getMessage() for r in caplog.records if r.levelno == logging.ERROR]
    assert len(errors) == 1
    assert errors[0].startswith("Error trying to receive messages: backend unreachable (")
    assert "FlakyLayer is unreachable" in errors[0]


class RecordingReactor:
    """Stands in for the reactor: counts hand-overs and runs them on the calling thread."""

    def __init__(self) -> None:
        self.handovers = 0

    def callFromThread(self, function, *args):
        self.handovers += 1
        function(*args)


def read_with_thread_reader(layer, count: int) -> tuple[list[dict], RecordingReactor]:
    reactor = RecordingReactor()
    received: list[dict] = []
    done = threading.Event()

    def dispatch(channel, message):
        received.append(message)
        if len(received) == count:
            done.set()

    reader = ThreadReader(reactor, layer, "test.batch!", dispatch)
    reader.start()
    try:
        assert done.wait(10)
    finally:
        reader.stop()
        reader.thread.join(timeout=5)
    assert not reader.thread.is_alive()
    return received, reactor


def test_thread_reader_hands_a_ready_batch_over_in_one_call():
    """D-14 note, issue 9: what is ready after one blocking receive goes over in ONE
    callFromThread, in FIFO order per connection (A-20)."""
    layer = ChannelLayer(capacity=100)
    for index in range(40):
        layer.send(f"test.batch!c{index % 4}", {"n": index})
    received, reactor = read_with_thread_reader(layer, 40)
    assert reactor.handovers == 1
    for connection in range(4):
        assert [m["n"] for m in received if m["n"] % 4 == connection] == list(
            range(connection, 40, 4)
        )


class FailsOnDrainLayer(ChannelLayer):
    """The second non-blocking receive raises, as a backend going away would."""

    nonblocking_calls = 0

    def receive(self, channels, block=False):
        if not block:
            self.nonblocking_calls += 1
            if self.nonblocking_calls == 2:
                raise ConnectionError("backend unreachable")
        return super().receive(channels, block=block)


def test_thread_reader_keeps_what_it_popped_when_the_drain_fails(caplog):
    """L-62.5: an error while draining hands over what was popped; nothing is lost."""
    layer = FailsOnDrainLayer(capacity=100)
    for index in range(5):
        layer.send("test.batch!c", {"n": index})
    with caplog.at_level(logging.ERROR, logger="daphne.server"):
        received, reactor = read_with_thread_reader(layer, 5)
    assert [m["n"] for m in received] == list(range(5))
    assert reactor.handovers == 2
    assert any(
        m.startswith("Error trying to receive messages: backend unreachable (")
        for m in caplog.messages
    )


class ThreadedTwistedLayer(ChannelLayer):
    """The in-memory layer plus a `receive_twisted` (A-50) that must not be needed."""

    extensions = [*ChannelLayer.extensions, "twisted"]

    def receive_twisted(self, channels):
        raise AssertionError("daphne reads replies with its reader thread (issue 9)")


def test_twisted_layer_is_read_by_the_reader_thread(caplog):
    """D-13 step 5, D-15: a layer listing `twisted` logs native Twisted mode and is read by
    the same batching reader thread (the D-14..D-16 note allows it)."""
    import http.client

    layer = ThreadedTwistedLayer()
    with caplog.at_level(logging.INFO, logger="daphne.server"), LiveServer(layer) as live:
        responder = Responder(
            layer,
            ["http.request"],
            lambda layer, channel, m: send_retrying(
                layer, m["reply_channel"], {"status": 200, "content": b"twisted"}
            ),
        ).start()
        try:
            assert isinstance(live.server.reader, ThreadReader)
            connection = http.client.HTTPConnection("127.0.0.1", live.port, timeout=10)
            connection.request("GET", "/")
            assert connection.getresponse().read() == b"twisted"
            connection.close()
        finally:
            responder.stop()
    assert "Using native Twisted mode on channel layer" in caplog.messages


def test_full_disconnect_channel_is_probed_not_hammered(caplog):
    """A full http.disconnect is tried at most once per probe interval (A-89 drop)."""
    from daphne.full_channels import send_best_effort
    from daphne.outbox import Outbox

    class CountingLayer(ChannelLayer):
        sends = 0

        def send(self, channel, message):
            self.sends += 1
            super().send(channel, message)

    clock = task.Clock()
    layer = CountingLayer(channel_capacity={"http.disconnect": 1})
    outbox = Outbox(layer, lambda: clock)
    reporter = FullChannelReporter(logging.getLogger("test.daphne.probe"), clock.seconds)
    for n in range(10):
        send_best_effort(outbox, "http.disconnect", {"n": n}, "dropped", reporter)
    assert layer.sends == 2  # the stored one and one ChannelFull; the rest skipped
    assert layer.receive(["http.disconnect"]) == ("http.disconnect", {"n": 0})
    clock.advance(0.2)
    send_best_effort(outbox, "http.disconnect", {"n": 10}, "dropped", reporter)
    assert layer.sends == 3
    assert layer.receive(["http.disconnect"]) == ("http.disconnect", {"n": 10})


def test_stalled_request_body_gets_408():
    """A body that stops arriving for body_idle_timeout → 408; a trickling one is fine
    without a total deadline (http_body_timeout=0; issue 15 adds that deadline)."""
    layer = ChannelLayer()
    factory, protocol, transport, clock = connect(layer, http_body_timeout=0)
    protocol.dataReceived(b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\n")
    for _ in range(5):
        clock.advance(50)
        protocol.dataReceived(b"x" * 10)
    assert transport.value() == b""
    clock.advance(61)
    assert transport.value().startswith(b"HTTP/1.1 408")
    assert layer.receive(["http.request"]) == (None, None)


def open_socket(layer: ChannelLayer):
    factory, protocol, transport, clock, message = websocket_connect(layer)
    factory.dispatch_reply(message["reply_channel"], {"accept": True})
    assert transport.value().startswith(b"HTTP/1.1 101")
    transport.clear()
    return factory, transport, message["reply_channel"]


@pytest.mark.parametrize(
    ("reply", "written"),
    [
        ({"text": ""}, b"\x81\x00"),
        ({"bytes": b""}, b"\x82\x00"),
        ({"text": "", "bytes": None}, b"\x81\x00"),
        ({"bytes": b"", "text": None, "close": False}, b"\x82\x00"),
        ({"text": "", "bytes": b""}, b""),
        ({"text": "", "bytes": b"x"}, b"\x82\x01x"),
        ({"bytes": b"", "close": True}, b"\x88\x02\x03\xe8"),
    ],
)
def test_empty_reply_on_an_open_socket(reply, written):
    """Deviation from A-86, see docs/differences.rst: only an open socket's reply holding
    exactly one empty text/bytes (the other absent or None) and no close sends one empty
    frame; combined with other data or with close, empty still counts as absent."""
    factory, transport, reply_channel = open_socket(ChannelLayer())
    factory.dispatch_reply(reply_channel, reply)
    assert transport.value() == written


def test_empty_reply_during_the_handshake_counts_as_absent():
    """A-86: while the handshake is pending an empty text neither accepts nor sends."""
    layer = ChannelLayer()
    factory, protocol, transport, clock, message = websocket_connect(layer)
    factory.dispatch_reply(message["reply_channel"], {"text": ""})
    assert transport.value() == b""
