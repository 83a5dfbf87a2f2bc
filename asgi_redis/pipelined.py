"""`send_many_then_receive` in one round trip when one shard holds it all (A-37, L-62.3).

When the messages and the names sit on the same single shard, the
``SEND_MANY`` script and the pop (``LMPOP``, or ``BLMPOP`` when blocking) go
out in one pipeline on one connection: a worker's replies and its next
message cost one round trip instead of two. Three steps: `_build` decides
whether the pipeline applies and packs it (nothing is sent when it does
not), `_run` sends it, `_interpret` reads the pop's reply. Otherwise
(several shards, a stale clock offset, a message already buffered, a server
without those commands) it sends, then receives.
"""

from __future__ import annotations

import time
from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

import redis

from channels.layers.base import ReceiveFailed

from . import scripts
from .errors import UnsupportedRedis
from .popping import (
    Visit,
    can_wait_at_once,
    key_index,
    live_counted,
    packed_plain_pop,
    packed_wait,
    plain_pop_result,
)
from .receiving import Received, Receiver
from .sending import Outcomes, Queued, Sender
from .shard import CONNECTION_ERRORS, Shard
from .shards_wait import blocking_pop

if TYPE_CHECKING:
    from .core import RedisChannelLayer

__all__ = ["SendThenReceive", "failed"]


def failed(batch: list[Queued] | None, outcomes: Outcomes, error: Exception) -> ReceiveFailed:
    """A round trip carrying `batch` failed: each of its sends' outcome is `error`, and the
    `ReceiveFailed` to raise carries them all."""
    for position, *_ in batch or ():
        outcomes[position] = error
    return ReceiveFailed(outcomes, error)


