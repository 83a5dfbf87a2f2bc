"""Issue 15 items 4, 8 and 9 against a real daphne over sockets.

- X-Forwarded-For spoofing through a trusted proxy that adds its own line (D-50, D-66);
- undecodable ``X-Forwarded-For`` / ``Daphne-Root-Path`` → 400, one DEBUG line, no
  traceback; the other headers daphne reads are fuzzed for the same class of bug;
- ``Host`` (RFC 9112 §3.2), header sections too large (431), request lines too long
  (414), and a request body trickled past its total deadline (408).
"""

from __future__ import annotations

import logging
import queue
import threading

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from twisted.internet import task, testing

from channels.layers.inmemory import ChannelLayer
from daphne.http_protocol import HTTPFactory
from daphne.proxy import UndecodableHeader, parse_x_forwarded_for
from daphne.request_checks import host_problem
from tests.daphne.live import (
    LiveServer,
    Responder,
    recv_response_head,
    recv_until_closed,
    send_retrying,
)


class Recorder:
    """A worker stand-in answering 200 and keeping every http.request it saw."""

    def __init__(self) -> None:
        self.messages: queue.Queue[dict] = queue.Queue()

    def __call__(self, layer, channel, message) -> None:
        if channel == "http.request":
            self.messages.put(message)
            send_retrying(layer, message["reply_channel"], {"status": 200, "content": b"ok"})


@pytest.fixture
def serve():
    """``serve(**server_options)`` → (LiveServer, Recorder); all stopped afterwards."""
    started = []

    def start(**options):
        live = LiveServer(ChannelLayer(), **options).start()
        recorder = Recorder()
        responder = Responder(live.layer, ["http.request"], recorder).start()
        started.append((live, responder))
        return live, recorder

    yield start
    for live, responder in started:
        responder.stop()
        live.stop()


def exchange(live: LiveServer, request: bytes) -> bytes:
    """Send `request` on a new connection; the whole answer (the server closes)."""
    sock = live.connect()
    sock.sendall(request)
    return recv_until_closed(sock)


PROXY = {
    "proxy_forwarded_address_header": "X-Forwarded-For",
    "proxy_forwarded_port_header": "X-Forwarded-Port",
    "proxy_forwarded_proto_header": "X-Forwarded-Proto",
}


# -- item 4: X-Forwarded-For across lines ---------------------------------------------


def test_forged_first_line_is_not_believed_through_a_trusted_proxy(serve):
    """Issue 15 item 4, D-66: HAProxy adds its own X-Forwarded-For line after the
    client's forged one; the right-most untrusted entry across all lines wins."""
    live, recorder = serve(**PROXY, forwarded_allow_ips=["127.0.0.1", "10.0.0.0/8"])
    answer = exchange(
        live,
        b"GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n"
        b"X-Forwarded-For: 6.6.6.6, 7.7.7.7\r\n"
        b"X-Forwarded-For: 203.0.113.9, 10.0.0.2\r\n"
        b"X-Forwarded-Proto: https\r\nX-Forwarded-Proto: http\r\n\r\n",
    )
    assert answer.startswith(b"HTTP/1.1 200")
    message = recorder.messages.get(timeout=10)
    assert message["client"] == ["203.0.113.9", 0]
    # One proto entry per hop is not given: the right-most, from the nearest proxy.
    assert message["scheme"] == "http"


def test_forged_first_line_is_not_believed_for_websockets_either():
    """Issue 15 item 4, D-38 step 4: the hand-over replays the lines joined, and the
    WebSocket's client is the same right-most untrusted entry."""
    seen: queue.Queue[dict] = queue.Queue()

    def accept(layer, channel, message):
        if channel == "websocket.connect":
            seen.put(message)
            send_retrying(layer, message["reply_channel"], {"accept": True})

    with LiveServer(ChannelLayer(), **PROXY, forwarded_allow_ips=["127.0.0.1"]) as live:
        responder = Responder(live.layer, ["websocket.connect"], accept).start()
        try:
            sock = live.connect()
            sock.sendall(
                b"GET /ws/ HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\n"
                b"Connection: Upgrade\r\nSec-WebSocket-Key: x3JJHMbDL1EzLkh9GBhXDw==\r\n"
                b"Sec-WebSocket-Version: 13\r\nX-Forwarded-For: 6.6.6.6\r\n"
                b"X-Forwarded-For: 198.51.100.7\r\n\r\n"
            )
            assert recv_response_head(sock).startswith(b"HTTP/1.1 101")
            assert seen.get(timeout=10)["client"] == ["198.51.100.7", 0]
        finally:
            responder.stop()


