"""What daphne does with each kind of error a layer send ends in (issue 16 item 5, L-62, A-89).

The layer contract (`daphne.layer_api`) splits a send's errors into a full channel, the
backend being away (`is_unavailable`) and anything else, which is a bug. Here, on real
in-memory layers made to fail:

- the outbox: a ``send_many`` that raises an outage gives that error to every message
  of the call, without one blocking ``send`` per message; any other error still falls
  back to sending one at a time;
- `send_best_effort`: an outage goes to the reporter (merged), a bug is logged at ERROR
  with its traceback, and neither raises;
- `send_reliably`: full channels and outages are retried, a bug is reported at once;
- the protocols: an outage refuses a handshake with 503 (an HTTP request too, with
  Retry-After) and holds frames; a bug refuses with 500, closes a socket with 1011 and
  stops a request body's pump, each logged with its traceback.
"""

from __future__ import annotations

import logging
from typing import Any

import pytest
from twisted.internet import task, testing
from twisted.internet.error import ConnectionDone
from twisted.python.failure import Failure

from channels.layers.base import LayerUnavailable
from channels.layers.inmemory import ChannelLayer
from daphne.drops import FullChannelReporter, send_best_effort, send_reliably
from daphne.http_protocol import HTTPFactory
from daphne.outbox import Outbox
from daphne.tests import factories
from tests.daphne.clocked import connect, websocket_connect


class Outcomes:
    """An outbox callback recording ``(channel, message, error)`` in call order."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, dict[str, Any], BaseException | None]] = []

    def __call__(self, channel: str, message: dict[str, Any], error: BaseException | None) -> None:
        self.calls.append((channel, message, error))


class FailingLayer(ChannelLayer):
    """The in-memory layer whose next `failures` sends raise `error` (then it works)."""

    def __init__(self, error: BaseException, failures: int = 1_000_000, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.error = error
        self.failures = failures
        self.sends = 0

    def send(self, channel: str, message: dict[str, Any]) -> None:
        self.sends += 1
        if self.failures > 0:
            self.failures -= 1
            raise self.error
        super().send(channel, message)


class BatchingLayer(FailingLayer):
    """A `FailingLayer` with ``send_many`` (batched by the outbox) that raises `batch_error`."""

    def __init__(self, batch_error: BaseException, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.batch_error = batch_error
        self.batches: list[int] = []

    def send_many(self, messages: Any) -> list[BaseException | None]:
        pairs = list(messages)
        self.batches.append(len(pairs))
        raise self.batch_error


class ForeignBatchingLayer:
    """A layer written for 1.x plus ``send_many``: no ``Unavailable``, so its socket
    errors are its outages (`daphne.layer_api.FOREIGN_UNAVAILABLE`)."""

    class ChannelFull(Exception):
        pass

    class MessageTooLarge(Exception):
        pass

    def __init__(self) -> None:
        self.sends = 0
        self.batches = 0

    def send(self, channel: str, message: dict[str, Any]) -> None:
        self.sends += 1
        raise ConnectionRefusedError("refused")

    def send_many(self, messages: Any) -> list[BaseException | None]:
        self.batches += 1
        raise ConnectionRefusedError("refused")

    def receive(self, channels: Any, block: bool = False) -> tuple[None, None]:
        return None, None

    def new_channel(self, pattern: str) -> str:
        return pattern + "x"


# -- the outbox ---------------------------------------------------------------------


def test_an_outage_in_send_many_reaches_every_message_without_single_sends():
    """L-62: one failed call per tick while the backend is away, not one blocking
    ``send`` per message on the reactor thread; each sender hears the outage."""
    outage = LayerUnavailable("the store is away")
    layer = BatchingLayer(batch_error=outage, error=LayerUnavailable("send"))
    clock = task.Clock()
    outbox = Outbox(layer, lambda: clock)
    outcomes = Outcomes()
    for n in range(5):
        outbox.send("test.a", {"n": n}, outcomes, key=n % 2)
    outbox.send("test.b", {"n": 0}, outcomes)
    clock.advance(0)
    assert layer.batches == [6]
    assert layer.sends == 0
    assert [error for _, _, error in outcomes.calls] == [outage] * 6
    assert [m["n"] for _, m, _ in outcomes.calls] == [0, 1, 2, 3, 4, 0]  # queue order


def test_a_foreign_layers_socket_error_in_send_many_is_an_outage_too():
    layer = ForeignBatchingLayer()
    clock = task.Clock()
    outbox = Outbox(layer, lambda: clock)
    outcomes = Outcomes()
    for n in range(3):
        outbox.send("test.a", {"n": n}, outcomes)
    clock.advance(0)
    assert (layer.batches, layer.sends) == (1, 0)
    errors = [error for _, _, error in outcomes.calls]
    assert len(errors) == 3 and all(isinstance(e, ConnectionRefusedError) for e in errors)


def test_any_other_send_many_error_still_sends_one_at_a_time():
    """A refused call that is not an outage (one bad message refused the lot): every
    message is sent alone, so only the bad one's sender hears about it."""
    layer = BatchingLayer(batch_error=ValueError("one bad message"), error=KeyError("x"))
    layer.failures = 1  # the first single send fails: the "bad" message
    clock = task.Clock()
    outbox = Outbox(layer, lambda: clock)
    outcomes = Outcomes()
    for n in range(3):
        outbox.send("test.a", {"n": n}, outcomes)
    clock.advance(0)
    assert layer.batches == [3] and layer.sends == 3
    errors = [error for _, _, error in outcomes.calls]
    assert isinstance(errors[0], KeyError) and errors[1:] == [None, None]
    assert layer.receive(["test.a"])[1] == {"n": 1}


