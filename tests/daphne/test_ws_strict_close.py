"""Failing a WebSocket strictly (RFC 6455 §7.1.7, issue 21 item 2): after a protocol error
the replies to messages the client sent before are written, then the close frame; the
wait for them is bounded by `ws_failing.FAIL_WAIT`; nothing after the bad frame is read.

A raw socket client sends a valid text frame, then an invalid one in the same write; the
worker (a `Responder` thread) echoes with a delay, as a reply crossing Redis and another
process would arrive after the bad frame was parsed.
"""

from __future__ import annotations

import struct
import threading
import time

import pytest

from channels.layers.inmemory import ChannelLayer
from daphne.ws_failing import FAIL_WAIT
from tests.daphne.live import LiveServer, Responder, send_retrying
from tests.daphne.rawws import RawSocket, frame

WORKER_DELAY = 0.2  # the worker's latency, well inside FAIL_WAIT
TEXT, BINARY, CONTINUATION = 0x1, 0x2, 0x0


class Worker:
    """Accepts every socket; echoes text after WORKER_DELAY unless `silent`."""

    def __init__(self, silent: bool = False) -> None:
        self.silent = silent
        self.received: list[dict] = []
        self.disconnects: list[dict] = []
        self.disconnected = threading.Event()

    def __call__(self, layer, channel, message) -> None:
        reply = message["reply_channel"]
        if channel == "websocket.connect":
            send_retrying(layer, reply, {"accept": True})
        elif channel == "websocket.receive":
            self.received.append(message)
            if not self.silent:
                threading.Event().wait(WORKER_DELAY)  # the worker's latency
                send_retrying(layer, reply, {"text": message["text"]})
        elif channel == "websocket.disconnect":
            self.disconnects.append(message)
            self.disconnected.set()


@pytest.fixture
def served():
    def start(silent: bool = False):
        worker = Worker(silent)
        live = LiveServer(ChannelLayer()).start()
        responder = Responder(
            live.layer, ["websocket.connect", "websocket.receive", "websocket.disconnect"], worker
        ).start()
        started.append((live, responder))
        return live, worker

    started: list = []
    yield start
    for live, responder in started:
        responder.stop()
        live.stop()


def close_code(payload: bytes) -> int:
    return struct.unpack("!H", payload[:2])[0]


@pytest.mark.parametrize(
    ("bad", "code"),
    [
        (frame(TEXT, b"\xce\xba\xe1\xbd\xb9\xcf\x83\xed\xa0\x80"), 1007),  # invalid UTF-8
        (frame(0x3, b""), 1002),  # reserved opcode (Autobahn 4.1.*)
        (frame(TEXT, b"x", rsv=0x40), 1002),  # RSV1 without an extension (3.2)
        (frame(CONTINUATION, b"x"), 1002),  # continuation outside a message (5.*)
        (frame(0x9, b"x", fin=False), 1002),  # fragmented ping
    ],
)
def test_reply_to_earlier_message_precedes_the_close(served, bad, code) -> None:
    live, worker = served()
    sock = RawSocket(live.connect())
    start = time.monotonic()
    sock.send(frame(TEXT, b"hello") + bad)
    frames = sock.frames_until_close()
    assert [(opcode, payload) for opcode, _, payload in frames[:-1]] == [(TEXT, b"hello")]
    assert frames[-1][0] == 0x8 and close_code(frames[-1][2]) == code
    # Closed as soon as the reply was written, not at the bound.
    assert time.monotonic() - start < FAIL_WAIT + WORKER_DELAY


def test_frames_after_the_bad_one_are_not_read(served) -> None:
    live, worker = served()
    sock = RawSocket(live.connect())
    sock.send(frame(TEXT, b"one") + frame(0x3, b"") + frame(TEXT, b"two") + frame(TEXT, b"3"))
    frames = sock.frames_until_close()
    assert [payload for opcode, _, payload in frames if opcode == TEXT] == [b"one"]
    assert close_code(frames[-1][2]) == 1002
    sock.send(frame(0x8, struct.pack("!H", 1002)))  # the client's close reply
    assert worker.disconnected.wait(10)
    assert [message["text"] for message in worker.received] == ["one"]
    assert worker.disconnects[0]["order"] == 2


def test_without_replies_the_close_comes_after_the_bound(served) -> None:
    live, worker = served(silent=True)
    sock = RawSocket(live.connect())
    sock.send(frame(TEXT, b"hello"))
    while not worker.received:  # bounded: the socket's timeout ends a stuck test
        threading.Event().wait(0.01)
    start = time.monotonic()
    sock.send(frame(TEXT, b"\xff"))
    frames = sock.frames_until_close()
    waited = time.monotonic() - start
    assert [opcode for opcode, _, _ in frames] == [0x8]
    assert close_code(frames[-1][2]) == 1007
    assert FAIL_WAIT * 0.8 <= waited < FAIL_WAIT + 2


def test_with_nothing_unanswered_the_close_is_immediate(served) -> None:
    live, worker = served()
    sock = RawSocket(live.connect())
    sock.send(frame(TEXT, b"hi"))
    assert sock.next_frame()[2] == b"hi"
    start = time.monotonic()
    sock.send(frame(0x3, b""))
    frames = sock.frames_until_close()
    assert [opcode for opcode, _, _ in frames] == [0x8]
    assert close_code(frames[-1][2]) == 1002
    assert time.monotonic() - start < FAIL_WAIT
