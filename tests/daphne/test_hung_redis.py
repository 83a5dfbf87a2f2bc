"""A Redis that hangs (SIGSTOP) must not freeze daphne's reactor (issue 15, item 2).

daphne runs in this process on asgi_redis, with a worker stand-in on its own layer
instance. While the Redis process is stopped: a request that needs no Redis gets its
400 at once, a WebSocket ping is answered, messages accepted meanwhile wait in the
bounded outbox and reach the application when Redis answers again; past the outbox's
bound a request is refused with 503 and a WebSocket frame closes its socket with 1013.
"""

from __future__ import annotations

import http.client
import signal
import socket
import threading
from collections.abc import Iterator

import pytest
import websocket

from asgi_redis import RedisChannelLayer
from tests.daphne.live import LiveServer, Responder, echo_worker, recv_response_head

pytestmark = pytest.mark.redis

# A malformed request: two Content-Length headers (D-64), answered without the layer.
MALFORMED = b"GET / HTTP/1.1\r\nHost: x\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\nx"


@pytest.fixture
def stack(redis_server) -> Iterator[tuple[LiveServer, object]]:
    worker = Responder(
        RedisChannelLayer(hosts=[redis_server.url]),
        ["http.request", "websocket.connect", "websocket.receive"],
        echo_worker,
        survive_layer_errors=True,
    ).start()
    live = LiveServer(RedisChannelLayer(hosts=[redis_server.url])).start()
    try:
        yield live, redis_server
    finally:
        try:
            redis_server.process.send_signal(signal.SIGCONT)
        finally:
            live.stop()
            worker.stop()


def stopped(redis) -> _Stopped:
    return _Stopped(redis)


class _Stopped:
    """SIGSTOP the Redis process for a `with` block; SIGCONT in any case afterwards."""

    def __init__(self, redis) -> None:
        self.redis = redis

    def __enter__(self) -> None:
        self.redis.process.send_signal(signal.SIGSTOP)

    def __exit__(self, *exc) -> None:
        self.redis.process.send_signal(signal.SIGCONT)


def get(port: int, path: str, timeout: float = 15) -> tuple[int, bytes]:
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    try:
        connection.request("GET", path)
        response = connection.getresponse()
        return response.status, response.read()
    finally:
        connection.close()


def start_request(port: int, path: str) -> socket.socket:
    sock = socket.create_connection(("127.0.0.1", port), timeout=20)
    sock.sendall(b"GET %s HTTP/1.1\r\nHost: x\r\n\r\n" % path.encode())
    return sock


def assert_malformed_request_gets_400(live) -> None:
    """A request that needs no Redis is refused at once, whatever Redis is doing."""
    bad = socket.create_connection(("127.0.0.1", live.port), timeout=1)
    try:
        bad.sendall(MALFORMED)
        assert recv_response_head(bad).startswith(b"HTTP/1.1 400")
    finally:
        bad.close()


def test_a_hung_redis_leaves_the_reactor_serving(stack):
    """Issue 15: 400 for a malformed request and a pong within 1 s during the stall;
    what was accepted meanwhile is delivered after it."""
    live, redis = stack
    assert get(live.port, "/warm/") == (200, b"hello /warm/")  # sender connected
    ws = websocket.create_connection(live.url("/ws/", "ws"), timeout=20)
    try:
        ws.send("before")
        assert ws.recv() == "before"
        with stopped(redis):
            waiting = start_request(live.port, "/during/")  # queued for the hung Redis
            ws.send("during")  # queued too
            # Both reached the outbox, which wrote them for Redis and waits for its
            # answer: the reactor keeps running calls meanwhile (1.4-style blocking
            # send_many froze it here).
            assert wait_for(lambda: reactor_call(live, lambda: live.factory.outbox.pending_bytes))
            for _ in range(3):
                reactor_call(live, lambda: None)
            assert_malformed_request_gets_400(live)
            ws.settimeout(1)
            ws.ping(b"still there?")
            opcode, data = ws.recv_data(control_frame=True)
            assert (opcode, data) == (websocket.ABNF.OPCODE_PONG, b"still there?")
            ws.settimeout(20)
        # Redis answers again: nothing accepted during the stall was lost.
        assert ws.recv() == "during"
        head = recv_response_head(waiting)
        assert head.startswith(b"HTTP/1.1 200")
        waiting.close()
    finally:
        ws.close()
        ws.shutdown()


