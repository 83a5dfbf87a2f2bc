"""A group message's copies to many WebSockets, framed once (`ws_fanout`, issue 20).

The copies of one group send arrive next to each other in a reply batch (A-93). The
fan-out must leave every socket exactly as ``dispatch_reply`` one copy at a time
would (D-22, D-39; a failing write is logged and the rest go on, D-14): the same
bytes on the wire, in the same order, the same session and autobahn counters, the
same metrics calls; sockets it cannot write plainly (pending handshake, closing,
compressed differently) get the message through ``dispatch_reply``.
"""

from __future__ import annotations

import random
import string
import zlib
from typing import Any

import pytest
from twisted.internet import task, testing

from channels.layers.inmemory import ChannelLayer
from daphne import ws_fanout
from daphne.http_protocol import HTTPFactory
from daphne.metrics import NullMetrics
from daphne.reply_reader import dispatch_each
from daphne.tests import factories

DEFLATE = [("Sec-WebSocket-Extensions", "permessage-deflate; client_max_window_bits")]
DEFLATE_10 = [
    (
        "Sec-WebSocket-Extensions",
        "permessage-deflate; client_max_window_bits; server_max_window_bits=10",
    )
]
LONG = "all work and no play " * 100  # over ws_deflate.COMPRESS_THRESHOLD: deflated
# Repeats at a distance of 1,500 bytes: a 2**10-byte window cannot refer back to it.
FAR = "".join(random.Random(20).choices(string.ascii_letters, k=1500)) * 2


class RecordingMetrics(NullMetrics):
    enabled = True

    def __init__(self) -> None:
        self.frames_out: list[int] = []

    def frame_out(self, size: int) -> None:
        self.frames_out.append(size)


class Group:
    """One factory with sockets opened as `kinds` says, on a StringTransport each."""

    def __init__(self, kinds: list[str]) -> None:
        self.layer = ChannelLayer()
        self.factory = HTTPFactory(self.layer, send_channel="test!")
        self.clock = task.Clock()
        self.clock.advance(5)
        self.factory.reactor = self.clock
        self.metrics = RecordingMetrics()
        self.factory.metrics = self.metrics
        self.protocols: list[Any] = []
        self.transports: list[testing.StringTransport] = []
        self.channels: list[str] = []
        for kind in kinds:
            self._open(kind)

    def _open(self, kind: str) -> None:
        http = self.factory.buildProtocol(("127.0.0.1", 0))
        transport = testing.StringTransport()
        http.makeConnection(transport)
        headers = {"deflate": DEFLATE, "deflate10": DEFLATE_10}.get(kind, [])
        http.dataReceived(factories.build_websocket_upgrade("/ws/", [], headers))
        _, connect = self.layer.receive(["websocket.connect"])
        channel = connect["reply_channel"]
        protocol = self.factory.reply_protocols[channel]
        if kind != "pending":
            self.factory.dispatch_reply(channel, {"accept": True})
            assert transport.value().startswith(b"HTTP/1.1 101")
        if kind == "received":  # the client sent one message, not answered yet
            protocol.onMessage(b"hi", False)
        if kind == "closing":  # daphne sent its close frame; the client has not answered
            protocol.sendClose(code=1000)
            # autobahn's 1 s close-handshake timer runs on the global reactor (txaio), not
            # the test's clock: if another test left that reactor running, it would drop
            # this socket halfway through the comparison.
            if protocol.closeHandshakeTimeoutCall is not None:
                protocol.closeHandshakeTimeoutCall.cancel()
                protocol.closeHandshakeTimeoutCall = None
        transport.clear()
        self.protocols.append(protocol)
        self.transports.append(transport)
        self.channels.append(channel)

    def send(self, batch: list[tuple[int, dict]], fan_out: bool) -> None:
        replies = [(self.channels[index], message) for index, message in batch]
        fan = self.factory.fan_out if fan_out else None
        dispatch_each(self.factory.dispatch_reply, replies, fan)

    def state(self) -> list[tuple]:
        """What each socket shows: bytes written, session, autobahn counters."""
        return [
            (
                transport.value(),
                protocol.session.state,
                protocol.session.answered,
                protocol.session.last_data,
                protocol.state,
                vars(protocol.trafficStats),
            )
            for protocol, transport in zip(self.protocols, self.transports, strict=True)
        ] + [self.metrics.frames_out]