def test_port_and_proto_of_the_chosen_hop():
    """Issue 15 item 4: one X-Forwarded-Port/-Proto entry per X-Forwarded-For entry →
    the chosen hop's; otherwise the right-most (set by the proxy nearest daphne)."""
    headers = {
        b"X-Forwarded-For": [b"1.2.3.4", b"5.6.7.8, 10.0.0.2"],
        b"X-Forwarded-Port": [b"1111, 2222", b"3333"],
        b"X-Forwarded-Proto": [b"http, https, http"],
    }
    addr, scheme = parse_x_forwarded_for(
        headers, original_addr=["10.0.0.1", 80], forwarded_allow_ips=["10.0.0.0/8"]
    )
    assert (addr, scheme) == (["5.6.7.8", 2222], "https")
    headers[b"X-Forwarded-Proto"] = [b"https"]
    headers[b"X-Forwarded-Port"] = [b"9999"]
    addr, scheme = parse_x_forwarded_for(
        headers, original_addr=["10.0.0.1", 80], forwarded_allow_ips=["10.0.0.0/8"]
    )
    assert (addr, scheme) == (["5.6.7.8", 9999], "https")
    # Empty entries name nobody; an empty header changes nothing.
    trusted = {"original_addr": ["10.0.0.1", 80], "forwarded_allow_ips": ["10.0.0.0/8"]}
    headers = {b"X-Forwarded-For": [b"1.2.3.4,", b" , 10.0.0.2"]}
    assert parse_x_forwarded_for(headers, **trusted) == (["1.2.3.4", 0], None)
    headers = {b"X-Forwarded-For": [b" , "]}
    assert parse_x_forwarded_for(headers, **trusted) == (["10.0.0.1", 80], None)


def test_without_an_allow_list_the_first_line_is_used_as_in_1_4():
    """D-50: without forwarded_allow_ips nothing changes (the docs say to set it)."""
    headers = {b"X-Forwarded-For": [b"6.6.6.6", b"1.2.3.4"], b"X-Forwarded-Proto": [b"https"]}
    assert parse_x_forwarded_for(headers) == (["6.6.6.6", 0], "https")


# -- item 8: headers daphne decodes ---------------------------------------------------


def test_undecodable_forwarded_for_from_a_trusted_proxy_is_400(serve, caplog):
    """Issue 15 item 8: invalid UTF-8 in X-Forwarded-For → 400, one DEBUG line, no
    traceback, nothing sent to the layer."""
    live, recorder = serve(**PROXY, forwarded_allow_ips=["127.0.0.1"])
    with caplog.at_level(logging.DEBUG, logger="daphne"):
        answer = exchange(
            live, b"GET / HTTP/1.1\r\nHost: x\r\nX-Forwarded-For: \xff\xfe1.2.3.4\r\n\r\n"
        )
    assert answer.startswith(b"HTTP/1.1 400")
    assert b"X-Forwarded-For header is not UTF-8" in answer
    assert recorder.messages.empty()
    assert not [r for r in caplog.records if r.levelno >= logging.WARNING]
    assert any("not UTF-8" in r.getMessage() for r in caplog.records if r.levelno == logging.DEBUG)
    with pytest.raises(UndecodableHeader):
        parse_x_forwarded_for({b"X-Forwarded-For": b"\xff"}, forwarded_allow_ips=["10.0.0.0/8"])


