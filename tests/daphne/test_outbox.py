"""daphne's outgoing layer sends, one ``send_many`` per reactor tick (issue 9), on real Redis.

The outbox and the protocols are driven with a `task.Clock` (one ``advance(0)`` is one
reactor tick's flush) and a StringTransport, or live on loopback sockets with a worker
thread on its own layer instance. Outcomes per message: A-19/A-25 order, A-37/A-89 full
channels, A-92/D-65 too large, L-62 backend gone; D-53/D-54 stay synchronous with the
in-memory layer.
"""

from __future__ import annotations

import http.client
import struct
import threading
from collections.abc import Callable, Iterator
from typing import Any

import pytest
import redis
import websocket
from twisted.internet import error, task, testing
from twisted.python import failure

from asgi_redis import RedisChannelLayer
from channels.layers.inmemory import ChannelLayer
from daphne.http_protocol import HTTPFactory
from daphne.outbox import MAX_BATCH, Outbox
from daphne.reply_reader import ReactorReader
from daphne.tests import factories
from tests.daphne.live import LiveServer, Responder, echo_worker, recv_response_head

pytestmark = pytest.mark.redis


class CountingLayer(RedisChannelLayer):
    """The Redis layer, counting how many messages each send_many call carried."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.batches: list[int] = []

    def send_many(self, messages: Any) -> list:
        pairs = list(messages)
        self.batches.append(len(pairs))
        return super().send_many(pairs)

    def socket_sender(self) -> Any:
        """Live daphne sends without waiting (issue 15): count those batches too."""
        sender = super().socket_sender()
        submit = sender.submit

        def counting(pairs: Any, done: Any) -> Any:
            self.batches.append(len(pairs))
            return submit(pairs, done)

        sender.submit = counting
        return sender


class Outcomes:
    """An outbox callback recording ``(channel, message, error)`` in call order."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, dict, BaseException | None]] = []

    def __call__(self, channel: str, message: dict, error: BaseException | None) -> None:
        self.calls.append((channel, message, error))

    def errors(self) -> list[type | None]:
        return [None if e is None else type(e) for _, _, e in self.calls]


def drain(layer: Any, channel: str) -> list[dict]:
    """Everything on `channel` now, in order (non-blocking receives)."""
    messages = []
    while True:
        got, message = layer.receive([channel], block=False)
        if got is None:
            return messages
        messages.append(message)


# -- the outbox itself ---------------------------------------------------------------


def test_a_ticks_sends_go_in_one_send_many_in_order(redis_server):
    layer = CountingLayer(hosts=[redis_server.url])
    clock = task.Clock()
    outbox = Outbox(layer, lambda: clock)
    outcomes = Outcomes()
    for n in range(5):
        outbox.send("test.a", {"n": n}, outcomes, key="a")
    outbox.send("test.b", {"n": 0}, outcomes)
    assert outbox.batching and len(outbox) == 6
    assert layer.batches == [] and drain(layer, "test.a") == []  # nothing before the tick
    clock.advance(0)
    assert layer.batches == [6]
    assert outcomes.errors() == [None] * 6
    assert [m["n"] for _, m, _ in outcomes.calls] == [0, 1, 2, 3, 4, 0]
    assert drain(layer, "test.a") == [{"n": n} for n in range(5)]
    assert drain(layer, "test.b") == [{"n": 0}]


def test_a_huge_tick_is_split_into_bounded_calls(redis_server):
    layer = CountingLayer(hosts=[redis_server.url], capacity=MAX_BATCH + 10)
    clock = task.Clock()
    outbox = Outbox(layer, lambda: clock)
    outcomes = Outcomes()
    for n in range(MAX_BATCH + 3):
        outbox.send("test.a", {"n": n}, outcomes, key="a")
    clock.advance(0)
    assert layer.batches == [MAX_BATCH, 3]
    assert [m["n"] for m in drain(layer, "test.a")] == list(range(MAX_BATCH + 3))


def test_without_send_many_the_outcome_is_known_before_send_returns():
    """D-53/D-54: the in-memory layer has no send_many; sends stay synchronous."""
    layer = ChannelLayer(channel_capacity={"test.a": 1})
    outbox = Outbox(layer, lambda: pytest.fail("no reactor needed"))
    outcomes = Outcomes()
    outbox.send("test.a", {"n": 0}, outcomes)
    outbox.send("test.a", {"n": 1}, outcomes)
    assert not outbox.batching and len(outbox) == 0
    assert outcomes.errors() == [None, layer.ChannelFull]
    assert layer.receive(["test.a"]) == ("test.a", {"n": 0})


