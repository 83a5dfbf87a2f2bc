"""WebSocket handshake and frames over a StringTransport (D-38..D-42, D-55, D-57)."""

from hypothesis import given, settings
from twisted.internet import error, testing
from twisted.python import failure

from channels.layers.inmemory import ChannelLayer
from daphne.http_protocol import HTTPFactory
from daphne.tests import factories, http_strategies, testcases


class WebSocketConnection:
    """A WebSocket connection driven synchronously through daphne (D-55)."""

    def __init__(self, factory=None):
        self.last_message = None
        self.channel_layer = ChannelLayer()
        self.factory = factory or HTTPFactory(self.channel_layer, send_channel="test!")
        self.factory.channel_layer = self.channel_layer
        self.proto = self.factory.buildProtocol(("127.0.0.1", 0))
        self.transport = testing.StringTransport()
        self.proto.makeConnection(self.transport)

    def receive(self, request):
        """Feed request bytes; return the websocket.connect message (or None)."""
        self.proto.dataReceived(request)
        _, self.last_message = self.channel_layer.receive(["websocket.connect"])
        return self.last_message

    def send(self, content):
        """Dispatch a reply and return (and clear) what was written."""
        if self.last_message is None:
            raise ValueError("No connect message yet")
        self.factory.dispatch_reply(self.last_message["reply_channel"], content)
        response = self.transport.value()
        self.transport.clear()
        return response


class TestHandshake(testcases.ASGIWebSocketTestCase):
    def test_minimal_ws_handshake(self):
        connection = WebSocketConnection()
        message = connection.receive(factories.build_websocket_upgrade("/chat", [], []))
        self.assert_valid_websocket_connect_message(message, "/chat")
        response = connection.send({"accept": True})
        self.assert_websocket_upgrade(response)
        # D-55: no subprotocol is picked without ws_protocols
        self.assertNotIn(b"Sec-WebSocket-Protocol", response)

    @given(
        path=http_strategies.http_path(),
        params=http_strategies.query_params(),
        headers=http_strategies.headers(),
    )
    @settings(max_examples=20, deadline=None)
    def test_connect_message_round_trip(self, path, params, headers):
        special = {
            "host",
            "upgrade",
            "connection",
            "sec-websocket-key",
            "sec-websocket-protocol",
            "sec-websocket-version",
            "origin",
            "content-length",
            "transfer-encoding",
            "sec-websocket-extensions",
            "expect",
            "daphne-root-path",
        }
        headers = [(n, v) for n, v in headers if n.lower() not in special]
        connection = WebSocketConnection()
        message = connection.receive(factories.build_websocket_upgrade(path, params, headers))
        self.assert_valid_websocket_connect_message(message, path, params, headers)

    def test_accept_false_rejects(self):
        connection = WebSocketConnection()
        connection.receive(factories.build_websocket_upgrade("/", [], []))
        response = connection.send({"accept": False, "text": "ignored"})
        self.assert_websocket_denied(response)
        self.assertNotIn(b"ignored", response)

    def test_close_while_connecting_rejects(self):
        for close in (True, 4000):
            connection = WebSocketConnection()
            connection.receive(factories.build_websocket_upgrade("/", [], []))
            self.assert_websocket_denied(connection.send({"close": close}))

    def test_text_then_close_while_connecting(self):
        connection = WebSocketConnection()
        connection.receive(factories.build_websocket_upgrade("/", [], []))
        response = connection.send({"close": True, "text": "bye"})
        self.assert_websocket_upgrade(response, expect_close=True)
        self.assertIn(b"\x81\x03bye", response)

    def test_frames(self):
        connection = WebSocketConnection()
        connection.receive(factories.build_websocket_upgrade("/", [], []))
        connection.send({"accept": True})
        self.assertEqual(connection.send({"text": "Hello World!"}), b"\x81\x0cHello World!")
        self.assertEqual(
            connection.send({"bytes": b"\xaa\xbb\xcc\xdd"}), b"\x82\x04\xaa\xbb\xcc\xdd"
        )
        self.assertEqual(connection.send({"close": True}), b"\x88\x02\x03\xe8")

    def test_invalid_reply_has_no_effect(self):
        connection = WebSocketConnection()
        connection.receive(factories.build_websocket_upgrade("/", [], []))
        with self.assertRaises(ValueError):
            connection.send({"accept": True, "nonsense": 1})
        with self.assertRaises(ValueError):
            connection.send({"text": "a", "bytes": b"b"})
        self.assertEqual(connection.transport.value(), b"")

    def test_subprotocol_selected(self):
        layer = ChannelLayer()
        factory = HTTPFactory(layer, send_channel="test!", ws_protocols=["superchat"])
        connection = WebSocketConnection(factory)
        connection.receive(factories.build_websocket_upgrade("/", [], []))
        response = connection.send({"accept": True})
        self.assertIn(b"Sec-WebSocket-Protocol: superchat\r\n", response)

    def test_underscore_header_handshake_refused(self):
        """D-27 step 6: a handshake header name with "_" gets 400 and no message."""
        connection = WebSocketConnection()
        message = connection.receive(factories.build_websocket_upgrade("/", [], [("X_Evil", "1")]))
        self.assertIsNone(message)
        self.assertTrue(connection.transport.value().startswith(b"HTTP/1.1 400"))

    def test_order_numbers(self):
        """D-42: connect 0, frames 1..n, disconnect n+1."""
        connection = WebSocketConnection()
        connection.receive(factories.build_websocket_upgrade("/", [], []))
        connection.send({"accept": True})
        mask = b"\x00\x00\x00\x00"
        for text in (b"one", b"two"):
            connection.proto.dataReceived(b"\x81" + bytes([0x80 | len(text)]) + mask + text)
        layer = connection.channel_layer
        orders = [layer.receive(["websocket.receive"])[1]["order"] for _ in range(2)]
        self.assertEqual(orders, [1, 2])
        connection.proto.dataReceived(b"\x88\x82" + mask + b"\x03\xe8")
        connection.proto.connectionLost(failure.Failure(error.ConnectionDone()))
        _, disconnect = layer.receive(["websocket.disconnect"])
        self.assertEqual(disconnect["order"], 3)
        self.assertEqual(disconnect["code"], 1000)


