"""WebSockets over real sockets with websocket-client (D-38..D-43, D-65, A-83..A-89)."""

from __future__ import annotations

import base64
import os
import struct
import threading
import time

import pytest
import websocket

from channels.layers.inmemory import ChannelLayer
from tests.daphne.live import (
    LiveServer,
    Responder,
    recv_response_head,
    send_retrying,
    wait_until,
)


def echo_handler(layer, channel, message):
    """Accept every socket and echo frames; path /reject/ is refused, /close4000/ closed."""
    reply = message["reply_channel"]
    if channel == "websocket.connect":
        if message["path"] == "/reject/":
            send_retrying(layer, reply, {"accept": False})
        elif message["path"] == "/silent/":
            pass  # never answered: the connect timeout decides
        else:
            send_retrying(layer, reply, {"accept": True})
    elif channel == "websocket.receive":
        if message.get("text") == "close please":
            send_retrying(layer, reply, {"close": 4000})
        elif message.get("text") is not None:
            send_retrying(layer, reply, {"text": message["text"]})
        else:
            send_retrying(layer, reply, {"bytes": message["bytes"]})


CHANNELS = ["websocket.connect", "websocket.receive"]


@pytest.fixture
def echo_server():
    with LiveServer(websocket_connect_timeout=1) as live:
        responder = Responder(live.layer, CHANNELS, echo_handler).start()
        yield live
        responder.stop()


class connect:
    """A websocket-client connection whose socket is always released on exit."""

    def __init__(self, live, path="/ws/", **options):
        self.ws = websocket.create_connection(live.url(path, "ws"), timeout=10, **options)

    def __enter__(self):
        return self.ws

    def __exit__(self, *exc):
        try:
            self.ws.close(timeout=2)
        except (OSError, websocket.WebSocketException):
            pass  # the server may already have closed the connection
        self.ws.shutdown()


def test_text_and_binary_echo(echo_server):
    with connect(echo_server) as ws:
        ws.send("héllo ✓")
        assert ws.recv() == "héllo ✓"
        ws.send_binary(b"\x00\x01\xff")
        assert ws.recv() == b"\x00\x01\xff"


def test_connect_receive_disconnect_messages_and_order():
    """A-83..A-87: connect order 0, receives 1..n, disconnect n+1 with the client's code."""
    layer = ChannelLayer()
    with LiveServer(layer) as live:
        responder = Responder(
            layer,
            ["websocket.connect"],
            lambda layer, channel, m: send_retrying(layer, m["reply_channel"], {"accept": True}),
        ).start()
        try:
            with connect(live, "/chat/r%C3%A9sum%C3%A9/?room=1", header=["X-Test: yes"]) as ws:
                for text in ("a", "b", "c"):
                    ws.send(text)
                ws.close(status=4001)
        finally:
            responder.stop()
        receives = []
        while len(receives) < 3:
            channel, message = layer.receive(["websocket.receive"], block=True)
            if channel:
                receives.append(message)
        assert [m["order"] for m in receives] == [1, 2, 3]
        assert [m["text"] for m in receives] == ["a", "b", "c"]
        assert receives[0]["path"] == "/chat/résumé/"
        channel, disconnect = layer.receive(["websocket.disconnect"], block=True)
        assert disconnect["order"] == 4
        assert disconnect["code"] == 4001
        assert disconnect["reply_channel"] == receives[0]["reply_channel"]


def test_connect_message_contents():
    layer = ChannelLayer()
    with LiveServer(layer) as live:
        sock = live.connect()
        sock.sendall(handshake("/p%20q/?a=1&b=%20", extra=b"X-Custom: 1\r\nX-Custom: 2\r\n"))
        channel, message = layer.receive(["websocket.connect"], block=True)
        assert message["path"] == "/p q/"
        assert message["query_string"] == b"a=1&b=%20"
        assert message["order"] == 0
        assert (b"x-custom", b"1,2") in message["headers"]  # a tuple (D-38, L-6)
        assert message["client"][0] == "127.0.0.1"
        assert set(message) == {
            "reply_channel",
            "path",
            "headers",
            "query_string",
            "client",
            "server",
            "order",
        }


