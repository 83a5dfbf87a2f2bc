"""Removes two per-frame costs of autobahn that daphne never uses (issue 9).

Profiled under 100 echo clients (benchmarks/PROFILE.md, daphne 6): autobahn builds a
cffi masker object for every incoming frame (``create_xor_masker``: about 12 us for a
20-byte frame, 6-7% of daphne's CPU) and pretty-prints its ~40 protocol options for a
debug line on every new connection (``pformat`` in ``_connectionMade``), formatting
the arguments even when debug logging is off.

Both live in autobahn's module namespace, where no subclass hook reaches them:
`install()` replaces ``create_xor_masker`` in ``autobahn.websocket.protocol`` with an
equivalent giving identical bytes (large frames still use autobahn's SIMD masker),
and `lazy_pformat()` swaps ``pformat`` for a lazy formatter only around autobahn's
``_connectionMade`` on the reactor thread, so the debug line is still rendered in full
whenever a logger actually formats it. The per-frame debug lines in ``dataReceived``
and ``sendData`` are avoided by overriding those methods in
`daphne.ws_protocol.WebSocketProtocol` instead.

The same eager formatting costs every connection about 18 ``click.style`` calls
(``hltype``/``hlval`` for the debug lines of connectionMade, processHandshake,
_onConnect, the handshake's sendData and connectionLost; issue 9 W4). autobahn only
passes their results as arguments of log calls, so `install()` also gives both
websocket modules lazy versions that style the text when a line is rendered.

`daphne.server.Server.start` calls `install()`; importing daphne patches nothing, so
other users of autobahn in the same process keep it as it ships.
"""

from __future__ import annotations

import contextlib
import pprint
from collections.abc import Callable, Iterator
from typing import Any

import autobahn.twisted.websocket
import autobahn.util
import autobahn.websocket.protocol

# The module namespaces read and patched here: their globals (imports of autobahn's own)
# are no part of autobahn's typed API.
autobahn_protocol: Any = autobahn.websocket.protocol
autobahn_twisted: Any = autobahn.twisted.websocket
autobahn_util: Any = autobahn.util

# Below this payload size the int-based masker is cheaper than building autobahn's
# cffi one; above it autobahn's SIMD loop wins (measured: 4 us vs 12 us at 20 bytes,
# 5 us vs 10 us at 1 KB, 4.6 ms vs 0.2 ms at 1 MiB).
SMALL_FRAME_LIMIT = 1024

_autobahn_create_xor_masker: Callable[[bytes, int | None], Any] = (
    autobahn_protocol.create_xor_masker
)


class SmallFrameMasker:
    """RFC 6455 §5.3 unmasking for small payloads, with autobahn's masker interface.

    `process` may be called several times for one frame (payload arriving in pieces);
    the position inside the 4-byte key carries over between calls.
    """

    __slots__ = ("_mask", "_ptr")

    def __init__(self, mask: bytes) -> None:
        self._mask = bytes(mask)
        self._ptr = 0

    def pointer(self) -> int:
        return self._ptr

    def reset(self) -> None:
        self._ptr = 0

    def process(self, data: bytes) -> bytes:
        length = len(data)
        offset = self._ptr & 3
        self._ptr += length
        key = self._mask[offset:] + self._mask[:offset]
        stream = (key * ((length >> 2) + 1))[:length]
        # One XOR of two integers does the whole payload in C.
        return (int.from_bytes(data, "little") ^ int.from_bytes(stream, "little")).to_bytes(
            length, "little"
        )


def create_xor_masker(mask: bytes, length: int | None = None) -> Any:
    if length is not None and length < SMALL_FRAME_LIMIT:
        return SmallFrameMasker(mask)
    return _autobahn_create_xor_masker(mask, length)


class LazyPrettyFormat:
    """Formats its object with `pprint.pformat` only when a log line is rendered."""

    __slots__ = ("_value",)

    def __init__(self, value: Any) -> None:
        self._value = value

    def __str__(self) -> str:
        return pprint.pformat(self._value)

    def __format__(self, spec: str) -> str:
        return format(str(self), spec)


class LazyCall:
    """``function(*args)`` as text, computed only when a log line renders it."""

    __slots__ = ("_function", "_args")

    def __init__(self, function: Any, *args: Any) -> None:
        self._function = function
        self._args = args

    def __str__(self) -> str:
        return str(self._function(*self._args))

    def __format__(self, spec: str) -> str:
        return format(str(self), spec)


def lazy_hltype(obj: Any) -> LazyCall:
    return LazyCall(autobahn_util.hltype, obj)


def lazy_hlval(val: Any, color: str = "white", bold: bool = True) -> LazyCall:
    return LazyCall(autobahn_util.hlval, val, color, bold)


def install() -> None:
    """Replace autobahn's masker factory and debug-line stylers (idempotent)."""
    autobahn_protocol.create_xor_masker = create_xor_masker
    for module in (autobahn_protocol, autobahn_twisted):
        module.hltype = lazy_hltype
        module.hlval = lazy_hlval


@contextlib.contextmanager
def lazy_pformat() -> Iterator[None]:
    """Within the block autobahn's ``pformat`` defers its work to log rendering.

    Scoped rather than installed for good: autobahn's ``Timings.__str__`` must get
    a real string from ``pformat``.
    """
    autobahn_protocol.pformat = LazyPrettyFormat
    try:
        yield
    finally:
        autobahn_protocol.pformat = pprint.pformat