def test_a_full_channel_refuses_only_its_own_messages(redis_server):
    layer = RedisChannelLayer(hosts=[redis_server.url], channel_capacity={"test.full": 2})
    clock = task.Clock()
    outbox = Outbox(layer, lambda: clock)
    outcomes = Outcomes()
    for n in range(3):
        outbox.send("test.full", {"n": n}, outcomes, key="a")
        outbox.send("test.free", {"n": n}, outcomes, key="b")
    clock.advance(0)
    full = layer.ChannelFull
    assert outcomes.errors() == [None, None, None, None, full, None]
    assert drain(layer, "test.full") == [{"n": 0}, {"n": 1}]
    assert drain(layer, "test.free") == [{"n": n} for n in range(3)]


def test_a_too_large_message_does_not_poison_the_batch(redis_server):
    """A-92: send_many refuses the lot; sent one by one, only that sender hears of it."""
    layer = RedisChannelLayer(hosts=[redis_server.url])
    layer.max_message_size = 2000
    clock = task.Clock()
    outbox = Outbox(layer, lambda: clock)
    outcomes = Outcomes()
    outbox.send("test.a", {"n": 0}, outcomes, key="a")
    outbox.send("test.b", {"big": "x" * 5000}, outcomes, key="b")
    outbox.send("test.a", {"n": 1}, outcomes, key="a")
    outbox.send("test.c", {"n": 0}, outcomes, key="c")
    clock.advance(0)
    assert outcomes.errors() == [None, layer.MessageTooLarge, None, None]
    assert drain(layer, "test.a") == [{"n": 0}, {"n": 1}]
    assert drain(layer, "test.b") == []
    assert drain(layer, "test.c") == [{"n": 0}]


def test_after_a_refusal_a_senders_later_messages_are_not_sent(redis_server):
    """A-19: one at a time, a later message of a refused sender could overtake the
    refused one (its channel had room by then); it gets the same error unsent."""
    layer = RedisChannelLayer(hosts=[redis_server.url], channel_capacity={"test.full": 1})
    layer.max_message_size = 2000
    layer.send("test.full", {"filler": True})
    clock = task.Clock()
    outbox = Outbox(layer, lambda: clock)
    outcomes = Outcomes()
    outbox.send("test.big", {"big": "x" * 5000}, outcomes, key="b")  # forces one by one
    outbox.send("test.full", {"n": 0}, outcomes, key="a")
    outbox.send("test.free", {"n": 1}, outcomes, key="a")
    outbox.send("test.free", {"other": True}, outcomes, key="c")
    clock.advance(0)
    errors = [e for _, _, e in outcomes.calls]
    assert isinstance(errors[1], layer.ChannelFull) and errors[2] is errors[1]
    assert errors[3] is None
    assert drain(layer, "test.free") == [{"other": True}]


def test_an_unreachable_redis_is_reported_per_message(redis_server):
    """L-62.3: a failed shard's error is every one of its messages' outcome."""
    layer = RedisChannelLayer(hosts=[redis_server.url])
    layer.send("test.warm", {})  # a pooled connection that the kill then breaks
    clock = task.Clock()
    outbox = Outbox(layer, lambda: clock)
    outcomes = Outcomes()
    for n in range(3):
        outbox.send("test.a", {"n": n}, outcomes, key="a")
    redis_server.kill()
    clock.advance(0)
    assert len(outcomes.calls) == 3
    for _, _, error_ in outcomes.calls:
        assert isinstance(error_, (redis.ConnectionError, redis.TimeoutError))


# -- protocols on a StringTransport, flushed by a Clock --------------------------------


def http_factory(layer: Any, **options: Any) -> tuple[HTTPFactory, task.Clock]:
    clock = task.Clock()
    factory = HTTPFactory(layer, send_channel="test!", **options)
    factory.reactor = clock
    return factory, clock


def open_connection(factory: HTTPFactory) -> tuple[Any, testing.StringTransport]:
    protocol = factory.buildProtocol(("127.0.0.1", 0))
    transport = testing.StringTransport()
    protocol.makeConnection(transport)
    return protocol, transport


