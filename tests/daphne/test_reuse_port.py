"""``--reuse-port``: several daphne processes on one host:port (issue 19 item 2).

Two real daphne processes (`tests.daphne.process`, each with its own in-memory layer and
worker) listen on the same port with ``SO_REUSEPORT``; the kernel spreads new connections
over both, and each answers the requests it accepted (its replies come back on its own
random reply prefix). Without the flag the second process cannot listen, and says so in
one line (D-62, issue 14).
"""

from __future__ import annotations

import contextlib
import http.client
import queue
import re
import socket
import subprocess
import sys
import time

import pytest

from daphne import reuse_port
from tests.daphne.process import ROOT, DaphneProcess

pytestmark = pytest.mark.skipif(
    not hasattr(socket, "SO_REUSEPORT"), reason="SO_REUSEPORT is not available here"
)


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def get(port: int, path: str) -> int:
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=20)
    try:
        connection.request("GET", path)
        response = connection.getresponse()
        response.read()
        return response.status
    finally:
        connection.close()


ACCESS_LINE = re.compile(r'"GET (/r\d+/)" 200')


def served(process: DaphneProcess) -> set[str]:
    """The paths in `process`'s access log (standard output at verbosity 1)."""
    return {match[1] for match in map(ACCESS_LINE.search, list(process.output)) if match}


def wait_until_logged(count: int, *processes: DaphneProcess) -> None:
    """Until the processes' access logs hold `count` paths together (within 10 s): a
    line is written just after its response, so it may trail the client a little."""
    deadline = time.monotonic() + 10
    while len(set().union(*map(served, processes))) < count:
        assert time.monotonic() < deadline, [process.output for process in processes]
        with contextlib.suppress(queue.Empty):
            processes[0].lines.get(timeout=0.1)  # new output, or another look


@pytest.mark.slow
def test_two_daphnes_share_a_port_and_both_serve():
    port = free_port()
    args = ("-p", str(port), "--reuse-port")
    with DaphneProcess(*args) as first, DaphneProcess(*args) as second:
        assert first.port == second.port == port
        # New connections come from new source ports, which the kernel hashes over both
        # listeners: with 64 of them, both get some (each misses with odds 2**-64).
        for index in range(64):
            assert get(port, f"/r{index}/") == 200
        wait_until_logged(64, first, second)
        assert served(first) and served(second)
        assert not served(first) & served(second)  # each request was served once


def test_without_the_flag_the_second_daphne_cannot_listen():
    port = free_port()
    with DaphneProcess("-p", str(port), "--reuse-port"):
        result = subprocess.run(
            [
                sys.executable,
                "-m",
                "tests.daphne.app",
                "-p",
                str(port),
                "tests.daphne.app:channel_layer",
            ],
            cwd=ROOT,
            capture_output=True,
            text=True,
            timeout=60,
        )
    assert result.returncode == 1, result.stderr
    assert result.stderr.strip().splitlines()[-1] == (
        f"daphne: error: cannot listen on 127.0.0.1:{port}: address already in use"
    )
    assert "Traceback" not in result.stderr


@pytest.mark.parametrize(
    ("description", "parsed"),
    [
        ("tcp:8000", (8000, "", 50)),
        ("tcp:port=8000:interface=127.0.0.1:backlog=1024", (8000, "127.0.0.1", 1024)),
        ("tcp6:port=8001:interface=\\:\\:1", (8001, "::1", 50)),
        ("tcp6:8002", (8002, "::", 50)),
    ],
)
def test_tcp_descriptions_are_read_as_twisted_reads_them(description, parsed):
    assert reuse_port.applies(description)
    assert reuse_port._parse(description) == parsed


@pytest.mark.parametrize("description", ["unix:/tmp/d.sock", "ssl:443", "fd:fileno=3"])
def test_other_endpoints_listen_as_usual(description):
    assert not reuse_port.applies(description)
