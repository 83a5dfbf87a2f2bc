"""HTTP/2 over TLS (ALPN "h2"): daphne turns each stream into an ``http.request`` with
``http_version`` "2" and writes the reply back on that stream (D-25, A-457 table).

The client is the `h2` protocol library on a real TLS socket, so what is checked is the
bytes daphne puts on the wire, not what a convenience client makes of them.
"""

from __future__ import annotations

import socket
import ssl

import pytest

from channels.layers.inmemory import ChannelLayer
from tests.daphne.live import LiveServer, Responder, send_retrying
from tests.daphne.test_tls import self_signed

pytest.importorskip("OpenSSL", reason="Twisted's TLS needs pyOpenSSL (pip install -e .[tests])")
h2_connection = pytest.importorskip("h2.connection", reason="needs Twisted's http2 extra")
h2_events = pytest.importorskip("h2.events")
h2_config = pytest.importorskip("h2.config")

TIMEOUT = 10


def handler(layer, channel, message):
    """Echo what daphne told the application, so the test sees the message it built."""
    reply = message["reply_channel"]
    body = b"|".join(
        [
            message["http_version"].encode(),
            message["method"].encode(),
            message["path"].encode(),
            message["query_string"],
            message["scheme"].encode(),
            message["body"],
        ]
    )
    send_retrying(layer, reply, {"status": 201, "headers": [[b"x-seen", b"yes"]], "content": body})


class H2Client:
    """One HTTP/2 connection over TLS, driven synchronously with a bounded socket timeout."""

    def __init__(self, port: int) -> None:
        context = ssl.create_default_context()
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
        context.set_alpn_protocols(["h2"])
        raw = socket.create_connection(("127.0.0.1", port), timeout=TIMEOUT)
        self.sock = context.wrap_socket(raw, server_hostname="localhost")
        assert self.sock.selected_alpn_protocol() == "h2", "daphne did not offer h2 (D-25)"
        self.conn = h2_connection.H2Connection(h2_config.H2Configuration(client_side=True))
        self.conn.initiate_connection()
        self.flush()

    def flush(self) -> None:
        self.sock.sendall(self.conn.data_to_send())

    def request(self, method: str, path: str, body: bytes = b"") -> int:
        stream = self.conn.get_next_available_stream_id()
        headers = [
            (":method", method),
            (":path", path),
            (":scheme", "https"),
            (":authority", "localhost"),
        ]
        if body:
            headers.append(("content-length", str(len(body))))
        self.conn.send_headers(stream, headers, end_stream=not body)
        if body:
            self.conn.send_data(stream, body, end_stream=True)
        self.flush()
        return stream

    def responses(self, streams: set[int]) -> dict[int, tuple[dict, bytes]]:
        """Read until every stream in `streams` has ended; bounded by the socket timeout."""
        headers: dict[int, dict] = {}
        bodies: dict[int, bytes] = {stream: b"" for stream in streams}
        ended: set[int] = set()
        while ended != streams:
            data = self.sock.recv(65536)
            assert data, "daphne closed the HTTP/2 connection"
            for event in self.conn.receive_data(data):
                if isinstance(event, h2_events.ResponseReceived):
                    headers[event.stream_id] = {
                        (k.decode() if isinstance(k, bytes) else k): (
                            v.decode() if isinstance(v, bytes) else v
                        )
                        for k, v in event.headers
                    }
                elif isinstance(event, h2_events.DataReceived):
                    bodies[event.stream_id] += event.data
                    self.conn.acknowledge_received_data(
                        event.flow_controlled_length, event.stream_id
                    )
                elif isinstance(event, h2_events.StreamEnded):
                    ended.add(event.stream_id)
                elif isinstance(event, h2_events.StreamReset):
                    raise AssertionError(f"stream {event.stream_id} reset: {event.error_code}")
            self.flush()
        return {stream: (headers[stream], bodies[stream]) for stream in streams}

    def close(self) -> None:
        self.conn.close_connection()
        self.flush()
        self.sock.close()


@pytest.fixture
def h2_server(tmp_path):
    key, cert = self_signed(tmp_path)
    endpoint = f"ssl:port=0:interface=127.0.0.1:privateKey={key}:certKey={cert}"
    # Room for every stream of the many-streams test at once (the default is 10).
    layer = ChannelLayer(capacity=100)
    with LiveServer(layer, endpoint=endpoint) as live:
        responder = Responder(layer, ["http.request"], handler).start()
        try:
            yield live
        finally:
            responder.stop()


def test_get_and_post_over_http2(h2_server) -> None:
    """D-25: ALPN picks h2; the request reaches the layer as HTTP/2 and the reply returns."""
    client = H2Client(h2_server.port)
    try:
        get = client.request("GET", "/h2/path?x=1")
        post = client.request("POST", "/h2/form", body=b"a=1&b=2")
        replies = client.responses({get, post})
    finally:
        client.close()
    headers, body = replies[get]
    assert headers[":status"] == "201"
    assert headers["x-seen"] == "yes"
    assert body == b"2|GET|/h2/path|x=1|https|"
    headers, body = replies[post]
    assert headers[":status"] == "201"
    assert body == b"2|POST|/h2/form||https|a=1&b=2"


def test_body_over_the_limit_refused_on_its_stream(h2_server) -> None:
    """D-64 over HTTP/2: 413 on the stream with the big body; the connection serves on."""
    h2_server.server.factory.http_max_body_size = 16
    client = H2Client(h2_server.port)
    try:
        big = client.request("POST", "/big", body=b"x" * 64)
        ((headers, _),) = client.responses({big}).values()
        assert headers[":status"] == "413"
        small = client.request("POST", "/small", body=b"ok")
        ((headers, body),) = client.responses({small}).values()
    finally:
        client.close()
    assert headers[":status"] == "201"
    assert body == b"2|POST|/small||https|ok"


def test_many_streams_on_one_connection(h2_server) -> None:
    """Concurrent streams each get their own reply channel and their own answer."""
    client = H2Client(h2_server.port)
    try:
        streams = {client.request("GET", f"/many/{n}") for n in range(20)}
        replies = client.responses(streams)
    finally:
        client.close()
    assert {headers[":status"] for headers, _ in replies.values()} == {"201"}
    paths = sorted(body.split(b"|")[2] for _, body in replies.values())
    assert paths == sorted(f"/many/{n}".encode() for n in range(20))
