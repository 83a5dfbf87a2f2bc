"""A client that stops reading cannot grow daphne's memory (issue 15, item 1).

Real daphne on loopback sockets (in-memory layer, worker stand-in threads), clients
with a small receive buffer that stop reading. What is measured is daphne's own
buffered bytes per connection (`backpressure.buffered_bytes` of the transport), and
the objects left alive after sockets close, with the garbage collector disabled.
"""

from __future__ import annotations

import gc
import socket
import ssl
import threading
import weakref
from collections.abc import Callable

import websocket

from channels.layers.inmemory import ChannelLayer
from daphne import backpressure
from daphne.backpressure import HARD_LIMIT_FACTOR, buffered_bytes
from daphne.http_channel import HTTPChannel
from daphne.ws_protocol import WebSocketProtocol
from tests.daphne.live import LiveServer, Responder, echo_worker, send_retrying

LIMIT = 256 * 1024
SMALL_RCVBUF = [(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)]


class Recorder:
    """A worker stand-in that echoes text and records websocket.disconnect codes."""

    def __init__(self) -> None:
        self.codes: list[int] = []

    def __call__(self, layer: ChannelLayer, channel: str, message: dict) -> None:
        if channel == "websocket.disconnect":
            self.codes.append(message["code"])
        else:
            echo_worker(layer, channel, message)


def wait_for(predicate: Callable[[], bool], timeout: float = 20) -> bool:
    pause = threading.Event()
    for _ in range(int(timeout / 0.02)):
        if predicate():
            return True
        pause.wait(0.02)
    return predicate()


class BufferWatch:
    """Samples the largest buffered byte count of daphne's connections (reactor thread)."""

    def __init__(self, live: LiveServer) -> None:
        self.live = live
        self.largest = 0

    def sample(self) -> int:
        def measure() -> int:
            sizes = [
                buffered_bytes(protocol.transport)
                for protocol in self.live.factory.reply_protocols.values()
                if protocol.transport is not None
            ]
            sizes += [
                buffered_bytes(channel.transport)
                for channel in self.live.factory.http_channels
                if channel.transport is not None
            ]
            return max(sizes, default=0)

        size = self.live.call(measure)
        self.largest = max(self.largest, size)
        return size


def sender(ws: websocket.WebSocket, payload: str, count: int) -> threading.Thread:
    """Send `count` frames from a thread; daphne stops reading, so sends may block."""

    def run() -> None:
        try:
            for _ in range(count):
                ws.send(payload)
        except (OSError, websocket.WebSocketException):
            pass  # closed by daphne, or the send timed out: expected here

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    return thread


def test_echo_to_a_client_not_reading_stops_reading_it():
    """Issue 15: echo to a client that never reads: daphne honours the transport's
    pause and stops reading the client, so its buffer stays near Twisted's 64 KiB
    instead of growing with everything the client sends (12.5 MiB here)."""
    layer = ChannelLayer()
    worker = Responder(layer, ["websocket.connect", "websocket.receive"], echo_worker).start()
    try:
        with LiveServer(layer, max_outbound_buffer=LIMIT) as live:
            ws = websocket.create_connection(
                live.url("/ws/", "ws"), timeout=5, sockopt=SMALL_RCVBUF
            )
            watch = BufferWatch(live)
            thread = sender(ws, "e" * 32768, 400)

            def paused() -> bool:
                return live.call(
                    lambda: [p._read_blocks for p in live.factory.reply_protocols.values()]
                ) == [2]

            assert wait_for(paused)
            for _ in range(50):
                watch.sample()
            # What the client sent before the pause is still echoed (the frames daphne
            # had read and the worker's backlog); nothing after it.
            assert watch.largest <= LIMIT * HARD_LIMIT_FACTOR
            assert live.factory.outbound_overflows == 0
            assert thread.is_alive()  # the client cannot send more: TCP pushes back
            ws.shutdown()
            thread.join(10)
    finally:
        worker.stop()


def pusher(frames: int, recorder: Recorder) -> Callable:
    """Accepts a socket, then pushes `frames` 32 KiB frames to it unasked (a broadcast)."""

    def handle(layer: ChannelLayer, channel: str, message: dict) -> None:
        if channel == "websocket.connect":
            reply = message["reply_channel"]
            send_retrying(layer, reply, {"accept": True})
            for _ in range(frames):
                send_retrying(layer, reply, {"text": "p" * 32768})
        else:
            recorder(layer, channel, message)

    return handle