class TestConnectHeaders(testcases.ASGIWebSocketTestCase):
    def test_headers_are_a_list_of_tuples(self):
        """D-38, A-73, L-6 (issue 13): 1.4 tests compare the sorted pairs with tuples."""
        connection = WebSocketConnection()
        message = connection.receive(
            b"GET /chat HTTP/1.1\r\n"
            b"Host: somewhere.com\r\n"
            b"Upgrade: websocket\r\n"
            b"Connection: Upgrade\r\n"
            b"Sec-WebSocket-Key: x3JJHMbDL1EzLkh9GBhXDw==\r\n"
            b"Sec-WebSocket-Protocol: chat, superchat\r\n"
            b"Sec-WebSocket-Version: 13\r\n"
            b"Origin: http://example.com\r\n"
            b"\r\n"
        )
        self.assertEqual(message["path"], "/chat")
        self.assertEqual(message["query_string"], b"")
        self.assertEqual(
            sorted(message["headers"]),
            [
                (b"connection", b"Upgrade"),
                (b"host", b"somewhere.com"),
                (b"origin", b"http://example.com"),
                (b"sec-websocket-key", b"x3JJHMbDL1EzLkh9GBhXDw=="),
                (b"sec-websocket-protocol", b"chat, superchat"),
                (b"sec-websocket-version", b"13"),
                (b"upgrade", b"websocket"),
            ],
        )
        self.assertTrue(message["reply_channel"].startswith("test!"))
