"""Responses written for reply messages (D-32..D-37, D-54)."""

from hypothesis import given, settings
from hypothesis import strategies as st

from daphne.tests import factories, http_strategies, testcases


class TestHTTPResponseSpec(testcases.ASGIHTTPTestCase):
    def test_minimal_response(self):
        message = {"status": 200}
        response = factories.response_for_message(message)
        self.assert_valid_http_response_message(message, response)
        self.assertTrue(response.endswith(b"0\r\n\r\n"))  # D-35: chunked, then ended

    def test_status_code_required(self):
        with self.assertRaises(ValueError):
            factories.response_for_message({})

    def test_status_code_is_transmitted(self):
        message = {"status": 201}
        response = factories.response_for_message(message)
        self.assert_valid_http_response_message(message, response)
        self.assertTrue(response.startswith(b"HTTP/1.1 201 Created"))

    @given(body=http_strategies.http_body())
    @settings(max_examples=30, deadline=None)
    def test_body_is_transmitted(self, body):
        message = {"status": 200, "content": body.encode("ascii")}
        response = factories.response_for_message(message)
        self.assert_valid_http_response_message(message, response)

    @given(headers=http_strategies.headers())
    @settings(max_examples=20, deadline=None)
    def test_headers(self, headers):
        encoded = [
            [name.encode("ascii"), value.strip().encode("ascii")]
            for name, value in headers
            if name.lower() not in {"content-length", "transfer-encoding", "connection"}
        ]
        message = {"status": 200, "headers": encoded, "content": b"x"}
        response = factories.response_for_message(message)
        self.assert_valid_http_response_message(message, response)

    @given(
        status=st.sampled_from([200, 201, 302, 400, 404, 500]),
        body=http_strategies.http_body(),
    )
    @settings(max_examples=20, deadline=None)
    def test_kitchen_sink(self, status, body):
        message = {
            "status": status,
            "headers": [[b"Content-Type", b"application/octet-stream"]],
            "content": body.encode("ascii"),
        }
        response = factories.response_for_message(message)
        self.assert_valid_http_response_message(message, response)

    def test_content_length_response_is_not_chunked(self):
        message = {"status": 200, "headers": [[b"Content-Length", b"5"]], "content": b"hello"}
        response = factories.response_for_message(message)
        self.assertTrue(response.endswith(b"\r\n\r\nhello"))
        self.assertNotIn(b"chunked", response)

    def test_disconnect_after_response(self):
        """D-37, D-54: one http.disconnect with the decoded path after completion."""
        request = factories._build_request("GET", "/te st-à/")
        message, factory, transport = factories._run_through_daphne(request, "http.request")
        factory.dispatch_reply(message["reply_channel"], {"status": 200})
        layer = factory.channel_layer
        self.assertEqual(
            layer.receive(["http.disconnect"]),
            ("http.disconnect", {"reply_channel": message["reply_channel"], "path": "/te st-à/"}),
        )
        self.assertEqual(layer.receive(["http.disconnect"]), (None, None))

    def test_streaming_and_second_start_refused(self):
        request = factories._build_request("GET", "/")
        message, factory, transport = factories._run_through_daphne(request, "http.request")
        channel = message["reply_channel"]
        factory.dispatch_reply(channel, {"status": 200, "content": b"a", "more_content": True})
        with self.assertRaises(ValueError):
            factory.dispatch_reply(channel, {"status": 200})
        factory.dispatch_reply(channel, {"content": b"b", "more_content": True})
        factory.dispatch_reply(channel, {"content": b"c"})
        self.assertTrue(transport.value().endswith(b"1\r\na\r\n1\r\nb\r\n1\r\nc\r\n0\r\n\r\n"))
        # messages after completion are ignored.
        factory.dispatch_reply(channel, {"content": b"late"})
        self.assertNotIn(b"late", transport.value())

    def test_basic_error_page(self):
        request = factories._build_request("GET", "/")
        message, factory, transport = factories._run_through_daphne(request, "http.request")
        protocol = factory.reply_protocols[message["reply_channel"]]
        protocol.basic_error(404, b"Not Found", "nothing here")
        value = transport.value()
        self.assertTrue(value.startswith(b"HTTP/1.1 404 Not Found"))
        self.assertIn(b"Content-Type: text/html; charset=utf-8", value)
        self.assertIn(b"<h1>404 Not Found</h1>", value)
        self.assertIn(b"<p>nothing here</p>", value)
        self.assertIn(b"Daphne", value)