def test_undecodable_forwarded_for_from_an_untrusted_peer_is_ignored(serve):
    """D-66: headers from a peer outside the list are not read, so cannot fail."""
    live, recorder = serve(**PROXY, forwarded_allow_ips=["10.9.9.9"])
    answer = exchange(
        live, b"GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\nX-Forwarded-For: \xff\r\n\r\n"
    )
    assert answer.startswith(b"HTTP/1.1 200")
    assert recorder.messages.get(timeout=10)["client"][0] == "127.0.0.1"


def test_root_path_header_must_be_utf8(serve, caplog):
    """Issue 15 item 8, D-29: a Daphne-Root-Path that is not UTF-8 → 400 (it was 500
    with a traceback); a UTF-8 or percent-encoded one is used, decoded."""
    live, recorder = serve()
    with caplog.at_level(logging.DEBUG, logger="daphne"):
        bad = exchange(live, b"GET / HTTP/1.1\r\nHost: x\r\nDaphne-Root-Path: /\xe9t\xe9\r\n\r\n")
    assert bad.startswith(b"HTTP/1.1 400")
    assert not [r for r in caplog.records if r.levelno >= logging.WARNING]
    good = exchange(
        live,
        b"GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n"
        b"Daphne-Root-Path: /\xc3\xa9t\xc3\xa9%20x\r\n\r\n",
    )
    assert good.startswith(b"HTTP/1.1 200")
    assert recorder.messages.get(timeout=10)["root_path"] == "/été x"
    assert recorder.messages.empty()  # the refused one never reached the layer


FUZZED_HEADERS = [
    b"Host",
    b"Origin",
    b"Cookie",
    b"Sec-WebSocket-Key",
    b"Sec-WebSocket-Protocol",
    b"Sec-WebSocket-Version",
    b"Sec-WebSocket-Extensions",
    b"X-Forwarded-For",
    b"X-Forwarded-Port",
    b"X-Forwarded-Proto",
    b"Daphne-Root-Path",
    b"Upgrade",
]
# Any byte a header value may carry on the wire (Twisted refuses NUL, CR, LF itself).
VALUE_BYTES = st.binary(max_size=40).map(
    lambda b: b.translate(None, b"\x00\r\n").strip(b" \t") or b"v"
)


@given(
    fuzzed=st.lists(st.tuples(st.sampled_from(FUZZED_HEADERS), VALUE_BYTES), max_size=4),
    websocket=st.booleans(),
)
@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
def test_headers_daphne_reads_never_cause_a_500(fuzzed, websocket):
    """Issue 15 item 8: whatever bytes the headers daphne interprets carry, on plain
    requests and WebSocket handshakes, the answer is never 500 and nothing is logged at
    ERROR (a 4xx, a 101, or the request reaching the layer are all fine)."""
    layer = ChannelLayer()
    factory = HTTPFactory(layer, send_channel="test!", **PROXY, forwarded_allow_ips=None)
    factory.require_host = True
    factory.reactor = task.Clock()
    protocol = factory.buildProtocol(("127.0.0.1", 0))
    transport = ClosingTransport()
    protocol.makeConnection(transport)
    head = [b"GET /p HTTP/1.1", b"Host: x"]
    if websocket:
        head += [
            b"Upgrade: websocket",
            b"Connection: Upgrade",
            b"Sec-WebSocket-Key: x3JJHMbDL1EzLkh9GBhXDw==",
            b"Sec-WebSocket-Version: 13",
        ]
    head += [name + b": " + value for name, value in fuzzed]
    errors = []
    handler = _ErrorCatcher(errors)
    logging.getLogger("daphne").addHandler(handler)
    try:
        protocol.dataReceived(b"\r\n".join(head) + b"\r\n\r\n")
    finally:
        logging.getLogger("daphne").removeHandler(handler)
    assert not errors, errors
    assert not transport.value().startswith(b"HTTP/1.1 5"), transport.value()[:200]


class ClosingTransport(testing.StringTransport):
    """Like a TCP transport, resuming a connection that is closing does nothing
    (StringTransport raises, which a handshake autobahn refused at once would hit)."""

    def resumeProducing(self) -> None:
        if not self.disconnecting:
            super().resumeProducing()


