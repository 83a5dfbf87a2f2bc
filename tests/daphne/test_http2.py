"""HTTP/2 over TLS (ALPN "h2") and over cleartext with prior knowledge (h2c, ``--h2c``,
issue 21): daphne turns each stream into an ``http.request`` with ``http_version`` "2" and
writes the reply back on that stream (D-25, A-457 table).

The client is the `h2` protocol library on a real TLS or TCP socket, so what is checked is
the bytes daphne puts on the wire, not what a convenience client makes of them. Every
test runs over both (the ``h2_server`` fixture's parameter).
"""

from __future__ import annotations

import shutil
import socket
import ssl
import subprocess

import pytest

from channels.layers.inmemory import ChannelLayer
from tests.daphne.live import LiveServer, Responder, recv_response_head, send_retrying
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
    """One HTTP/2 connection over TLS or, for an h2c server, cleartext (prior knowledge),
    driven synchronously with a bounded socket timeout."""

    def __init__(self, server) -> None:
        raw = socket.create_connection(("127.0.0.1", server.port), timeout=TIMEOUT)
        self.scheme = server.scheme
        if server.scheme == "http":
            self.sock = raw  # h2c: the preface is the first thing sent
        else:
            context = ssl.create_default_context()
            context.check_hostname = False
            context.verify_mode = ssl.CERT_NONE
            context.set_alpn_protocols(["h2"])
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
            (":scheme", self.scheme),
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


@pytest.fixture(params=["https", "http"], ids=["tls-alpn", "h2c"])
def h2_server(request, tmp_path):
    if request.param == "https":
        key, cert = self_signed(tmp_path)
        endpoint = f"ssl:port=0:interface=127.0.0.1:privateKey={key}:certKey={cert}"
    else:
        endpoint = "tcp:port=0:interface=127.0.0.1"
    # Room for every stream of the many-streams test at once (the default is 10).
    layer = ChannelLayer(capacity=100)
    with LiveServer(layer, endpoint=endpoint, h2c=request.param == "http") as live:
        live.scheme = request.param
        responder = Responder(layer, ["http.request"], handler).start()
        try:
            yield live
        finally:
            responder.stop()


def test_get_and_post_over_http2(h2_server) -> None:
    """D-25: ALPN picks h2; the request reaches the layer as HTTP/2 and the reply returns."""
    client = H2Client(h2_server)
    try:
        get = client.request("GET", "/h2/path?x=1")
        post = client.request("POST", "/h2/form", body=b"a=1&b=2")
        replies = client.responses({get, post})
    finally:
        client.close()
    headers, body = replies[get]
    assert headers[":status"] == "201"
    assert headers["x-seen"] == "yes"
    assert body == b"2|GET|/h2/path|x=1|%s|" % h2_server.scheme.encode()
    headers, body = replies[post]
    assert headers[":status"] == "201"
    assert body == b"2|POST|/h2/form||%s|a=1&b=2" % h2_server.scheme.encode()


def test_body_over_the_limit_refused_on_its_stream(h2_server) -> None:
    """D-64 over HTTP/2: 413 on the stream with the big body; the connection serves on."""
    h2_server.server.factory.http_max_body_size = 16
    client = H2Client(h2_server)
    try:
        big = client.request("POST", "/big", body=b"x" * 64)
        ((headers, _),) = client.responses({big}).values()
        assert headers[":status"] == "413"
        small = client.request("POST", "/small", body=b"ok")
        ((headers, body),) = client.responses({small}).values()
    finally:
        client.close()
    assert headers[":status"] == "201"
    assert body == b"2|POST|/small||%s|ok" % h2_server.scheme.encode()


def test_many_streams_on_one_connection(h2_server) -> None:
    """Concurrent streams each get their own reply channel and their own answer."""
    client = H2Client(h2_server)
    try:
        streams = {client.request("GET", f"/many/{n}") for n in range(20)}
        replies = client.responses(streams)
    finally:
        client.close()
    assert {headers[":status"] for headers, _ in replies.values()} == {"201"}
    paths = sorted(body.split(b"|")[2] for _, body in replies.values())
    assert paths == sorted(f"/many/{n}".encode() for n in range(20))


# -- h2c only (issue 21) ------------------------------------------------------------------


@pytest.fixture
def h2c_server():
    layer = ChannelLayer(capacity=100)
    with LiveServer(layer, h2c=True) as live:
        live.scheme = "http"
        responder = Responder(layer, ["http.request"], handler).start()
        try:
            yield live
        finally:
            responder.stop()


def test_h2c_server_still_serves_http1(h2c_server) -> None:
    """Without the preface the connection is HTTP/1.1, even when its first bytes arrive
    one at a time (a prefix of the preface is held until it can be told apart)."""
    sock = h2c_server.connect()
    for byte in b"POST /one HTTP/1.1\r\nHost: x\r\nContent-Length: 2\r\n\r\nhi":
        sock.sendall(bytes([byte]))
    response = recv_response_head(sock)
    assert response.startswith(b"HTTP/1.1 201")


def test_h2c_preface_split_across_writes(h2c_server) -> None:
    client = H2Client.__new__(H2Client)
    client.sock = socket.create_connection(("127.0.0.1", h2c_server.port), timeout=TIMEOUT)
    client.scheme = "http"
    client.conn = h2_connection.H2Connection(h2_config.H2Configuration(client_side=True))
    client.conn.initiate_connection()
    data = client.conn.data_to_send()
    for piece in (data[:3], data[3:23], data[23:]):  # the preface is 24 bytes
        client.sock.sendall(piece)
    try:
        stream = client.request("GET", "/split")
        ((headers, body),) = client.responses({stream}).values()
    finally:
        client.close()
    assert headers[":status"] == "201"
    assert body == b"2|GET|/split||http|"


def test_without_h2c_the_preface_is_a_bad_request() -> None:
    """h2c is off by default: the preface is parsed as HTTP/1.1 and refused."""
    with LiveServer(ChannelLayer()) as live:
        sock = live.connect()
        sock.sendall(b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n")
        assert not recv_response_head(sock).startswith(b"HTTP/2")


CURL = shutil.which("curl")


def curl_has_http2() -> bool:
    if CURL is None:
        return False
    features = subprocess.run([CURL, "-V"], capture_output=True, text=True, timeout=10).stdout
    return "HTTP2" in features


@pytest.mark.skipif(not curl_has_http2(), reason="needs curl built with HTTP/2")
def test_curl_http2_prior_knowledge(h2c_server) -> None:
    """``curl --http2-prior-knowledge`` is served over h2c (issue 21)."""
    result = subprocess.run(
        [
            CURL,
            "-sS",
            "--http2-prior-knowledge",
            "-o",
            "-",
            "-w",
            "\n%{http_version}",
            "--max-time",
            str(TIMEOUT),
            h2c_server.url("/curl?q=1"),
        ],
        capture_output=True,
        text=True,
        timeout=TIMEOUT + 5,
    )
    assert result.returncode == 0, result.stderr
    body, version = result.stdout.rsplit("\n", 1)
    assert version == "2"
    assert body == "2|GET|/curl|q=1|http|"
