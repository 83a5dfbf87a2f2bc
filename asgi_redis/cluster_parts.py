"""The send, receive and group sides of `RedisClusterChannelLayer` (issue 19 item 1).

Thin subclasses of `sending.Sender`, `receiving.Receiver` and `groups.Groups`
that place by hash slot (`slots`) instead of by shard ring:

- `ClusterSender` names the slot's own global counters in ``SEND_MANY``
  (also when `pipelined` packs it);
- `ClusterReceiver` makes one visit per slot (``BLMPOP`` and ``LMPOP`` take
  keys of one slot), and starts a wait over several slots again when one of
  its pops was redirected (a slot moved, or its master failed over);
- `ClusterGroups` gives every member its own slot and sends the ``PUSH``
  scripts of all slots served by one master in one pipelined round trip.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any, TypeVar

import redis
from redis.exceptions import (
    AskError,
    ClusterDownError,
    MovedError,
    RedisClusterException,
    SlotNotCoveredError,
    TryAgainError,
)

from channels.layers.base import layer_random

from . import scripts
from .entries import bundle_header
from .errors import LayerOutOfMemory, refusal
from .groups import Groups, _Delivery
from .popping import Visit
from .receiving import Received, Receiver
from .sending import Outcomes, Queued, Sender
from .shard import CONNECTION_ERRORS, Shard
from .slots import cluster_script, name_slot
from .wire import execute_pipeline, pack_command

if TYPE_CHECKING:
    from .cluster import SlotShard

T = TypeVar("T")

__all__ = [
    "REDIRECTS",
    "ClusterGroups",
    "ClusterReceiver",
    "ClusterSender",
    "RetryWindow",
    "is_redirect",
    "nothing_ran",
]

# Seconds per wait on several slots while one of them is unreachable (`blocking_pop`).
OUTAGE_SLICE = 0.25

# Replies proving the command did not run where it was sent: retried (L-62.3).
REDIRECTS = (AskError, TryAgainError, ClusterDownError, SlotNotCoveredError)


def is_redirect(exc: Any) -> bool:
    """A cluster redirection or a "not now" reply: the command did not run.

    ``UNBLOCKED``: a blocking pop whose node stopped serving the slot (it
    became a replica) is ended with this error; nothing was popped.
    """
    if isinstance(exc, REDIRECTS):
        return True
    return isinstance(exc, redis.ResponseError) and str(exc).startswith("UNBLOCKED")


def nothing_ran(exc: Exception) -> bool:
    """A connection that could not be made (redis-py: "Error 111 connecting to ..."):
    nothing was sent, so the command may be sent again (L-62.3)."""
    return "connecting to" in str(exc)


class RetryWindow:
    """How long calls may keep retrying while a slot migrates or a master is elected:
    `timeout` seconds from the first retry (`cluster.SlotShard.call`)."""

    __slots__ = ("give_up", "timeout")

    def __init__(self, timeout: float) -> None:
        self.timeout = timeout
        self.give_up: float | None = None

    def start(self) -> None:
        if self.give_up is None:
            self.give_up = time.monotonic() + self.timeout

    def over(self) -> bool:
        return self.give_up is not None and time.monotonic() >= self.give_up


class ClusterSender(Sender):
    def send_batches(self, batches: dict[Shard, list[Queued]], outcomes: Outcomes) -> Outcomes:
        """One pipelined round trip per master carrying one ``SEND_MANY`` per slot.

        A slot whose script was redirected or not loaded yet, or whose master could
        not be connected to, is sent again on its own (`per_node`). A master that
        fails gives its error as the outcome of each of its messages (L-62.3).
        """
        window = _window(self._layer)

        def pack(slot: SlotShard, batch: list[Queued]) -> bytes:
            return scripts.SEND_MANY.packed(*self.send_many_arguments(slot, batch))

        for slot, batch, client, reply in per_node(batches, pack):
            try:
                if reply is None or _again(reply):
                    keys, args = self.send_many_arguments(slot, batch)
                    reply = slot.script(scripts.SEND_MANY, keys, args, window=window)
                elif isinstance(reply, CONNECTION_ERRORS):
                    raise reply
                elif isinstance(reply, redis.ResponseError):
                    raise refusal(reply, client)
            except (*CONNECTION_ERRORS, LayerOutOfMemory) as exc:
                for position, *_ in batch:
                    outcomes[position] = exc
                continue
            self.note_full(batch, self.sent(slot, reply), outcomes)
        return outcomes

    def send_many_arguments(self, shard: Shard, batch: list[Queued]) -> tuple[list[str], list[Any]]:
        keys, args = super().send_many_arguments(shard, batch)
        keys[0] = _slot(shard).global_key()
        return keys, args


def _slot(shard: Shard) -> SlotShard:
    return shard  # type: ignore[return-value]  # a cluster layer's shards are SlotShards


def _window(layer: Any) -> RetryWindow:
    """One retry window for the slots of one group send or `send_many`."""
    return RetryWindow(layer.cluster_retry_timeout)


def _again(reply: Any) -> bool:
    """A pipelined script's reply saying it did not run: sent again on its own."""
    return isinstance(reply, redis.exceptions.NoScriptError) or is_redirect(reply)


