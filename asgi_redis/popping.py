"""Taking entries off a shard's lists: one non-blocking pop, and the blocking wait (A-27, A-32).

A `Visit` is the set of lists one receive looks at on one shard, in the
(shuffled) order to try them. `pop` returns ``(list index, live entries)``
and `blocking_pop` ``(visit, list index, live entries)``, or `None`; expired
entries are dropped on the way and never returned (A-27). `blocking_pop`
over several shards waits on all of them at once (`_wait_on_shards`).

Plain ``LPOP`` / ``LMPOP`` cost the server about a tenth of a Lua call
(INFO commandstats), so they are used whenever the shard's clock offset is
fresh: the entries' deadlines are on the shard's clock, and the offset turns
this machine's clock into it. The Lua pop (`scripts.POP`) runs when the
offset is stale, since it reports ``TIME``, and when one call mixes a
batch pop (a ``P!`` list) with single pops.
"""

from __future__ import annotations

import functools
import logging
import time
from dataclasses import dataclass, field
from typing import Any

import redis

from . import scripts, wire
from .entries import DEADLINE_DIGITS
from .shard import CONNECTION_ERRORS, Shard, blmpop_args, blpop_args
from .wire import pack_command

__all__ = [
    "Visit",
    "blocking_pop",
    "count_expired",
    "can_wait_at_once",
    "live_entries",
    "packed_plain_pop",
    "packed_wait",
    "plain_pop_args",
    "plain_pop_result",
    "pop",
]

logger = logging.getLogger("asgi_redis")


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


def _live(shard: Shard, storage: str, entries: list[bytes]) -> list[bytes]:
    """`entries` whose deadline has not passed; the others are counted and logged
    (`expiry`: one round trip, only when something expired)."""
    server_now_ms = (time.time() + shard.clock_offset) * 1000
    live = [entry for entry in entries if int(entry[:DEADLINE_DIGITS]) > server_now_ms]
    if len(live) != len(entries):
        gone = [entry for entry in entries if int(entry[:DEADLINE_DIGITS]) <= server_now_ms]
        shard.expired.dropped(storage, gone)  # counted by `count_expired`
    return live


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
                entries = _live(visit.shard, visit.storages[index], entries)
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


def live_entries(shard: Shard, storage: str, entries: list[bytes]) -> list[bytes]:
    """The entries of `storage` whose deadline (on the shard's clock) has not passed
    (A-27); the others are counted as expired."""
    return _live(shard, storage, entries)


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


def blocking_pop(visits: list[Visit], timeout: float) -> tuple[Visit, int, list[bytes]] | None:
    """Wait up to `timeout` seconds for live entries (``BLMPOP``/``BLPOP``); never sleeps.

    With one shard this is one blocking pop for the whole time. With several,
    a pop waits on every shard at once and the first live entries to arrive
    win (`_wait_on_shards`). An entry that expired while it waited is dropped
    and the wait goes on (A-27). A shard that fails leaves the wait; only when
    every shard failed is the last error raised (L-62.5).
    """
    try:
        if len(visits) == 1:
            return _wait_on_one(visits[0], timeout)
        return _wait_on_shards(visits, timeout)
    finally:
        for visit in visits:
            count_expired(visit.shard)


def _wait_on_one(visit: Visit, timeout: float) -> tuple[Visit, int, list[bytes]] | None:
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
            reply = visit.shard.blocking_pop(
                visit.keys, timeout, visit.batch(), packed=packed_wait(visit, timeout)
            )
        else:
            reply = visit.shard.blocking_pop(visit.keys, remaining, visit.batch())
        if reply is None:
            continue
        key, entries = reply
        index = visit.keys.index(key.decode("utf-8"))
        entries = _live(visit.shard, visit.storages[index], entries)
        if entries:
            return visit, index, entries


# -- waiting on several shards at once (A-32, L-25, L-62.5) -------------------------

# Seconds a reply that `poll` announced, or a cancelled pop's reply, may take to
# arrive whole; beyond it the shard counts as failed.
_REPLY_MARGIN = 5.0

# Puts popped entries back at the head of their list. ARGV holds them newest
# first, so LPUSH leaves them in their original order. A list the pop emptied
# was deleted by Redis and comes back without a TTL: it gets the one a send
# would have given its newest entry (deadline plus a second).
PUT_BACK = scripts.Script(
    "put_back",
    """
redis.call('LPUSH', KEYS[1], unpack(ARGV))
if redis.call('PTTL', KEYS[1]) == -1 then
  local newest = 0
  for _, entry in ipairs(ARGV) do newest = math.max(newest, deadline(entry)) end
  redis.call('PEXPIREAT', KEYS[1], newest + 1000)
end
""",
)