def handshake_status(live, path="/ws/") -> bytes:
    """The status line daphne answers a raw handshake with."""
    sock = live.connect()
    sock.sendall(handshake(path))
    return recv_response_head(sock).split(b"\r\n", 1)[0]


def test_reject_gives_403(echo_server):
    assert handshake_status(echo_server, "/reject/").startswith(b"HTTP/1.1 403")


def test_unanswered_handshake_times_out_with_403(echo_server):
    """D-43: websocket_connect_timeout (1 s here) rejects a pending handshake."""
    assert handshake_status(echo_server, "/silent/").startswith(b"HTTP/1.1 403")


def test_server_close_code(echo_server):
    with connect(echo_server) as ws:
        ws.send("close please")
        opcode, frame = ws.recv_data_frame(True)
        assert opcode == websocket.ABNF.OPCODE_CLOSE
        assert struct.unpack("!H", frame.data[:2])[0] == 4000


def test_subprotocol_negotiation():
    layer = ChannelLayer()
    with LiveServer(layer, ws_protocols=["v2.chat", "v1.chat"]) as live:
        responder = Responder(layer, CHANNELS, echo_handler).start()
        try:
            with connect(live, subprotocols=["nope", "v1.chat"]) as ws:
                assert ws.getsubprotocol() == "v1.chat"
        finally:
            responder.stop()


def test_message_over_limit_closes_1009_without_receive():
    """D-65: a frame over websocket_max_message_size → 1009, nothing forwarded."""
    layer = ChannelLayer()
    with LiveServer(layer, websocket_max_message_size=1024) as live:
        responder = Responder(layer, CHANNELS, echo_handler).start()
        try:
            with connect(live) as ws:
                ws.send("x" * 1000)
                assert ws.recv() == "x" * 1000
                ws.send("y" * 2000)
                opcode, frame = ws.recv_data_frame(True)
                assert opcode == websocket.ABNF.OPCODE_CLOSE
                assert struct.unpack("!H", frame.data[:2])[0] == 1009
        finally:
            responder.stop()


def test_full_receive_channel_is_retried_in_order():
    """A-89: websocket.receive ChannelFull → retried from a timer; nothing lost, order kept."""
    layer = ChannelLayer(channel_capacity={"websocket.receive": 2})
    with LiveServer(layer) as live:
        responder = Responder(
            layer,
            ["websocket.connect"],
            lambda layer, channel, m: send_retrying(layer, m["reply_channel"], {"accept": True}),
        ).start()
        try:
            with connect(live) as ws:
                for index in range(20):
                    ws.send(str(index))
                received = []
                while len(received) < 20:
                    channel, message = layer.receive(["websocket.receive"], block=True)
                    if channel:
                        received.append(message)
            assert [m["text"] for m in received] == [str(i) for i in range(20)]
            assert [m["order"] for m in received] == list(range(1, 21))
        finally:
            responder.stop()


def test_full_receive_channel_pushes_back_on_a_fast_client_and_loses_nothing():
    """Issue 17 item 3, A-89: a client sending faster than a full websocket.receive
    drains is not read while its frame waits for room (TCP flow control: its sends
    block), its socket is not closed, and once a consumer makes room every frame
    arrives in order and reading resumes."""
    count, size = 600, 64 * 1024  # 39 MB: more than the kernel's socket buffers hold
    layer = ChannelLayer(channel_capacity={"websocket.receive": 4})
    with LiveServer(layer) as live:
        responder = Responder(
            layer,
            ["websocket.connect"],
            lambda layer, channel, m: send_retrying(layer, m["reply_channel"], {"accept": True}),
        ).start()
        try:
            with connect(live) as ws:
                ws.settimeout(120)
                sender = threading.Thread(
                    target=lambda: [ws.send(f"{n:06d}".ljust(size, "x")) for n in range(count)],
                    daemon=True,
                )
                sender.start()

                def held() -> list:
                    return [
                        (p.session.received, p._read_blocks)
                        for p in live.factory.websockets()
                        if p.session.held
                    ]

                assert wait_until(lambda: live.call(held), 30)
                # The channel stays full: the client is not read, so its sends block.
                sender.join(timeout=2)
                assert sender.is_alive()
                ((read, blocks),) = live.call(held)
                assert read < count and blocks & 1  # _HELD: reading stopped
                received = []
                deadline = time.monotonic() + 90
                while len(received) < count + 1 and time.monotonic() < deadline:
                    channel, message = layer.receive(["websocket.receive"], block=True)
                    if channel is None:
                        continue
                    received.append((message["order"], message["text"][:6], len(message["text"])))
                    if len(received) == count:
                        sender.join(timeout=60)
                        assert not sender.is_alive()  # reading resumed
                        ws.send("still open")
                assert received[:count] == [(n + 1, f"{n:06d}", size) for n in range(count)]
                assert received[count][:2] == (count + 1, "still ")
                assert ws.connected
        finally:
            responder.stop()


