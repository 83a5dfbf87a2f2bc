"""Endpoint strings from CLI arguments (D-9, D-11, D-58)."""

import logging
import unittest
from unittest import mock

from daphne.cli import CommandLineInterface
from daphne.server import Server
from daphne.server import build_endpoint_description_strings as build


class TestEndpointDescriptions(unittest.TestCase):
    def test_tcp_port_bindings(self):
        self.assertEqual(
            build(port=1234, host="example.com"), ["tcp:port=1234:interface=example.com"]
        )
        self.assertEqual(build(port=8000, host="127.0.0.1"), ["tcp:port=8000:interface=127.0.0.1"])
        self.assertEqual(build(port=8000, host="[200a::1]"), [r"tcp:port=8000:interface=200a\:\:1"])
        self.assertEqual(build(port=8000, host="200a::1"), [r"tcp:port=8000:interface=200a\:\:1"])
        # incomplete port/host kwargs raise errors
        self.assertRaises(ValueError, build, port=123)
        self.assertRaises(ValueError, build, host="example.com")

    def test_unix_socket_binding(self):
        self.assertEqual(build(unix_socket="/tmp/daphne.sock"), ["unix:/tmp/daphne.sock"])

    def test_file_descriptor_binding(self):
        self.assertEqual(build(file_descriptor=5), ["fd:fileno=5"])
        self.assertEqual(build(file_descriptor=0), ["fd:fileno=0"])

    def test_multiple_endpoints(self):
        self.assertEqual(
            sorted(
                build(
                    file_descriptor=123, unix_socket="/tmp/daphne.sock", port=8080, host="10.0.0.1"
                )
            ),
            sorted(["tcp:port=8080:interface=10.0.0.1", "unix:/tmp/daphne.sock", "fd:fileno=123"]),
        )

    def test_no_arguments(self):
        self.assertEqual(build(), [])


class TestCLIInterface(unittest.TestCase):
    # construct a string that will be accepted as the channel_layer argument
    _import_channel_layer_string = "daphne.tests.asgi:channel_layer"

    def setUp(self):
        logging.disable(logging.CRITICAL)
        patcher = mock.patch.object(Server, "run", lambda self: None)
        patcher.start()
        self.addCleanup(patcher.stop)

    def tearDown(self):
        logging.disable(logging.NOTSET)

    def build_cli(self, cli_args=""):
        cli = CommandLineInterface()
        cli.run([*cli_args.split(), self._import_channel_layer_string])
        return cli

    def get_endpoints(self, cli_args=""):
        return self.build_cli(cli_args=cli_args).server.endpoints

    def checkCLI(self, args="", endpoints=None, msg="Expected endpoints do not match."):
        endpoints = endpoints or []
        cli = self.build_cli(cli_args=args)
        generated_endpoints = sorted(cli.server.endpoints)
        endpoints.sort()
        self.assertEqual(generated_endpoints, endpoints, msg=msg)

    def testCLIBasics(self):
        self.checkCLI("", ["tcp:port=8000:interface=127.0.0.1"])
        self.checkCLI("-p 123", ["tcp:port=123:interface=127.0.0.1"])
        self.checkCLI("-b 10.0.0.1", ["tcp:port=8000:interface=10.0.0.1"])
        self.checkCLI("-b 200a::1", [r"tcp:port=8000:interface=200a\:\:1"])
        self.checkCLI("-b [200a::1]", [r"tcp:port=8000:interface=200a\:\:1"])
        self.checkCLI("-p 8080 -b example.com", ["tcp:port=8080:interface=example.com"])

    def testUnixSockets(self):
        self.checkCLI(
            "-p 8080 -u /tmp/daphne.sock",
            ["tcp:port=8080:interface=127.0.0.1", "unix:/tmp/daphne.sock"],
        )
        self.checkCLI(
            "-b example.com -u /tmp/daphne.sock",
            ["tcp:port=8000:interface=example.com", "unix:/tmp/daphne.sock"],
        )
        self.checkCLI("-u /tmp/daphne.sock --fd 5", ["fd:fileno=5", "unix:/tmp/daphne.sock"])

    def testMixedCLIEndpointCreation(self):
        self.checkCLI(
            "-p 8080 -e unix:/tmp/daphne.sock",
            ["tcp:port=8080:interface=127.0.0.1", "unix:/tmp/daphne.sock"],
        )
        # no de-duplication (D-9)
        self.checkCLI(
            "-p 8080 -e tcp:port=8080:interface=127.0.0.1",
            ["tcp:port=8080:interface=127.0.0.1", "tcp:port=8080:interface=127.0.0.1"],
        )

    def testCustomEndpoints(self):
        self.checkCLI("-e imap:", ["imap:"])

    def test_proxy_headers_and_allow_ips(self):
        server = self.build_cli("--proxy-headers --forwarded-allow-ips 10.0.0.1,10.1.0.0/16").server
        self.assertEqual(server.proxy_forwarded_address_header, "X-Forwarded-For")
        self.assertEqual(
            [str(n) for n in server.forwarded_allow_ips], ["10.0.0.1/32", "10.1.0.0/16"]
        )
        server = self.build_cli("--proxy-headers --forwarded-allow-ips *").server
        self.assertIsNone(server.forwarded_allow_ips)
        server = self.build_cli("").server
        self.assertIsNone(server.proxy_forwarded_address_header)
