"""The thread reader: errors, order and hand-over batches (daphne/reply_reader.py)."""

from __future__ import annotations

import logging
import threading

from channels.layers import conformance
from channels.layers.base import LayerUnavailable
from channels.layers.inmemory import ChannelLayer
from daphne.reply_reader import ThreadReader
from tests.daphne.live import LiveServer, Responder, send_retrying


class FlakyLayer(ChannelLayer):
    """An in-memory layer whose first receives fail, like a Redis that is still down
    (or, with another `error`, like a bug in the layer)."""

    def __init__(self, failures: int, error: BaseException | None = None) -> None:
        super().__init__()
        self.failures = failures
        self.error = error or LayerUnavailable("backend unreachable")

    def receive(self, channels, block=False):
        if self.failures:
            self.failures -= 1
            raise self.error
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


def test_thread_reader_logs_a_bug_with_its_traceback_and_keeps_reading(caplog):
    """Issue 16 item 2: an error the layer contract does not name is not an outage: each
    one is logged with its traceback (no "unreachable" line), and the reader goes on."""
    reactor = conformance.run_reactor_in_thread()
    layer = FlakyLayer(failures=2, error=RuntimeError("a bug in the layer"))
    done = threading.Event()
    received: list[dict] = []

    def dispatch(channel, message):
        received.append(message)
        done.set()

    reader = ThreadReader(reactor, layer, "test.reader!", dispatch)
    with caplog.at_level(logging.ERROR, logger="daphne.server"):
        reader.start()
        send_retrying(layer, "test.reader!c", {"n": 1})
        assert done.wait(10)
    reader.stop()
    reader.thread.join(timeout=5)
    assert received == [{"n": 1}]
    errors = [r for r in caplog.records if r.levelno == logging.ERROR]
    assert len(errors) == 2
    assert all(r.exc_info and r.exc_info[0] is RuntimeError for r in errors)
    assert not any("unreachable" in r.getMessage() for r in errors)
    assert not reader.health.down


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
                raise LayerUnavailable("backend unreachable")
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
            assert live.server.reader.fan_out == live.server.factory.fan_out  # issue 20
            connection = http.client.HTTPConnection("127.0.0.1", live.port, timeout=10)
            connection.request("GET", "/")
            assert connection.getresponse().read() == b"twisted"
            connection.close()
        finally:
            responder.stop()
    assert "Using native Twisted mode on channel layer" in caplog.messages