class _ErrorCatcher(logging.Handler):
    def __init__(self, errors: list) -> None:
        super().__init__(logging.ERROR)
        self.errors = errors

    def emit(self, record: logging.LogRecord) -> None:
        self.errors.append(record.getMessage())


# -- item 9: Host, head sizes, body deadline ---------------------------------------------


@pytest.mark.parametrize(
    "head",
    [
        b"GET / HTTP/1.1\r\n",  # no Host in HTTP/1.1
        b"GET / HTTP/1.1\r\nHost: a.example\r\nHost: b.example\r\n",
        b"GET / HTTP/1.0\r\nHost: a.example\r\nHost: b.example\r\n",
        b"GET / HTTP/1.1\r\nHost: a b\r\n",
        b"GET / HTTP/1.1\r\nHost: exa<mple>\r\n",
        b"GET / HTTP/1.1\r\nHost: example.com:80x\r\n",
        b"GET / HTTP/1.1\r\nHost: example.com:80:81\r\n",
        b"GET / HTTP/1.1\r\nHost: [::1\r\n",
        b"GET / HTTP/1.1\r\nHost: [::1]x\r\n",
        b"GET / HTTP/1.1\r\nHost: \xc3\xa9.example\r\n",
    ],
    ids=[
        "missing",
        "twice",
        "twice-1.0",
        "space",
        "angle",
        "port-letters",
        "two-ports",
        "open-bracket",
        "after-bracket",
        "non-ascii",
    ],
)
def test_bad_host_gets_400_and_nothing_reaches_the_worker(serve, head):
    """Issue 15 item 9, RFC 9112 §3.2: missing (HTTP/1.1), repeated or invalid Host."""
    live, recorder = serve()
    answer = exchange(live, head + b"\r\n")
    assert answer.startswith(b"HTTP/1.1 400"), answer[:100]
    assert recorder.messages.empty()


@pytest.mark.parametrize(
    "head",
    [
        b"GET / HTTP/1.0\r\n",  # HTTP/1.0 may omit Host
        b"GET / HTTP/1.1\r\nHost: example.com\r\n",
        b"GET / HTTP/1.1\r\nHost: example.com:8000\r\n",
        b"GET / HTTP/1.1\r\nHost: [::1]:8000\r\n",
        b"GET / HTTP/1.1\r\nHost: 10.0.0.1\r\n",
        b"GET / HTTP/1.1\r\nHost:\r\n",  # empty: a target without authority
    ],
)
def test_valid_host_is_served(serve, head):
    """Issue 15 item 9: what RFC 9112 §3.2 allows still reaches the worker."""
    live, recorder = serve()
    answer = exchange(live, head + b"Connection: close\r\n\r\n")
    assert b" 200 " in answer.split(b"\r\n", 1)[0], answer[:100]
    assert recorder.messages.get(timeout=10)["path"] == "/"


def test_host_problem_is_cheap_and_exact():
    """The checker itself: None for valid values, a reason otherwise."""
    assert host_problem([b"a.example:1"], b"HTTP/1.1") is None
    assert host_problem(None, b"HTTP/1.0") is None
    assert host_problem(None, b"HTTP/1.1") == "the request has no Host header"
    assert "more than one" in host_problem([b"a", b"a"], b"HTTP/1.1")
    assert host_problem([b"[]"], b"HTTP/1.1") is not None


