"""HTTP over real sockets against a running daphne (D-26..D-37, D-63, D-64, A-76..A-82)."""

from __future__ import annotations

import http.client
import socket
import threading
import time

import pytest

from channels.layers.inmemory import ChannelLayer
from tests.daphne.live import (
    LiveServer,
    Responder,
    http_responder,
    recv_response_head,
    recv_until_closed,
    send_retrying,
    wait_until,
)


def echo_request(layer, channel, message):
    """Reply with a repr of the request message so tests can inspect what daphne sent."""
    if channel != "http.request":
        return
    body = message["body"]
    if message.get("body_channel"):
        while True:
            chunk_channel, chunk = layer.receive([message["body_channel"]], block=True)
            if chunk_channel is None:
                continue
            body += chunk.get("content", b"")
            if not chunk.get("more_content"):
                break
    summary = repr(
        {
            "method": message["method"],
            "path": message["path"],
            "query_string": message["query_string"],
            "headers": message["headers"],
            "body_length": len(body),
            "body_head": body[:64],
            "has_body_channel": bool(message.get("body_channel")),
            "http_version": message["http_version"],
            "client": message["client"],
            "scheme": message["scheme"],
        }
    ).encode()
    send_retrying(layer, message["reply_channel"], {"status": 200, "content": summary})


@pytest.fixture
def echo_server():
    with LiveServer() as live:
        responder = Responder(live.layer, ["http.request"], echo_request).start()
        yield live
        responder.stop()


def get(live, path, method="GET", body=None, headers=None):
    connection = http.client.HTTPConnection("127.0.0.1", live.port, timeout=10)
    connection.request(method, path, body=body, headers=headers or {})
    response = connection.getresponse()
    data = response.read()
    connection.close()
    return response, data


def test_get_round_trip(echo_server):
    """D-30: method, decoded path, raw query string and headers reach the application."""
    response, data = get(echo_server, "/a%20b/c?x=1&y=%20", headers={"X-Thing": "v"})
    assert response.status == 200
    seen = eval(data)  # our own repr of plain values
    assert seen["method"] == "GET"
    assert seen["path"] == "/a b/c"
    assert seen["query_string"] == b"x=1&y=%20"
    assert (b"x-thing", b"v") in seen["headers"]  # a tuple (D-29, L-6)
    assert seen["client"][0] == "127.0.0.1"
    assert seen["scheme"] == "http"
    assert seen["http_version"] == "1.1"


def test_post_body_round_trip(echo_server):
    body = bytes(range(256)) * 40
    response, data = get(echo_server, "/upload", method="POST", body=body)
    seen = eval(data)
    assert seen["body_length"] == len(body)
    assert seen["body_head"] == body[:64]
    assert not seen["has_body_channel"]


def test_large_body_goes_over_body_channel(echo_server):
    """D-63: > 1 MiB bodies: first part in `body`, the rest in chunks, total intact."""
    body = b"x" * (3 * 1024 * 1024 + 17)
    response, data = get(echo_server, "/big", method="POST", body=body)
    seen = eval(data)
    assert seen["has_body_channel"]
    assert seen["body_length"] == len(body)


def test_chunked_request_body(echo_server):
    sock = echo_server.connect()
    sock.sendall(
        b"POST /c HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n"
        b"5\r\nhello\r\n6\r\n world\r\n0\r\n\r\n"
    )
    data = recv_until_closed(sock)
    assert b"200 OK" in data
    assert b"'body_length': 11" in data


def test_keep_alive_serves_several_requests(echo_server):
    connection = http.client.HTTPConnection("127.0.0.1", echo_server.port, timeout=10)
    for index in range(5):
        connection.request("GET", f"/n/{index}")
        response = connection.getresponse()
        assert f"'/n/{index}'".encode() in response.read()
    connection.close()


def test_streaming_response_and_disconnect_message():
    """A-79/A-80 streaming; A-82 one http.disconnect after completion."""
    layer = ChannelLayer()

    def stream(layer, channel, message):
        reply = message["reply_channel"]
        send_retrying(layer, reply, {"status": 200, "content": b"one,", "more_content": True})
        send_retrying(layer, reply, {"content": b"two,", "more_content": True})
        send_retrying(layer, reply, {"content": b"three"})

    with LiveServer(layer) as live:
        responder = Responder(layer, ["http.request"], stream).start()
        try:
            response, data = get(live, "/stream/")
        finally:
            responder.stop()
        assert data == b"one,two,three"
        assert response.getheader("Transfer-Encoding") == "chunked"
        channel, message = layer.receive(["http.disconnect"], block=True)
        assert message["path"] == "/stream/"
        assert layer.receive(["http.disconnect"]) == (None, None)