# -- send_best_effort ---------------------------------------------------------------


def reporter_for(clock: task.Clock, name: str) -> FullChannelReporter:
    return FullChannelReporter(logging.getLogger(name), clock.seconds, clock)


def test_best_effort_reports_an_outage_merged(caplog):
    clock = task.Clock()
    layer = FailingLayer(LayerUnavailable("the store is away"))
    outbox = Outbox(layer, lambda: clock)
    reporter = reporter_for(clock, "test.daphne.best_effort")
    with caplog.at_level(logging.ERROR):
        for n in range(3):
            send_best_effort(outbox, "http.disconnect", {"n": n}, "dropped", reporter)
    assert reporter.totals == {("error", "http.disconnect"): 3}
    lines = [r for r in caplog.records if r.name == "test.daphne.best_effort"]
    assert [r.getMessage() for r in lines] == [
        "Cannot send to http.disconnect: dropped: the store is away (1 time since the last report)"
    ]
    assert not [r for r in caplog.records if r.name == "daphne.server"]


def test_best_effort_logs_a_bug_with_its_traceback_and_does_not_raise(caplog):
    """An error that is neither a full channel nor an outage is a bug: ERROR with the
    traceback, not counted as a drop, and never raised into connection teardown."""
    clock = task.Clock()
    layer = FailingLayer(KeyError("a bug in the layer"))
    outbox = Outbox(layer, lambda: clock)
    reporter = reporter_for(clock, "test.daphne.best_effort_bug")
    with caplog.at_level(logging.ERROR, logger="daphne.server"):
        send_best_effort(outbox, "http.disconnect", {"n": 0}, "dropped", reporter)
    assert reporter.totals == {}
    (record,) = [r for r in caplog.records if r.name == "daphne.server"]
    assert record.levelno == logging.ERROR
    assert record.getMessage() == (
        "Cannot send to http.disconnect: dropped: unexpected error from the channel layer"
    )
    assert record.exc_info is not None and record.exc_info[1] is layer.error


def test_best_effort_still_counts_a_full_channel():
    clock = task.Clock()
    layer = ChannelLayer(channel_capacity={"http.disconnect": 1})
    outbox = Outbox(layer, lambda: clock)
    reporter = reporter_for(clock, "test.daphne.best_effort_full")
    send_best_effort(outbox, "http.disconnect", {"n": 0}, "dropped", reporter)
    send_best_effort(outbox, "http.disconnect", {"n": 1}, "dropped", reporter)
    assert reporter.totals == {("full", "http.disconnect"): 1}


