"""The `daphne` command: argument errors and layer loading end in one line (D-5..D-10, D-62)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from unittest import mock

import pytest

from daphne.cli import CommandLineInterface
from daphne.server import Server

ROOT = Path(__file__).resolve().parents[2]


def run_daphne(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [
            sys.executable,
            "-c",
            "from daphne.cli import CommandLineInterface as C; C.entrypoint()",
            *args,
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
    )


@pytest.mark.parametrize(
    ("args", "status", "fragment"),
    [
        (["-p", "notanumber", "daphne.tests.asgi:channel_layer"], 2, "invalid int value"),
        ([], 2, "the following arguments are required: channel_layer"),
        (["--bogus", "daphne.tests.asgi:channel_layer"], 2, "unrecognized arguments"),
        (["-t", "-5", "daphne.tests.asgi:channel_layer"], 2, "negative"),
        (
            ["--forwarded-allow-ips", "10.0.0.1", "daphne.tests.asgi:channel_layer"],
            2,
            "requires --proxy-headers",
        ),
        (
            [
                "--proxy-headers",
                "--forwarded-allow-ips",
                "10.0.0.1,nonsense",
                "daphne.tests.asgi:channel_layer",
            ],
            2,
            "'nonsense' is not an IP address",
        ),
        (["no_colon_here"], 1, "must look like path.to.module:object.path"),
        (["no.such.module:layer"], 1, "No module named 'no'"),
        (["daphne.tests.asgi:missing"], 1, "has no attribute 'missing'"),
        (["daphne.tests.asgi:channel_layer"], 1, "is not a channel layer"),
    ],
    ids=[
        "bad-int",
        "no-layer",
        "unknown-option",
        "negative-timeout",
        "allow-ips-alone",
        "bad-allow-ip",
        "no-colon",
        "no-module",
        "no-attribute",
        "not-a-layer",
    ],
)
def test_startup_errors_are_one_line(args, status, fragment):
    result = run_daphne(*args)
    assert result.returncode == status, result.stderr
    # Log lines (verbosity 1) may precede it; the error itself is one line, last.
    lines = result.stderr.strip().splitlines()
    errors = [line for line in lines if line.startswith("daphne: error: ")]
    assert errors == [lines[-1]], result.stderr
    assert fragment in lines[-1]
    assert "Traceback" not in result.stderr


class TestServerArguments:
    """D-10: what the CLI passes to Server (Server.run patched out, D-58)."""

    def build(self, *args: str) -> Server:
        with mock.patch.object(Server, "run", lambda self: None):
            cli = CommandLineInterface()
            cli.run([*args, "daphne.tests.asgi:channel_layer"])
        return cli.server

    def test_defaults(self):
        server = self.build()
        assert server.endpoints == ["tcp:port=8000:interface=127.0.0.1"]
        assert server.http_timeout == 120
        assert server.websocket_connect_timeout == 5
        assert server.websocket_timeout == 86400  # a dict layer has no group_expiry
        assert server.ping_interval == 20 and server.ping_timeout == 30
        assert server.websocket_max_message_size == 1048576
        assert server.http_max_body_size == 0
        assert server.max_outbound_buffer == 1048576  # issue 15
        assert server.graceful_timeout == 10
        assert server.proxy_forwarded_address_header is None
        assert server.forwarded_allow_ips is None
        assert server.action_logger is not None  # verbosity 1 → stdout

    def test_options(self):
        server = self.build(
            "-t",
            "7",
            "--ping-interval",
            "3",
            "--ping-timeout",
            "4",
            "--websocket_timeout",
            "-1",
            "--websocket_connect_timeout",
            "9",
            "--ws-protocol",
            "a",
            "b",
            "--root-path",
            "/mount",
            "--force-sync",
            "--websocket-max-message-size",
            "10",
            "--http-max-body-size",
            "20",
            "--max-outbound-buffer",
            "30",
            "--graceful-timeout",
            "0",
            "-v",
            "0",
            "--proxy-headers",
        )
        assert server.http_timeout == 7
        assert server.ping_interval == 3 and server.ping_timeout == 4
        assert server.websocket_timeout == -1
        assert server.websocket_connect_timeout == 9
        assert server.ws_protocols == ["a", "b"]
        assert server.root_path == "/mount"
        assert server.force_sync
        assert server.websocket_max_message_size == 10
        assert server.http_max_body_size == 20
        assert server.max_outbound_buffer == 30
        assert server.graceful_timeout == 0
        assert server.action_logger is None  # verbosity 0 without --access-log
        assert server.proxy_forwarded_port_header == "X-Forwarded-Port"
        assert server.proxy_forwarded_proto_header == "X-Forwarded-Proto"

    def test_hyphenated_spellings_of_the_underscore_options(self):
        """Issue 14: ``--websocket-timeout`` is the natural spelling; the 1.x underscore
        names stay (D-6)."""
        server = self.build("--websocket-timeout", "-1", "--websocket-connect-timeout", "9")
        assert server.websocket_timeout == -1
        assert server.websocket_connect_timeout == 9

    def test_access_log_file(self, tmp_path):
        log = tmp_path / "access.log"
        server = self.build("--access-log", str(log))
        server.action_logger(
            "http",
            "complete",
            {
                "path": "/x",
                "status": 200,
                "method": "GET",
                "client": "1.2.3.4:5",
                "time_taken": 0.1,
                "size": 3,
            },
        )
        server.action_logger.stream.close()
        assert log.read_text().endswith('"GET /x" 200 3\n')


def test_version():
    """Issue 14: ``daphne --version``."""
    result = run_daphne("--version")
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "daphne 1.4.2"


def test_help_shows_defaults_usage_example_and_the_asgi_snippet():
    """Issue 14: ``--help`` shows the defaults, an example and what asgi.py must hold."""
    result = run_daphne("--help")
    assert result.returncode == 0, result.stderr
    text = " ".join(result.stdout.split())
    for fragment in [
        "(default: 120)",  # --http-timeout
        "(default: 5)",  # --websocket_connect_timeout
        "(default: 10)",  # --graceful-timeout
        "(default: 1048576)",  # --websocket-max-message-size
        "(default: 127.0.0.1)",
        "--websocket_timeout SECONDS, --websocket-timeout SECONDS",
        "daphne myproject.asgi:channel_layer",
        "from channels.asgi import get_channel_layer",
        "channel_layer = get_channel_layer()",
    ]:
        assert fragment in text, fragment


def test_fd_endpoint_plugin_is_found():
    """D-52: `fd:fileno=N` parses through Twisted's plugin discovery."""
    import socket

    from twisted.internet import endpoints, reactor

    import daphne.server  # noqa: F401  (makes the plugin directory visible)

    sock = socket.socket()
    try:
        endpoint = endpoints.serverFromString(reactor, f"fd:fileno={sock.fileno()}")
        assert isinstance(endpoint, endpoints.AdoptedStreamServerEndpoint)
        assert endpoint.fileno == sock.fileno()
        assert endpoint.addressFamily == socket.AF_INET
    finally:
        sock.close()


def test_daphne_imports_neither_channels_nor_django():
    """D-4: daphne runs without Django and never imports `channels`, `asgiref` or `six`."""
    code = (
        "import sys, daphne.cli, daphne.server, daphne.http_protocol, daphne.ws_protocol, "
        "daphne.access, daphne.utils, daphne.reply_reader, daphne.layer_api\n"
        "bad = sorted({m.split('.')[0] for m in sys.modules} "
        "& {'channels', 'django', 'asgiref', 'six'})\n"
        "print(bad)"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=60
    )
    assert result.stdout.strip() == "[]", result.stderr
