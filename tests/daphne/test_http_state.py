"""`daphne.http_state.HttpExchange` without a transport, in the style of h11's test_state.py.

Covers the state after each input (D-27, D-28, D-34, D-37), that an input the table does
not allow raises and leaves the state as it was (A-79, A-80, D-34), the `PeerError`
statuses of requests the client got wrong (D-27 steps 3, 4, 6; issue 15), and the
``http.request`` message (D-29, D-30, A-77).
"""

from __future__ import annotations

import ast
import inspect

import pytest
from hypothesis import given
from hypothesis import strategies as st
from twisted.web.http_headers import Headers

from daphne import http_state
from daphne.errors import ApplicationError, IllegalTransition, PeerError
from daphne.http_state import (
    _TRANSITIONS,
    CHUNK,
    CLOSE,
    FINISH,
    HAND_OVER,
    IGNORED,
    REQUEST,
    RESPONSE,
    ExchangeState,
    HttpExchange,
    decode_path,
    forwarded_peer,
)
from daphne.request_checks import BadRequestHeader

RECEIVING = ExchangeState.RECEIVING
WAITING = ExchangeState.WAITING
STREAMING = ExchangeState.STREAMING
FINISHED = ExchangeState.FINISHED
CHANNEL = "daphne.response.AbCdEfGhIj!KlMnOpQrSt"


def exchange_in(state: ExchangeState) -> HttpExchange:
    """An exchange driven into `state` through its public inputs."""
    exchange = HttpExchange(CHANNEL)
    if state is RECEIVING:
        return exchange
    exchange.receive_request(b"/")
    if state is WAITING:
        return exchange
    exchange.receive_reply({"status": 200, "more_content": True})
    if state is STREAMING:
        return exchange
    exchange.finish()
    return exchange


def request_message(exchange: HttpExchange, headers: Headers, **overrides: object) -> dict:
    arguments = {
        "method": b"GET",
        "uri": b"/",
        "version": b"HTTP/1.1",
        "raw_headers": headers,
        "root_path": "",
        "scheme": "http",
        "client": ["192.0.2.1", 54321],
        "server": ["192.0.2.2", 80],
        "body": b"",
    }
    arguments.update(overrides)
    return exchange.request_message(**arguments)


# -- the state after each input ---------------------------------------------------------


def test_a_new_exchange_reads_its_request():
    exchange = HttpExchange(CHANNEL)
    assert exchange.state is RECEIVING
    assert exchange.unanswered
    assert exchange.path is None


def test_request_response_chunks_finish():
    exchange = HttpExchange(CHANNEL)
    exchange.receive_request(b"/caf%C3%A9")
    assert exchange.state is WAITING
    assert exchange.path == "/café"  # D-30: ASCII-decoded, then %xx as UTF-8
    status, headers, content, more = exchange.receive_reply(
        {"status": 200, "headers": [(b"a", b"1")], "content": b"x", "more_content": True}
    )
    assert (status, headers, content, more) == (200, [(b"a", b"1")], b"x", True)
    assert exchange.state is STREAMING
    assert not exchange.unanswered
    assert exchange.receive_reply({"content": b"y", "more_content": True}) == (
        None,
        None,
        b"y",
        True,
    )
    assert exchange.state is STREAMING
    assert exchange.receive_reply({}) == (None, None, b"", False)  # A-80 defaults
    exchange.finish()
    assert exchange.state is FINISHED


def test_daphne_answers_before_the_request_is_complete():
    # D-64 on HTTP/2: a body over the limit is answered 413 while it is being read.
    exchange = HttpExchange(CHANNEL)
    exchange.receive_reply({"status": 413})
    assert exchange.state is STREAMING
    exchange.finish()
    assert exchange.state is FINISHED
    with pytest.raises(IllegalTransition):
        exchange.receive_request(b"/")
    assert exchange.state is FINISHED


