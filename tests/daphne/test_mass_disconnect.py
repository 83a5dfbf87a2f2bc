"""Mass disconnects leave no group memberships behind (issue 15, item 3).

500 WebSocket members of a group on a real Redis, a worker stand-in on its own layer
instance adding each socket to the group on connect and discarding it on disconnect.
All 500 close at once (a restart, a load balancer reset): with ``websocket.disconnect``
at its default capacity of 100 most disconnects meet a full channel, and must be
retried rather than dropped (A-89 says drop; daphne retries until the message expiry).
"""

from __future__ import annotations

import logging
import socket
import threading

import pytest
from twisted.internet import task

from asgi_redis import RedisChannelLayer
from daphne import ws_protocol
from daphne.drops import FullChannelReporter
from tests.daphne.live import LiveServer, Responder, send_retrying
from tests.daphne.test_outbox import ReactorGate

pytestmark = pytest.mark.redis

MEMBERS = 500
GROUP = "room"
KEY = b"x3JJHMbDL1EzLkh9GBhXDw=="


def group_worker(layer: RedisChannelLayer, channel: str, message: dict) -> None:
    if channel == "websocket.connect":
        layer.group_add(GROUP, message["reply_channel"])
        send_retrying(layer, message["reply_channel"], {"accept": True})
    elif channel == "websocket.disconnect":
        layer.group_discard(GROUP, message["reply_channel"])


def open_socket(port: int) -> socket.socket:
    sock = socket.create_connection(("127.0.0.1", port), timeout=20)
    sock.sendall(
        b"GET /ws/ HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
        b"Sec-WebSocket-Key: " + KEY + b"\r\nSec-WebSocket-Version: 13\r\n\r\n"
    )
    return sock


def read_head(sock: socket.socket) -> bytes:
    data = b""
    while b"\r\n\r\n" not in data:
        part = sock.recv(4096)
        if not part:
            break
        data += part
    return data


def wait_for(predicate, timeout: float) -> bool:
    pause = threading.Event()
    for _ in range(int(timeout / 0.05)):
        if predicate():
            return True
        pause.wait(0.05)
    return predicate()


def test_500_members_closing_at_once_all_leave_the_group(redis_server):
    """Issue 15: every websocket.disconnect of a burst reaches the worker; none is
    dropped, so the group is empty within a bounded wait (not after group_expiry)."""
    worker = Responder(
        RedisChannelLayer(hosts=[redis_server.url]),
        ["websocket.connect", "websocket.disconnect"],
        group_worker,
    ).start()
    layer = RedisChannelLayer(hosts=[redis_server.url])
    live = LiveServer(RedisChannelLayer(hosts=[redis_server.url])).start()
    sockets: list[socket.socket] = []
    before = dict(ws_protocol.full_channels.totals)
    try:
        for _ in range(MEMBERS // 50):  # 50 handshakes in flight at a time
            batch = [open_socket(live.port) for _ in range(50)]
            for sock in batch:
                assert read_head(sock).startswith(b"HTTP/1.1 101")
            sockets += batch
        assert len(layer.group_channels(GROUP)) == MEMBERS
        # All at once, without closing handshakes, while daphne's reactor is held: it
        # sees the 500 closes in one tick and sends the disconnects as one batch.
        gate = ReactorGate(live)
        for sock in sockets:
            sock.setsockopt(
                socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\x00\x00\x00\x00\x00\x00\x00"
            )
            sock.close()
        sockets.clear()
        gate.open()
        assert wait_for(lambda: layer.group_channels(GROUP) == [], timeout=30), (
            f"{len(layer.group_channels(GROUP))} members left in the group"
        )
        assert ws_protocol.full_channels.totals == before  # nothing dropped
    finally:
        for sock in sockets:
            sock.close()
        live.stop()
        worker.stop()
        layer.close()


def test_a_burst_of_drops_is_reported_with_its_true_count(caplog):
    """Issue 15 / issue 14: the first drop is logged at once, the rest of the interval's
    as ONE line with their true count when the interval ends (no later drop needed),
    and every drop is counted."""
    clock = task.Clock()
    reporter = FullChannelReporter(logging.getLogger("test.daphne.burst"), clock.seconds, clock)
    with caplog.at_level(logging.WARNING, logger="test.daphne.burst"):
        for _ in range(400):
            reporter.full("websocket.disconnect", "dropped a disconnect")
        assert [r.getMessage() for r in caplog.records] == [
            "websocket.disconnect is full: dropped a disconnect (1 time since the last report)"
        ]
        clock.advance(reporter.interval)
        assert [r.getMessage() for r in caplog.records][1:] == [
            "websocket.disconnect is full: dropped a disconnect (399 times since the last report)"
        ]
        clock.advance(reporter.interval * 3)
        assert len(caplog.records) == 2  # nothing more to report: no further lines
    assert reporter.totals == {("full", "websocket.disconnect"): 400}


def test_a_disconnect_is_retried_until_room_and_dropped_only_after_the_expiry():
    """Issue 15: send_reliably retries a full channel with a growing back-off; the
    message arrives once there is room, and is dropped (and counted) only when the
    give-up time has passed."""
    from channels.layers.inmemory import ChannelLayer
    from daphne.drops import send_reliably
    from daphne.outbox import Outbox

    clock = task.Clock()
    layer = ChannelLayer(capacity=1)
    outbox = Outbox(layer, lambda: clock)
    reporter = FullChannelReporter(logging.getLogger("test.daphne.reliable"), clock.seconds, clock)
    layer.send("websocket.disconnect", {"n": 0})  # full
    send_reliably(outbox, clock, "websocket.disconnect", {"n": 1}, "dropped", reporter, 60)
    clock.advance(5)  # still full: retried meanwhile, never dropped
    assert reporter.totals == {}
    assert layer.receive(["websocket.disconnect"])[1] == {"n": 0}  # room now
    clock.advance(1.5)  # the next retry (back-off capped at 1 s) stores it
    assert layer.receive(["websocket.disconnect"])[1] == {"n": 1}
    layer.send("websocket.disconnect", {"n": 2})  # full again, and stays so
    send_reliably(outbox, clock, "websocket.disconnect", {"n": 3}, "dropped", reporter, 3)
    for _ in range(10):
        clock.advance(1)
    assert reporter.totals == {("full", "websocket.disconnect"): 1}
    assert layer.receive(["websocket.disconnect"])[1] == {"n": 2}
    assert layer.receive(["websocket.disconnect"]) == (None, None)
