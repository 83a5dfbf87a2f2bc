"""Taking entries off a shard's lists: one non-blocking pop, and the blocking wait (A-27, A-32).

A `Visit` is the set of lists one receive looks at on one shard, in the
(shuffled) order to try them. Both functions return ``(list index, live
entries)`` or `None`; expired entries are dropped on the way and never
returned (A-27).

Plain ``LPOP`` / ``LMPOP`` cost the server about a tenth of a Lua call
(INFO commandstats), so they are used whenever the shard's clock offset is
fresh: the entries' deadlines are on the shard's clock, and the offset turns
this machine's clock into it. The Lua pop (`scripts.POP`) runs when the
offset is stale, since it reports ``TIME``, and when one call mixes a
batch pop (a ``P!`` list) with single pops.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any

import redis

from . import scripts
from .entries import DEADLINE_DIGITS
from .shard import CONNECTION_ERRORS, Shard, blmpop_args
from .wire import pack_command

__all__ = [
    "Visit",
    "blocking_pop",
    "can_wait_at_once",
    "live_entries",
    "packed_plain_pop",
    "packed_wait",
    "plain_pop_args",
    "plain_pop_result",
    "pop",
]


@dataclass(slots=True)
class Visit:
    """The lists one receive looks at on one shard.

    A visit kept in a receive plan (`asgi_redis.core`) is reused by every receive
    on the same names, so it also keeps its packed commands: they depend only on
    the keys (and, for the wait, on the layer's fixed timeout).
    """

    shard: Shard
    keys: list[str] = field(default_factory=list)
    storages: list[str] = field(default_factory=list)
    # Entries to take at once per list: 1, or a batch for a single-reader P! list.
    wants: list[int] = field(default_factory=list)
    # Packed plain pop (`plain_pop_args`), made on first use; b"" when none applies.
    packed_pop: bytes | None = None
    # Packed blocking pop of `packed_wait_timeout` seconds, made on first use.
    packed_wait: bytes | None = None
    packed_wait_timeout: float = 0.0

    def batch(self) -> int:
        """Entries one blocking pop takes: a batch only when every list takes one (A-20)."""
        wants = self.wants
        return wants[0] if min(wants) == max(wants) else 1

    def forget_packed(self) -> None:
        """Drop the packed commands (the shard turned out to lack LMPOP / BLMPOP)."""
        self.packed_pop = None
        self.packed_wait = None


def _live(shard: Shard, entries: list[bytes]) -> list[bytes]:
    server_now_ms = (time.time() + shard.clock_offset) * 1000
    return [entry for entry in entries if int(entry[:DEADLINE_DIGITS]) > server_now_ms]


def pop(visit: Visit, clock_check_interval: float) -> tuple[int, list[bytes]] | None:
    """Pop from the first list of `visit` holding live entries."""
    while True:
        popped = _pop_once(visit, clock_check_interval)
        if popped is None:
            return None
        index, entries, checked = popped
        if not checked:
            entries = _live(visit.shard, entries)
            if not entries:
                continue  # all expired: they are gone, look again
        return index, entries


def _pop_once(visit: Visit, clock_check_interval: float) -> tuple[int, list[bytes], bool] | None:
    """``(list index, entries, whether the server checked expiry)`` or `None`."""
    shard = visit.shard
    if time.monotonic() - shard.clock_checked < clock_check_interval:
        packed = packed_plain_pop(visit)
        if packed:
            try:
                reply = shard.command_packed(packed)
            except redis.ResponseError as exc:
                if "unknown command" not in str(exc).lower():
                    raise
                shard.has_lmpop = False  # Redis before 7: the Lua pop does it
                visit.forget_packed()
            else:
                popped = plain_pop_result(visit, reply)
                return None if popped is None else (*popped, False)
    reply = shard.script(scripts.POP, visit.keys, visit.wants)
    shard.note_clock(reply[0])
    if len(reply) == 1:
        return None
    return reply[1] - 1, reply[2:], True


def plain_pop_args(visit: Visit) -> tuple[Any, ...] | None:
    """The plain (non-Lua) pop for `visit`, or `None` when only the Lua pop can do it.

    One list: ``LPOP`` (with a count for a batch); several lists taking one entry
    each: ``LMPOP`` (Redis 7). Used only while the shard's clock offset is fresh,
    since the entries' deadlines are then checked here (`_live`).
    """
    keys = visit.keys
    if len(keys) == 1:
        want = visit.wants[0]
        return ("LPOP", keys[0]) if want == 1 else ("LPOP", keys[0], want)
    if visit.shard.has_lmpop and max(visit.wants) == 1:
        return ("LMPOP", len(keys), *keys, "LEFT")
    return None


def packed_plain_pop(visit: Visit) -> bytes:
    """`plain_pop_args` packed once per visit; b"" when there is none."""
    packed = visit.packed_pop
    if packed is None:
        args = plain_pop_args(visit)
        packed = visit.packed_pop = b"" if args is None else pack_command(args)
    return packed


def plain_pop_result(visit: Visit, reply: Any) -> tuple[int, list[bytes]] | None:
    """``(list index, entries)`` from the reply to `plain_pop_args`, or `None` if empty."""
    if not reply:
        return None
    if len(visit.keys) == 1:
        return 0, (reply if visit.wants[0] != 1 else [reply])
    return visit.keys.index(reply[0].decode("utf-8")), reply[1]


def live_entries(shard: Shard, entries: list[bytes]) -> list[bytes]:
    """The entries whose deadline (on the shard's clock) has not passed (A-27)."""
    return _live(shard, entries)


def can_wait_at_once(visits: list[Visit], clock_check_interval: float) -> bool:
    """Whether a blocking receive may skip its non-blocking pass (one round trip, not two).

    True for a single shard whose clock offset is fresh (the blocking pop's
    entries are checked against it; a stale one needs the Lua pop's ``TIME``)
    and whose lists all take the same number of entries per pop, since
    ``BLMPOP``'s count applies to whichever list it pops.
    """
    if len(visits) != 1:
        return False
    visit = visits[0]
    if time.monotonic() - visit.shard.clock_checked >= clock_check_interval:
        return False
    return min(visit.wants) == max(visit.wants)


def blocking_pop(
    visits: list[Visit], timeout: float, shard_slice: float
) -> tuple[Visit, int, list[bytes]] | None:
    """Wait up to `timeout` seconds for live entries (``BLMPOP``/``BLPOP``); never sleeps.

    With one shard this is one ``BLPOP`` for the whole time. With several it
    rotates ``BLPOP`` over the shards in slices of `shard_slice` seconds, so a
    message on any shard is seen within ``(shards - 1) * shard_slice`` (see
    the design notes in `asgi_redis.core`). An entry that expired while it
    waited is dropped and the wait goes on (A-27). A shard that fails leaves
    the rotation for the rest of the call; the last one's error is raised.
    """
    give_up = time.monotonic() + timeout
    turn = 0
    while True:
        remaining = give_up - time.monotonic()
        if remaining <= 0:
            return None
        visit = visits[turn % len(visits)]
        turn += 1
        wait = remaining if len(visits) == 1 else min(remaining, shard_slice)
        try:
            if turn == 1 and len(visits) == 1:
                # The first wait of a single-shard receive is the whole timeout: its
                # command is packed once per visit (a fraction of a millisecond
                # sooner than `remaining` changes nothing a caller can see).
                reply = visit.shard.blocking_pop(
                    visit.keys, timeout, visit.batch(), packed=packed_wait(visit, timeout)
                )
            else:
                reply = visit.shard.blocking_pop(visit.keys, wait, visit.batch())
        except CONNECTION_ERRORS:
            if len(visits) == 1:
                raise
            # Logged by the shard; wait on the others for the rest of this call.
            visits = [other for other in visits if other is not visit]
            continue
        if reply is None:
            continue
        key, entries = reply
        entries = _live(visit.shard, entries)
        if entries:
            return visit, visit.keys.index(key.decode("utf-8")), entries


def packed_wait(visit: Visit, timeout: float) -> bytes | None:
    """The packed ``BLMPOP`` of `timeout` seconds for `visit`; `None` without BLMPOP."""
    if not visit.shard.has_blmpop:
        return None
    if visit.packed_wait is None or visit.packed_wait_timeout != timeout:
        visit.packed_wait = pack_command(blmpop_args(visit.keys, timeout, visit.batch()))
        visit.packed_wait_timeout = timeout
    return visit.packed_wait