def per_node(
    per_slot: Mapping[Shard, T], pack: Callable[[SlotShard, T], bytes]
) -> list[tuple[SlotShard, T, Any, Any]]:
    """``(slot, item, client, reply)`` for every slot of `per_slot`, the packed
    commands (`pack`) of all slots one master serves sent in one pipelined round trip.

    `reply` is the command's reply (an error reply as its `redis.ResponseError`);
    ``None`` when the slot is to be sent on its own with `SlotShard.call`, which
    follows redirections and waits out an election: its master is not known, it is
    its master's only slot, or its master could not be connected to (killed, or the
    slot map is out of date after a failover: nothing was sent, and the slot map is
    read again first); or a connection error for every slot of a master whose
    connection broke mid-round trip (the commands may have run: not sent again,
    L-62.3).
    """
    results: list[tuple[SlotShard, T, Any, Any]] = []
    for client, planned in _by_node(per_slot).items():
        replies: list[Any]
        if client is None or len(planned) == 1:
            replies = [None] * len(planned)
        else:
            try:
                replies = execute_pipeline(client, [pack(slot, item) for slot, item in planned])
            except CONNECTION_ERRORS as exc:
                if nothing_ran(exc):
                    planned[0][0].lost_slot(exc)  # read the slot map again
                    replies = [None] * len(planned)
                else:
                    replies = [planned[0][0].lost(client, exc)] * len(planned)
        results.extend(
            (slot, item, client, reply)
            for (slot, item), reply in zip(planned, replies, strict=True)
        )
    return results


def _by_node(per_slot: Mapping[Shard, T]) -> dict[Any, list[tuple[SlotShard, T]]]:
    """`per_slot` grouped by the client of the master serving each slot now (`None`:
    unknown yet; those are sent one slot at a time, which retries and reports)."""
    by_node: dict[Any, list[tuple[SlotShard, T]]] = {}
    for shard, item in per_slot.items():
        slot = _slot(shard)
        try:
            client: Any = slot.client()
        except (*CONNECTION_ERRORS, redis.ResponseError, RedisClusterException):
            client = None
        by_node.setdefault(client, []).append((slot, item))
    return by_node


class ClusterReceiver(Receiver):
    def only_shard(self, names: list[str]) -> int | None:
        slots = {name_slot(name) for name in names}
        return slots.pop() if len(slots) == 1 else None

    def plan(
        self, names: list[str], every_shard: bool, only_shard: int | None = None
    ) -> list[Visit]:
        """One visit per slot (normal names too: each lives in its slot only)."""
        visits: dict[int, Visit] = {}
        shard_of = self._placement.home
        list_key = self._list_key
        prefetch = self._layer.prefetch
        for name in names:
            slot = name_slot(name)
            visit = visits.get(slot)
            if visit is None:
                visit = visits[slot] = Visit(shard_of(name))
            visit.keys.append(list_key(name))
            visit.storages.append(name)
            visit.wants.append(prefetch if name.endswith("!") else 1)
        order = list(visits.values())
        layer_random.shuffle(order)
        return order

    def _pop_pass(self, visits: list[Visit]) -> tuple[Received | None, list[Visit]]:
        """As `Receiver._pop_pass`, asking each master first which of its slots hold
        entries (one pipelined ``EXISTS`` per slot, one round trip per master) and
        popping only those: under load two round trips, not one per slot.

        Masters are visited in the order their slots come in the shuffled visits
        (A-28); a slot emptied meanwhile by another receiver is passed over.
        """
        if len(visits) < 3:
            return super()._pop_pass(visits)
        answering: list[Visit] = []
        failure: Exception | None = None
        for client, planned in _by_node({visit.shard: visit for visit in visits}).items():
            holding = [visit for _, visit in planned]
            if client is not None:
                commands = [pack_command(("EXISTS", *visit.keys)) for visit in holding]
                try:
                    replies = execute_pipeline(client, commands)
                except CONNECTION_ERRORS as exc:
                    failure = failure or planned[0][0].lost(client, exc)
                    continue
                # An error reply (a redirect): the pop follows it.
                holding = [
                    visit
                    for visit, reply in zip(holding, replies, strict=True)
                    if isinstance(reply, Exception) or reply
                ]
            answering.extend(visit for _, visit in planned)
            if holding:
                popped, _ = super()._pop_pass(holding)
                if popped is not None:
                    return popped, answering
        if failure is not None and not answering:
            raise failure
        return None, answering

    def blocking_pop(self, visits: list[Visit], timeout: float | None = None) -> Received:
        """As `Receiver.blocking_pop`; a wait ended by a redirection starts again for the
        rest of the time (the pops were cancelled and what they took put back).

        A slot's connection failing ends the wait at once (`shards_wait`, its master
        died), and while a slot of a wait on several is unreachable (the election or
        the slot map is not through yet) the wait goes in slices of `OUTAGE_SLICE`: a
        slot is waited on again, on its new master, within that time instead of after
        the whole wait on the others (measured: a worker left ``websocket.receive``
        unwatched for seconds after a failover, 1,000 messages queued on it).
        """
        if timeout is None:
            timeout = self._layer.blpop_timeout
        give_up = time.monotonic() + timeout
        delay = 0.005
        while True:
            remaining = max(give_up - time.monotonic(), 0.01)
            sliced = len(visits) > 1 and not all(_slot(visit.shard).reachable for visit in visits)
            try:
                found = super().blocking_pop(
                    visits, min(remaining, OUTAGE_SLICE) if sliced else remaining
                )
                # Early and empty: a slot's connection failed (`SlotShard.failure_ends_wait`).
                if found[0] is not None or time.monotonic() >= give_up:
                    return found
                continue
            except redis.ResponseError as exc:
                if not is_redirect(exc):
                    raise
                for visit in visits:
                    _slot(visit.shard).lost_slot(exc)
                if time.monotonic() >= give_up:
                    return None, None
                if not isinstance(exc, MovedError):
                    time.sleep(delay)  # a migration or an election in progress: back off
                    delay = min(delay * 2, 0.1)