def test_http_timeout_gives_503():
    """D-24: no response within http_timeout → 503; the late reply is dropped quietly."""
    layer = ChannelLayer()
    with LiveServer(layer, http_timeout=1) as live:
        response, data = get(live, "/nobody-home/")
        assert response.status == 503
        assert b"Worker server failed to respond within time limit." in data
        _, request = layer.receive(["http.request"])
        # A reply for a finished request is discarded without error.
        layer.send(request["reply_channel"], {"status": 200})
        response, data = get(live, "/again/")
        assert response.status == 503


def test_full_request_channel_gives_503():
    """D-31, A-76: ChannelFull on http.request → 503 and Connection: close, after
    `http_queue_timeout` seconds without room (issue 17 item 3), with Retry-After."""
    layer = ChannelLayer(channel_capacity={"http.request": 1})
    with LiveServer(layer, http_queue_timeout=1) as live:
        layer.send("http.request", {"filler": True})
        started = time.monotonic()
        response, data = get(live, "/")
        assert time.monotonic() - started >= 0.9  # it waited for room first
        assert response.status == 503
        assert b"Request queue full." in data
        assert response.getheader("Connection") == "close"
        assert response.getheader("Retry-After") == "5"


def test_full_request_channel_delivers_once_room_comes():
    """Issue 17 item 3: a worker freeing room within the wait gets the request; the
    client sees its answer, not a 503."""
    layer = ChannelLayer(channel_capacity={"http.request": 1})
    with LiveServer(layer, http_queue_timeout=30) as live:
        layer.send("http.request", {"filler": True})
        result: dict = {}

        def fetch() -> None:
            result["r"], result["d"] = get(live, "/q/")

        client = threading.Thread(target=fetch)
        client.start()
        try:
            # The request is waiting for room (retrying from timers), then gets some.
            assert wait_until(lambda: live.call(waiting_requests, live) == 1, 10)
            assert layer.receive(["http.request"])[1] == {"filler": True}
            _, message = receive_within(layer, "http.request", 10)
            assert message["path"] == "/q/"
            send_retrying(layer, message["reply_channel"], {"status": 200, "content": b"late"})
        finally:
            client.join(timeout=20)
        assert result["r"].status == 200 and result["d"] == b"late"


def waiting_requests(live) -> int:
    return sum(
        1
        for protocol in live.factory.reply_protocols.values()
        if getattr(protocol, "_queue_wait", None) is not None
    )


def receive_within(layer: ChannelLayer, channel: str, seconds: float) -> tuple:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        got = layer.receive([channel], block=True)  # blocks up to the layer's bound
        if got[0] is not None:
            return got
    raise AssertionError(f"nothing on {channel} within {seconds} s")


def test_client_disconnect_mid_response_sends_disconnect_and_server_keeps_serving():
    layer = ChannelLayer()
    started = threading.Event()
    replies: list[str] = []

    def handle(layer, channel, message):
        if message["path"] == "/slow/":
            replies.append(message["reply_channel"])
            send_retrying(
                layer,
                message["reply_channel"],
                {"status": 200, "content": b"partial", "more_content": True},
            )
            started.set()
        else:
            http_responder()(layer, channel, message)

    with LiveServer(layer) as live:
        responder = Responder(layer, ["http.request"], handle).start()
        try:
            sock = live.connect()
            sock.sendall(b"GET /slow/ HTTP/1.1\r\nHost: x\r\n\r\n")
            data = recv_response_head(sock)
            while b"partial" not in data:
                data += sock.recv(100)
            assert started.wait(5)
            sock.close()
            channel, message = layer.receive(["http.disconnect"], block=True)
            assert message == {"reply_channel": replies[0], "path": "/slow/"}
            # The rest of the stream goes nowhere, quietly.
            layer.send(replies[0], {"content": b"more"})
            response, data = get(live, "/other/")
            assert response.status == 200 and data == b"ok"
        finally:
            responder.stop()


@pytest.mark.parametrize(
    "request_bytes",
    [
        # RFC 7230 §3.3.3: framing two parsers could read differently (D-64)
        b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\nContent-Length: 3\r\n\r\nabc",
        b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n",
        b"POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: identity\r\n\r\n",
        b"POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: gzip, chunked\r\n\r\n",
        b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: +3\r\n\r\nabc",
        b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 0x3\r\n\r\nabc",
        # malformed heads
        b"GARBAGE\r\n\r\n",
        b"GET / HTTP/1.1\r\nno colon here\r\n\r\n",
        b"GET / HTTP/1.1\r\nBad Name: v\r\n\r\n",
        b"GET /\xff HTTP/1.1\r\nHost: x\r\n\r\n",
    ],
    ids=[
        "duplicate-cl",
        "cl-and-te",
        "te-identity",
        "te-not-chunked",
        "cl-sign",
        "cl-hex",
        "request-line",
        "header-no-colon",
        "header-bad-name",
        "non-ascii-path",
    ],
)
def test_malformed_requests_get_400_and_nothing_reaches_the_layer(request_bytes):
    """D-64. Heads too large get 431 now: test_edge_hardening (issue 15)."""
    layer = ChannelLayer()
    with LiveServer(layer) as live:
        sock = live.connect()
        sock.sendall(request_bytes)
        data = recv_until_closed(sock)
        assert data.startswith(b"HTTP/1.1 400"), data[:200]
        assert layer.receive(["http.request"]) == (None, None)


