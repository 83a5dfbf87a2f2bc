"""permessage-deflate (RFC 7692) on autobahn's implementation, with the parameters a server
holding many sockets should choose for memory (issue 21 item 1).

What it costs: a zlib compressor with a 15-bit window and memLevel 8 holds about 256 KB,
a decompressor about 40 KB. autobahn keeps one of each per socket from its first
message on, so 10,000 sockets that each sent and received once would hold ~3 GB. Daphne
holds no zlib state between messages instead:

- server → client: every message is compressed on its own (RFC 7692 §7.1.1.1, no context
  takeover; always allowed, the client just keeps a window it never needs). Since no
  message refers to an earlier one, one compressor per window size serves every socket
  of the process (the reactor thread compresses a whole message in one `sendMessage`):
  each message ends with a full flush (``Z_FULL_FLUSH``), which empties the history, so
  the bytes are what a fresh compressor would produce. The window is what the client
  allows (``server_max_window_bits``) or 15, and memLevel stays at zlib's 8: there is
  only one compressor per window size, so a smaller memLevel would save nothing and
  compress worse.
- client → server: daphne asks for ``client_no_context_takeover`` (§7.1.1.2, a server
  may always ask), so a message never refers to an earlier one and the decompressor is
  dropped when its message ends. Messages from clients are compressed a little worse
  (no shared history); idle sockets hold nothing.

- short messages (under ``COMPRESS_THRESHOLD``) are sent in *stored* deflate blocks
  (RFC 1951 §3.2.4: a 5-byte header, then the bytes as they are), not deflated: deflating
  a short message on its own saves a few bytes and costs more CPU than the echo itself,
  and a stored block needs no zlib call at all. The frame still has RSV1 set, so every
  message of a socket that negotiated the extension is a permessage-deflate message:
  RFC 7692 §6 would allow a plain frame too, but some clients (the Autobahn case runner
  `kosoku` among them) treat an uncompressed text frame on such a socket differently.

Measured (docs/daphne.rst, issue 21): idle sockets that negotiated the extension cost
the same RSS as those that did not, within the noise.
"""

from __future__ import annotations

import struct
import zlib
from typing import Any

from autobahn.websocket.compress import (
    PerMessageDeflate,
    PerMessageDeflateOffer,
    PerMessageDeflateOfferAccept,
)

__all__ = ["COMPRESS_THRESHOLD", "BoundedDeflate", "accept_offers", "bound"]

# Messages shorter than this go out in stored (not deflated) blocks. Compressed on its
# own, with no history to refer to, a short message shrinks by a few bytes at most, while
# deflating it costs the server and inflating it the client more CPU than the echo itself
# (W2, issue 20); the node `ws` library chooses the same threshold for its own sends.
COMPRESS_THRESHOLD = 1024

# RFC 1951 §3.2.4: a non-final stored block holds at most 65,535 bytes.
_STORED_MAX = 0xFFFF
_STORED_HEADER = struct.Struct("<BHH")
# Marks a message being sent in stored blocks (no compressor in use).
_STORED = object()
# A message's deflate data ends as a sync flush does, with an empty stored block, whose
# 00 00 ff ff (LEN, NLEN) the sender leaves off and the receiver appends (RFC 7692
# §7.2.1): what is sent of it is the byte holding its 3 header bits.
STORED_END = b"\x00"


def stored_blocks(data: bytes) -> bytes:
    """`data` as non-final stored deflate blocks (BFINAL=0, BTYPE=00, RFC 1951 §3.2.4),
    byte-aligned, as a deflate stream may carry them at a message boundary. A message
    ends with `STORED_END` (see `BoundedDeflate.end_compress_message`)."""
    if len(data) <= _STORED_MAX:
        return _STORED_HEADER.pack(0, len(data), len(data) ^ 0xFFFF) + data
    parts = []
    for start in range(0, len(data), _STORED_MAX):
        chunk = data[start : start + _STORED_MAX]
        parts.append(_STORED_HEADER.pack(0, len(chunk), len(chunk) ^ 0xFFFF))
        parts.append(chunk)
    return b"".join(parts)


# One compressor per server window size (9..15), shared by every socket (see above).
_COMPRESSORS: dict[int, Any] = {}


def _compressor(window_bits: int) -> Any:
    compressor = _COMPRESSORS.get(window_bits)
    if compressor is None:
        compressor = _COMPRESSORS[window_bits] = zlib.compressobj(
            zlib.Z_DEFAULT_COMPRESSION, zlib.DEFLATED, -window_bits
        )
    return compressor


def accept_offers(offers: list[Any], max_message_size: int) -> PerMessageDeflateOfferAccept | None:
    """autobahn's ``perMessageCompressionAccept``: accept the client's first
    permessage-deflate offer (RFC 7692 §5), or none."""
    for offer in offers:
        if isinstance(offer, PerMessageDeflateOffer):
            return PerMessageDeflateOfferAccept(
                offer,
                # §7.1.1.2: the decompressor is dropped after each message.
                request_no_context_takeover=offer.accept_no_context_takeover,
                # §7.1.1.1: each message is compressed on its own (not announced:
                # autobahn only echoes a client's own request, and none is needed).
                no_context_takeover=True,
                max_message_size=max_message_size or None,
            )
    return None


class BoundedDeflate(PerMessageDeflate):
    """autobahn's server-side permessage-deflate, holding no zlib state between messages."""

    def start_compress_message(self) -> None:
        self._compressor = None  # chosen by the message's first data

    def compress_message_data(self, data: bytes) -> bytes:
        compressor: Any = self._compressor
        if compressor is None:
            # daphne sends a whole message in one `sendMessage`: its first data is all of it.
            if len(data) < COMPRESS_THRESHOLD:
                self._compressor = _STORED
                return stored_blocks(data) if data else b""
            compressor = self._compressor = _compressor(self.server_max_window_bits)
        elif compressor is _STORED:
            return stored_blocks(data)
        out: bytes = compressor.compress(data)
        return out

    def end_compress_message(self) -> bytes:
        compressor: Any = self._compressor
        self._compressor = None
        if compressor is _STORED or compressor is None:  # None: an empty message
            return STORED_END  # RFC 7692 §7.2.3.6: an empty message is this one byte
        # RFC 7692 §7.2.1: the flush's trailing 00 00 ff ff is not sent.
        data: bytes = compressor.flush(zlib.Z_FULL_FLUSH)
        return data[:-4]

    def end_decompress_message(self) -> None:
        super().end_decompress_message()
        if self.client_no_context_takeover:
            self._decompressor = None


def bound(protocol: Any) -> None:
    """After autobahn negotiated the extension: make it `BoundedDeflate`. The instance
    keeps its state (a message may be half decompressed already); only the class
    changes, to one adding no attributes."""
    pmce = getattr(protocol, "_perMessageCompress", None)
    if type(pmce) is PerMessageDeflate and pmce._is_server:
        pmce.__class__ = BoundedDeflate
