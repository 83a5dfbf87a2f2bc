"""One reactor timer for the deadlines of many WebSockets (D-24, D-43; issue 9, W5).

A timer per socket re-armed at every ping interval costs a heap push and a
``DelayedCall`` per socket: 10,000 idle sockets with a 20 s interval are 500 re-arms
per second. Here deadlines are rounded up to the next whole `resolution` (1 s) and
kept in buckets; ONE ``callLater`` fires for the earliest bucket and calls every
socket due in it. A deadline may fire up to one resolution late, which the
connect timeout, ping interval and lifetime (all whole seconds by default) allow.

`OrderedDeadlines` is the same for deadlines that arrive in order (every HTTP request's
timeout and layer-expiry check, D-24): a dictionary operation per deadline (issue 20).
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable
from typing import Any

logger = logging.getLogger("daphne.server")

Due = Callable[[], None]


class DeadlineSweep:
    """Buckets of `item → callback`, swept by one timer on `reactor()`'s clock."""

    def __init__(self, reactor: Callable[[], Any], resolution: float = 1.0) -> None:
        # A callable, so that tests swapping the factory's reactor for a Clock are seen.
        self._reactor = reactor
        self.resolution = resolution
        self._buckets: dict[int, dict[Any, Due]] = {}
        self._bucket_of: dict[Any, int] = {}
        self._call: Any = None
        self._call_bucket: int | None = None

    def __len__(self) -> int:
        return len(self._bucket_of)

    def schedule(self, item: Any, deadline: float, due: Due) -> None:
        """Call `due()` once at (or up to one resolution after) `deadline`."""
        if item in self._bucket_of:  # no call for a new item: one per request (issue 20)
            self.cancel(item)
        # Never the current bucket: a deadline already past fires at the next tick,
        # so an item that re-schedules itself from its callback cannot loop.
        now = self._reactor().seconds()
        bucket = math.floor(max(deadline, now) / self.resolution) + 1
        self._buckets.setdefault(bucket, {})[item] = due
        self._bucket_of[item] = bucket
        if self._call_bucket is None or bucket < self._call_bucket:
            self._arm(bucket)

    def cancel(self, item: Any) -> None:
        bucket = self._bucket_of.pop(item, None)
        if bucket is None:
            return
        members = self._buckets[bucket]
        del members[item]
        if not members:
            del self._buckets[bucket]
        # The timer stays armed: an early tick that finds nothing due re-arms itself.

    def _arm(self, bucket: int) -> None:
        if self._call is not None and self._call.active():
            self._call.cancel()
        reactor = self._reactor()
        delay = max(bucket * self.resolution - reactor.seconds(), 0.0)
        self._call = reactor.callLater(delay, self._tick)
        self._call_bucket = bucket

    @staticmethod
    def _call_due(due: Due) -> None:
        try:
            due()
        except Exception:
            # D-16: one socket's failing check is logged and must not stop the others'.
            logger.exception("Error checking timeouts")

    def _tick(self) -> None:
        self._call = None
        self._call_bucket = None
        now_bucket = math.floor(self._reactor().seconds() / self.resolution)
        for bucket in sorted(b for b in self._buckets if b <= now_bucket):
            members = self._buckets.pop(bucket)
            for item in members:
                del self._bucket_of[item]
            # A callback may schedule its item again (into a later bucket): fine,
            # this bucket is already out of the table.
            for due in members.values():
                self._call_due(due)
        if self._buckets:
            self._arm(min(self._buckets))


class OrderedDeadlines:
    """Deadlines that arrive in order, such as every request's start plus the same
    timeout: an insertion-ordered dict checked from its oldest entry by one timer.

    Adding or removing one is a dictionary operation and no Python call, where
    `DeadlineSweep` costs a few per deadline (issue 20: about 3% of daphne's
    instructions per HTTP request). A deadline earlier than the latest one held (the
    timeout was lowered meanwhile) would wait behind later ones, so it goes to a
    `DeadlineSweep` instead. Deadlines fire up to one `resolution` late, as there.
    """

    def __init__(self, reactor: Callable[[], Any], resolution: float = 1.0) -> None:
        self._reactor = reactor
        self.resolution = resolution
        self._held: dict[Any, tuple[float, Due]] = {}
        self._latest = -math.inf
        self._call: Any = None
        self._out_of_order = DeadlineSweep(reactor, resolution)

    def __len__(self) -> int:
        return len(self._held) + len(self._out_of_order)

    def schedule(self, item: Any, deadline: float, due: Due) -> None:
        """Call `due()` once at (or up to one resolution after) `deadline`."""
        held = self._held
        if item in held:
            del held[item]  # to the end: the dict's order is the deadlines'
        if deadline < self._latest:
            self._out_of_order.schedule(item, deadline, due)
            return
        self._latest = deadline
        held[item] = (deadline, due)
        if self._call is None:  # none pending (or in its callbacks): for the oldest
            self._arm(next(iter(held.values()))[0])

    def cancel(self, item: Any) -> None:
        if self._held.pop(item, None) is None:
            self._out_of_order.cancel(item)

    def _arm(self, deadline: float) -> None:
        reactor = self._reactor()
        at = (math.floor(deadline / self.resolution) + 1) * self.resolution
        self._call = reactor.callLater(max(at - reactor.seconds(), 0.0), self._tick)

    def _tick(self) -> None:
        self._call = None
        now = self._reactor().seconds()
        held = self._held
        due = []
        for item, (deadline, call) in held.items():
            if deadline > now:
                break  # the rest are later still
            due.append((item, call))
        for item, _ in due:  # out of the table before any callback runs
            del held[item]
        for _, call in due:
            DeadlineSweep._call_due(call)
        if held and self._call is None:
            self._arm(next(iter(held.values()))[0])
