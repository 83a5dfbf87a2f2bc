"""`ws_write.write_now`: a frame goes to a plain TCP socket at once when nothing is
buffered, and through Twisted's buffer otherwise (issue 20)."""

from __future__ import annotations

import socket
from typing import Any

import pytest
from twisted.internet import tcp

from daphne.ws_write import write_now


class _Written(list):
    """What ``transport.write`` was given."""


def _transport(sock: socket.socket, **state: Any) -> Any:
    """A `tcp.Server` as far as `write_now` reads it, writes recorded, no reactor."""
    transport: Any = object.__new__(tcp.Server)
    transport.socket = sock
    transport._tempDataBuffer = []
    transport.dataBuffer = b""
    transport.connected = 1
    transport.disconnecting = 0
    transport.TLS = False
    written = _Written()
    transport.write = written.append
    transport.written = written
    for name, value in state.items():
        setattr(transport, name, value)
    return transport


@pytest.fixture
def pair():
    a, b = socket.socketpair()
    a.setblocking(False)
    b.setblocking(False)
    yield a, b
    a.close()
    b.close()


def test_an_idle_transport_sends_at_once(pair):
    a, b = pair
    transport = _transport(a)
    write_now(transport, b"\x81\x02hi")
    assert b.recv(100) == b"\x81\x02hi"
    assert transport.written == []


@pytest.mark.parametrize(
    "state",
    [
        {"_tempDataBuffer": [b"earlier"]},
        {"dataBuffer": b"earlier"},
        {"disconnecting": 1},
        {"connected": 0},
        {"_writeDisconnecting": True},
        {"TLS": True},
    ],
)
def test_anything_buffered_or_closing_goes_through_twisted(pair, state):
    a, b = pair
    transport = _transport(a, **state)
    write_now(transport, b"frame")
    assert transport.written == [b"frame"]  # behind what waits, in order
    with pytest.raises(BlockingIOError):
        b.recv(100)


def test_what_the_socket_does_not_take_is_buffered(pair):
    a, b = pair
    a.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 4096)
    transport = _transport(a)
    data = bytes(range(256)) * 4096  # 1 MiB: more than the socket takes at once
    write_now(transport, data)
    assert len(transport.written) == 1
    rest = transport.written[0]
    received = b""
    while True:
        try:
            chunk = b.recv(1 << 20)
        except BlockingIOError:
            break
        received += chunk
    assert received and received + rest == data


def test_a_broken_socket_leaves_the_error_to_twisted(pair):
    a, b = pair
    b.close()
    a.shutdown(socket.SHUT_WR)
    transport = _transport(a)
    write_now(transport, b"frame")
    assert transport.written == [b"frame"]


def test_nothing_to_write_sends_nothing(pair):
    a, b = pair
    transport = _transport(a)
    write_now(transport, b"")
    assert transport.written == [b""]  # Twisted's write ignores it, as before
    with pytest.raises(BlockingIOError):
        b.recv(100)


def test_other_transports_use_their_own_write():
    written: list[bytes] = []

    class Other:
        write = staticmethod(written.append)

    write_now(Other(), b"frame")
    assert written == [b"frame"]


def test_data_frames_are_written_at_once_and_control_frames_buffered(monkeypatch):
    """Issue 20: whole data frames are written with `write_now` (by `sendData`, or by
    `ws_fanout.reply_one` for a reply to an open socket); pings, pongs and close frames
    go through Twisted's buffer, after what the reactor does next (D-17)."""
    from channels.layers.inmemory import ChannelLayer
    from daphne import ws_fanout, ws_protocol
    from tests.daphne.clocked import open_socket

    direct: list[bytes] = []

    def recording(transport: Any, data: bytes) -> None:
        direct.append(data)
        transport.write(data)

    monkeypatch.setattr(ws_protocol, "write_now", recording)
    monkeypatch.setattr(ws_fanout, "write_now", recording)
    factory, transport, reply_channel = open_socket(ChannelLayer())
    protocol = factory.reply_protocols[reply_channel]
    factory.dispatch_reply(reply_channel, {"text": "hi"})
    factory.dispatch_reply(reply_channel, {"bytes": b"\x00"})
    protocol.serverSend("s")  # through autobahn's sendMessage → `sendData`
    protocol.sendPing(b"p")
    protocol.sendPong(b"q")
    factory.dispatch_reply(reply_channel, {"close": True})
    assert direct == [b"\x81\x02hi", b"\x82\x01\x00", b"\x81\x01s"]
    assert transport.value() == (
        b"\x81\x02hi\x82\x01\x00\x81\x01s\x89\x01p\x8a\x01q\x88\x02\x03\xe8"
    )


def _client_frame(text: bytes) -> bytes:
    mask = b"\x01\x02\x03\x04"
    masked = bytes(byte ^ mask[index % 4] for index, byte in enumerate(text))
    return bytes([0x81, 0x80 | len(text)]) + mask + masked


def test_a_frame_reaches_the_application_and_autobahn_observers_alike():
    """Issue 20: without `.on("message")` observers autobahn's per-frame event is
    skipped; with one, it still fires (autobahn's own ``onMessageEnd``)."""
    from channels.layers.inmemory import ChannelLayer
    from tests.daphne.clocked import open_socket

    layer = ChannelLayer()
    factory, _, reply_channel = open_socket(layer)
    protocol = factory.reply_protocols[reply_channel]
    protocol.dataReceived(_client_frame(b"one"))
    observed: list[tuple] = []
    protocol.on("message", lambda payload, is_binary: observed.append((payload, is_binary)))
    protocol.dataReceived(_client_frame(b"two"))
    texts = []
    while True:
        channel, message = layer.receive(["websocket.receive"])
        if channel is None:
            break
        texts.append(message["text"])
    assert texts == ["one", "two"]
    assert observed == [(b"two", False)]
    assert protocol.message_data is None