# -- send_reliably ------------------------------------------------------------------


def test_reliably_retries_an_outage_until_the_layer_is_back():
    clock = task.Clock()
    layer = FailingLayer(LayerUnavailable("the store is away"), failures=4)
    outbox = Outbox(layer, lambda: clock)
    reporter = reporter_for(clock, "test.daphne.reliable_outage")
    send_reliably(outbox, clock, "websocket.disconnect", {"n": 1}, "dropped", reporter, 60)
    for _ in range(10):
        clock.advance(1)
    assert layer.sends == 5  # four refusals, then stored
    assert layer.receive(["websocket.disconnect"])[1] == {"n": 1}
    assert reporter.totals == {}


def test_reliably_drops_an_outage_at_the_deadline_as_a_failure():
    clock = task.Clock()
    layer = FailingLayer(LayerUnavailable("the store is away"))
    outbox = Outbox(layer, lambda: clock)
    reporter = reporter_for(clock, "test.daphne.reliable_deadline")
    send_reliably(outbox, clock, "websocket.disconnect", {"n": 1}, "dropped", reporter, 3)
    for _ in range(10):
        clock.advance(1)
    assert reporter.totals == {("error", "websocket.disconnect"): 1}
    sends = layer.sends
    clock.advance(10)
    assert layer.sends == sends  # given up: no more tries


@pytest.mark.parametrize("error", [KeyError("a bug"), TypeError("a bug")])
def test_reliably_reports_a_bug_at_once_without_retrying(caplog, error):
    clock = task.Clock()
    layer = FailingLayer(error)
    outbox = Outbox(layer, lambda: clock)
    reporter = reporter_for(clock, "test.daphne.reliable_bug")
    with caplog.at_level(logging.ERROR, logger="daphne.server"):
        send_reliably(outbox, clock, "websocket.disconnect", {"n": 1}, "dropped", reporter, 60)
        for _ in range(5):
            clock.advance(1)
    assert layer.sends == 1
    assert reporter.totals == {}
    (record,) = [r for r in caplog.records if r.name == "daphne.server"]
    assert record.exc_info is not None and record.exc_info[1] is error
    assert clock.getDelayedCalls() == []


# -- the protocols (issue 16 item 2) ------------------------------------------------