@dataclass(slots=True)
class _Pending:
    """One shard's blocking pop, sent and not yet answered."""

    visit: Visit
    client: redis.Redis
    connection: Any
    client_id: int
    # Whether the pop sent is BLMPOP (``[key, entries]``) or BLPOP (``[key, entry]``).
    blmpop: bool
    descriptor: int = -1


# A shard leaves the wait on these; READONLY: the server became a replica (L-53).
_SHARD_FAILURES = (*CONNECTION_ERRORS, redis.ReadOnlyError)


def _wait_on_shards(visits: list[Visit], timeout: float) -> tuple[Visit, int, list[bytes]] | None:
    """Block on every shard at once; the first live entries to arrive win.

    Each shard gets a connection of its own with a ``BLMPOP`` sent and not
    read, and one ``poll`` waits on all of them, so a message on any shard is
    seen as soon as it arrives: no polling floor. The pops still waiting are
    then cancelled and whatever they popped meanwhile is put back (`_put_back`).
    """
    wait = _ShardsWait(len(visits), time.monotonic() + timeout)
    try:
        for visit in visits:
            wait.start(visit, timeout, packed_wait(visit, timeout))
        found = wait.first_live()
    except BaseException:
        wait.cancel_all(keep_first=False)
        raise
    late = wait.cancel_all(keep_first=found is None)
    return wait.outcome(found or late)


class _ShardsWait:
    """The pops of one wait on several shards, and how the shards fared."""

    def __init__(self, shards: int, give_up: float) -> None:
        self._shards = shards
        self._give_up = give_up
        self._watch = wire.ReplyWatch()
        self._failures = 0
        self._failure: Exception | None = None

    def start(self, visit: Visit, timeout: float, packed: bytes | None = None) -> None:
        """Send `visit`'s pop (`packed`, if given, is its ``BLMPOP``) and watch for the reply."""
        shard = visit.shard
        blmpop = shard.has_blmpop
        if not blmpop:
            packed = pack_command(blpop_args(visit.keys, timeout))
        elif packed is None:
            packed = pack_command(blmpop_args(visit.keys, timeout, visit.batch()))
        try:
            pending = shard.call(
                functools.partial(_send_pop, visit=visit, packed=packed, blmpop=blmpop)
            )
        except CONNECTION_ERRORS as exc:
            self._failed(exc)  # logged by the shard; the others still wait
            return
        pending.descriptor = self._watch.add(pending.connection, pending)

    def first_live(self) -> tuple[Visit, int, list[bytes]] | None:
        """Wait for the first live entries; `None` when time runs out or no shard is left."""
        while self._watch:
            ready = self._watch.ready(self._give_up - time.monotonic())
            if not ready:
                return None
            for pending in ready:
                found = self._answered(pending)
                if found is not None:
                    return found
        return None

    def _answered(self, pending: _Pending) -> tuple[Visit, int, list[bytes]] | None:
        try:
            reply = _read(pending)
        except _SHARD_FAILURES as exc:
            self._leave(pending)
            self._failed(exc)
            return None
        except redis.ResponseError as exc:
            if not pending.blmpop or "unknown command" not in str(exc).lower():
                self._leave(pending)
                raise
            pending.visit.shard.has_blmpop = False  # Redis before 7: BLPOP from now on
            self._again(pending)
            return None
        if reply is None:
            self._leave(pending)  # its (server-side) time ran out
            return None
        index, entries = _popped(pending, reply)
        if entries:
            self._leave(pending)
            return pending.visit, index, entries
        self._again(pending)  # only expired entries: they are gone, wait on
        return None

    def _again(self, pending: _Pending) -> None:
        """Send `pending`'s pop again for the rest of the time."""
        self._leave(pending)
        remaining = self._give_up - time.monotonic()
        if remaining > 0:
            self.start(pending.visit, remaining)

    def _leave(self, pending: _Pending) -> None:
        self._watch.discard(pending.descriptor)
        wire.give_back(pending.client, pending.connection)

    def _failed(self, exc: Exception) -> None:
        self._failures += 1
        self._failure = exc

    def cancel_all(self, keep_first: bool) -> tuple[Visit, int, list[bytes]] | None:
        """Cancel every pop still waiting; put back what they popped in the race.

        With `keep_first` (nothing found yet: the time ran out), the first live
        entries a cancelled pop brings back are returned instead of put back.
        """
        kept = None
        for pending in self._watch.owners():
            self._watch.discard(pending.descriptor)
            popped = _cancel(pending)
            if popped is None:
                continue
            if keep_first and kept is None:
                kept = (pending.visit, *popped)
            else:
                _put_back(pending.visit, *popped)
        return kept

    def outcome(
        self, found: tuple[Visit, int, list[bytes]] | None
    ) -> tuple[Visit, int, list[bytes]] | None:
        """`found`, or `None`; the last shard's error when every shard failed (L-62.5)."""
        if found is None and self._failure is not None and self._failures >= self._shards:
            raise self._failure
        return found


