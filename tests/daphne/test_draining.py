"""A graceful stop's WebSocket batches by a fake clock (D-17, issue 17 item 4)."""

from __future__ import annotations

import struct

import pytest
from twisted.internet import defer, error, task, testing
from twisted.python import failure

from channels.layers.inmemory import ChannelLayer
from daphne.draining import (
    BATCH_INTERVAL,
    CLOSE_HANDSHAKE_MARGIN,
    batch_schedule,
    websocket_spread,
)
from daphne.http_protocol import HTTPFactory
from daphne.server import Server
from daphne.tests import factories

CLOSE_1012 = b"\x88\x02" + struct.pack("!H", 1012)


@pytest.mark.parametrize(("count", "spread"), [(1, 5), (7, 0), (50, 3), (10_000, 5), (3, 0.05)])
def test_batches_cover_every_socket_once_from_now_to_the_spread(count, spread):
    schedule = batch_schedule(count, spread)
    covered = [index for _, start, end in schedule for index in range(start, end)]
    assert covered == list(range(count))
    delays = [delay for delay, _, _ in schedule]
    assert delays[0] == 0 and delays == sorted(delays)
    if spread and count > 1:
        assert delays[-1] == pytest.approx(spread)
        assert len(schedule) <= max(2, round(spread / BATCH_INTERVAL) + 1)
    else:
        assert schedule == [(0.0, 0, count)]
    sizes = [end - start for _, start, end in schedule]
    assert max(sizes) - min(sizes) <= 1  # even batches


def test_no_socket_no_batch():
    assert batch_schedule(0, 5) == []


def test_the_spread_leaves_the_last_closes_time_within_graceful_timeout():
    assert websocket_spread(5, 10) == 5
    assert websocket_spread(5, 4) == 4 - CLOSE_HANDSHAKE_MARGIN
    assert websocket_spread(5, 1) == 0  # no time to spread: all at once
    assert websocket_spread(0, 10) == 0
    server = Server({}, endpoints=["tcp:port=0"], websocket_drain_time=3)
    assert (server.websocket_drain_time, server.config.websocket_drain_time) == (3, 3)


def open_sockets(count: int) -> tuple[HTTPFactory, task.Clock, list, ChannelLayer]:
    return open_sockets_on(ChannelLayer(), count)


def open_sockets_on(layer: ChannelLayer, count: int) -> tuple:
    clock = task.Clock()
    factory = HTTPFactory(layer, send_channel="test!")
    factory.reactor = clock
    transports = []
    for _ in range(count):
        protocol = factory.buildProtocol(("127.0.0.1", 0))
        transport = testing.StringTransport()
        protocol.makeConnection(transport)
        protocol.dataReceived(factories.build_websocket_upgrade("/ws/", [], []))
        clock.advance(0)
        _, connect = layer.receive(["websocket.connect"])
        factory.dispatch_reply(connect["reply_channel"], {"accept": True})
        assert transport.value().startswith(b"HTTP/1.1 101")
        transport.clear()
        transports.append(transport)
    return factory, clock, transports, layer


def closed(transports: list) -> list[bool]:
    return [transport.value().startswith(CLOSE_1012) for transport in transports]


def test_open_sockets_close_with_1012_in_batches_and_pending_handshakes_get_503():
    factory, clock, transports, layer = open_sockets(6)
    pending = factory.buildProtocol(("127.0.0.1", 0))
    pending_transport = testing.StringTransport()
    pending.makeConnection(pending_transport)
    pending.dataReceived(factories.build_websocket_upgrade("/ws/", [], []))
    clock.advance(0)
    assert factory.start_drain(defer.Deferred(), 1.0) == 6
    assert pending_transport.value().startswith(b"HTTP/1.1 503")
    seen = []
    while clock.seconds() < 1.0:
        seen.append(sum(closed(transports)))
        clock.advance(BATCH_INTERVAL)
    assert sum(closed(transports)) == 6
    assert seen[0] == 1 and seen == sorted(seen) and len(set(seen)) >= 5  # a few at a time
    assert factory.websockets()  # closing, not gone: the clients answer the close


def test_the_last_step_closes_the_sockets_whose_batch_was_not_due():
    factory, clock, transports, _ = open_sockets(4)
    factory.start_drain(defer.Deferred(), 10.0)
    assert closed(transports) == [True, False, False, False]
    closing = factory.close_remaining_websockets()
    assert closed(transports) == [True] * 4
    assert closing == transports  # those already closing are given their time too
    clock.advance(20)  # the cancelled batches do not close anything twice
    assert all(transport.value().count(b"\x88") == 1 for transport in transports)


def test_a_stop_waits_for_frames_held_for_room_of_a_socket_already_gone():
    """A-89, issue 17: a client that sent a frame into a full channel and left (here:
    after the stop closed it) still has that frame and its disconnect delivered before
    the stop ends."""
    layer = ChannelLayer(channel_capacity={"websocket.receive": 1})
    layer.send("websocket.receive", {"filler": True})
    factory, clock, transports, _ = open_sockets_on(layer, 1)
    (ws,) = factory.websockets()
    ws.dataReceived(b"\x81\x84\x00\x00\x00\x00last")
    clock.advance(0)
    assert ws.session.held
    drained: defer.Deferred = defer.Deferred()
    factory.start_drain(drained, 0)
    ws.connectionLost(failure.Failure(error.ConnectionDone()))
    assert factory.websockets() == [] and not drained.called  # the frame still waits
    assert layer.receive(["websocket.receive"])[1] == {"filler": True}
    for _ in range(10):
        clock.advance(0.05)
        if drained.called:
            break
    assert drained.called
    _, frame = layer.receive(["websocket.receive"])
    assert frame["text"] == "last"
    _, disconnect = layer.receive(["websocket.disconnect"])
    assert disconnect["code"] == 1012 and disconnect["order"] == 2
