"""A worker's next message taken while it handles the one before (issue 20).

The receive loop handles a message, then sends its replies and pops the next
message in one round trip (`pipelined`). Under load that round trip was the
worker's bottleneck: in W1 a worker spent 200 µs of CPU per request in a cycle of
346 µs, waiting the rest for Redis, and for a core, between messages. With a
backlog the wait can overlap the work:

- A pop here takes up to two entries from the first list holding any. The
  worker gets the first; the second is *held*.
- When a message is held, the replies of the one just handled and a pop of
  one more entry go out in one write, and the worker handles the held message
  at once. Redis answers meanwhile; the answer (the replies' outcomes and the
  next entry, held in turn) is read when that message is done (`collect`),
  before anything else is sent.

What does not change:

- Replies go out in the order they were queued, each batch after the one
  before it was answered and its full messages retried (C-19): the carrier
  calls `collect` first, every time.
- At most one message is held beyond the one being handled, and only while the
  worker's messages are quick (the worker's `QUICK_MESSAGE`) and the list had it waiting behind
  another: a worker busy with a slow consumer takes one message at a time, so
  no idle worker waits for a message this one holds.
- A held message that expires is dropped and counted (A-27). When the worker
  stops, a held message goes back to the head of its list (`put_back`), so the
  next worker gets it first; a second shutdown signal exits at once, as ever.
- Only on the plain layer with every name on one shard, no at-least-once
  channels (their lease starts at the pop), and a fresh clock offset (the
  pop's entries are checked against it); anything else takes the usual path.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import redis

from channels.layers.base import ReceiveFailed

from . import scripts
from .pipelined import failed
from .popping import Visit, key_index, live_counted
from .receiving import Received
from .sending import Outcomes, Queued
from .shard import Shard
from .wire import give_back, pack_command, read_replies, take

if TYPE_CHECKING:
    from collections.abc import Iterable

    from .core import RedisChannelLayer

__all__ = ["Lookahead"]

logger = logging.getLogger("asgi_redis")


@dataclass(slots=True)
class _Pending:
    """A round trip written and not read yet: sends (maybe) and a pop of one entry."""

    visit: Visit
    batch: list[Queued] | None
    # The number of (message) pairs the call was given: the size of its outcomes.
    size: int
    client: redis.Redis
    connection: Any
    replies: int


class Lookahead:
    """One worker thread's held entry and unread round trip (`RedisChannelLayer.lookahead`)."""

    # Seconds without holding after a reply was refused as full.
    full_pause = 1.0

    def __init__(self, layer: RedisChannelLayer) -> None:
        self._layer = layer
        self._sender = layer._sender
        self._receiver = layer._receiver
        self._pipelined = layer._send_then_receive
        self._held: tuple[Visit, int, bytes] | None = None
        self._pending: _Pending | None = None
        # No second entry is held before this time (monotonic): set for `full_pause` after
        # a reply was refused as full, so under a reader's back-pressure every reply
        # is settled before the next message is handled, as without a lookahead.
        self._hold_after = 0.0
        # Keys of a visit -> its packed pops of one and of two entries.
        self._pops: dict[tuple[str, ...], tuple[bytes, bytes]] = {}

    @property
    def holding(self) -> bool:
        """Whether a message is held or a round trip is unread (the worker is not idle)."""
        return self._held is not None or self._pending is not None

    # -- the worker's call -----------------------------------------------------------------

    def send_then_take(
        self, pairs: list[tuple[str, dict[str, Any]]], channels: Iterable[str], quick: bool
    ) -> tuple[Outcomes | None, Received]:
        """Send `pairs`, then the next message on `channels`, as `send_many_then_receive`
        (non-blocking) does; `collect` must have run. Outcomes are `None` when the sends
        went out unread, behind the held message returned: `collect` reads them.

        `quick`: the last message was handled quickly; only then is a second one held.
        """
        receiver = self._receiver
        names, visits = receiver.order(channels)  # names checked before anything is sent
        batches = self._sender.batches(pairs)  # and the messages
        outcomes: Outcomes = [None] * len(pairs)
        if self._held is not None and not self._held_is_live():
            self._held = None
        visit = self._usable(names, visits, batches)
        if visit is None:
            if self._held is None:
                return self._pipelined(
                    pairs, channels if isinstance(channels, list) else names, False
                )
            return self._sender.send_batches(batches, outcomes), self._take_held()
        hold = quick and time.monotonic() >= self._hold_after
        if self._held is not None and not hold:
            # A slow message, or a reply refused as full lately: settle these replies
            # before the held message is handled, and take nothing more ahead.
            return self._sender.send_batches(batches, outcomes), self._take_held()
        shard = visit.shard
        batch = batches.get(shard)
        commands = self._sends(shard, batch)
        if self._held is not None:
            commands.append(self._pop(visit, 1))
            self._write(visit, batch, len(pairs), commands, outcomes)
            return None, self._take_held()
        commands.append(self._pop(visit, 2 if hold else 1))
        try:
            replies = shard.pipeline(commands)
        except redis.RedisError as error:
            raise failed(batch, outcomes, error) from error
        reran = False
        if batch:
            reran = self._pipelined.settle(shard, batch, replies[-2], outcomes)
            self._note_full(outcomes)
        popped = self._popped(visit, replies[-1], outcomes)
        if popped is None:
            # Empty, or only expired entries, or the sends ran after the pop
            # (NOSCRIPT): look once more, as the usual path does.
            if replies[-1] is None and not reran:
                return outcomes, (None, None)
            return outcomes, self._pipelined.receive_after(outcomes, names, visits, False)
        index, entries = popped
        if len(entries) > 1:
            self._held = (visit, index, entries[1])
        return outcomes, receiver.hand_out(shard, visit.storages[index], entries[:1])

    def collect(self) -> Outcomes | None:
        """Read the unread round trip, if any: the outcomes of the sends it carried (its
        popped entry is held). Raises `ReceiveFailed` when the connection failed."""
        pending = self._pending
        if pending is None:
            return None
        self._pending = None
        visit, batch = pending.visit, pending.batch
        shard = visit.shard
        outcomes: Outcomes = [None] * pending.size
        try:
            replies = shard.call(lambda client: self._read(pending))
        except redis.RedisError as error:
            raise failed(batch, outcomes, error) from error
        if batch:
            self._pipelined.settle(shard, batch, replies[-2], outcomes)
            self._note_full(outcomes)
        popped = self._popped(visit, replies[-1], outcomes)
        if popped is not None:
            index, entries = popped
            self._held = (visit, index, entries[0])
        return outcomes

    def put_back(self) -> None:
        """Return a held message to the head of its list (the worker stops)."""
        held, self._held = self._held, None
        if held is None:
            return
        visit, index, entry = held
        try:
            expiry_ms = int(visit.shard.expired.expiry) * 1000
            visit.shard.script(scripts.PUT_BACK, (visit.keys[index],), (expiry_ms, entry))
        except redis.RedisError as exc:
            logger.error(
                "A message taken for %s could not be put back, it is lost: %s",
                visit.storages[index],
                exc,
            )

    # -- helpers ---------------------------------------------------------------------------

    def _usable(
        self, names: list[str], visits: list[Visit] | None, batches: dict[Shard, list[Queued]]
    ) -> Visit | None:
        """The one visit a held pipeline may pop from, or `None` (take the usual path)."""
        if not names or visits is None or len(visits) != 1 or self._receiver.buffer:
            return None
        visit = visits[0]
        shard = visit.shard
        if type(shard) is not Shard or max(visit.wants) != 1:
            return None
        if len(batches) > 1 or (batches and shard not in batches):
            return None
        if shard.known_features is None or not shard.known_features.lmpop:
            return None
        if time.monotonic() - shard.clock_checked >= self._layer.clock_check_interval:
            return None
        return visit

    def _sends(self, shard: Shard, batch: list[Queued] | None) -> list[bytes]:
        return self._pipelined.send_commands(shard, batch) if batch else []

    def _pop(self, visit: Visit, count: int) -> bytes:
        keys = tuple(visit.keys)
        pops = self._pops.get(keys)
        if pops is None:
            if len(self._pops) >= 64:
                self._pops.clear()
            pops = self._pops[keys] = (
                pack_command(("LMPOP", len(keys), *keys, "LEFT", "COUNT", 1)),
                pack_command(("LMPOP", len(keys), *keys, "LEFT", "COUNT", 2)),
            )
        return pops[count - 1]

    def _write(
        self,
        visit: Visit,
        batch: list[Queued] | None,
        size: int,
        commands: list[bytes],
        outcomes: Outcomes,
    ) -> None:
        def write(client: redis.Redis) -> tuple[redis.Redis, Any]:
            connection = take(client)
            try:
                connection.send_packed_command((b"".join(commands),), check_health=False)
            except BaseException:
                connection.disconnect()
                give_back(client, connection)
                raise
            return client, connection

        try:
            client, connection = visit.shard.call(write)
        except redis.RedisError as error:
            self._held_back()
            raise failed(batch, outcomes, error) from error
        self._pending = _Pending(visit, batch, size, client, connection, len(commands))

    def _held_back(self) -> None:
        """A write failed: the held message is not handed out; it goes back if it can."""
        self.put_back()

    @staticmethod
    def _read(pending: _Pending) -> list[Any]:
        try:
            return read_replies(pending.connection, pending.replies)
        finally:
            give_back(pending.client, pending.connection)

    def _popped(
        self, visit: Visit, reply: Any, outcomes: Outcomes
    ) -> tuple[int, list[bytes]] | None:
        """``(list index, live entries)`` from an ``LMPOP`` reply, or `None`."""
        if isinstance(reply, redis.ResponseError):
            raise ReceiveFailed(outcomes, reply) from reply
        if not reply:
            return None
        key, entries = reply
        index = key_index(visit, key)
        entries = live_counted(visit.shard, visit.storages[index], entries)
        return (index, entries) if entries else None

    def _note_full(self, outcomes: Outcomes) -> None:
        if any(outcome is not None for outcome in outcomes):
            self._hold_after = time.monotonic() + self.full_pause

    def _held_is_live(self) -> bool:
        assert self._held is not None
        visit, index, entry = self._held
        return bool(live_counted(visit.shard, visit.storages[index], [entry]))

    def take_held(self) -> Received:
        """The held message (if still live), as `receive` returns it."""
        if self._held is not None and not self._held_is_live():
            self._held = None
        return self._take_held()

    def _take_held(self) -> Received:
        held, self._held = self._held, None
        if held is None:
            return None, None
        visit, index, entry = held
        return self._receiver.hand_out(visit.shard, visit.storages[index], [entry])