def test_past_the_outbox_bound_requests_get_503_and_frames_1013(stack):
    """Issue 15: the outbox holds a bounded number of bytes for a hung Redis; beyond
    it HTTP is refused with 503 and a WebSocket frame closes its socket with 1013."""
    live, redis = stack
    assert get(live.port, "/warm/") == (200, b"hello /warm/")
    ws = websocket.create_connection(live.url("/ws/", "ws"), timeout=20)
    live.factory.outbox.limit = 64 * 1024
    live.server.http_queue_timeout = 1  # the refused request waits this long (issue 17)
    waiting: list[socket.socket] = []
    try:
        ws.send("before")
        assert ws.recv() == "before"
        with stopped(redis):
            # Fill the outbox: bodies that stay queued for the stopped Redis.
            body = b"x" * 16384
            for _ in range(3):
                sock = socket.create_connection(("127.0.0.1", live.port), timeout=20)
                sock.sendall(
                    b"POST /fill/ HTTP/1.1\r\nHost: x\r\nContent-Length: %d\r\n\r\n%s"
                    % (len(body), body)
                )
                waiting.append(sock)
            assert wait_for(lambda: live.call(lambda: live.factory.outbox.pending_bytes) > 48000)
            refused = socket.create_connection(("127.0.0.1", live.port), timeout=5)
            refused.sendall(
                b"POST /over/ HTTP/1.1\r\nHost: x\r\nContent-Length: %d\r\n\r\n%s"
                % (len(body), body)
            )
            assert recv_response_head(refused).startswith(b"HTTP/1.1 503")
            refused.close()
            ws.send("y" * 30000)
            ws.settimeout(5)
            frame = ws.recv_frame()
            assert frame.opcode == websocket.ABNF.OPCODE_CLOSE
            assert int.from_bytes(frame.data[:2], "big") == 1013
            assert live.factory.outbox.refused >= 2
        for sock in waiting:  # accepted before the bound: answered after the stall
            assert recv_response_head(sock).startswith(b"HTTP/1.1 200")
            sock.close()
    finally:
        ws.shutdown()


def reactor_call(live: LiveServer, function, timeout: float = 1.0):
    """`function()` run in daphne's reactor thread, which must run it within `timeout`."""
    result: list = []
    ran = threading.Event()

    def run() -> None:
        result.append(function())
        ran.set()

    live.reactor.callFromThread(run)
    assert ran.wait(timeout), f"daphne's reactor did not run a call within {timeout} s"
    return result[0]


def wait_for(predicate, timeout: float = 10) -> bool:
    """Poll `predicate` until true or `timeout` (bounded)."""
    done = threading.Event()
    for _ in range(int(timeout / 0.02)):
        if predicate():
            return True
        done.wait(0.02)
    return predicate()


def test_the_outbox_connects_to_a_hung_redis_without_blocking_the_reactor(stack):
    """Issue 15: the outbox's first connection is made during the stall (connecting
    waits for Redis's answer to the client's handshake): it happens off the reactor,
    and the request queued behind it is answered once Redis is back."""
    live, redis = stack
    with stopped(redis):
        waiting = start_request(live.port, "/first/")  # the outbox's first send
        assert wait_for(lambda: reactor_call(live, lambda: live.factory.outbox.pending_bytes))
        for _ in range(3):
            reactor_call(live, lambda: None)
        assert_malformed_request_gets_400(live)
    assert recv_response_head(waiting).startswith(b"HTTP/1.1 200")
    waiting.close()
