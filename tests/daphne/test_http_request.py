"""http.request messages built from raw requests over a StringTransport (D-26..D-30, D-53)."""

from hypothesis import assume, given, settings
from twisted.internet import testing

from channels.layers.inmemory import ChannelLayer
from daphne.http_protocol import HTTPFactory
from daphne.tests import factories, http_strategies, testcases


class TestHTTPRequestSpec(testcases.ASGIHTTPTestCase):
    """Each request part round-trips into the message (D-30)."""

    def test_minimal_request(self):
        message = factories.message_for_request("GET", "/")
        self.assert_valid_http_request_message(message, "GET", "/")

    @given(request_path=http_strategies.http_path(), request_params=http_strategies.query_params())
    @settings(max_examples=30, deadline=None)
    def test_get_request(self, request_path, request_params):
        message = factories.message_for_request("GET", request_path, request_params)
        self.assert_valid_http_request_message(message, "GET", request_path, request_params)

    @given(request_path=http_strategies.http_path(), request_body=http_strategies.http_body())
    @settings(max_examples=30, deadline=None)
    def test_post_request(self, request_path, request_body):
        message = factories.message_for_request(
            "POST",
            request_path,
            headers=[factories.content_length_header(request_body)],
            body=request_body,
        )
        self.assert_valid_http_request_message(
            message,
            "POST",
            request_path,
            request_headers=[factories.content_length_header(request_body)],
            request_body=request_body,
        )

    @given(request_headers=http_strategies.headers())
    @settings(max_examples=30, deadline=None)
    def test_headers(self, request_headers):
        # Names with special framing or routing meaning are covered elsewhere.
        special = {"content-length", "transfer-encoding", "upgrade", "daphne-root-path", "expect"}
        assume(not any(name.lower() in special for name, _ in request_headers))
        message = factories.message_for_request("OPTIONS", "/te st-à/", headers=request_headers)
        self.assert_valid_http_request_message(
            message, "OPTIONS", "/te st-à/", request_headers=request_headers
        )

    @given(
        request_method=http_strategies.http_method(),
        request_path=http_strategies.http_path(),
        request_params=http_strategies.query_params(),
        request_headers=http_strategies.headers(),
        request_body=http_strategies.http_body(),
    )
    @settings(max_examples=20, deadline=None)
    def test_kitchen_sink(
        self, request_method, request_path, request_params, request_headers, request_body
    ):
        special = {"content-length", "transfer-encoding", "upgrade", "daphne-root-path", "expect"}
        assume(not any(name.lower() in special for name, _ in request_headers))
        headers = [*request_headers, factories.content_length_header(request_body)]
        message = factories.message_for_request(
            request_method, request_path, request_params, headers, request_body
        )
        self.assert_valid_http_request_message(
            message, request_method, request_path, request_params, headers, request_body
        )

    def test_headers_are_lowercased_and_stripped(self):
        request_headers = [("MYCUSTOMHEADER", "   foobar    ")]
        message = factories.message_for_request("GET", "/", headers=request_headers)
        self.assert_valid_http_request_message(message, "GET", "/", request_headers=request_headers)
        # D-29, A-73: daphne gives a list of tuples (1.4 tests compare exactly this).
        self.assertEqual(message["headers"], [(b"mycustomheader", b"foobar")])

    def test_header_pairs_are_tuples(self):
        """D-29, A-73, L-6 (issue 13): one (name, value) tuple per value, in order."""
        request_headers = [("Host", "example.com"), ("Accept", "a"), ("Accept", "b")]
        message = factories.message_for_request("GET", "/", headers=request_headers)
        self.assertEqual(
            message["headers"],
            [(b"host", b"example.com"), (b"accept", b"a"), (b"accept", b"b")],
        )
        self.assertEqual(len(set(message["headers"])), 3)

    def test_duplicate_headers_keep_order(self):
        request_headers = [("Accept", "text/html"), ("Accept", "application/json")]
        message = factories.message_for_request("GET", "/", headers=request_headers)
        values = [v for n, v in message["headers"] if n == b"accept"]
        self.assertEqual(values, [b"text/html", b"application/json"])

    def test_plus_is_not_a_space_in_path(self):
        request = b"GET /a+b%20c HTTP/1.1\r\nHost: x\r\n\r\n"
        message, _, _ = factories._run_through_daphne(request, "http.request")
        self.assertEqual(message["path"], "/a+b c")

    def test_underscore_headers_dropped(self):
        """CVE-2015-0219: names with "_" never reach the application (D-29)."""
        request = b"GET / HTTP/1.1\r\nHost: x\r\nX_Auth: evil\r\nX-Auth: good\r\n\r\n"
        message, _, _ = factories._run_through_daphne(request, "http.request")
        self.assertEqual([v for n, v in message["headers"] if b"auth" in n], [b"good"])

    def test_root_path_header(self):
        request = b"GET / HTTP/1.1\r\nHost: x\r\nDaphne-Root-Path: /sub%20dir\r\n\r\n"
        message, _, _ = factories._run_through_daphne(request, "http.request")
        self.assertEqual(message["root_path"], "/sub dir")
        self.assertNotIn(b"daphne-root-path", [n for n, _ in message["headers"]])

    def test_client_and_server_from_transport(self):
        message = factories.message_for_request("GET", "/")
        self.assertEqual(message["client"], ["192.168.1.1", 54321])
        self.assertEqual(message["server"], ["10.0.0.1", 12345])


