"""daphne that cannot listen ends with one line and a non-zero status, never keeps
running without its endpoint (D-62, issue 14 point 1).

The hook for embedding programs: `Server.run()` raises `daphne.server.ListenFailed`,
an `OSError` carrying the socket's errno, so runserver can word it Django's way.
"""

from __future__ import annotations

import socket
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def taken_port() -> Iterator[int]:
    """A loopback port another socket listens on."""
    with socket.socket() as holder:
        holder.bind(("127.0.0.1", 0))
        holder.listen()
        yield holder.getsockname()[1]


def run_app(*args: str) -> subprocess.CompletedProcess:
    """The test app's daphne (in-memory layer + worker thread) with `args`."""
    return subprocess.run(
        [sys.executable, "-m", "tests.daphne.app", *args, "tests.daphne.app:channel_layer"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
    )


def last_line_is_the_only_error(result: subprocess.CompletedProcess) -> str:
    lines = result.stderr.strip().splitlines()
    errors = [line for line in lines if line.startswith("daphne: error: ")]
    assert errors == [lines[-1]], result.stderr
    assert "Traceback" not in result.stderr
    assert " ERROR " not in result.stderr, result.stderr
    return lines[-1]


def test_port_taken_is_one_line_and_exit_1(taken_port):
    result = run_app("-p", str(taken_port))
    assert result.returncode == 1, result.stderr
    assert last_line_is_the_only_error(result) == (
        f"daphne: error: cannot listen on 127.0.0.1:{taken_port}: address already in use"
    )
    assert "READY" not in result.stdout


def test_one_failing_endpoint_of_several_stops_the_server(taken_port):
    result = run_app("-p", "0", "-e", f"tcp:port={taken_port}:interface=127.0.0.1")
    assert result.returncode == 1, result.stderr
    assert "address already in use" in last_line_is_the_only_error(result)


def test_unknown_endpoint_type_is_one_line():
    result = run_app("-e", "imap:")
    assert result.returncode == 1, result.stderr
    line = last_line_is_the_only_error(result)
    assert line.startswith("daphne: error: cannot listen on imap:: ")
    assert "imap" in line.split(": ", 3)[-1]


EMBEDDED = """
import errno, sys
from channels.layers.inmemory import ChannelLayer
from daphne.server import ListenFailed, Server
server = Server(ChannelLayer(), endpoints=[sys.argv[1]], signal_handlers=False)
try:
    server.run()
except ListenFailed as error:
    print(error.errno == errno.EADDRINUSE, isinstance(error, OSError), error.address)
"""


def test_embedding_code_gets_listen_failed_with_errno(taken_port):
    """The runserver hook: `Server.run()` raises `ListenFailed` (an OSError with errno)."""
    result = subprocess.run(
        [sys.executable, "-c", EMBEDDED, f"tcp:port={taken_port}:interface=127.0.0.1"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.stdout.split() == ["True", "True", f"127.0.0.1:{taken_port}"], result.stderr


def test_unix_socket_in_a_missing_directory_names_the_directory(tmp_path):
    """``-u`` into a directory that does not exist: Twisted's lock file beside the socket
    fails first, with an errno text naming odd paths ('29876' -> b'...sock.lock'); the
    line names the socket and the missing directory instead."""
    path = tmp_path / "missing" / "daphne.sock"
    result = run_app("-u", str(path))
    assert result.returncode == 1, result.stderr
    assert last_line_is_the_only_error(result) == (
        f"daphne: error: cannot listen on {path}: no such file or directory "
        f"(the directory {path.parent} does not exist)"
    )
