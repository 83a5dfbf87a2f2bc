"""A group message to many WebSockets of this daphne: one frame built, written to each
(issue 20, W3-2000: 2,000 members of one group, a broadcast per frame received).

A group send reaches daphne as one copy per member, next to each other in the reply
reader's batch (asgi_redis hands a bundle out member by member, A-93). Through
`WebSocketProtocol.dispatch_reply` each copy cost the session's checks, autobahn's
``sendMessage``/``sendFrame`` (its asserts, the compressor's start and end, the frame
header, about 20 Python calls), then the write: most of daphne's CPU per delivery.

`fan_out` takes the run of copies at once. The frame (header, payload, and for a socket
that negotiated permessage-deflate the deflate data, `ws_deflate`) is built once per
kind of framing: one for sockets without the extension, one for short messages in
stored blocks, one per server window size for compressed ones. Each socket that is
plainly open gets the same bytes written (`ws_write.write_now`), with what the frame
would have changed done in place: the session's reply count and last-data time
(`ws_state`), the metrics' ``frame_out`` hook, autobahn's traffic counters, the
backpressure check (`backpressure`). Any socket where that would not be what
``dispatch_reply`` does (handshake pending, closing, failing, held sends, autobahn
queueing or fragmenting, frame logging, a subclass with its own sending) gets the
message through ``dispatch_reply`` as before, in the same place in the order.

`reply_one` does the same for one reply to one socket (a W2 echo): `HTTPFactory.dispatch_reply`
tries it before ``WebSocketProtocol.dispatch_reply``, saving autobahn's ``sendMessage`` →
``sendFrame`` → ``sendData`` chain (about 20 Python calls per frame, issue 20).
"""

from __future__ import annotations

import logging
import struct
from collections.abc import Callable
from typing import Any

from .backpressure import check_outbound
from .ws_deflate import COMPRESS_THRESHOLD, BoundedDeflate
from .ws_flow import _WRITE_FULL
from .ws_protocol import WebSocketProtocol
from .ws_state import SocketState
from .ws_write import write_now

__all__ = ["fan_out", "frame_payload", "reply_one"]

logger = logging.getLogger("daphne.server")

DispatchOne = Callable[[str, dict], None]

_OPEN = SocketState.OPEN
_STATE_OPEN = WebSocketProtocol.STATE_OPEN
_SHORT = struct.Struct("!BB")
_MEDIUM = struct.Struct("!BBH")
_LONG = struct.Struct("!BBQ")
# What a subclass may not override to keep the frames written here what it would send.
_SENDING = ("dispatch_reply", "_send_frame", "sendMessage", "sendFrame", "sendData")
# Per protocol class: whether it sends as `WebSocketProtocol` does.
_SENDS_PLAINLY: dict[type, bool] = {}
# A framing key for sockets written through `dispatch_reply`.
_SLOW = object()
# The framing key of short messages in stored deflate blocks (any window size).
_STORED = -1


def frame_payload(message: dict) -> tuple[bytes, bool] | None:
    """``(payload, binary)`` when `message` is one data frame and nothing else (a
    non-empty ``text`` or ``bytes`` alone), else None (sent reply by reply)."""
    if len(message) != 1:
        return None
    text = message.get("text")
    if type(text) is str:
        return (text.encode("utf8"), False) if text else None
    data = message.get("bytes")
    if type(data) is bytes and data:
        return data, True
    return None


def _sends_plainly(cls: type) -> bool:
    plain = _SENDS_PLAINLY.get(cls)
    if plain is None:
        plain = _SENDS_PLAINLY[cls] = issubclass(cls, WebSocketProtocol) and all(
            getattr(cls, name) is getattr(WebSocketProtocol, name) for name in _SENDING
        )
    return plain


def _framing(protocol: Any, size: int) -> Any:
    """How `protocol` frames a message of `size` bytes: None (no extension), a deflate
    key, or `_SLOW` when it must go through ``dispatch_reply``."""
    if (
        not (_SENDS_PLAINLY.get(type(protocol)) or _sends_plainly(type(protocol)))
        or protocol.session.state is not _OPEN
        or protocol.state != _STATE_OPEN
        or protocol.send_queue
        or protocol._failing is not None
        or protocol.trackedTimings
        or protocol.logFrames
        or protocol.logOctets
        or protocol.maskServerFrames
        or protocol.autoFragmentSize
    ):
        return _SLOW
    pmce = protocol._perMessageCompress
    if pmce is None:
        return None
    if type(pmce) is not BoundedDeflate:
        return _SLOW
    return _STORED if size < COMPRESS_THRESHOLD else pmce.server_max_window_bits


