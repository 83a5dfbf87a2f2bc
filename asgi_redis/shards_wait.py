"""The blocking receive's wait, on one shard or on several at once (A-32, L-25, L-62.5).

`blocking_pop` waits on one shard with one blocking pop (`popping.wait_on_one`)
and on several with `wait_on_shards`: each shard gets a connection of its own
with a ``BLMPOP`` (``BLPOP`` before Redis 7) sent and not read, and one
``poll`` waits on all of them, so a message on any shard is seen as soon as it
arrives: no polling floor, unlike a rotation of short pops. The pops still
waiting are then cancelled with ``CLIENT UNBLOCK``, and entries one of them
popped in the race go back to the head of their list in their order
(`scripts.PUT_BACK`).
"""

from __future__ import annotations

import functools
import logging
import time
from dataclasses import dataclass
from typing import Any

import redis

from . import scripts, wire
from .popping import (
    Visit,
    blmpop_args,
    blpop_args,
    count_expired,
    live_entries,
    packed_wait,
    wait_on_one,
)
from .shard import CONNECTION_ERRORS
from .wire import pack_command

__all__ = ["blocking_pop", "wait_on_shards"]

logger = logging.getLogger("asgi_redis")


def blocking_pop(visits: list[Visit], timeout: float) -> tuple[Visit, int, list[bytes]] | None:
    """Wait up to `timeout` seconds for live entries (``BLMPOP``/``BLPOP``); never sleeps.

    With one shard this is one blocking pop for the whole time. With several,
    a pop waits on every shard at once and the first live entries to arrive
    win (`wait_on_shards`). An entry that expired while it waited is dropped
    and the wait goes on (A-27). A shard that fails leaves the wait; only when
    every shard failed is the last error raised (L-62.5).
    """
    try:
        if len(visits) == 1:
            return wait_on_one(visits[0], timeout)
        return wait_on_shards(visits, timeout)
    finally:
        for visit in visits:
            count_expired(visit.shard)


# Seconds a reply that `poll` announced, or a cancelled pop's reply, may take to
# arrive whole; beyond it the shard counts as failed.
_REPLY_MARGIN = 5.0
# Seconds a cancelled pop's ``CLIENT UNBLOCK`` may take to connect, and its reply to
# come. A live server answers it at once (the kernel even completes the connect while
# Redis is busy); one whose host is gone answers nothing, and the socket timeout
# (5 s) then held the message found on another shard for that long, in every wait
# that also watched a shard or cluster node on the lost host (issue 19 item 3).
_UNBLOCK_TIMEOUT = 1.0


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


def wait_on_shards(visits: list[Visit], timeout: float) -> tuple[Visit, int, list[bytes]] | None:
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
        found = wait.firstlive_entries()
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
        # The clients (servers) whose pop failed in this wait, by id: a cluster node
        # serves several slots, and its other pops are abandoned, not unblocked.
        self._failed_servers: set[int] = set()

    def start(self, visit: Visit, timeout: float, packed: bytes | None = None) -> None:
        """Send `visit`'s pop (`packed`, if given, is its ``BLMPOP``) and watch for the reply."""
        shard = visit.shard
        try:
            blmpop = shard.features().blmpop  # asked once per shard, on first use
            if not blmpop:
                packed = pack_command(blpop_args(visit.keys, timeout))
            elif packed is None:
                packed = pack_command(blmpop_args(visit.keys, timeout, visit.batch()))
            pending = shard.call(
                functools.partial(_send_pop, visit=visit, packed=packed, blmpop=blmpop)
            )
        except CONNECTION_ERRORS as exc:
            self._failed(exc)  # logged by the shard; the others still wait
            return
        pending.descriptor = self._watch.add(pending.connection, pending)

    def firstlive_entries(self) -> tuple[Visit, int, list[bytes]] | None:
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
            self._failed_servers.add(id(pending.client))
            if getattr(pending.visit.shard, "failure_ends_wait", False):
                # A cluster slot: its replica takes over in seconds; the caller waits
                # again, there, rather than on the other slots for the rest of the time.
                self._give_up = time.monotonic()
            return None
        except redis.ResponseError:
            self._leave(pending)
            raise
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
            if id(pending.client) in self._failed_servers:
                # Its server failed in this wait (another slot of the same cluster
                # node): a ``CLIENT UNBLOCK`` would wait on it again, a timeout more
                # for a host that is gone. What it may have popped is lost with it
                # (L-62.3), as with any failed connection.
                pending.connection.disconnect()
                wire.give_back(pending.client, pending.connection)
                continue
            try:
                popped = _cancel(pending)
            except _CancelFailed:
                self._failed_servers.add(id(pending.client))
                continue
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
    return index, live_entries(visit.shard, visit.storages[index], entries)


class _CancelFailed(Exception):
    """A cancelled pop's server failed (logged by the shard): nothing was popped."""


def _cancel(pending: _Pending) -> tuple[int, list[bytes]] | None:
    """Stop a pop still waiting; return the live entries it popped in the race, if any.

    ``CLIENT UNBLOCK`` on another connection to the same server ends the pop
    as if its time ran out, and its nil reply is read. An UNBLOCK that finds
    the client not blocked means the pop has answered already (its reply is
    on the way) or the server has not read the pop yet (the UNBLOCK overtook
    it): wait a moment for the reply, then ask again. A shard that fails here
    is logged and its connection disconnected (a half-read connection is
    never reused), and `_CancelFailed` raised; what it may have popped is lost
    with it (L-62.3).
    """
    read = False
    try:
        _unblock(pending)
        reply = _read(pending)
        read = True
    except _SHARD_FAILURES:
        raise _CancelFailed from None  # logged by the shard (`lost`)
    except redis.ResponseError as exc:
        redirect_reply = getattr(pending.visit.shard, "redirect_reply", None)
        if redirect_reply is not None and redirect_reply(exc):
            # A cluster's "not here / not now" (CLUSTERDOWN while a master is elected,
            # MOVED): the pop ran nothing and its reply was read whole (issue 19).
            read = True
            return None
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
                read_timeout=_UNBLOCK_TIMEOUT,
                connect_timeout=_UNBLOCK_TIMEOUT,
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
        expiry_ms = int(visit.shard.expired.expiry) * 1000
        visit.shard.script(scripts.PUT_BACK, (visit.keys[index],), (expiry_ms, *entries[::-1]))
    except redis.RedisError as exc:
        logger.warning(
            "Redis shard %d: %d message(s) a cancelled wait popped from %r are lost: %s",
            visit.shard.index,
            len(entries),
            visit.storages[index],
            exc,
        )
