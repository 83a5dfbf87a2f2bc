"""Assertions that messages and responses follow the ASGI-1 formats (D-56, D-57)."""

from __future__ import annotations

import socket
import unittest
from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from typing import Any
from urllib import parse

# Request parameters and headers as the factories take them (`daphne.tests.factories`).
Params = Sequence[tuple[Any, Any]] | Mapping[Any, Any] | None
Headers = Iterable[tuple[str, str]]


class ASGITestCaseBase(unittest.TestCase):
    """Base class for the HTTP and WebSocket test cases."""

    def assert_is_ip_address(self, address: str) -> None:
        """Tests whether a given address string is a valid IPv4 address."""
        try:
            socket.inet_aton(address)
        except OSError:
            self.fail(f"'{address}' is not a valid IP address.")

    def assert_key_sets(
        self, required_keys: set[str], optional_keys: set[str], actual_keys: Iterable[str]
    ) -> None:
        """All required keys are present and no key is neither required nor optional."""
        present_keys = set(actual_keys)
        self.assertTrue(required_keys <= present_keys)
        self.assertEqual(set(), present_keys - required_keys - optional_keys)

    def assert_valid_reply_channel(self, reply_channel: Any) -> None:
        self.assertIsInstance(reply_channel, str)
        # The reply channel is decided by the server.
        self.assertTrue(reply_channel.startswith("test!"))

    def assert_valid_path(self, path: Any, request_path: str) -> None:
        self.assertIsInstance(path, str)
        self.assertEqual(path, request_path)
        # Assert that it's already url decoded
        self.assertEqual(path, parse.unquote(path))

    def assert_valid_address_and_port(self, host: Any) -> None:
        address, port = host
        self.assertIsInstance(address, str)
        self.assert_is_ip_address(address)
        self.assertIsInstance(port, int)


class ASGIHTTPTestCase(ASGITestCaseBase):
    """Test case with helpers for verifying HTTP channel messages (D-56)."""

    def assert_valid_http_request_message(
        self,
        channel_message: Mapping[str, Any],
        request_method: str,
        request_path: str,
        request_params: Params = None,
        request_headers: Headers | None = None,
        request_body: str | bytes | None = None,
    ) -> None:
        """The message conforms to the HTTP request section of the ASGI spec."""
        self.assertTrue(channel_message)
        self.assert_key_sets(
            required_keys={
                "reply_channel",
                "http_version",
                "method",
                "path",
                "query_string",
                "headers",
            },
            optional_keys={"scheme", "root_path", "body", "body_channel", "client", "server"},
            actual_keys=channel_message.keys(),
        )
        self.assert_valid_reply_channel(channel_message["reply_channel"])

        http_version = channel_message["http_version"]
        self.assertIsInstance(http_version, str)
        self.assertIn(http_version, ["1.0", "1.1", "1.2"])

        method = channel_message["method"]
        self.assertIsInstance(method, str)
        self.assertTrue(method.isupper())
        self.assertEqual(channel_message["method"], request_method)

        self.assert_valid_path(channel_message["path"], request_path)

        query_string = channel_message["query_string"]
        # Assert that query_string is a byte string and still url encoded
        self.assertIsInstance(query_string, bytes)
        self.assertEqual(query_string, parse.urlencode(request_params or []).encode("ascii"))

        # The order of header names does not matter, the order of one name's values does.
        transformed_message_headers: defaultdict[bytes, list[bytes]] = defaultdict(list)
        for name, value in channel_message["headers"]:
            transformed_message_headers[name].append(value)
        transformed_request_headers: defaultdict[bytes, list[bytes]] = defaultdict(list)
        for name, value in request_headers or []:
            expected_name = name.lower().strip().encode("ascii")
            expected_value = value.strip().encode("ascii")
            transformed_request_headers[expected_name].append(expected_value)
        self.assertEqual(transformed_message_headers, transformed_request_headers)

        scheme = channel_message.get("scheme")
        if scheme is not None:
            self.assertIsInstance(scheme, str)
            self.assertTrue(scheme)  # May not be empty

        root_path = channel_message.get("root_path")
        if root_path is not None:
            self.assertIsInstance(root_path, str)

        body = channel_message.get("body")
        # Ensure we test for presence of 'body' if a request body was given
        if request_body is not None or body is not None:
            self.assertIsInstance(body, bytes)
            expected = request_body or b""
            if isinstance(expected, str):
                expected = expected.encode("ascii")
            self.assertEqual(body, expected)

        body_channel = channel_message.get("body_channel")
        if body_channel is not None:
            self.assertIsInstance(body_channel, str)
            self.assertIn("?", body_channel)

        client = channel_message.get("client")
        if client is not None:
            self.assert_valid_address_and_port(channel_message["client"])

        server = channel_message.get("server")
        if server is not None:
            self.assert_valid_address_and_port(channel_message["server"])

    def assert_valid_http_response_message(
        self, message: Mapping[str, Any], response: bytes
    ) -> None:
        self.assertTrue(message)
        self.assertTrue(response.startswith(b"HTTP"))

        status_code_bytes = str(message["status"]).encode("ascii")
        self.assertIn(status_code_bytes, response)

        if "content" in message:
            self.assertIn(message["content"], response)

        # Header names are written as Twisted normalises them, so compare them
        # case-insensitively; values are unchanged.
        if "headers" in message:
            lowered = response.lower()
            for name, value in message["headers"]:
                self.assertIn(name.lower() + b": " + value.lower(), lowered)