def test_pushing_to_a_client_not_reading_closes_it_1008_at_the_hard_cap():
    """Issue 15: 6 MiB pushed to a client that never reads: closed with 1008 as soon as
    its buffer passes 4x the limit, counted, and the buffer never grew beyond that."""
    recorder = Recorder()
    layer = ChannelLayer()
    worker = Responder(layer, ["websocket.connect", "websocket.disconnect"], pusher(200, recorder))
    worker.start()
    try:
        with LiveServer(layer, max_outbound_buffer=LIMIT) as live:
            watch = BufferWatch(live)
            ws = websocket.create_connection(
                live.url("/ws/", "ws"), timeout=5, sockopt=SMALL_RCVBUF
            )
            assert wait_for(lambda: watch.sample() >= 0 and live.factory.outbound_overflows == 1)
            assert wait_for(lambda: recorder.codes == [1008])
            assert watch.largest <= LIMIT * HARD_LIMIT_FACTOR + 65536
            assert live.call(lambda: len(live.factory.reply_protocols)) == 0
            ws.shutdown()
    finally:
        worker.stop()


def test_websocket_buffer_over_the_limit_for_the_grace_time_is_closed(monkeypatch):
    """Issue 15: over the limit (the hard cap out of reach) for `outbound_full_timeout`:
    closed with 1008 once that time has passed, with the buffer still over the limit."""
    monkeypatch.setattr(backpressure, "HARD_LIMIT_FACTOR", 1000)
    recorder = Recorder()
    layer = ChannelLayer()
    worker = Responder(layer, ["websocket.connect", "websocket.disconnect"], pusher(200, recorder))
    worker.start()
    try:
        with LiveServer(layer, max_outbound_buffer=LIMIT) as live:
            live.factory.outbound_full_timeout = 0.5
            watch = BufferWatch(live)
            ws = websocket.create_connection(
                live.url("/ws/", "ws"), timeout=5, sockopt=SMALL_RCVBUF
            )
            try:
                assert wait_for(lambda: watch.sample() >= 0 and recorder.codes == [1008])
                assert live.factory.outbound_overflows == 1
                assert watch.largest > LIMIT  # it was over the limit, and only then closed
            finally:
                ws.shutdown()
    finally:
        worker.stop()


def streaming(chunk: bytes, count: int, over: threading.Event | None = None):
    """A worker stand-in answering each request with `count` x `chunk`, streamed.

    Once `over` is set (the test is done with the client) it stops sending: after daphne
    aborted a client, nobody reads its reply channel, and each send to it, full, would
    be retried for 10 s (a loaded machine did not stop the worker in time).
    """

    pause = over or threading.Event()

    def send(layer: ChannelLayer, reply: str, message: dict) -> bool:
        for _ in range(2000):  # as `send_retrying`: 10 s at most
            if over is not None and over.is_set():
                return False
            try:
                layer.send(reply, message)
                return True
            except layer.ChannelFull:
                pause.wait(0.005)
        raise RuntimeError(f"{reply} stayed full")

    def stream(layer: ChannelLayer, channel: str, message: dict) -> None:
        if channel != "http.request":
            return
        reply = message["reply_channel"]
        if not send(layer, reply, {"status": 200, "content": b"", "more_content": True}):
            return
        for _ in range(count):
            if not send(layer, reply, {"content": chunk, "more_content": True}):
                return
        send(layer, reply, {"content": b""})

    return stream


def test_streamed_http_response_to_a_client_not_reading_is_bounded():
    """Issue 15: a 40 MiB streamed response to a client that never reads: daphne's
    buffer for it stays under the hard cap and the connection is aborted, counted."""
    chunk = b"s" * (1024 * 1024)
    layer = ChannelLayer()
    over = threading.Event()
    worker = Responder(layer, ["http.request"], streaming(chunk, 40, over)).start()
    try:
        with LiveServer(layer, max_outbound_buffer=LIMIT) as live:
            sock = socket.socket()
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
            sock.settimeout(10)
            sock.connect(("127.0.0.1", live.port))
            sock.sendall(b"GET /big/ HTTP/1.1\r\nHost: x\r\n\r\n")
            watch = BufferWatch(live)
            assert wait_for(lambda: watch.sample() >= 0 and live.factory.outbound_overflows == 1)
            assert watch.largest <= LIMIT * HARD_LIMIT_FACTOR + len(chunk) + 65536
            assert wait_for(lambda: live.call(lambda: len(live.factory.http_channels)) == 0)
            sock.close()
    finally:
        over.set()
        worker.stop()


