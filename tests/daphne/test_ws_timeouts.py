"""WebSocket handshake, ping and lifetime timeouts by a fake clock (D-43, D-14, D-15, A-89)."""

from __future__ import annotations

from twisted.internet import error
from twisted.python import failure

from channels.layers.base import LayerUnavailable
from channels.layers.inmemory import ChannelLayer
from daphne.tests import factories
from daphne.ws_flow import BACKEND_GIVE_UP
from daphne.ws_protocol import WebSocketProtocol
from daphne.ws_state import SocketState
from tests.daphne.clocked import connect, open_socket, websocket_connect


def test_websocket_connect_timeout_by_clock():
    """D-43: a handshake nobody answers is refused with 403 after the connect timeout."""
    layer = ChannelLayer()
    factory, protocol, transport, clock, message = websocket_connect(
        layer, websocket_connect_timeout=5
    )
    clock.advance(4)
    assert transport.value() == b""
    clock.advance(2)
    assert transport.value().startswith(b"HTTP/1.1 403")


def full_connect_channel_handshake(**options):
    layer = ChannelLayer(channel_capacity={"websocket.connect": 1})
    layer.send("websocket.connect", {"filler": True})
    factory, protocol, transport, clock = connect(layer, **options)
    protocol.dataReceived(factories.build_websocket_upgrade("/ws/", [], []))
    return layer, factory, protocol, transport, clock


def test_full_connect_channel_waits_for_room_then_delivers():
    """A-89 (how to wait is free): a full websocket.connect is retried from ~1 ms,
    doubling to 50 ms, and delivered once there is room; the handshake then goes on."""
    layer, factory, protocol, transport, clock = full_connect_channel_handshake(
        websocket_connect_timeout=5
    )
    clock.advance(0.5)
    assert transport.value() == b""  # still waiting, not refused
    assert layer.receive(["websocket.connect"]) == ("websocket.connect", {"filler": True})
    clock.advance(0.05)  # one capped retry interval
    channel, message = layer.receive(["websocket.connect"])
    assert channel == "websocket.connect" and message["path"] == "/ws/"
    clock.advance(10)  # delivered: only the application's answer or the 403 timeout count
    assert transport.value().startswith(b"HTTP/1.1 403")


def test_full_connect_channel_refused_with_503_at_the_connect_timeout():
    """A-89: still full when the connect timeout passes → 503; the application never saw
    the connect, so no websocket.disconnect follows (A-85)."""
    layer, factory, protocol, transport, clock = full_connect_channel_handshake(
        websocket_connect_timeout=3
    )
    for _ in range(25):
        clock.advance(0.1)
    assert transport.value() == b""
    for _ in range(15):
        clock.advance(0.1)
    assert transport.value().startswith(b"HTTP/1.1 503")
    protocol.connectionLost(failure.Failure(error.ConnectionDone()))
    assert layer.receive(["websocket.disconnect"]) == (None, None)
    assert factory.reply_protocols == {}


def test_websocket_ping_and_lifetime_by_clock():
    """D-43 ping after ping_interval idle seconds; D-24 close 1000 after websocket_timeout."""
    layer = ChannelLayer()
    factory, protocol, transport, clock, message = websocket_connect(
        layer, ping_interval=10, websocket_timeout=25
    )
    factory.dispatch_reply(message["reply_channel"], {"accept": True})
    transport.clear()
    clock.advance(11)
    assert transport.value()[:1] == b"\x89"  # ping frame
    transport.clear()
    clock.advance(15)
    assert transport.value() == b"\x88\x02\x03\xe8"  # close 1000


def test_muted_is_the_silent_state():
    """D-38, D-40: ``muted`` is False on the class and on a live socket; 1.x code that
    sets it stops the frames and the disconnect (the session goes SILENT)."""
    assert WebSocketProtocol.muted is False
    layer = ChannelLayer()
    factory, protocol, transport, clock, message = websocket_connect(layer)
    factory.dispatch_reply(message["reply_channel"], {"accept": True})
    socket = factory.reply_protocols[message["reply_channel"]]
    assert socket.muted is False
    socket.muted = True
    assert socket.session.state is SocketState.SILENT
    socket.onMessage(b"ignored", True)
    assert layer.receive(["websocket.receive"]) == (None, None)
    socket.onClose(True, 1000, None)
    assert layer.receive(["websocket.disconnect"]) == (None, None)


def masked_text(text: str) -> bytes:
    """A client's text frame (RFC 6455 §5.3, the zero mask)."""
    payload = text.encode()
    return bytes([0x81, 0x80 | len(payload)]) + b"\x00\x00\x00\x00" + payload


def test_a_full_receive_channel_holds_the_socket_unread_without_closing_it():
    """Issue 17 item 3, A-89: frames wait for room as long as the channel stays full,
    the client unread meanwhile (TCP pushes back) and not pinged (its pong could not be
    read); once there is room every frame arrives in order and reading resumes."""
    layer = ChannelLayer(channel_capacity={"websocket.receive": 1})
    factory, transport, reply_channel = open_socket(layer)
    clock = factory.reactor
    ws = factory.reply_protocols[reply_channel]
    ws.dataReceived(masked_text("one") + masked_text("two") + masked_text("three"))
    clock.advance(0)
    assert transport.producerState == "paused"
    while clock.seconds() < 120:  # far past 1.x's give-up and two ping intervals
        clock.advance(0.05)
    assert transport.value() == b""  # no close frame, no ping
    assert not transport.disconnecting and ws.session.state is SocketState.OPEN
    received = []
    while len(received) < 3 and clock.seconds() < 125:
        channel, message = layer.receive(["websocket.receive"])
        if channel is not None:
            received.append(message)
        clock.advance(0.05)
    assert [(m["text"], m["order"]) for m in received] == [("one", 1), ("two", 2), ("three", 3)]
    assert transport.producerState == "producing"
    clock.advance(2)  # the keepalive ping, overdue, goes out on the next sweep
    assert transport.value().startswith(b"\x89")


def test_a_held_socket_is_given_up_after_the_backend_stays_away():
    """A layer whose backend is unreachable (L-62) holds frames for BACKEND_GIVE_UP s,
    then closes with 1013, as before issue 17."""

    class Away(ChannelLayer):
        away = False

        def send(self, channel, message):
            if self.away and channel == "websocket.receive":
                raise LayerUnavailable("the store is away")
            return super().send(channel, message)

    layer = Away()
    factory, transport, reply_channel = open_socket(layer)
    clock = factory.reactor
    ws = factory.reply_protocols[reply_channel]
    layer.away = True
    ws.dataReceived(masked_text("lost"))
    clock.advance(0)
    while clock.seconds() < BACKEND_GIVE_UP - 1:
        clock.advance(0.5)
    assert transport.value() == b""
    while clock.seconds() < BACKEND_GIVE_UP + 2:
        clock.advance(0.5)
    assert transport.value().startswith(b"\x88\x02" + (1013).to_bytes(2, "big"))