class TestProxyHandling(testcases.ASGIHTTPTestCase):
    """X-Forwarded-* only when the factory is told to trust them (D-27, D-58, D-66)."""

    def run_with(self, headers, allow=None):
        layer = ChannelLayer()
        factory = HTTPFactory(layer, send_channel="test!")
        factory.proxy_forwarded_address_header = "X-Forwarded-For"
        factory.proxy_forwarded_port_header = "X-Forwarded-Port"
        factory.proxy_forwarded_proto_header = "X-Forwarded-Proto"
        factory.forwarded_allow_ips = allow
        proto = factory.buildProtocol(("127.0.0.1", 0))
        transport = testing.StringTransport()
        proto.makeConnection(transport)
        proto.dataReceived(factories._build_request("GET", "/", headers=headers))
        _, message = layer.receive(["http.request"])
        return message

    def test_x_forwarded_for_parsed(self):
        message = self.run_with(
            [("Host", "x"), ("X-Forwarded-For", "10.1.2.3"), ("X-Forwarded-Port", "80")]
        )
        self.assertEqual(message["client"], ["10.1.2.3", 80])

    def test_x_forwarded_proto(self):
        message = self.run_with([("X-Forwarded-For", "10.1.2.3"), ("X-Forwarded-Proto", "https")])
        self.assertEqual(message["scheme"], "https")

    def test_x_forwarded_for_no_port(self):
        message = self.run_with([("X-Forwarded-For", "10.1.2.3")])
        self.assertEqual(message["client"], ["10.1.2.3", 0])

    def test_untrusted_peer_headers_ignored(self):
        message = self.run_with([("X-Forwarded-For", "10.1.2.3")], allow=["10.0.0.0/8"])
        self.assertEqual(message["client"], ["192.168.1.1", 54321])

    def test_trusted_peer_headers_used(self):
        message = self.run_with([("X-Forwarded-For", "10.1.2.3")], allow=["192.168.1.0/24"])
        self.assertEqual(message["client"], ["10.1.2.3", 0])

    def test_no_proxy_headers_without_option(self):
        message = factories.message_for_request(
            "GET", "/", headers=[("X-Forwarded-For", "10.1.2.3")]
        )
        self.assertEqual(message["client"], ["192.168.1.1", 54321])


class TestPeerErrors(testcases.ASGIHTTPTestCase):
    """A request the client got wrong is answered with its PeerError's status, and no
    channel message goes out for it (D-27 step 6, D-37, issue 15). Twisted's parser already
    refuses a request line that is not ASCII, before D-27 step 4 (see test_http_state)."""

    def answer(self, raw):
        layer = ChannelLayer()
        factory = HTTPFactory(layer, send_channel="test!")
        proto = factory.buildProtocol(("127.0.0.1", 0))
        transport = testing.StringTransport()
        proto.makeConnection(transport)
        proto.dataReceived(raw)
        for channel in ("http.request", "http.disconnect", "websocket.connect"):
            self.assertEqual(layer.receive([channel]), (None, None), channel)
        return transport.value()

    def test_root_path_not_utf8(self):
        answer = self.answer(b"GET / HTTP/1.1\r\nHost: x\r\nDaphne-Root-Path: \xff\r\n\r\n")
        self.assertTrue(answer.startswith(b"HTTP/1.1 400 Bad Request\r\n"))
        self.assertIn(b"Connection: close", answer)

    def test_handshake_with_underscore_header(self):
        upgrade = factories.build_websocket_upgrade("/", [], [("X_Evil", "1")])
        answer = self.answer(upgrade)
        self.assertTrue(answer.startswith(b"HTTP/1.1 400 Bad Request\r\n"))
        self.assertIn(b"Header names must not contain underscores.", answer)
        self.assertIn(b"Connection: close", answer)