class _CountingTransport:
    """Records each write to the transport (issue 20: head and body go together)."""

    def __init__(self, transport):
        self.writes = []
        write = transport.write

        def counted(data):
            self.writes.append(bytes(data))
            write(data)

        transport.write = counted


def test_head_and_body_are_one_transport_write_and_a_streamed_head_goes_at_once():
    from twisted.internet import testing

    from channels.layers.inmemory import ChannelLayer
    from daphne.http_protocol import HTTPFactory

    layer = ChannelLayer()
    factory = HTTPFactory(layer, send_channel="test!")
    protocol = factory.buildProtocol(("127.0.0.1", 0))
    transport = testing.StringTransport()
    protocol.makeConnection(transport)
    counting = _CountingTransport(transport)
    request = b"GET / HTTP/1.1\r\nHost: x\r\n\r\n"

    protocol.dataReceived(request)
    _, message = layer.receive(["http.request"])
    factory.dispatch_reply(
        message["reply_channel"],
        {"status": 200, "headers": [(b"Content-Length", b"2")], "content": b"ok"},
    )
    assert counting.writes == [b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok"]

    # A streamed response: its head is written before any body arrives.
    counting.writes.clear()
    protocol.dataReceived(request)
    _, message = layer.receive(["http.request"])
    factory.dispatch_reply(message["reply_channel"], {"status": 200, "more_content": True})
    assert counting.writes == [b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"]
    factory.dispatch_reply(message["reply_channel"], {"content": b"abc"})
    factory.dispatch_reply(message["reply_channel"], {"content": b""})
    assert transport.value().endswith(b"chunked\r\n\r\n3\r\nabc\r\n0\r\n\r\n")

    # HEAD: the head alone, at once.
    counting.writes.clear()
    protocol.dataReceived(b"HEAD / HTTP/1.1\r\nHost: x\r\n\r\n")
    _, message = layer.receive(["http.request"])
    factory.dispatch_reply(
        message["reply_channel"],
        {"status": 200, "headers": [(b"Content-Length", b"2")], "content": b"ok"},
    )
    assert counting.writes == [b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\n"]

    # Chunked (no Content-Length) but given whole: still one write, its end included.
    counting.writes.clear()
    protocol.dataReceived(request)
    _, message = layer.receive(["http.request"])
    factory.dispatch_reply(message["reply_channel"], {"status": 200, "content": b"abc"})
    assert counting.writes == [
        b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\n\r\n"
    ]


def test_response_bytes_go_through_write_now(monkeypatch):
    """Issue 20: an HTTP/1.1 response reaches its transport through `write_now` (sent on
    a plain TCP socket at once when nothing is buffered), whole or streamed."""
    from twisted.internet import testing

    from channels.layers.inmemory import ChannelLayer
    from daphne import http_writes
    from daphne.http_protocol import HTTPFactory

    direct: list[bytes] = []

    def recording(transport, data):
        direct.append(data)
        transport.write(data)

    monkeypatch.setattr(http_writes, "write_now", recording)
    layer = ChannelLayer()
    factory = HTTPFactory(layer, send_channel="test!")
    protocol = factory.buildProtocol(("127.0.0.1", 0))
    transport = testing.StringTransport()
    protocol.makeConnection(transport)
    request = b"GET / HTTP/1.1\r\nHost: x\r\n\r\n"
    protocol.dataReceived(request)
    _, message = layer.receive(["http.request"])
    factory.dispatch_reply(message["reply_channel"], {"status": 200, "content": b"ok"})
    whole = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nok\r\n0\r\n\r\n"
    assert direct == [whole]
    protocol.dataReceived(request)
    _, message = layer.receive(["http.request"])
    factory.dispatch_reply(message["reply_channel"], {"status": 200, "more_content": True})
    factory.dispatch_reply(message["reply_channel"], {"content": b"abc"})
    assert direct[1:] == [
        b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n",
        b"3\r\nabc\r\n0\r\n\r\n",
    ]
    assert transport.value() == b"".join(direct)
