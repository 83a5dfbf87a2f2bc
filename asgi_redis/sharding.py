"""Shard placement: which Redis host holds a channel or group (L-24, L-25).

L-24 describes the 1.x placement, ``int((crc32(name) & 0xFFF) / (4096 / n))``,
which remaps most names when a host is added. This layer keeps the CRC32 of
the UTF-8 name as the key but places it with jump consistent hashing (Lamping
and Veach, 2014): adding a host at the end of the list moves only about
``1 / (n + 1)`` of the names, and the function is still deterministic, so every
process with the same host list agrees on every placement (A-23).
"""

from __future__ import annotations

import itertools
import zlib

__all__ = ["consistent_hash", "RoundRobin"]

# The 64-bit linear congruential generator of the jump hash paper.
_LCG_MULTIPLIER = 2862933555777941757
_MASK_64 = (1 << 64) - 1


def consistent_hash(value: str, ring_size: int) -> int:
    """Return the shard index (``0 .. ring_size - 1``) for `value`."""
    if ring_size == 1:
        return 0
    key = zlib.crc32(value.encode("utf-8"))
    bucket, candidate = -1, 0
    while candidate < ring_size:
        bucket = candidate
        key = (key * _LCG_MULTIPLIER + 1) & _MASK_64
        candidate = int((bucket + 1) * ((1 << 31) / ((key >> 33) + 1)))
    return bucket


class RoundRobin:
    """Thread-safe rotation over ``0 .. size - 1`` (``next()`` on a count is atomic)."""

    def __init__(self) -> None:
        self._counter = itertools.count()

    def next(self, size: int) -> int:
        if size == 1:
            return 0
        return next(self._counter) % size