def _send_pop(client: redis.Redis, visit: Visit, packed: bytes, blmpop: bool) -> _Pending:
    """Send `packed` on a connection of `client`'s own, without reading the reply."""
    connection = wire.take(client)
    try:
        client_id = wire.send_blocking(connection, packed, _REPLY_MARGIN)
    except BaseException:
        wire.give_back(client, connection)  # disconnected by `send_blocking`
        raise
    return _Pending(visit, client, connection, client_id, blmpop)


def _read(pending: _Pending) -> Any:
    """The pop's reply; a connection error names the shard (L-62.1)."""
    try:
        return wire.read_reply(pending.connection, _REPLY_MARGIN)
    except _SHARD_FAILURES as exc:
        raise pending.visit.shard.lost(pending.client, exc) from None


def _popped(pending: _Pending, reply: Any) -> tuple[int, list[bytes]]:
    """``(list index, live entries)`` of a pop's reply (entries may be empty, A-27)."""
    key, popped = reply
    entries = popped if pending.blmpop else [popped]
    visit = pending.visit
    index = visit.keys.index(key.decode("utf-8"))
    return index, _live(visit.shard, visit.storages[index], entries)


def _cancel(pending: _Pending) -> tuple[int, list[bytes]] | None:
    """Stop a pop still waiting; return the live entries it popped in the race, if any.

    ``CLIENT UNBLOCK`` on another connection to the same server ends the pop
    as if its time ran out, and its nil reply is read. An UNBLOCK that finds
    the client not blocked means the pop has answered already (its reply is
    on the way) or the server has not read the pop yet (the UNBLOCK overtook
    it): wait a moment for the reply, then ask again. A shard that fails here
    is logged and its connection disconnected (a half-read connection is
    never reused); what it may have popped is lost with it (L-62.3).
    """
    read = False
    try:
        _unblock(pending)
        reply = _read(pending)
        read = True
    except _SHARD_FAILURES:
        return None  # logged by the shard (`lost`)
    except redis.ResponseError as exc:
        logger.warning(
            "Redis shard %d: could not cancel a blocking pop (%s); its connection is closed",
            pending.visit.shard.index,
            exc,
        )
        return None
    finally:
        if not read:
            pending.connection.disconnect()
        wire.give_back(pending.client, pending.connection)
    if reply is None:
        return None
    index, entries = _popped(pending, reply)
    return (index, entries) if entries else None


def _unblock(pending: _Pending) -> None:
    """Make the pop's reply come: ``CLIENT UNBLOCK`` until it is unblocked or answers."""
    give_up = time.monotonic() + _REPLY_MARGIN
    patience = 0.001
    while not wire.reply_ready(pending.connection):
        try:
            unblocked = wire.execute(
                pending.client,
                "CLIENT",
                "UNBLOCK",
                pending.client_id,
                read_timeout=_REPLY_MARGIN,
            )
        except CONNECTION_ERRORS as exc:
            raise pending.visit.shard.lost(pending.client, exc) from None
        if unblocked or wire.reply_ready(pending.connection, patience):
            return
        if time.monotonic() >= give_up:
            error = redis.TimeoutError("a cancelled blocking pop did not answer")
            raise pending.visit.shard.lost(pending.client, error)
        patience = min(patience * 2, 0.1)


def _put_back(visit: Visit, index: int, entries: list[bytes]) -> None:
    """Put entries a cancelled pop took back at the head of their list, in order.

    Safe for ordering: the entries were the oldest of their list a moment ago
    and go back in front of anything sent since, so a single receiver still
    sees one sender's messages in order (A-25); receivers running at the same
    time never had an order between them. Entries of a ``P!`` list go back
    too (its one reader, this process, finds them on its next receive). If
    the shard fails now they are lost, as a pop failing on the wire may lose
    what it took (L-62.3); the shard logs the outage.
    """
    try:
        visit.shard.script(PUT_BACK, (visit.keys[index],), entries[::-1])
    except redis.RedisError as exc:
        logger.warning(
            "Redis shard %d: %d message(s) a cancelled wait popped from %r are lost: %s",
            visit.shard.index,
            len(entries),
            visit.storages[index],
            exc,
        )


def packed_wait(visit: Visit, timeout: float) -> bytes | None:
    """The packed ``BLMPOP`` of `timeout` seconds for `visit`; `None` without BLMPOP."""
    if not visit.shard.has_blmpop:
        return None
    if visit.packed_wait is None or visit.packed_wait_timeout != timeout:
        visit.packed_wait = pack_command(blmpop_args(visit.keys, timeout, visit.batch()))
        visit.packed_wait_timeout = timeout
    return visit.packed_wait