def test_hand_over_finishes_the_exchange():
    exchange = exchange_in(WAITING)
    exchange.hand_over()  # D-28
    assert exchange.state is FINISHED
    assert exchange.receive_reply({"status": 200}) is IGNORED


@pytest.mark.parametrize("state", list(ExchangeState))
def test_connection_lost_finishes_from_anywhere(state):
    exchange = exchange_in(state)
    exchange.connection_lost()
    assert exchange.state is FINISHED


@pytest.mark.parametrize("state", list(ExchangeState))
def test_finish_from_anywhere_but_finished_is_idempotent(state):
    exchange = exchange_in(state)
    exchange.finish()
    exchange.finish()
    assert exchange.state is FINISHED


def test_replies_after_finishing_are_ignored():
    # "Messages after completion are ignored", whatever they hold.
    exchange = exchange_in(FINISHED)
    for message in ({"status": 200}, {"content": b"x"}, {"status": "bad", "content": 1}):
        assert exchange.receive_reply(message) is IGNORED
        assert exchange.state is FINISHED


# -- illegal inputs raise and change nothing --------------------------------------------


def test_a_second_response_is_an_application_error():
    exchange = exchange_in(STREAMING)
    with pytest.raises(ApplicationError, match=f"Got multiple Response messages for {CHANNEL}!"):
        exchange.receive_reply({"status": 200})
    assert exchange.state is STREAMING


@pytest.mark.parametrize("state", [RECEIVING, WAITING])
def test_a_chunk_before_the_response_is_an_application_error(state):
    exchange = exchange_in(state)
    with pytest.raises(ApplicationError, match="Specifying a status code is required"):
        exchange.receive_reply({"content": b"x"})
    assert exchange.state is state
    assert isinstance(ApplicationError(), ValueError)  # D-34: 1.4 raised ValueError


@pytest.mark.parametrize(
    "message",
    [
        {"status": "200"},
        {"status": 200.0},
        {"status": True},
        {"status": 200, "headers": [(b"a", b"1", b"2")]},
        {"status": 200, "headers": [b"a"]},
        {"status": 200, "headers": [None]},
        {"status": 200, "content": "text"},
        {"status": 200, "content": None},
    ],
)
def test_a_bad_response_changes_nothing(message):
    exchange = exchange_in(WAITING)
    with pytest.raises(ApplicationError):
        exchange.receive_reply(message)
    assert exchange.state is WAITING


def test_a_bad_chunk_changes_nothing():
    exchange = exchange_in(STREAMING)
    with pytest.raises(ApplicationError, match="content must be bytes"):
        exchange.receive_reply({"content": "text"})
    assert exchange.state is STREAMING


@pytest.mark.parametrize(
    ("state", "call"),
    [
        (WAITING, lambda e: e.receive_request(b"/")),
        (STREAMING, lambda e: e.receive_request(b"/")),
        (RECEIVING, lambda e: e.hand_over()),
        (STREAMING, lambda e: e.hand_over()),
        (FINISHED, lambda e: e.hand_over()),
    ],
)
def test_inputs_outside_the_table_raise_illegal_transition(state, call):
    exchange = exchange_in(state)
    with pytest.raises(IllegalTransition, match=state.value):
        call(exchange)
    assert exchange.state is state


@pytest.mark.parametrize("state", [RECEIVING, STREAMING, FINISHED])
def test_only_a_waiting_exchange_builds_its_message_or_head(state):
    exchange = exchange_in(state)
    with pytest.raises(IllegalTransition):
        request_message(exchange, Headers())
    with pytest.raises(IllegalTransition):
        exchange.websocket_head(b"GET", b"/", Headers())
    assert exchange.state is state


_CALLS = {
    REQUEST: lambda e: e.receive_request(b"/"),
    RESPONSE: lambda e: e.receive_reply({"status": 200, "more_content": True}),
    CHUNK: lambda e: e.receive_reply({"more_content": True}),
    FINISH: lambda e: e.finish(),
    HAND_OVER: lambda e: e.hand_over(),
    CLOSE: lambda e: e.connection_lost(),
}