def test_full_connect_channel_gives_503():
    """A-89: a connect channel that stays full past the connect timeout → 503."""
    layer = ChannelLayer(channel_capacity={"websocket.connect": 1})
    layer.send("websocket.connect", {"filler": True})
    with LiveServer(layer, websocket_connect_timeout=1) as live:
        assert handshake_status(live).startswith(b"HTTP/1.1 503")


def test_unmasked_client_frame_fails_connection(echo_server):
    """RFC 6455 §5.1: a client frame without a mask is a protocol error (1002)."""
    sock = echo_server.connect()
    sock.sendall(handshake("/ws/"))
    head = recv_response_head(sock)
    assert head.startswith(b"HTTP/1.1 101")
    sock.sendall(b"\x81\x02hi")
    data = head.split(b"\r\n\r\n", 1)[1]
    while len(data) < 4:
        chunk = sock.recv(100)
        if not chunk:
            break
        data += chunk
    assert data[0] == 0x88
    assert struct.unpack("!H", data[2:4])[0] == 1002


def test_keepalive_ping_sent_to_idle_socket():
    """D-43: after ping_interval idle seconds the server pings."""
    layer = ChannelLayer()
    with LiveServer(layer, ping_interval=1, ping_timeout=5) as live:
        responder = Responder(layer, CHANNELS, echo_handler).start()
        try:
            sock = live.connect()
            sock.sendall(handshake("/ws/"))
            head = recv_response_head(sock)
            assert head.startswith(b"HTTP/1.1 101")
            data = head.split(b"\r\n\r\n", 1)[1]
            while not data:
                data = sock.recv(100)
            assert data[0] == 0x89  # FIN + ping
        finally:
            responder.stop()


def test_underscore_header_refused_on_handshake(echo_server):
    sock = echo_server.connect()
    sock.sendall(handshake("/ws/", extra=b"X_Forwarded_For: 1.2.3.4\r\n"))
    assert recv_response_head(sock).startswith(b"HTTP/1.1 400")


def test_other_clients_unaffected_by_bad_frames(echo_server):
    bad = echo_server.connect()
    bad.sendall(handshake("/ws/"))
    recv_response_head(bad)
    bad.sendall(b"\x8f\x80\x00\x00\x00\x00")  # reserved opcode
    with connect(echo_server) as good:
        good.send("still fine")
        assert good.recv() == "still fine"


def test_websocket_timeout_closes_socket():
    """D-24: websocket_timeout closes with 1000."""
    layer = ChannelLayer()
    with LiveServer(layer, websocket_timeout=1) as live:
        responder = Responder(layer, CHANNELS, echo_handler).start()
        try:
            with connect(live) as ws:
                opcode, frame = ws.recv_data_frame(True)
                assert opcode == websocket.ABNF.OPCODE_CLOSE
                assert struct.unpack("!H", frame.data[:2])[0] == 1000
        finally:
            responder.stop()


def handshake(path: str, extra: bytes = b"") -> bytes:
    key = base64.b64encode(os.urandom(16))
    return (
        b"GET " + path.encode() + b" HTTP/1.1\r\nHost: localhost\r\nUpgrade: websocket\r\n"
        b"Connection: Upgrade\r\nSec-WebSocket-Key: " + key + b"\r\n"
        b"Sec-WebSocket-Version: 13\r\n" + extra + b"\r\n"
    )
