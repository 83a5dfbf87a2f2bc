"""The format of one Redis list entry, shared by the Lua scripts and Python.

An entry is::

    DDDDDDDDDDDDD K [NAMES '|'] PAYLOAD

- ``D`` x 13: the deadline in Unix milliseconds of the Redis server's clock,
  zero-padded, written by the send script from ``TIME`` (so one clock rules
  every entry of a shard). Expired entries are never handed out (A-27).
- ``K``: ``M`` for a message to the list's own channel; ``N`` for a message
  carrying its destination names: one name for a send to ``P!L`` (A-17), or
  every member behind one ``P!`` for a group send (the A-93 bundle). Names are
  comma-separated (commas cannot occur in valid names) and end at ``|``.
- the payload (`codec`): stored inline, so a message costs one list entry
  and no separate key.
"""

from __future__ import annotations

__all__ = ["DEADLINE_DIGITS", "decode_entry", "header_for", "bundle_header"]

DEADLINE_DIGITS = 13
_KIND = DEADLINE_DIGITS
_BODY = DEADLINE_DIGITS + 1
_OWN = b"M"
_NAMED = ord("N")


def header_for(channel: str, storage: str) -> bytes:
    """Header of a single send: the list's own name needs none (``M``)."""
    if channel == storage:
        return _OWN
    return b"N" + channel.encode("ascii") + b"|"


def bundle_header(names: list[str]) -> bytes:
    return b"N" + ",".join(names).encode("ascii") + b"|"


def decode_entry(entry: bytes, storage: str) -> tuple[int, list[str], bytes]:
    """Split an entry into ``(deadline_ms, destination names, payload)``."""
    deadline = int(entry[:DEADLINE_DIGITS])
    if entry[_KIND] == _NAMED:
        end = entry.index(b"|", _BODY)
        return deadline, entry[_BODY:end].decode("ascii").split(","), entry[end + 1 :]
    return deadline, [storage], entry[_BODY:]