def test_http_request_goes_at_the_tick_and_a_full_channel_503s_its_own_request(
    redis_server,
):
    """A-89/D-31: of two requests in one tick, the one that found no room gets 503."""
    layer = RedisChannelLayer(hosts=[redis_server.url], channel_capacity={"http.request": 1})
    factory, clock = http_factory(layer)
    factory.config.http_queue_timeout = 0  # 503 at once (issue 17: it may wait for room)
    first, first_transport = open_connection(factory)
    second, second_transport = open_connection(factory)
    first.dataReceived(b"GET /one/ HTTP/1.1\r\nHost: x\r\n\r\n")
    second.dataReceived(b"GET /two/ HTTP/1.1\r\nHost: x\r\n\r\n")
    assert drain(layer, "http.request") == []  # queued for the end of the tick
    clock.advance(0)
    assert first_transport.value() == b""
    assert second_transport.value().startswith(b"HTTP/1.1 503 Service Unavailable")
    (stored,) = drain(layer, "http.request")
    assert stored["path"] == "/one/"
    factory.dispatch_reply(stored["reply_channel"], {"status": 200, "content": b"ok"})
    assert first_transport.value().startswith(b"HTTP/1.1 200 OK")


def websocket_open(factory: HTTPFactory, clock: task.Clock, layer: Any) -> tuple:
    protocol, transport = open_connection(factory)
    protocol.dataReceived(factories.build_websocket_upgrade("/ws/", [], []))
    clock.advance(0)
    (connect,) = drain(layer, "websocket.connect")
    factory.dispatch_reply(connect["reply_channel"], {"accept": True})
    assert transport.value().startswith(b"HTTP/1.1 101")
    transport.clear()
    ws = factory.reply_protocols[connect["reply_channel"]]
    return ws, transport, connect["reply_channel"]


def client_frame(text: bytes) -> bytes:
    return b"\x81" + bytes([0x80 | len(text)]) + b"\x00\x00\x00\x00" + text


def test_frames_held_on_a_full_channel_keep_their_order_and_the_disconnect_follows(
    redis_server,
):
    """A-89: frames refused in a flush are held (reading paused), retried in order, and
    websocket.disconnect comes after them (A-19, D-42)."""
    layer = RedisChannelLayer(hosts=[redis_server.url], channel_capacity={"websocket.receive": 2})
    factory, clock = http_factory(layer)
    ws, transport, _ = websocket_open(factory, clock, layer)
    ws.dataReceived(b"".join(client_frame(b"%d" % n) for n in range(1, 6)))
    clock.advance(0)
    assert transport.producerState == "paused"
    ws.connectionLost(failure.Failure(error.ConnectionDone()))
    received = drain(layer, "websocket.receive")
    for _ in range(200):  # bounded: each advance runs one capped retry
        if len(received) == 5:
            break
        clock.advance(0.05)
        received += drain(layer, "websocket.receive")
    assert [m["text"] for m in received] == ["1", "2", "3", "4", "5"]
    assert [m["order"] for m in received] == [1, 2, 3, 4, 5]
    clock.advance(0.05)
    (disconnect,) = drain(layer, "websocket.disconnect")
    assert disconnect["order"] == 6


def test_a_disconnect_waits_for_the_frames_still_in_the_outbox(redis_server):
    layer = CountingLayer(hosts=[redis_server.url])
    factory, clock = http_factory(layer)
    ws, transport, _ = websocket_open(factory, clock, layer)
    ws.dataReceived(client_frame(b"a") + client_frame(b"b"))
    ws.connectionLost(failure.Failure(error.ConnectionDone()))
    clock.advance(0)
    assert [m["text"] for m in drain(layer, "websocket.receive")] == ["a", "b"]
    clock.advance(0)
    (disconnect,) = drain(layer, "websocket.disconnect")
    assert disconnect["order"] == 3


def test_a_client_gone_before_its_connect_was_flushed(redis_server):
    """A-85: the connect stored → its disconnect follows; refused as full → neither."""
    layer = RedisChannelLayer(hosts=[redis_server.url], channel_capacity={"websocket.connect": 1})
    factory, clock = http_factory(layer, websocket_connect_timeout=5)
    kept, _ = open_connection(factory)
    refused, _ = open_connection(factory)
    for protocol in (kept, refused):
        protocol.dataReceived(factories.build_websocket_upgrade("/ws/", [], []))
        protocol.connectionLost(failure.Failure(error.ConnectionDone()))
    clock.advance(0)
    clock.advance(0)
    (connect,) = drain(layer, "websocket.connect")
    (disconnect,) = drain(layer, "websocket.disconnect")
    assert disconnect["reply_channel"] == connect["reply_channel"]
    clock.advance(1)  # the refused connect's retry sees the client gone and stops
    assert drain(layer, "websocket.connect") == []
    assert drain(layer, "websocket.disconnect") == []
    assert factory.reply_protocols == {}