class ClusterGroups(Groups):
    def _deliveries(self, members: list[str]) -> dict[Shard, _Delivery]:
        """One `PUSH` per slot: one entry per member, one bundle per ``P!`` (A-93)."""
        placement = self._placement
        layer = self._layer
        stats_args = self._sender.stats_args
        bundles: dict[str, list[str]] = {}
        deliveries: dict[Shard, _Delivery] = {}

        def add(shard: Shard, storage: str, copies: int, header: bytes) -> None:
            delivery = deliveries.get(shard)
            if delivery is None:
                delivery = deliveries[shard] = _Delivery(args=list(stats_args))
            delivery.keys.append(placement.list_key(storage))
            delivery.storages.append(storage)
            delivery.copies.append(copies)
            delivery.args.extend((layer.get_capacity(storage), storage, copies, header))

        for member in members:
            if "!" in member:
                bundles.setdefault(layer.non_local_name(member), []).append(member)
            else:
                add(placement.send_shard(member), member, 1, b"M")
        for storage, names in bundles.items():
            add(placement.send_shard(storage), storage, len(names), bundle_header(names))
        return deliveries

    def send_to_members(self, group: str, members: list[str], payload: bytes) -> None:
        """One pipelined round trip per master carrying one `PUSH` per slot (A-93).

        A slot whose script was redirected or not loaded yet, or whose master could
        not be connected to (a failover), is sent again on its own (`per_node`;
        `SlotShard.script` follows it, all slots within one `RetryWindow`); a master
        that fails does not keep the others' members from their copy, and its error
        is raised once they are served (L-62.3).
        """
        failure: Exception | None = None
        expiry_ms = self._sender.expiry_ms
        push = cluster_script(scripts.PUSH)
        assert push is not None
        window = _window(self._layer)

        def pack(slot: SlotShard, delivery: _Delivery) -> bytes:
            return push.packed(
                delivery.keys, (payload, expiry_ms, *delivery.args, slot.global_key())
            )

        for slot, delivery, client, reply in per_node(self._deliveries(members), pack):
            try:
                if reply is None or _again(reply):
                    reply = slot.script(
                        scripts.PUSH,
                        delivery.keys,
                        (payload, expiry_ms, *delivery.args),
                        window=window,
                    )
                elif isinstance(reply, CONNECTION_ERRORS):
                    raise reply
                elif isinstance(reply, redis.ResponseError):
                    raise refusal(reply, client)
            except (*CONNECTION_ERRORS, LayerOutOfMemory) as exc:
                failure = failure or exc
                continue
            for storage, copies, ok in zip(delivery.storages, delivery.copies, reply, strict=True):
                if not ok:
                    self._skips.skipped(group, storage, copies)
            reliable = self._layer._reliable
            if reliable is not None:  # issue 17: at-least-once members' doorbells
                stored = [name for name, ok in zip(delivery.storages, reply, strict=True) if ok]
                reliable.ring(slot, stored)
        if failure is not None:
            raise failure