@given(st.lists(st.sampled_from(sorted(_CALLS))))
def test_any_input_sequence_follows_the_table(events):
    exchange = HttpExchange(CHANNEL)
    for event in events:
        before = exchange.state
        expected = _TRANSITIONS[before].get(event)
        if before is FINISHED and event in (RESPONSE, CHUNK):
            assert _CALLS[event](exchange) is IGNORED
            expected = FINISHED
        elif expected is None:
            with pytest.raises((ApplicationError, IllegalTransition)):
                _CALLS[event](exchange)
            expected = before
        else:
            _CALLS[event](exchange)
        assert exchange.state is expected


# -- the client's mistakes: PeerError and its status ------------------------------------


def test_a_path_that_is_not_ascii_is_a_400():
    exchange = HttpExchange(CHANNEL)
    with pytest.raises(PeerError, match="Invalid characters in path") as caught:
        exchange.receive_request(b"/caf\xc3\xa9")  # D-27 step 4
    assert caught.value.error_status_hint == 400
    assert exchange.state is RECEIVING
    assert exchange.path is None


def test_an_unreadable_root_path_is_a_400_that_closes():
    exchange = exchange_in(WAITING)
    headers = Headers({b"Daphne-Root-Path": [b"/\xff"]})
    with pytest.raises(BadRequestHeader, match="Daphne-Root-Path") as caught:
        request_message(exchange, headers)
    assert isinstance(caught.value, PeerError)
    assert caught.value.error_status_hint == 400
    assert exchange.state is WAITING
    assert exchange.path is None  # refused: no http.disconnect follows (D-37)


class _ProxyConfig:
    proxy_forwarded_address_header = "X-Forwarded-For"
    proxy_forwarded_port_header = "X-Forwarded-Port"
    proxy_forwarded_proto_header = "X-Forwarded-Proto"
    forwarded_allow_ips = None


def test_an_undecodable_proxy_header_is_a_400_that_closes():
    headers = Headers({b"X-Forwarded-For": [b"\xff\xfe"]})
    with pytest.raises(BadRequestHeader, match="not UTF-8") as caught:
        forwarded_peer(headers, _ProxyConfig(), ["127.0.0.1", 1], "http")
    assert caught.value.error_status_hint == 400


def test_a_proxy_header_sets_client_and_scheme():
    headers = Headers({b"X-Forwarded-For": [b"10.1.2.3"], b"X-Forwarded-Proto": [b"https"]})
    client, scheme = forwarded_peer(headers, _ProxyConfig(), ["127.0.0.1", 1], "http")
    assert client == ["10.1.2.3", 0]
    assert scheme == "https"


def test_a_handshake_with_an_underscore_header_is_a_400():
    # D-27 step 6: refused, not filtered as a plain request's headers are (D-29).
    exchange = exchange_in(WAITING)
    headers = Headers({b"Upgrade": [b"websocket"], b"X_Bad": [b"1"]})
    with pytest.raises(BadRequestHeader, match="underscores") as caught:
        exchange.websocket_head(b"GET", b"/ws", headers)
    assert caught.value.error_status_hint == 400
    assert exchange.state is WAITING
    assert exchange.path is None  # refused: no http.disconnect follows (D-37)


# -- message building --------------------------------------------------------------------


def test_the_request_message_has_exactly_the_d30_keys():
    exchange = HttpExchange(CHANNEL)
    exchange.receive_request(b"/a%20b+c")
    message = request_message(
        exchange, Headers(), method=b"POST", uri=b"/a%20b+c?x=%20&y", body=b"hi"
    )
    assert message == {
        "reply_channel": CHANNEL,
        "http_version": "1.1",
        "method": "POST",
        "path": "/a b+c",  # D-30: "+" is not a space
        "root_path": "",
        "scheme": "http",
        "query_string": b"x=%20&y",  # raw bytes
        "headers": [],
        "body": b"hi",
        "client": ["192.0.2.1", 54321],
        "server": ["192.0.2.2", 80],
    }