def test_a_slow_but_reading_client_gets_the_whole_response():
    """The limit only closes clients that stop reading: one that reads gets it all."""
    chunk = b"r" * (256 * 1024)
    layer = ChannelLayer()
    worker = Responder(layer, ["http.request"], streaming(chunk, 3)).start()
    try:
        with LiveServer(layer, max_outbound_buffer=LIMIT) as live:
            sock = live.connect()
            sock.sendall(b"GET /ok/ HTTP/1.0\r\nHost: x\r\n\r\n")
            data = b""
            while True:
                part = sock.recv(65536)
                if not part:
                    break
                data += part
            assert data.startswith(b"HTTP/1.0 200")
            assert data.count(b"r") >= 3 * len(chunk)
            assert live.factory.outbound_overflows == 0
    finally:
        worker.stop()


def test_closed_websockets_are_freed_at_once_without_the_garbage_collector():
    """Issue 15: 100 sockets opened and closed; with gc disabled, no WebSocketProtocol
    (nor the upgrade's HTTP channel and request) stays alive: no reference cycles."""
    layer = ChannelLayer()
    worker = Responder(layer, ["websocket.connect", "websocket.receive"], echo_worker).start()
    gc.collect()
    gc.disable()
    try:
        with LiveServer(layer) as live:
            clients = [
                websocket.create_connection(live.url("/ws/", "ws"), timeout=10) for _ in range(100)
            ]
            for ws in clients[:5]:
                ws.send("hi")
                assert ws.recv() == "hi"
            refs = live.call(
                lambda: [weakref.ref(p) for p in live.factory.reply_protocols.values()]
            )
            assert len(refs) == 100
            # Issue 20: once a socket is open its HTTP channel and the upgrade's request
            # are freed (by reference counting: gc is off); only a count handle remains.
            channels = [
                o for o in gc.get_objects() if type(o) is HTTPChannel and o.factory is live.factory
            ]
            assert channels == []
            for index, ws in enumerate(clients):
                if index % 2:
                    ws.close(timeout=5)  # closing handshake
                ws.shutdown()  # the others just drop the TCP connection
            del clients
            assert wait_for(lambda: live.call(lambda: len(live.factory.reply_protocols)) == 0)
            assert wait_for(lambda: live.call(lambda: sum(ref() is not None for ref in refs)) == 0)
            alive = [
                o
                for o in gc.get_objects()
                if type(o) is WebSocketProtocol and o.main_factory is live.factory
            ]
            assert alive == []
    finally:
        gc.enable()
        worker.stop()


def test_over_tls_a_client_pushed_to_without_reading_is_closed_too(tmp_path):
    """Issue 15 over TLS: the WebSocket is the TLS transport's producer as well, and
    the bytes TLS holds count toward the limit."""
    from tests.daphne.test_tls import self_signed

    key, cert = self_signed(tmp_path)
    endpoint = f"ssl:port=0:interface=127.0.0.1:privateKey={key}:certKey={cert}"
    recorder = Recorder()
    layer = ChannelLayer()
    worker = Responder(layer, ["websocket.connect", "websocket.disconnect"], pusher(200, recorder))
    worker.start()
    try:
        with LiveServer(layer, endpoint=endpoint, max_outbound_buffer=LIMIT) as live:
            ws = websocket.create_connection(
                f"wss://127.0.0.1:{live.port}/ws/",
                timeout=5,
                sockopt=SMALL_RCVBUF,
                sslopt={"cert_reqs": ssl.CERT_NONE},
            )
            try:
                assert wait_for(lambda: recorder.codes == [1008])
                assert live.factory.outbound_overflows == 1
            finally:
                ws.shutdown()
    finally:
        worker.stop()