def test_in_memory_layer_stays_synchronous():
    """D-53/D-54: the message is on the layer when dataReceived returns."""
    message, factory, transport = factories._run_through_daphne(
        factories._build_request("GET", "/sync/"), "http.request"
    )
    assert not factory.outbox.batching
    assert message["path"] == "/sync/"


# -- live: real sockets, daphne's reactor thread, a worker thread --------------------


@pytest.fixture
def redis_live(redis_server) -> Iterator[Callable[..., LiveServer]]:
    started: list[tuple[LiveServer, Responder]] = []

    def start(channels: list[str], **layer_options: Any) -> LiveServer:
        layer = CountingLayer(hosts=[redis_server.url], **layer_options)
        live = LiveServer(layer).start()
        worker = Responder(
            RedisChannelLayer(hosts=[redis_server.url]),
            channels,
            echo_worker,
            survive_layer_errors=True,
        )
        started.append((live, worker.start()))
        return live

    yield start
    for live, worker in started:
        live.stop()
        worker.stop()


class ReactorGate:
    """Holds daphne's reactor thread so bytes from several clients arrive in one tick."""

    def __init__(self, live: LiveServer) -> None:
        self.entered = threading.Event()
        self.release = threading.Event()
        live.reactor.callFromThread(self._hold)
        assert self.entered.wait(10), "the reactor did not take the gate"

    def _hold(self) -> None:
        self.entered.set()
        self.release.wait(10)

    def open(self) -> None:
        self.release.set()


def ws_connect(live: LiveServer) -> websocket.WebSocket:
    return websocket.create_connection(live.url("/ws/", "ws"), timeout=15)


def ws_close(*clients: websocket.WebSocket) -> None:
    for ws in clients:
        try:
            ws.close(timeout=2)
        except (OSError, websocket.WebSocketException):
            pass  # the server may have closed it already
        ws.shutdown()


def test_many_clients_frames_in_one_tick_arrive_in_order(redis_live):
    live = redis_live(["websocket.connect", "websocket.receive", "http.request"])
    clients = [ws_connect(live) for _ in range(20)]
    http_clients = [
        http.client.HTTPConnection("127.0.0.1", live.port, timeout=15) for _ in range(5)
    ]
    try:
        gate = ReactorGate(live)
        for index, ws in enumerate(clients):
            for n in range(5):
                ws.send(f"{index}-{n}")
        for connection in http_clients:
            connection.request("GET", "/hello/")
        gate.open()
        for index, ws in enumerate(clients):
            assert [ws.recv() for _ in range(5)] == [f"{index}-{n}" for n in range(5)]
        for connection in http_clients:
            response = connection.getresponse()
            assert (response.status, response.read()) == (200, b"hello /hello/")
        assert max(live.layer.batches) > 1  # at least one flush carried several
    finally:
        ws_close(*clients)
        for connection in http_clients:
            connection.close()


def test_a_full_request_channel_in_a_batch_503s_only_the_request(redis_live):
    """http.request full (nobody consumes it here) → 503; the sockets' frames in the
    same flush are delivered."""
    live = redis_live(
        ["websocket.connect", "websocket.receive"], channel_capacity={"http.request": 1}
    )
    live.layer.send("http.request", {"filler": True})
    live.server.http_queue_timeout = 0  # 503 at once (issue 17: it may wait for room)
    clients = [ws_connect(live) for _ in range(3)]
    sock = live.connect(timeout=15)
    try:
        gate = ReactorGate(live)
        sock.sendall(b"GET /x/ HTTP/1.1\r\nHost: x\r\n\r\n")
        for ws in clients:
            ws.send("still here")
        gate.open()
        assert recv_response_head(sock).startswith(b"HTTP/1.1 503")
        for ws in clients:
            assert ws.recv() == "still here"
    finally:
        ws_close(*clients)


