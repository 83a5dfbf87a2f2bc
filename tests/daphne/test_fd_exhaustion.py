"""Issue 15 item 7: file-descriptor exhaustion is visible, and connections can be capped.

- Twisted's errors and accept failures reach Python logging at ERROR at the default
  verbosity, merged to one line per interval with a count (`daphne.edge_log`);
- ``--max-connections``: beyond it new connections get 503, counted and logged once per
  interval.
"""

from __future__ import annotations

import logging
import resource
import socket
import threading

import pytest
from twisted.internet import task
from twisted.logger import LogLevel
from twisted.python.failure import Failure

from channels.layers.inmemory import ChannelLayer
from daphne.edge_log import MergedLog, TwistedErrors
from tests.daphne.live import (
    LiveServer,
    Responder,
    http_responder,
    recv_response_head,
    recv_until_closed,
)
from tests.daphne.process import DaphneProcess

# Low enough that a test opens past it quickly, high enough for daphne to start.
FD_LIMIT = 64


def _limit_fds() -> None:
    resource.setrlimit(resource.RLIMIT_NOFILE, (FD_LIMIT, FD_LIMIT))


def _get(port: int) -> bytes:
    sock = socket.create_connection(("127.0.0.1", port), timeout=10)
    try:
        sock.sendall(b"GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        return recv_until_closed(sock)
    finally:
        sock.close()


def test_running_out_of_file_descriptors_is_logged_at_error_and_recovers():
    """Issue 15 item 7: with RLIMIT_NOFILE lowered, opening sockets until accept fails
    logs an ERROR at the default verbosity (it was discarded), merged rather than one
    line per refused connection; once the sockets close daphne serves again."""
    with DaphneProcess("-p", "0", preexec_fn=_limit_fds) as daphne:
        assert _get(daphne.port).endswith(b"ok\r\n0\r\n\r\n")
        held = []
        try:
            for _ in range(FD_LIMIT * 2):
                held.append(socket.create_connection(("127.0.0.1", daphne.port), timeout=10))
            line = daphne.wait_for("Cannot accept connections", timeout=30)
            assert "ERROR" in line and "too many open files (EMFILE)" in line
        finally:
            for sock in held:
                sock.close()
        # Bounded: the closes reach daphne asynchronously, so the first tries may still
        # find every descriptor taken (answered by closing, i.e. an empty read).
        for _ in range(100):
            answer = _get(daphne.port)
            if answer:
                break
        assert answer.startswith(b"HTTP/1.1 200")
        accept_lines = [line for line in daphne.output if "Cannot accept connections" in line]
        # Dozens of connections were refused; they are one line (plus, at most, the
        # interval's count if 10 s passed on a slow machine).
        assert 1 <= len(accept_lines) <= 2, accept_lines


def test_merged_log_writes_one_line_per_interval_with_the_count(caplog):
    """Issue 15 item 7: 1000 failures in an interval → the first at once, the other 999
    in one line when the interval ends (a reactor timer, no further event needed)."""
    clock = task.Clock()
    merged = MergedLog(logging.getLogger("test.daphne.merged"), logging.ERROR, clock)
    with caplog.at_level(logging.ERROR, logger="test.daphne.merged"):
        for _ in range(1000):
            merged.report("accept", "Cannot accept connections")
        assert caplog.messages == ["Cannot accept connections"]
        clock.advance(merged.interval)
        assert caplog.messages == [
            "Cannot accept connections",
            "Cannot accept connections (999 times in 10 s)",
        ]
        clock.advance(merged.interval * 3)
        assert len(caplog.messages) == 2  # nothing new, nothing logged
    assert merged.totals == {"accept": 1000}


def test_twisted_observer_routes_errors_and_accept_failures():
    """Issue 15 item 7: events with a failure or at error/critical, and Twisted's INFO
    "Could not accept" lines, go to the merged ERROR log; everything else to the
    fallback (stdlib logging at verbosity 2, nowhere below)."""
    reported: list[tuple[str, str]] = []
    passed: list[dict] = []

    class Recording(MergedLog):
        def report(self, key: str, message: str) -> None:
            reported.append((key, message))

    observer = TwistedErrors(Recording(logging.getLogger("x"), logging.ERROR), passed.append)
    try:
        raise OSError(24, "Too many open files")
    except OSError:
        failure = Failure()
    observer({"log_failure": failure, "log_format": "Unhandled", "log_namespace": "t"})
    observer({"log_level": LogLevel.critical, "log_format": "boom", "log_namespace": "t"})
    observer(
        {
            "log_level": LogLevel.info,
            "log_format": "Could not accept new connection ({acceptError})",
            "acceptError": "ENFILE",
            "log_namespace": "twisted.internet.tcp",
        }
    )
    chatter = {"log_level": LogLevel.info, "log_format": "Site starting", "log_namespace": "t"}
    observer(chatter)
    assert [key.split(":")[-1] for key, _ in reported[:2]] == ["OSError", ""]
    assert "Too many open files" in reported[0][1]
    assert reported[2] == (
        "accept",
        "Cannot accept connections: too many open files (ENFILE); "
        "new connections are closed unanswered. Raise the file limit "
        "(ulimit -n) or set --max-connections below it",
    )
    assert passed == [chatter]


def open_connections_become(live: LiveServer, count: int, timeout: float = 10) -> bool:
    """Whether the factory's open-connection count reaches `count` within `timeout`
    (a bounded poll: closes reach the reactor asynchronously)."""
    pause = threading.Event()
    for _ in range(int(timeout / 0.01)):
        if live.call(lambda: live.factory.open_connections) == count:
            return True
        pause.wait(0.01)
    return False


@pytest.fixture
def capped():
    with LiveServer(ChannelLayer(), max_connections=2) as live:
        responder = Responder(live.layer, ["http.request"], http_responder()).start()
        yield live
        responder.stop()


def _keep_alive_request(sock: socket.socket) -> bytes:
    sock.sendall(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
    return recv_response_head(sock)


def test_connections_over_the_cap_get_503_and_are_counted(capped, caplog):
    """Issue 15 item 7: with max_connections=2, a third connection gets 503 and is
    closed; the refusals are counted and logged once per interval at WARNING; once one
    connection closes, new ones are served again."""
    first, second = capped.connect(), capped.connect()
    assert _keep_alive_request(first).startswith(b"HTTP/1.1 200")
    assert _keep_alive_request(second).startswith(b"HTTP/1.1 200")
    with caplog.at_level(logging.WARNING, logger="daphne"):
        for _ in range(3):
            sock = capped.connect()
            sock.sendall(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
            assert recv_until_closed(sock).startswith(b"HTTP/1.1 503")
    assert capped.call(lambda: capped.factory.refused_connections) == 3
    cap_lines = [m for m in caplog.messages if "max_connections" in m]
    assert cap_lines == ["max_connections (2) reached: a new connection gets 503"]
    first.close()
    capped.sockets.remove(first)
    assert open_connections_become(capped, 1)  # the close reaches the reactor later
    third = capped.connect()
    assert _keep_alive_request(third).startswith(b"HTTP/1.1 200")


def test_websockets_count_until_they_close(capped):
    """Issue 15 item 7: a connection handed to a WebSocket still counts, and stops
    counting when the socket closes (the count is of file descriptors)."""
    sock = capped.connect()
    sock.sendall(
        b"GET /ws/ HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
        b"Sec-WebSocket-Key: x3JJHMbDL1EzLkh9GBhXDw==\r\nSec-WebSocket-Version: 13\r\n\r\n"
    )
    # Nobody answers websocket.connect here; the handshake is pending, the socket open.
    assert open_connections_become(capped, 1)
    assert capped.call(lambda: capped.factory.reply_protocols) != {}
    sock.close()
    capped.sockets.remove(sock)
    assert open_connections_become(capped, 0)


def test_a_silent_connection_over_the_cap_gets_503_after_the_wait_by_clock(caplog):
    """Issue 15 item 7: a connection over max_connections that sends nothing is
    answered 503 after OVER_CAP_WAIT seconds; refusals in one interval are one WARNING,
    the rest counted in a second line when the interval ends."""
    from twisted.internet import testing

    from daphne.http_channel import OVER_CAP_WAIT
    from daphne.http_protocol import HTTPFactory

    clock = task.Clock()
    factory = HTTPFactory(ChannelLayer(), send_channel="test!", max_connections=1)
    factory.reactor = clock
    transports = []
    with caplog.at_level(logging.WARNING, logger="daphne"):
        for _ in range(4):
            protocol = factory.buildProtocol(("127.0.0.1", 0))
            transport = testing.StringTransport()
            protocol.makeConnection(transport)
            transports.append(transport)
        assert factory.open_connections == 1
        assert factory.refused_connections == 3
        assert all(t.value() == b"" for t in transports)
        clock.advance(OVER_CAP_WAIT)
        assert transports[0].value() == b""  # within the cap: waits for its request
        for transport in transports[1:]:
            assert transport.value().startswith(b"HTTP/1.1 503 Service Unavailable")
            assert transport.disconnecting
        clock.advance(factory.cap_log.interval)
    assert caplog.messages == [
        "max_connections (1) reached: a new connection gets 503",
        "max_connections (1) reached: a new connection gets 503 (2 times in 10 s)",
    ]
