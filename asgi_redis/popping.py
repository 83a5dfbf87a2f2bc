"""Taking entries off one shard's lists: the non-blocking pop and the blocking one (A-27, A-32).

A `Visit` is the set of lists one receive looks at on one shard, in the
(shuffled) order to try them. `pop` returns ``(list index, live entries)``
and `wait_on_one` ``(visit, list index, live entries)``, or `None`; expired
entries are dropped on the way and never returned (A-27). A wait on several
shards at once is `shards_wait`.

Plain ``LPOP`` / ``LMPOP`` cost the server about a tenth of a Lua call
(INFO commandstats), so they are used whenever the shard's clock offset is
fresh: the entries' deadlines are on the shard's clock, and the offset turns
this machine's clock into it. The Lua pop (`scripts.POP`) runs when the
offset is stale, since it reports ``TIME``, and when one call mixes a
batch pop (a ``P!`` list) with single pops.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from . import scripts
from .entries import DEADLINE_DIGITS
from .shard import Shard
from .wire import execute, execute_packed, pack_command

__all__ = [
    "Visit",
    "blmpop_args",
    "blpop_args",
    "can_wait_at_once",
    "count_expired",
    "key_index",
    "live_counted",
    "live_entries",
    "packed_plain_pop",
    "packed_wait",
    "plain_pop_args",
    "plain_pop_result",
    "pop",
    "shard_blocking_pop",
    "wait_on_one",
]


@dataclass(slots=True)
class Visit:
    """The lists one receive looks at on one shard.

    A visit kept in a receive plan (`receiving`) is reused by every receive
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
    # List key (bytes, as replies name it) -> its index in `keys`, made on first use.
    key_indexes: dict[bytes, int] | None = None

    def batch(self) -> int:
        """Entries one blocking pop takes: a batch only when every list takes one (A-20)."""
        wants = self.wants
        return wants[0] if min(wants) == max(wants) else 1


def live_entries(shard: Shard, storage: str, entries: list[bytes]) -> list[bytes]:
    """The entries of `storage` whose deadline (on the shard's clock) has not passed
    (A-27); the others are counted and logged (`expiry`: one round trip, only when
    something expired, by `count_expired`)."""
    server_now_ms = (time.time() + shard.clock_offset) * 1000
    if len(entries) == 1:  # the usual pop: no list built
        if int(entries[0][:DEADLINE_DIGITS]) > server_now_ms:
            return entries
        shard.expired.dropped(storage, entries)
        return []
    live = [entry for entry in entries if int(entry[:DEADLINE_DIGITS]) > server_now_ms]
    if len(live) != len(entries):
        gone = [entry for entry in entries if int(entry[:DEADLINE_DIGITS]) <= server_now_ms]
        shard.expired.dropped(storage, gone)  # counted by `count_expired`
    return live


def live_counted(shard: Shard, storage: str, entries: list[bytes]) -> list[bytes]:
    """`live_entries`, the expired ones counted at once (`count_expired`)."""
    entries = live_entries(shard, storage, entries)
    count_expired(shard)
    return entries


def count_expired(shard: Shard) -> None:
    """Count (one round trip) and log what this receive dropped as expired, if anything."""
    if shard.expired.uncounted:
        shard.expired.write(shard)


def pop(visit: Visit, clock_check_interval: float) -> tuple[int, list[bytes]] | None:
    """Pop from the first list of `visit` holding live entries."""
    try:
        while True:
            popped = _pop_once(visit, clock_check_interval)
            if popped is None:
                return None
            index, entries, checked = popped
            if not checked:
                entries = live_entries(visit.shard, visit.storages[index], entries)
                if not entries:
                    continue  # all expired: they are gone, look again
            return index, entries
    finally:
        count_expired(visit.shard)


def _pop_once(visit: Visit, clock_check_interval: float) -> tuple[int, list[bytes], bool] | None:
    """``(list index, entries, whether the server checked expiry)`` or `None`."""
    shard = visit.shard
    if time.monotonic() - shard.clock_checked < clock_check_interval:
        packed = packed_plain_pop(visit)
        if packed:
            popped = plain_pop_result(visit, shard.command_packed(packed))
            return None if popped is None else (*popped, False)
    reply = shard.script(scripts.POP, visit.keys, (*visit.wants, *shard.expired.stats_args))
    shard.note_clock(reply[0])
    expired = reply[1]
    for at in range(0, len(expired), 2):  # counted by the script; logged here
        shard.expired.counted(visit.storages[expired[at] - 1], expired[at + 1])
    if len(reply) == 2:
        return None
    return reply[2] - 1, reply[3:], True