def test_a_full_receive_channel_holds_frames_then_delivers_them(redis_live, redis_server):
    """A-89 on Redis: nothing lost, order kept, the socket stays open."""
    live = redis_live(["websocket.connect"], channel_capacity={"websocket.receive": 2})
    ws = ws_connect(live)
    try:
        for n in range(20):
            ws.send(str(n))
        reader = RedisChannelLayer(hosts=[redis_server.url])
        received: list[dict] = []
        for _ in range(200):  # each blocking receive is bounded by the layer
            if len(received) == 20:
                break
            channel, message = reader.receive(["websocket.receive"], block=True)
            if channel:
                received.append(message)
        assert [m["text"] for m in received] == [str(n) for n in range(20)]
        assert [m["order"] for m in received] == list(range(1, 21))
    finally:
        ws_close(ws)


def test_a_too_large_frame_closes_only_its_own_socket(redis_live):
    """D-40/D-65: within websocket_max_message_size but over the layer's limit → 1009."""
    live = redis_live(["websocket.connect", "websocket.receive"])
    live.layer.max_message_size = 4096
    big, small = ws_connect(live), ws_connect(live)
    try:
        gate = ReactorGate(live)
        small.send("before")
        big.send("x" * 8000)
        small.send("after")
        gate.open()
        opcode, frame = big.recv_data_frame(True)
        assert opcode == websocket.ABNF.OPCODE_CLOSE
        assert struct.unpack("!H", frame.data[:2])[0] == 1009
        assert [small.recv(), small.recv()] == ["before", "after"]
        small.send("later")
        assert small.recv() == "later"
    finally:
        ws_close(big, small)


@pytest.mark.slow
def test_frames_queued_when_redis_dies_are_held_and_delivered_after_restart(
    redis_live, redis_server
):
    """L-62, issue 9 W6: the flush fails with a connection error → frames held, the
    socket stays open, and they are delivered once Redis is back."""
    live = redis_live(["websocket.connect", "websocket.receive"])
    ws = ws_connect(live)
    try:
        ws.send("warm")
        assert ws.recv() == "warm"
        gate = ReactorGate(live)
        for n in range(3):
            ws.send(f"held-{n}")
        redis_server.kill()
        gate.open()
        for _ in range(1000):  # bounded; each call waits for one pass of the reactor
            if live.call(lambda: any(p.session.held for p in live.factory.websockets())):
                break
        else:
            pytest.fail("the frames were not held after the failed flush")
        redis_server.start()
        assert [ws.recv() for _ in range(3)] == [f"held-{n}" for n in range(3)]
        ws.send("after")
        assert ws.recv() == "after"
    finally:
        ws_close(ws)


def test_a_stop_sends_what_the_outbox_still_holds(redis_server):
    """D-17: a second signal stops at once, without another tick; frames queued in
    this tick still reach the layer."""
    from daphne.server import Server

    layer = RedisChannelLayer(hosts=[redis_server.url])
    factory, clock = http_factory(layer)
    ws, transport, reply_channel = websocket_open(factory, clock, layer)
    server = Server(layer, endpoints=["tcp:0"], signal_handlers=False)
    server.factory, server.reactor = factory, clock
    clock.running = False  # a Clock has no reactor state; the stop must not stop anything
    ws.dataReceived(client_frame(b"last"))
    server._stop_requested()  # graceful: close frames out, nothing flushed yet
    assert drain(layer, "websocket.receive") == []
    server._stop_requested()  # the second signal: drop everything and send what is queued
    assert [m["text"] for m in drain(layer, "websocket.receive")] == ["last"]
    assert len(factory.outbox) == 0


def test_a_too_large_frame_refused_after_its_socket_began_closing(redis_server):
    """D-65 in a flush that comes after the application closed the socket in the same
    tick: the socket is muted and its closing handshake goes on instead of an abort."""
    layer = RedisChannelLayer(hosts=[redis_server.url])
    factory, clock = http_factory(layer)
    ws, transport, reply_channel = websocket_open(factory, clock, layer)
    layer.max_message_size = 150
    ws.dataReceived(client_frame(b"x" * 120))
    factory.dispatch_reply(reply_channel, {"close": True})
    clock.advance(0)
    assert transport.value() == b"\x88\x02\x03\xe8"  # the application's close, nothing else
    assert not transport.disconnected  # not aborted: waiting for the client's close
    ws.dataReceived(b"\x88\x82\x00\x00\x00\x00\x03\xe8")
    ws.connectionLost(failure.Failure(error.ConnectionDone()))
    clock.advance(0)
    assert drain(layer, "websocket.receive") == []
    assert drain(layer, "websocket.disconnect") == []  # muted, as after a 1009 close


