"""Replies to an open or pending WebSocket written over a StringTransport (A-86)."""

from __future__ import annotations

import pytest

from channels.layers.inmemory import ChannelLayer
from tests.daphne.clocked import open_socket, websocket_connect


@pytest.mark.parametrize(
    ("reply", "written"),
    [
        ({"text": ""}, b"\x81\x00"),
        ({"bytes": b""}, b"\x82\x00"),
        ({"text": "", "bytes": None}, b"\x81\x00"),
        ({"bytes": b"", "text": None, "close": False}, b"\x82\x00"),
        ({"text": "", "bytes": b""}, b""),
        ({"text": "", "bytes": b"x"}, b"\x82\x01x"),
        ({"bytes": b"", "close": True}, b"\x88\x02\x03\xe8"),
    ],
)
def test_empty_reply_on_an_open_socket(reply, written):
    """Deviation from A-86, see docs/differences.rst: only an open socket's reply holding
    exactly one empty text/bytes (the other absent or None) and no close sends one empty
    frame; combined with other data or with close, empty still counts as absent."""
    factory, transport, reply_channel = open_socket(ChannelLayer())
    factory.dispatch_reply(reply_channel, reply)
    assert transport.value() == written


def test_empty_reply_during_the_handshake_counts_as_absent():
    """A-86: while the handshake is pending an empty text neither accepts nor sends."""
    layer = ChannelLayer()
    factory, protocol, transport, clock, message = websocket_connect(layer)
    factory.dispatch_reply(message["reply_channel"], {"text": ""})
    assert transport.value() == b""