def _build(protocol: Any, payload: bytes, binary: bool, compressed: bool) -> tuple[bytes, int]:
    """The frame's bytes as autobahn's ``sendMessage`` would write them on `protocol`,
    and its payload length (after compression)."""
    if compressed:
        pmce = protocol._perMessageCompress
        pmce.start_compress_message()
        payload = pmce.compress_message_data(payload) + pmce.end_compress_message()
    length = len(payload)
    first = 0x80 | (0x40 if compressed else 0) | (2 if binary else 1)  # FIN, RSV1, opcode
    if length <= 125:
        header = _SHORT.pack(first, length)
    elif length <= 0xFFFF:
        header = _MEDIUM.pack(first, 126, length)
    else:
        header = _LONG.pack(first, 127, length)
    return header + payload, length


def reply_one(factory: Any, protocol: Any, message: dict) -> bool:
    """Write `message` to `protocol` as its ``dispatch_reply`` would, when it is one data
    frame for a plainly open socket (see `fan_out`); False, having done nothing, else."""
    frame = frame_payload(message)
    if frame is None:
        return False
    payload, binary = frame
    size = len(payload)
    framing = _framing(protocol, size)
    if framing is _SLOW:
        return False
    raw, length = _build(protocol, payload, binary, framing is not None)
    limit = protocol.maxMessagePayloadSize
    if 0 < limit < length:
        return False  # autobahn refuses it there, and says so
    session = protocol.session
    if session.answered < session.received:  # as `WebSocketSession.reply` counts
        session.answered += 1
    session.last_data = factory.reactor.seconds()
    stats = protocol.trafficStats
    stats.outgoingWebSocketMessages += 1
    stats.outgoingOctetsAppLevel += size
    stats.outgoingOctetsWebSocketLevel += length
    stats.outgoingWebSocketFrames += 1
    stats.outgoingOctetsWireLevel += len(raw)
    write_now(protocol.transport, raw)
    if protocol._read_blocks & _WRITE_FULL:
        check_outbound(protocol, factory)
    metrics = factory.metrics
    if metrics.enabled:
        metrics.frame_out(size)
    return True


def fan_out(factory: Any, channels: list[str], message: dict, dispatch_one: DispatchOne) -> None:
    """Send `message` to each reply channel of `channels` in order; `dispatch_one`
    (the reader's logged ``dispatch_reply``) takes those not written here."""
    frame = frame_payload(message)
    if frame is None:
        for channel in channels:
            dispatch_one(channel, message)
        return
    payload, binary = frame
    size = len(payload)
    protocols = factory.reply_protocols
    metrics = factory.metrics
    counting = metrics.enabled
    now = factory.reactor.seconds()
    frames: dict[Any, tuple[bytes, int]] = {}
    for channel in channels:
        protocol = protocols.get(channel)
        framing = _SLOW if protocol is None else _framing(protocol, size)
        if framing is _SLOW:
            dispatch_one(channel, message)
            continue
        built = frames.get(framing)
        if built is None:
            built = frames[framing] = _build(protocol, payload, binary, framing is not None)
        raw, length = built
        wire_size = len(raw)
        limit = protocol.maxMessagePayloadSize
        if 0 < limit < length:
            dispatch_one(channel, message)  # autobahn refuses it there, and says so
            continue
        try:
            # What `dispatch_reply` → ``sendMessage`` → ``sendData`` do on an open socket.
            session = protocol.session
            if session.answered < session.received:  # as `WebSocketSession.reply` counts
                session.answered += 1
            session.last_data = now
            stats = protocol.trafficStats
            stats.outgoingWebSocketMessages += 1
            stats.outgoingOctetsAppLevel += size
            stats.outgoingOctetsWebSocketLevel += length
            stats.outgoingWebSocketFrames += 1
            stats.outgoingOctetsWireLevel += wire_size
            write_now(protocol.transport, raw)
            if protocol._read_blocks & _WRITE_FULL:
                check_outbound(protocol, factory)
            if counting:
                metrics.frame_out(size)
        except Exception as error:
            # D-14: as for any reply: logged, and the other members still get theirs.
            logger.error("HTTP/WS send decode error: %s", error, exc_info=True)
