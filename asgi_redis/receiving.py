"""Receiving: which lists on which shards a receive looks at, and handing out what it found
(A-28, A-32, L-25, L-29, L-30, L-62.5).

A receive plan is made once per list of names (a worker or a protocol server
receives on the same names every time): the names validated (A-13) and, when
they all sit on one shard, every rotation of one shuffled order with its
`popping.Visit`, so each name comes first equally often (A-28). Normal names
on several shards are visited one shard per non-blocking call, in turn, and
every shard when blocking (L-25).

A receive serves messages already buffered from a ``P!`` batch first, then
pops: one blocking pop when it may wait at once (`popping.can_wait_at_once`),
else a non-blocking pass over the visits and, when blocking, a wait on every
shard that answered (`shards_wait`). One unreachable shard does not stop a
receive over several; only when none answers does it raise (L-62.5).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from channels.layers.base import layer_random

from .buffer import PrefetchBuffer
from .entries import DEADLINE_DIGITS, decode_entry
from .placement import Placement
from .popping import Visit, can_wait_at_once, pop
from .shard import CONNECTION_ERRORS, Shard
from .sharding import RoundRobin, consistent_hash
from .shards_wait import blocking_pop

if TYPE_CHECKING:
    from .core import RedisChannelLayer

__all__ = ["ReceivePlan", "Receiver", "Received"]

# An entry's kind byte, ``M`` for one message to the list's own channel, and its body.
_KIND = DEADLINE_DIGITS
_OWN = ord("M")
_BODY = DEADLINE_DIGITS + 1

# What a receive returns: ``(channel, message)``, or ``(None, None)``.
Received = tuple[str | None, dict[str, Any] | None]
# The validated names in this call's order, and their visits when the plan has them.
Order = tuple[list[str], list[Visit] | None]


@dataclass(slots=True)
class ReceivePlan:
    """What receiving on one list of names needs that depends only on the names."""

    # Validated, in the caller's order.
    names: list[str]
    # When every name sits on one shard (the usual case): ``(names, [visit])`` per
    # rotation of a shuffled order, one picked at random per call. Empty
    # otherwise: normal names on several shards are visited per call (L-25).
    orders: list[tuple[list[str], list[Visit]]]


class Receiver:
    """The receive side of one layer instance."""

    def __init__(
        self, layer: RedisChannelLayer, placement: Placement[Shard], buffer: PrefetchBuffer
    ) -> None:
        self._layer = layer
        self._placement = placement
        self._shards = placement.shards
        self._ring_size = placement.ring_size
        self._list_key = placement.list_key
        self.buffer = buffer
        self._decode = layer._codec.decode
        self._receive_names = layer.receive_names
        self._rotation = RoundRobin()
        # Lists of names -> their plans; forgotten all at once past `receive_plan_memory`.
        self.plans: dict[tuple[Any, ...], ReceivePlan] = {}

    # -- receive (A-32, L-29, L-30) ------------------------------------------------------

    def receive(self, channels: Iterable[str], block: bool) -> Received:
        names, visits = self.order(channels)
        return self.receive_from(names, visits, block)

    def receive_from(self, names: list[str], visits: list[Visit] | None, block: bool) -> Received:
        if not names:
            return None, None
        if self.buffer:
            found = self.take_buffered(names)
            if found is not None:
                return found
        layer = self._layer
        if visits is None:
            visits = self.plan(names, every_shard=block)
        if block and can_wait_at_once(visits, layer.clock_check_interval):
            return self.blocking_pop(visits)  # returns at once when an entry waits
        popped, answering = self._pop_pass(visits)
        if popped is not None:
            return popped
        if not block:
            return None, None
        return self.blocking_pop(answering)

    def buffered(self, channels: Iterable[str]) -> tuple[str, dict[str, Any]] | None:
        """A message popped already for one of `channels`, if any (never a round trip)."""
        names = self.receive_plan(channels).names  # validated once per list
        return self.take_buffered(names) if self.buffer else None

    def _pop_pass(self, visits: list[Visit]) -> tuple[Received | None, list[Visit]]:
        """Pop from the first visit with a live entry; also return the visits that answered.

        One unreachable shard must not stop a receive over several (L-62.5): its
        failure is logged by the shard and the others are still served. Only
        when no shard answers does the receive raise.
        """
        answering: list[Visit] = []
        failure = None
        clock_check_interval = self._layer.clock_check_interval
        for visit in visits:
            try:
                popped = pop(visit, clock_check_interval)
            except CONNECTION_ERRORS as exc:
                failure = failure or exc
                continue
            if popped is not None:
                index, entries = popped
                return self.hand_out(visit.shard, visit.storages[index], entries), answering
            answering.append(visit)
        if failure is not None and not answering:
            raise failure
        return None, answering

    def blocking_pop(self, visits: list[Visit], timeout: float | None = None) -> Received:
        """Wait up to `timeout` (default `blpop_timeout`) on every shard of `visits` at
        once (A-32, L-62.5)."""
        if timeout is None:
            timeout = self._layer.blpop_timeout
        popped = blocking_pop(visits, timeout)
        if popped is None:
            return None, None
        visit, index, entries = popped
        return self.hand_out(visit.shard, visit.storages[index], entries)

    def hand_out(
        self, shard: Shard, storage: str, entries: list[bytes]
    ) -> tuple[str, dict[str, Any]]:
        """Return the first message of `entries`; buffer the rest (process-specific only)."""
        entry = entries[0]
        if entry[_KIND] == _OWN and len(entries) == 1:
            # The usual entry: one message to the list's own channel (`entries`).
            return storage, self._decode(entry[_BODY:])
        deadline, names, payload = decode_entry(entry, storage)
        if len(names) > 1 or len(entries) > 1:
            local_deadline = deadline / 1000 - shard.clock_offset
            extra = [(local_deadline, name, payload) for name in names[1:]]
            for entry in entries[1:]:
                deadline, more_names, more_payload = decode_entry(entry, storage)
                local_deadline = deadline / 1000 - shard.clock_offset
                extra.extend((local_deadline, name, more_payload) for name in more_names)
            self.buffer.add(storage, extra)
        return names[0], self._decode(payload)

    def take_buffered(self, names: list[str]) -> tuple[str, dict[str, Any]] | None:
        # Buffered messages were popped already: serving them first keeps their
        # wait short; a refill happens only when they are gone (A-28 still holds
        # for the Redis pass, which shuffles).
        found = self.buffer.take(names)
        if found is None:
            return None
        return found[0], self._decode(found[1])

    # -- plans (A-13, A-28, L-25) ----------------------------------------------------------

    def order(self, channels: Iterable[str]) -> Order:
        """The validated names in this call's order (A-28), and their visits when the
        plan has them ready (names on one shard), else `None` (build them per call)."""
        plan = self.receive_plan(channels)
        orders = plan.orders
        if orders:
            if len(orders) == 1:
                return orders[0]
            # `random()` (C) rather than `randrange` (Python, a few calls deep): uniform
            # over the rotations just the same.
            return orders[int(layer_random.random() * len(orders))]
        names = list(plan.names)
        layer_random.shuffle(names)
        return names, None

    def receive_plan(self, channels: Iterable[str]) -> ReceivePlan:
        """The cached plan for this list of names, validated (A-13) and built on first use.

        A worker or a protocol server receives on the same names every time;
        validating them, grouping them by shard and packing the pop commands
        again on every call was a fifth of the worker's CPU per message.
        """
        if isinstance(channels, (str, bytes)):
            self._receive_names(channels)  # raises: a bare name is not a list
        plans = self.plans
        try:
            key = tuple(channels)
            plan = plans.get(key)
        except TypeError:  # not iterable, or an unhashable (so invalid) name
            return self._build_plan(self._receive_names(channels))
        if plan is None:
            plan = self._build_plan(self._receive_names(key))
            if len(plans) >= self._layer.receive_plan_memory:
                plans.clear()  # many different lists: start over
            plans[key] = plan
        return plan

    def _build_plan(self, names: list[str]) -> ReceivePlan:
        index = self.only_shard(names)
        if index is None or not names or len(names) > self._layer.receive_plan_orders:
            return ReceivePlan(names, [])
        # Every rotation of one shuffled order: each name comes first in as many
        # receives as any other, so a busy channel cannot starve a quiet one.
        shuffled = list(names)
        layer_random.shuffle(shuffled)
        orders = []
        for start in range(len(shuffled)):
            order = shuffled[start:] + shuffled[:start]
            orders.append((order, self.plan(order, every_shard=False, only_shard=index)))
        return ReceivePlan(names, orders)

    def only_shard(self, names: list[str]) -> int | None:
        """The shard every receive on `names` visits alone, if there is one (L-25)."""
        if self._ring_size == 1:
            return 0
        if any("?" not in name and not name.endswith("!") for name in names):
            return None  # normal names: one shard per call in turn, or every shard
        indexes = {consistent_hash(name, self._ring_size) for name in names}
        return indexes.pop() if len(indexes) == 1 else None

    def plan(
        self, names: list[str], every_shard: bool, only_shard: int | None = None
    ) -> list[Visit]:
        """Group the names by shard (L-25); normal names go to one or every shard."""
        visits: dict[int, Visit] = {}
        shards = self._shards
        ring_size = self._ring_size
        list_key = self._list_key

        def add(index: int, name: str, want: int) -> None:
            visit = visits.get(index)
            if visit is None:
                visit = visits[index] = Visit(shards[index])
            visit.keys.append(list_key(name))
            visit.storages.append(name)
            visit.wants.append(want)

        normal_shards: Sequence[int] | None = None
        for name in names:
            if name.endswith("!"):
                add(consistent_hash(name, ring_size), name, self._layer.prefetch)
            elif "?" in name:
                add(consistent_hash(name, ring_size), name, 1)
            else:
                if normal_shards is None:
                    if only_shard is not None:
                        normal_shards = (only_shard,)
                    elif every_shard:
                        normal_shards = range(ring_size)
                    else:
                        normal_shards = (self._rotation.next(ring_size),)
                for index in normal_shards:
                    add(index, name, 1)
        order = list(visits.values())
        layer_random.shuffle(order)
        return order

    def channel_in_use(self, name: str) -> bool:
        """`new_channel` hook: does the candidate's list exist on its shard (L-32)?"""
        key = self._list_key(name)
        return bool(self._placement.home(name).call(lambda client: client.exists(key)))