class ASGIWebSocketTestCase(ASGITestCaseBase):
    """Test case with helpers for verifying WebSocket channel messages (D-57)."""

    def assert_websocket_upgrade(
        self, response: bytes, body: bytes = b"", expect_close: bool = False
    ) -> None:
        self.assertIn(b"HTTP/1.1 101 Switching Protocols", response)
        self.assertIn(b"Sec-WebSocket-Accept: HSmrc0sMlYUkAGmm5OPpG2HaGWk=\r\n", response)
        self.assertIn(b"Server: Daphne\r\n", response)
        # It should end with a close frame or the body
        if expect_close:
            self.assertTrue(response.endswith(b"\x88\x02\x03\xe8"))
        elif body:
            self.assertTrue(response.endswith(body))

    def assert_websocket_denied(self, response: bytes) -> None:
        self.assertIn(b"HTTP/1.1 403", response)

    def assert_valid_websocket_connect_message(
        self,
        channel_message: Mapping[str, Any],
        request_path: str = "/",
        request_params: Params = None,
        request_headers: Headers | None = None,
    ) -> None:
        """The message conforms to the WebSocket connect section of the ASGI spec."""
        self.assertTrue(channel_message)
        self.assert_key_sets(
            required_keys={"reply_channel", "path", "headers", "order"},
            optional_keys={"scheme", "query_string", "root_path", "client", "server"},
            actual_keys=channel_message.keys(),
        )
        self.assert_valid_reply_channel(channel_message["reply_channel"])
        self.assert_valid_path(channel_message["path"], request_path)

        order = channel_message["order"]
        self.assertIsInstance(order, int)
        self.assertEqual(order, 0)

        # Daphne gives one value per header name, the values joined by ",".
        transformed_request_headers: defaultdict[bytes, list[bytes]] = defaultdict(list)
        for name, value in request_headers or []:
            expected_name = name.lower().strip().encode("ascii")
            expected_value = value.strip().encode("ascii")
            transformed_request_headers[expected_name].append(expected_value)
        final_request_headers = {
            (name, b",".join(value)) for name, value in transformed_request_headers.items()
        }
        # Daphne builds (name, value) tuples and the in-memory layer keeps them (D-29, L-6).
        self.assertTrue(final_request_headers.issubset(set(channel_message["headers"])))

        scheme = channel_message.get("scheme")
        if scheme:
            self.assertIsInstance(scheme, str)
            self.assertIn(scheme, ["ws", "wss"])

        query_string = channel_message.get("query_string")
        if query_string:
            self.assertIsInstance(query_string, bytes)
            self.assertEqual(query_string, parse.urlencode(request_params or []).encode("ascii"))

        root_path = channel_message.get("root_path")
        if root_path is not None:
            self.assertIsInstance(root_path, str)

        client = channel_message.get("client")
        if client is not None:
            self.assert_valid_address_and_port(channel_message["client"])

        server = channel_message.get("server")
        if server is not None:
            self.assert_valid_address_and_port(channel_message["server"])