class FailsOn(ChannelLayer):
    """The in-memory layer: sends to channels starting with `channel` raise `error`."""

    def __init__(self, channel: str, error: BaseException, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.failing_channel = channel
        self.error = error
        self.sends = 0

    def send(self, channel: str, message: dict[str, Any]) -> None:
        if channel.startswith(self.failing_channel):
            self.sends += 1
            raise self.error
        super().send(channel, message)


def client_frame(text: str) -> bytes:
    """A masked text frame as a client sends it (RFC 6455 §5.3; the zero mask)."""
    payload = text.encode()
    return bytes([0x81, 0x80 | len(payload)]) + b"\x00\x00\x00\x00" + payload


def errors_logged(caplog) -> list[logging.LogRecord]:
    return [r for r in caplog.records if r.levelno >= logging.ERROR]


class ClosingTransport(testing.StringTransport):
    """Like a TCP transport, resuming a connection that is closing does nothing
    (StringTransport raises, which a handshake refused at once would hit)."""

    def resumeProducing(self) -> None:
        if not self.disconnecting:
            super().resumeProducing()


def refused_handshake(layer: ChannelLayer) -> tuple[HTTPFactory, bytes]:
    clock = task.Clock()
    factory = HTTPFactory(layer, send_channel="test!")
    factory.reactor = clock
    protocol = factory.buildProtocol(("127.0.0.1", 0))
    transport = ClosingTransport()
    protocol.makeConnection(transport)
    protocol.dataReceived(factories.build_websocket_upgrade("/ws/", [], []))
    clock.advance(0)
    return factory, transport.value()


def test_a_bug_sending_websocket_connect_refuses_the_handshake_with_500(caplog):
    """Not a 503 with a retry: the layer did not say its backend is away."""
    layer = FailsOn("websocket.connect", RuntimeError("a bug in the layer"))
    with caplog.at_level(logging.ERROR):
        factory, written = refused_handshake(layer)
    assert written.startswith(b"HTTP/1.1 500")
    (record,) = errors_logged(caplog)
    assert record.exc_info is not None and record.exc_info[1] is layer.error
    assert factory.reply_protocols == {}


def test_an_outage_sending_websocket_connect_still_refuses_with_503():
    _, written = refused_handshake(
        FailsOn("websocket.connect", LayerUnavailable("the store is away"))
    )
    assert written.startswith(b"HTTP/1.1 503")


def test_a_bug_sending_a_frame_closes_the_socket_with_1011_at_once(caplog):
    """Frames are not held for 30 s as for an outage: the close is immediate."""
    layer = FailsOn("websocket.receive", RuntimeError("a bug in the layer"))
    factory, channel, transport, clock, message = websocket_connect(layer)
    factory.dispatch_reply(message["reply_channel"], {"accept": True})
    protocol = factory.reply_protocols[message["reply_channel"]]
    transport.clear()
    with caplog.at_level(logging.ERROR):
        channel.dataReceived(client_frame("hello"))
        clock.advance(0)
    assert transport.value() == b"\x88\x02\x03\xf3"  # close, code 1011
    assert protocol.session.held is None
    (record,) = errors_logged(caplog)
    assert record.exc_info is not None and record.exc_info[1] is layer.error
    assert layer.sends == 1  # not retried


def test_an_outage_sending_a_frame_still_holds_it():
    layer = FailsOn("websocket.receive", LayerUnavailable("the store is away"))
    factory, channel, transport, clock, message = websocket_connect(layer)
    factory.dispatch_reply(message["reply_channel"], {"accept": True})
    protocol = factory.reply_protocols[message["reply_channel"]]
    transport.clear()
    channel.dataReceived(client_frame("hello"))
    clock.advance(0)
    assert transport.value() == b""
    assert [m["text"] for _, m in protocol.session.held] == ["hello"]
    clock.advance(1)
    assert layer.sends > 1  # retried


@pytest.mark.parametrize(
    ("error", "status", "retry_after"),
    [(LayerUnavailable("the store is away"), 503, b"5"), (RuntimeError("a bug"), 500, None)],
)
def test_http_request_send_503_only_for_an_outage(caplog, error, status, retry_after):
    layer = FailsOn("http.request", error)
    _, protocol, transport, clock = connect(layer)
    with caplog.at_level(logging.ERROR):
        protocol.dataReceived(b"GET /x HTTP/1.1\r\nHost: a\r\n\r\n")
        clock.advance(0)
    head = transport.value().split(b"\r\n\r\n", 1)[0]
    assert head.startswith(b"HTTP/1.1 %d" % status)
    assert (b"\r\nRetry-After: 5" in head) is (retry_after is not None)
    if status == 500:
        (record,) = errors_logged(caplog)
        assert record.exc_info is not None and record.exc_info[1] is error


def test_a_bug_sending_a_body_chunk_stops_the_pump(caplog):
    """Request Body Chunks (D-63): only full channels and outages are retried."""
    from daphne.request_body import BODY_CHUNK_SIZE

    layer = FailsOn("http.request.body", RuntimeError("a bug"))
    _, protocol, transport, clock = connect(layer)
    body = b"x" * (BODY_CHUNK_SIZE + 10)
    with caplog.at_level(logging.ERROR):
        protocol.dataReceived(
            b"POST /up HTTP/1.1\r\nHost: a\r\nContent-Length: %d\r\n\r\n" % len(body) + body
        )
        clock.advance(0)
    assert layer.receive(["http.request"])[1]["body_channel"].startswith("http.request.body")
    (record,) = errors_logged(caplog)
    assert record.exc_info is not None and record.exc_info[1] is layer.error
    sends = layer.sends
    clock.advance(5)
    assert layer.sends == sends  # not retried
    protocol.connectionLost(Failure(ConnectionDone()))  # frees the body file