def test_body_over_max_size_refused_before_reading():
    """D-64: Content-Length above http_max_body_size → 413 at once."""
    layer = ChannelLayer()
    with LiveServer(layer, http_max_body_size=1000) as live:
        sock = live.connect()
        sock.sendall(b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 5000\r\n\r\n")
        data = recv_until_closed(sock)
        assert data.startswith(b"HTTP/1.1 413")
        sock = live.connect()
        sock.sendall(
            b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 5000\r\nExpect: 100-continue\r\n\r\n"
        )
        assert recv_until_closed(sock).startswith(b"HTTP/1.1 413")  # no 100 Continue first
        sock = live.connect()
        sock.sendall(b"POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n")
        for _ in range(3):
            sock.sendall(b"200\r\n" + b"z" * 512 + b"\r\n")
        data = recv_until_closed(sock)
        assert data.startswith(b"HTTP/1.1 413")
        assert layer.receive(["http.request"]) == (None, None)


def test_slow_byte_by_byte_headers_are_served(echo_server):
    sock = echo_server.connect()
    for byte in b"GET /slowly/ HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n":
        sock.sendall(bytes([byte]))
    data = recv_until_closed(sock)
    assert b"200 OK" in data and b"/slowly/" in data


def test_head_timeout_408_for_partial_and_close_for_idle():
    """D-64: a head not complete in time → 408; an idle connection is just closed."""
    layer = ChannelLayer()
    with LiveServer(layer) as live:
        live.factory.head_timeout = 0.5
        sock = live.connect()
        sock.sendall(b"GET / HTTP/1.1\r\nHost:")
        assert recv_until_closed(sock).startswith(b"HTTP/1.1 408")
        idle = live.connect()
        assert recv_until_closed(idle) == b""


def test_server_survives_abrupt_clients(echo_server):
    """Half-sent requests and resets do not disturb other clients."""
    for payload in (b"GET / HT", b"POST / HTTP/1.1\r\nContent-Length: 100\r\n\r\nabc", b""):
        sock = echo_server.connect()
        sock.sendall(payload)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\x00\x00\x00\x00\x00\x00\x00")
        sock.close()
    response, data = get(echo_server, "/still-here/")
    assert response.status == 200 and b"/still-here/" in data


def test_access_log_lines():
    """D-36, D-47: one line per completed response."""
    import io

    from daphne.access import AccessLogGenerator

    stream = io.StringIO()
    layer = ChannelLayer()
    with LiveServer(layer, action_logger=AccessLogGenerator(stream)) as live:
        responder = Responder(layer, ["http.request"], http_responder(status=201)).start()
        try:
            get(live, "/logged/?q=1")
        finally:
            responder.stop()
    line = stream.getvalue().strip()
    assert line.startswith("127.0.0.1:")
    assert line.endswith('"GET /logged/?q=1" 201 2')


def test_tcp_listener_has_a_large_accept_queue():
    """issue 9 (W4/W5): TCP endpoints listen with backlog LISTEN_BACKLOG, not Twisted's 50,
    so a 200-handshake burst is queued by the kernel instead of retried; an endpoint
    naming its own backlog keeps it."""
    import subprocess
    from pathlib import Path

    from daphne.server import LISTEN_BACKLOG, with_listen_backlog

    assert with_listen_backlog("tcp:8000:backlog=7") == "tcp:8000:backlog=7"
    assert with_listen_backlog("fd:fileno=3") == "fd:fileno=3"
    with LiveServer() as live:
        listing = subprocess.run(
            ["ss", "-ltnH", f"sport = :{live.port}"],
            capture_output=True,
            text=True,
            timeout=10,
            check=True,
        ).stdout.split()
    # ss prints State, Recv-Q, Send-Q (the backlog of a listening socket), Local, Peer.
    assert listing[0] == "LISTEN"
    somaxconn = int(Path("/proc/sys/net/core/somaxconn").read_text())
    assert int(listing[2]) == min(LISTEN_BACKLOG, somaxconn)