class SendThenReceive:
    """`send_many_then_receive` of one layer instance."""

    def __init__(self, layer: RedisChannelLayer, sender: Sender, receiver: Receiver) -> None:
        self._layer = layer
        self._sender = sender
        self._receiver = receiver
        # Shards known to hold ``SEND_MANY`` in their script cache: on the others a
        # ``SCRIPT LOAD`` goes first, or a blocking pop behind a NOSCRIPT would wait
        # its whole time for the message the script did not send.
        self._loaded: set[Shard] = set()

    def __call__(
        self, messages: Iterable[tuple[str, dict[str, Any]]], channels: Iterable[str], block: bool
    ) -> tuple[Outcomes, Received]:
        receiver = self._receiver
        sender = self._sender
        names, visits = receiver.order(channels)
        pairs = list(messages)
        batches = sender.batches(pairs)
        outcomes: Outcomes = [None] * len(pairs)
        if names and visits is not None and len(batches) <= 1:
            visit = visits[0]
            shard = visit.shard
            if not batches or shard in batches:
                batch = batches.get(shard)
                commands = self._build(visit, batch, block)
                if commands is not None:
                    # When it was sent: a blocking pop's wait counts from there.
                    started = time.monotonic()
                    replies = self._run(shard, commands, batch, block, outcomes)
                    # The server did not know ``SEND_MANY`` (NOSCRIPT): the pop ran
                    # before the sends (`settle`).
                    reran = batch is not None and self.settle(shard, batch, replies[-2], outcomes)
                    received = self._interpret(visit, block, started, replies[-1], outcomes)
                    if received is not None and not (reran and received[0] is None):
                        return outcomes, received
                    # The sends ran after the pop (NOSCRIPT: the server's script cache
                    # was emptied), or only expired entries for a non-blocking pop:
                    # look once more, without waiting again.
                    if reran:
                        block = False
                    return outcomes, self.receive_after(outcomes, names, visits, block)
        outcomes = sender.send_batches(batches, outcomes)
        return outcomes, self.receive_after(outcomes, names, visits, block)

    def receive_after(
        self, outcomes: Outcomes, names: list[str], visits: list[Visit] | None, block: bool
    ) -> Received:
        """Receive on `names` after the sends whose `outcomes` a failure carries."""
        try:
            return self._receiver.receive_from(names, visits, block)
        except (redis.RedisError, UnsupportedRedis) as error:
            raise ReceiveFailed(outcomes, error) from error

    # -- build ---------------------------------------------------------------------------

    def _build(self, visit: Visit, batch: list[Queued] | None, block: bool) -> list[bytes] | None:
        """The commands for `batch` and a pop from `visit`, or `None` when it does not apply
        (a stale clock offset, a pop that needs Lua or a command the server lacks, a
        message waiting in the buffer): then nothing has been sent."""
        layer = self._layer
        shard = visit.shard
        if self._receiver.buffer:
            return None
        if time.monotonic() - shard.clock_checked >= layer.clock_check_interval:
            return None
        if shard.known_features is None:
            try:
                shard.features()  # once per shard (`features`)
            except redis.RedisError:
                # Nothing sent yet: the sends then the receive meet the outage and
                # report it as usual (outcomes, then `ReceiveFailed`).
                return None
        if block:
            if not can_wait_at_once([visit], layer.clock_check_interval):
                return None
            pop = packed_wait(visit, layer.blpop_timeout)
        else:
            pop = visit.packed_pop
            if pop is None:
                pop = packed_plain_pop(visit)
        if not pop:
            return None
        if not batch:
            return [pop]
        return [*self.send_commands(shard, batch), pop]

    def send_commands(self, shard: Shard, batch: list[Queued]) -> list[bytes]:
        """``SEND_MANY`` of `batch`, after a ``SCRIPT LOAD`` where it may not be loaded."""
        send = self._sender.packed_send_many(shard, batch)
        if shard not in self._loaded:
            return [scripts.pack_load(scripts.SEND_MANY), send]
        return [send]

    # -- run -----------------------------------------------------------------------------

    def _run(
        self,
        shard: Shard,
        commands: list[bytes],
        batch: list[Queued] | None,
        block: bool,
        outcomes: Outcomes,
    ) -> list[Any]:
        """Send the commands; raises `ReceiveFailed` (each send's outcome the error)."""
        read_timeout = self._layer.blpop_timeout + 5 if block else None
        try:
            return shard.pipeline(commands, read_timeout)
        except redis.RedisError as error:
            raise failed(batch, outcomes, error) from error

    def settle(self, shard: Shard, batch: list[Queued], reply: Any, outcomes: Outcomes) -> bool:
        """Outcomes of the pipeline's ``SEND_MANY``; rerun it if the server forgot it
        (then True: the pop in the pipeline ran before the messages were stored).

        An error reply other than ``NOSCRIPT`` (e.g. Redis out of memory) is each
        message's outcome, since the pop may have taken an entry that must still be
        handed out.
        """
        sender = self._sender
        if type(reply) is list and shard in self._loaded:
            # The usual reply (`Sender.sent`, `Sender.note_full` inline).
            if reply[0] >= 0:
                shard.note_clock(reply[0])
            stored = reply[1:]
            if 0 in stored:
                sender.note_full(batch, stored, outcomes)
            return False
        reran = isinstance(reply, redis.exceptions.NoScriptError)
        if reran:
            # A restarted or flushed server: nothing ran; this loads it (L-62.2).
            self._loaded.discard(shard)
            try:
                reply = shard.script(scripts.SEND_MANY, *sender.send_many_arguments(shard, batch))
            except (*CONNECTION_ERRORS, redis.ResponseError) as exc:
                reply = exc
        if isinstance(reply, redis.ResponseError):
            reply = scripts.unsupported(reply, shard.client())  # e.g. LayerOutOfMemory
        if isinstance(reply, Exception):
            error = reply
            for position, *_ in batch:
                outcomes[position] = error
            return reran
        self._loaded.add(shard)
        sender.note_full(batch, sender.sent(shard, reply), outcomes)
        return reran

    # -- interpret -------------------------------------------------------------------------

    def _interpret(
        self, visit: Visit, block: bool, started: float, reply: Any, outcomes: Outcomes
    ) -> Received | None:
        """The received pair from the pop's `reply`, or `None` when a non-blocking pop
        found only expired entries (the caller looks again)."""
        shard = visit.shard
        if isinstance(reply, redis.ResponseError):
            raise ReceiveFailed(outcomes, reply) from reply
        if reply is None:
            return None, None  # empty, or the wait ran out
        if block:
            key, entries = reply
            index = key_index(visit, key)
        else:
            popped = plain_pop_result(visit, reply)
            if popped is None:
                return None, None
            index, entries = popped
        entries = live_counted(shard, visit.storages[index], entries)
        if entries:
            return self._receiver.hand_out(shard, visit.storages[index], entries)
        # Only expired entries: they are gone; look again for what is left of
        # the wait (a blocking receive) or once more (a non-blocking one).
        if not block:
            return None
        return self._wait_on(visit, started, outcomes)

    def _wait_on(self, visit: Visit, started: float, outcomes: Outcomes) -> Received:
        remaining = self._layer.blpop_timeout - (time.monotonic() - started)
        try:
            popped = blocking_pop([visit], max(remaining, 0))
        except redis.RedisError as error:
            raise ReceiveFailed(outcomes, error) from error
        if popped is None:
            return None, None
        visit, index, entries = popped
        return self._receiver.hand_out(visit.shard, visit.storages[index], entries)