def test_replies_are_read_by_the_reactor_without_a_thread(redis_live):
    """D-15 on asgi_redis: the reactor watches the layer's socket (`socket_receive`)."""
    live = redis_live(["http.request"])
    assert isinstance(live.server.reader, ReactorReader)
    # Issue 20: a group message's copies go to the factory's fan-out as a run.
    assert live.server.reader.fan_out == live.server.factory.fan_out
    assert "daphne-reply-reader" not in [thread.name for thread in threading.enumerate()]
    connection = http.client.HTTPConnection("127.0.0.1", live.port, timeout=15)
    try:
        for index in range(3):
            connection.request("GET", f"/r/{index}/")
            response = connection.getresponse()
            assert (response.status, response.read()) == (200, f"hello /r/{index}/".encode())
    finally:
        connection.close()


# -- sends written without waiting (issue 15) ------------------------------------------


def test_a_stop_waits_briefly_for_the_layer_to_answer_what_is_in_flight(redis_live, redis_server):
    """D-17 with socket sends: a stop that runs no more reactor ticks still gets the
    answer for what the outbox wrote, and sends what it still queued."""
    live = redis_live(["http.request"])
    connection = http.client.HTTPConnection("127.0.0.1", live.port, timeout=15)
    connection.request("GET", "/warm/")  # the outbox's connection to Redis is open
    assert connection.getresponse().read() == b"hello /warm/"
    connection.close()
    outcomes = Outcomes()

    def queue_and_stop() -> None:
        outbox = live.factory.outbox
        assert outbox._sender is not None  # sending on sockets
        for n in range(3):
            outbox.send("test.drained", {"n": n}, outcomes)
        outbox.flush()  # the first batch is in flight; later sends wait behind it
        outbox.send("test.drained", {"n": 3}, outcomes)
        outbox.drain()

    live.call(queue_and_stop)
    assert outcomes.errors() == [None] * 4
    layer = RedisChannelLayer(hosts=[redis_server.url])
    assert [m["n"] for m in drain(layer, "test.drained")] == [0, 1, 2, 3]
    layer.close()


def test_pending_bytes_are_released_by_answers_and_refusals_on_the_socket_path():
    """Issue 20: the bytes of the batch in flight are summed as messages are queued, not
    again per answer; what is queued, in flight, answered or refused adds up."""
    from daphne.outbox import MAX_BATCH, message_size

    class Reactor(task.Clock):
        def addReader(self, reader: Any) -> None:  # only its presence matters here
            raise AssertionError("no pipes to watch")

    class Sender:
        def __init__(self) -> None:
            self.batches: list[tuple[list, Any]] = []

        def submit(self, pairs: list, done: Any) -> list:
            self.batches.append((pairs, done))
            return []

    sender = Sender()

    class Layer:
        def send_many(self, pairs: Any) -> Any:
            raise AssertionError("the socket path is used")

        def socket_sender(self) -> Sender:
            return sender

    reactor = Reactor()
    outbox = Outbox(Layer(), lambda: reactor)  # type: ignore[arg-type]
    outcomes: list = []

    def sent(channel: str, message: dict, error: Any) -> None:
        outcomes.append(error)

    messages = [{"body": b"x" * n} for n in range(MAX_BATCH + 3)]
    for message in messages:
        outbox.send("http.request", message, sent, key=id(message))
    total = sum(message_size(message) for message in messages)
    assert outbox.pending_bytes == total
    reactor.advance(0)
    pairs, done = sender.batches[-1]
    assert len(pairs) == MAX_BATCH  # the rest waits for the answer
    done([None] * MAX_BATCH)
    assert outbox.pending_bytes == total - sum(message_size(m) for m in messages[:MAX_BATCH])
    reactor.advance(0)
    pairs, done = sender.batches[-1]
    assert len(pairs) == 3
    # The first refused: its sender's next message, queued meanwhile, is refused unsent.
    later = {"body": b"later"}
    outbox.send("http.request", later, sent, key=id(messages[MAX_BATCH]))
    full = ValueError("full")
    done([full, None, None])
    assert outcomes[-2:] == [None, full]  # the batch's last outcome, then `later`'s
    assert outbox.pending_bytes == 0
    assert len(outbox) == 0
    # And the next batch releases exactly its own bytes.
    outbox.send("http.request", {"body": b"next"}, sent)
    reactor.advance(0)
    sender.batches[-1][1]([None])
    assert outbox.pending_bytes == 0