def through_autobahn(group: Group, batch: list[tuple[int, dict]]) -> None:
    """`batch` one reply at a time through ``WebSocketProtocol.dispatch_reply`` alone
    (autobahn's ``sendMessage``), without `ws_fanout.reply_one`: the reference."""
    original = ws_fanout.reply_one
    ws_fanout.reply_one = lambda factory, protocol, message: False
    try:
        group.send(batch, fan_out=False)
    finally:
        ws_fanout.reply_one = original


def both(
    kinds: list[str], batch: list[tuple[int, dict]], fan_out: bool = True
) -> tuple[list, list]:
    """The state after `batch` one reply at a time through autobahn, and with the
    fan-out (or, `fan_out` False, one at a time with `reply_one`)."""
    one_by_one, fanned = Group(kinds), Group(kinds)
    through_autobahn(one_by_one, batch)
    fanned.send(batch, fan_out=fan_out)
    return one_by_one.state(), fanned.state()


@pytest.mark.parametrize(
    "message",
    [
        {"text": "b:1"},
        {"text": "héllo ☃"},
        {"bytes": b"\x00\x01binary"},
        {"text": LONG},
        {"text": FAR},
        {"text": "x" * 70_000},  # a 64-bit length field
        {"bytes": b"y" * 200},  # a 16-bit length field
        {"text": ""},  # empty: through dispatch_reply
        {"text": "a", "close": True},
        {"text": "a", "bytes": None},
        {"close": True},
        {"accept": True},
    ],
)
@pytest.mark.parametrize(
    "kinds",
    [
        ["plain"] * 4,
        ["deflate"] * 3,
        ["plain", "deflate", "deflate10", "plain", "deflate10"],
        ["plain", "pending", "received", "closing", "deflate", "received"],
    ],
)
@pytest.mark.parametrize("fan_out", [True, False])
def test_the_fan_out_writes_what_one_by_one_writes(kinds, message, fan_out):
    """With `fan_out` False: each copy alone, through `reply_one` where it applies
    (issue 20, W2), against autobahn's ``sendMessage``."""
    count = len(kinds)
    batch = [(index, dict(message)) for index in range(count)]
    expected, got = both(kinds, batch, fan_out)
    assert got == expected
    if message == {"text": "b:1"} and "pending" not in kinds and "closing" not in kinds:
        assert all(state[0] for state in got[:count])  # every socket got a frame


def test_a_batch_mixing_runs_and_single_replies_keeps_each_sockets_order():
    kinds = ["plain", "deflate", "plain"]
    batch = [
        (0, {"text": "one"}),
        (1, {"text": "one"}),
        (2, {"text": "one"}),
        (1, {"text": "two"}),
        (0, {"bytes": b"3"}),
        (2, {"bytes": b"3"}),
        (0, {"text": "four"}),
        (0, {"text": "four"}),  # one socket twice in a run: both frames, in order
        (2, {"close": True}),
        (2, {"text": "late"}),  # after the close: dropped either way
    ]
    expected, got = both(kinds, batch)
    assert got == expected
    assert got[0][0] == b"\x81\x03one\x82\x013\x81\x04four\x81\x04four"


def test_deflated_frames_inflate_per_socket_window():
    group = Group(["deflate", "deflate10"])
    group.send([(0, {"text": FAR}), (1, {"text": FAR})], fan_out=True)
    for transport in group.transports:
        wire = transport.value()
        assert wire[0] == 0xC1  # FIN, RSV1, text
        payload = wire[4:] if wire[1] == 126 else wire[2:]
        inflated = zlib.decompressobj(-15).decompress(payload + b"\x00\x00\xff\xff")
        assert inflated == FAR.encode()
    # A server window of 2**10 bytes compresses differently: two frames were built.
    assert group.transports[0].value() != group.transports[1].value()


def test_a_closed_sockets_copy_is_dropped_and_the_others_are_written():
    group = Group(["plain", "plain", "plain"])
    group.protocols[1].connectionLost()
    group.send([(index, {"text": "hi"}) for index in range(3)], fan_out=True)
    assert [t.value() for t in group.transports] == [b"\x81\x02hi", b"", b"\x81\x02hi"]


def test_a_failing_write_is_logged_and_the_rest_still_go(caplog, monkeypatch):
    group = Group(["plain", "plain", "plain"])

    def broken(data: bytes) -> None:
        raise RuntimeError("boom")

    monkeypatch.setattr(group.transports[1], "write", broken)
    group.send([(index, {"text": "hi"}) for index in range(3)], fan_out=True)
    assert [t.value() for t in group.transports] == [b"\x81\x02hi", b"", b"\x81\x02hi"]
    assert "boom" in caplog.text