@pytest.mark.parametrize(
    ("request_bytes", "status"),
    [
        (b"GET / HTTP/1.1\r\nHost: x\r\nX-Big: " + b"a" * 20000 + b"\r\n\r\n", b"431"),
        (
            b"GET / HTTP/1.1\r\nHost: x\r\n" + b"".join(b"X-%d: v\r\n" % i for i in range(101)),
            b"431",
        ),
        (
            b"GET / HTTP/1.1\r\nHost: x\r\n"
            + b"".join(b"X-%d: %s\r\n" % (i, b"v" * 500) for i in range(40)),
            b"431",
        ),
        (b"GET /" + b"a" * 20000 + b" HTTP/1.1\r\nHost: x\r\n\r\n", b"414"),
    ],
    ids=["one-huge-header", "too-many-headers", "section-too-large", "request-line"],
)
def test_heads_too_large_get_431_or_414(serve, request_bytes, status):
    """Issue 15 item 9 (D-64 amended): a header section over max_header_size or
    max_header_count → 431 Request Header Fields Too Large; a request line over the line
    limit → 414 URI Too Long."""
    live, recorder = serve()
    answer = exchange(live, request_bytes + b"\r\n")
    assert answer.startswith(b"HTTP/1.1 " + status), answer[:100]
    assert recorder.messages.empty()


def test_trickled_body_gets_408_at_its_total_deadline_by_clock():
    """Issue 15 item 9: a byte every 50 s never trips the 60 s idle timer, but the body
    must be complete within http_body_timeout (120 s by default) → 408."""
    layer = ChannelLayer()
    clock = task.Clock()
    factory = HTTPFactory(layer, send_channel="test!")
    factory.reactor = clock
    protocol = factory.buildProtocol(("127.0.0.1", 0))
    transport = testing.StringTransport()
    protocol.makeConnection(transport)
    protocol.dataReceived(b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\n")
    for _ in range(2):
        clock.advance(50)
        protocol.dataReceived(b"x")
    assert transport.value() == b""
    clock.advance(19)
    assert transport.value() == b""
    clock.advance(1.5)  # 120.5 s after the head
    assert transport.value().startswith(b"HTTP/1.1 408")
    assert layer.receive(["http.request"]) == (None, None)


def test_trickled_body_gets_408_over_a_real_socket(serve):
    """Issue 15 item 9: live, with a 2 s http_body_timeout and a client sending a byte
    every 0.2 s (so the idle timer never fires), the answer is 408 and the connection
    closes; nothing reaches the worker."""
    live, recorder = serve(http_body_timeout=2)
    sock = live.connect(timeout=20)
    sock.sendall(b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 1000\r\n\r\n")
    stop = threading.Event()

    def trickle() -> None:
        while not stop.wait(0.2):  # the attack's pace, not synchronisation
            try:
                sock.sendall(b"x")
            except OSError:
                return

    thread = threading.Thread(target=trickle, daemon=True)
    thread.start()
    try:
        answer = recv_until_closed(sock)
    finally:
        stop.set()
        thread.join(timeout=5)
    assert answer.startswith(b"HTTP/1.1 408")
    assert recorder.messages.empty()


def test_cli_options_have_both_spellings(monkeypatch):
    """Issue 15: --http-body-timeout/--http_body_timeout and
    --max-connections/--max_connections reach Server; defaults 120 and 0."""
    from daphne.cli import CommandLineInterface
    from daphne.server import Server

    monkeypatch.setattr(Server, "run", lambda self: None)
    for spelling in ("-", "_"):
        cli = CommandLineInterface()
        cli.run(
            [
                f"--http{spelling}body{spelling}timeout",
                "7",
                f"--max{spelling}connections",
                "9",
                "daphne.tests.asgi:channel_layer",
            ]
        )
        assert (cli.server.http_body_timeout, cli.server.max_connections) == (7, 9)
    defaults = CommandLineInterface()
    defaults.run(["daphne.tests.asgi:channel_layer"])
    assert (defaults.server.http_body_timeout, defaults.server.max_connections) == (120, 0)


@pytest.mark.parametrize("host", ["[", "a b", "x:y:z"])
def test_a_factory_built_alone_takes_any_host_as_1_4(host):
    """D-53..D-56: 1.4's test helpers build an `HTTPFactory` themselves and send
    whatever Host a strategy generates; only a `Server` checks Host (issue 15)."""
    from daphne.tests.factories import message_for_request

    message = message_for_request("GET", "/", headers=[("Host", host)])
    assert (b"host", host.encode()) in message["headers"]