def plain_pop_args(visit: Visit) -> tuple[Any, ...] | None:
    """The plain (non-Lua) pop for `visit`, or `None` when only the Lua pop can do it.

    One list: ``LPOP`` (with a count for a batch); several lists taking one entry
    each: ``LMPOP`` (Redis 7). Used only while the shard's clock offset is fresh,
    since the entries' deadlines are then checked here (`live_entries`).
    """
    keys = visit.keys
    if len(keys) == 1:
        want = visit.wants[0]
        return ("LPOP", keys[0]) if want == 1 else ("LPOP", keys[0], want)
    if max(visit.wants) == 1 and visit.shard.features().lmpop:  # else the Lua pop
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
    return key_index(visit, reply[0]), reply[1]


def key_index(visit: Visit, key: bytes) -> int:
    """The index in `visit.keys` of the list `key` (as a reply names it)."""
    indexes = visit.key_indexes
    if indexes is None:
        indexes = visit.key_indexes = {
            name.encode("utf-8"): index for index, name in reversed(list(enumerate(visit.keys)))
        }
    return indexes[key]


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


def wait_on_one(visit: Visit, timeout: float) -> tuple[Visit, int, list[bytes]] | None:
    """Wait up to `timeout` seconds for live entries on `visit`'s lists: one blocking
    pop for the whole time; an entry that expired while it waited is dropped and the
    wait goes on (A-27)."""
    give_up = time.monotonic() + timeout
    first = True
    while True:
        remaining = give_up - time.monotonic()
        if remaining <= 0:
            return None
        if first:
            # The first wait is the whole timeout: its command is packed once per
            # visit (a fraction of a millisecond sooner than `remaining` changes
            # nothing a caller can see).
            first = False
            reply = shard_blocking_pop(
                visit.shard, visit.keys, timeout, visit.batch(), packed_wait(visit, timeout)
            )
        else:
            reply = shard_blocking_pop(visit.shard, visit.keys, remaining, visit.batch())
        if reply is None:
            continue
        key, entries = reply
        index = key_index(visit, key)
        entries = live_entries(visit.shard, visit.storages[index], entries)
        if entries:
            return visit, index, entries


def packed_wait(visit: Visit, timeout: float) -> bytes | None:
    """The packed ``BLMPOP`` of `timeout` seconds for `visit`; `None` without BLMPOP."""
    packed = visit.packed_wait
    if packed is not None and visit.packed_wait_timeout == timeout:
        return packed
    if not visit.shard.features().blmpop:
        return None
    packed = visit.packed_wait = pack_command(blmpop_args(visit.keys, timeout, visit.batch()))
    visit.packed_wait_timeout = timeout
    return packed


# -- one shard's blocking pop ----------------------------------------------------------
#
# redis-py's default socket timeout is shorter than a 5 s pop; the reads below
# get the pop's timeout plus a margin instead of failing idle pops.


def shard_blocking_pop(
    shard: Shard, keys: Sequence[str], timeout: float, count: int, packed: bytes | None = None
) -> tuple[bytes, list[bytes]] | None:
    """``(key, up to count entries)`` from the first non-empty list, waiting up to `timeout`.

    ``BLMPOP`` (Redis 7) takes a whole batch from a single-reader list in
    the same round trip that waited for it; ``BLPOP`` (one entry) on older
    servers (`features`). The socket's read timeout is set above the
    server-side one (layers.md note), so an idle pop never fails on the client
    side. `packed` is that ``BLMPOP`` already packed (`blmpop_args`).
    """
    read_timeout = timeout + 5
    if packed is None:
        if not shard.features().blmpop:
            args = blpop_args(keys, timeout)
            reply = shard.call(lambda client: execute(client, *args, read_timeout=read_timeout))
            return None if reply is None else (reply[0], [reply[1]])
        packed = pack_command(blmpop_args(keys, timeout, count))
    command = packed
    popped: tuple[bytes, list[bytes]] | None = shard.call(
        lambda client: execute_packed(client, command, read_timeout=read_timeout)
    )
    return popped


def blpop_args(keys: Sequence[str], timeout: float) -> tuple[Any, ...]:
    """``BLPOP`` (one entry, before Redis 7) waiting up to `timeout` seconds on `keys`."""
    return ("BLPOP", *keys, f"{max(timeout, 0.01):.3f}")


def blmpop_args(keys: Sequence[str], timeout: float, count: int) -> tuple[Any, ...]:
    """``BLMPOP`` waiting up to `timeout` seconds for up to `count` entries of `keys`."""
    return ("BLMPOP", f"{max(timeout, 0.01):.3f}", len(keys), *keys, "LEFT", "COUNT", count)