@pytest.mark.parametrize(
    ("uri", "query"), [(b"/", b""), (b"/?", b""), (b"/?a=1?b", b"a=1?b"), (b"/?%ff", b"%ff")]
)
def test_query_string_is_the_raw_bytes_after_the_first_question_mark(uri, query):
    exchange = exchange_in(WAITING)
    assert request_message(exchange, Headers(), uri=uri)["query_string"] == query


@pytest.mark.parametrize(("version", "text"), [(b"HTTP/1.0", "1.0"), (b"HTTP/2", "2")])
def test_http_version(version, text):
    exchange = exchange_in(WAITING)
    assert request_message(exchange, Headers(), version=version)["http_version"] == text


def test_header_tuples_lower_cased_repeated_in_order_underscores_dropped():
    headers = Headers()
    headers.addRawHeader(b"Accept", b"a")
    headers.addRawHeader(b"X-Custom", b"1")
    headers.addRawHeader(b"Accept", b"b")
    headers.addRawHeader(b"X_Forwarded_Evil", b"2")  # CVE-2015-0219 (D-29)
    message = request_message(exchange_in(WAITING), headers)
    assert (b"accept", b"a") in message["headers"]
    accepts = [pair for pair in message["headers"] if pair[0] == b"accept"]
    assert accepts == [(b"accept", b"a"), (b"accept", b"b")]
    assert (b"x-custom", b"1") in message["headers"]
    assert all(type(pair) is tuple for pair in message["headers"])  # A-73 / D-29
    assert not any(b"_" in name for name, _ in message["headers"])


def test_root_path_from_the_factory_or_the_header():
    exchange = exchange_in(WAITING)
    assert request_message(exchange, Headers(), root_path="/app")["root_path"] == "/app"
    headers = Headers({b"Daphne-Root-Path": [b"/caf%C3%A9"]})
    message = request_message(exchange, headers, root_path="/app")
    assert message["root_path"] == "/café"  # D-29: URL-unquoted, not forwarded
    assert message["headers"] == []


def test_response_header_names_as_bytes():
    exchange = exchange_in(WAITING)
    _, headers, _, _ = exchange.receive_reply(
        {"status": 200, "headers": [("X-Name", b"v"), [b"x-list", b"w"]]}
    )
    assert [tuple(pair) for pair in headers] == [(b"X-Name", b"v"), (b"x-list", b"w")]


def test_websocket_head_replays_one_line_per_name():
    headers = Headers()
    headers.addRawHeader(b"Host", b"example.com")
    headers.addRawHeader(b"Sec-WebSocket-Protocol", b"a")
    headers.addRawHeader(b"Sec-WebSocket-Protocol", b"b")
    head = exchange_in(WAITING).websocket_head(b"GET", b"/ws?x=1", headers)
    assert head == (
        b"GET /ws?x=1 HTTP/1.1\r\nHost: example.com\r\nSec-Websocket-Protocol: a,b\r\n\r\n"
    )


def test_decode_path():
    assert decode_path(b"/a+b%2B") == "/a+b+"
    assert decode_path(b"/a+b%2B", plus_as_space=True) == "/a b+"
    with pytest.raises(UnicodeDecodeError):
        decode_path(b"/\xff")


def test_the_module_does_no_io():
    imported = set()
    for node in ast.walk(ast.parse(inspect.getsource(http_state))):
        if isinstance(node, ast.Import):
            imported.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module:
            imported.add(node.module)
    assert not any(name.split(".")[0] in {"twisted", "socket", "os"} for name in imported)


def test_the_exchange_is_small():
    assert not hasattr(HttpExchange(CHANNEL), "__dict__")