def test_a_subclass_with_its_own_sending_gets_dispatch_reply(monkeypatch):
    group = Group(["plain", "plain"])
    sent: list[bytes] = []

    class Own(type(group.protocols[0])):  # type: ignore[misc]
        def sendMessage(self, payload, isBinary=False, *args, **kwargs):
            sent.append(payload)

    group.protocols[0].__class__ = Own
    group.send([(0, {"text": "hi"}), (1, {"text": "hi"})], fan_out=True)
    assert sent == [b"hi"]
    assert group.transports[1].value() == b"\x81\x02hi"


def test_runs_go_to_the_fan_out_and_single_replies_to_dispatch():
    calls: list[tuple] = []

    def dispatch(channel: str, message: dict) -> None:
        calls.append(("one", channel, message))

    def fan_out(channels: list[str], message: dict, one: Any) -> None:
        calls.append(("run", channels, message))
        one("via", message)

    shared = {"text": "g"}
    batch = [
        ("a", {"status": 200, "content": b"ok"}),
        ("b", {"status": 200, "content": b"ok"}),  # several keys: never a run
        ("c", shared),
        ("d", shared),
        ("e", {"text": "g"}),  # equal, not the same object: the same run
        ("f", {"text": "h"}),
        ("g", {"text": "i"}),
        ("h", {"text": "i"}),
    ]
    dispatch_each(dispatch, batch, fan_out)
    assert calls == [
        ("one", "a", {"status": 200, "content": b"ok"}),
        ("one", "b", {"status": 200, "content": b"ok"}),
        ("run", ["c", "d", "e"], shared),
        ("one", "via", shared),
        ("one", "f", {"text": "h"}),
        ("run", ["g", "h"], {"text": "i"}),
        ("one", "via", {"text": "i"}),
    ]


def test_frame_payload():
    assert ws_fanout.frame_payload({"text": "é"}) == ("é".encode(), False)
    assert ws_fanout.frame_payload({"bytes": b"x"}) == (b"x", True)
    for message in ({"text": ""}, {"bytes": b""}, {"text": "a", "close": True}, {"close": 1}):
        assert ws_fanout.frame_payload(message) is None


def test_open_sockets_are_written_without_dispatch_reply():
    group = Group(["plain", "deflate", "deflate10", "received"])
    slow: list[str] = []

    def dispatch(channel: str, message: dict) -> None:
        slow.append(channel)
        group.factory.dispatch_reply(channel, message)

    for message in ({"text": "short"}, {"text": LONG}, {"bytes": b"b"}):
        batch = [(channel, dict(message)) for channel in group.channels]
        dispatch_each(dispatch, batch, group.factory.fan_out)
    assert slow == []
    assert all(transport.value() for transport in group.transports)
    assert group.protocols[3].session.answered == 1  # the reply to what it sent (FAILING)


def test_replies_whose_values_cannot_be_compared_go_one_by_one():
    class Odd:
        def __eq__(self, other: object) -> bool:
            raise ValueError("ambiguous")

        __hash__ = object.__hash__

    calls: list[str] = []
    batch = [("a", {"x": Odd()}), ("b", {"x": Odd()}), ("c", {"x": 1})]
    dispatch_each(lambda channel, message: calls.append(channel), batch, lambda *a: None)
    assert calls == ["a", "b", "c"]


def test_a_single_reply_to_an_open_socket_skips_its_dispatch_reply(monkeypatch):
    """Issue 20, W2: an echo's reply is written by `reply_one`; what it does not take
    (an empty text, a close) goes to ``WebSocketProtocol.dispatch_reply``."""
    group = Group(["plain"])
    protocol = group.protocols[0]
    slow: list[dict] = []
    original = type(protocol).dispatch_reply

    def recording(self: Any, message: dict) -> None:
        slow.append(message)
        original(self, message)

    monkeypatch.setattr(type(protocol), "dispatch_reply", recording)
    monkeypatch.setitem(ws_fanout._SENDS_PLAINLY, type(protocol), True)
    group.factory.dispatch_reply(group.channels[0], {"text": "echo"})
    assert slow == [] and group.transports[0].value() == b"\x81\x04echo"
    group.factory.dispatch_reply(group.channels[0], {"text": ""})
    group.factory.dispatch_reply(group.channels[0], {"close": True})
    assert slow == [{"text": ""}, {"close": True}]
