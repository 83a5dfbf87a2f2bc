"""The in-memory layer's at-least-once delivery (issue 17): leases, redelivery and dead
letters, as `_Leasing`, a mixin of `inmemory.ChannelLayer`."""

from __future__ import annotations

import fnmatch
import logging
import threading
import time
from collections import deque
from typing import TYPE_CHECKING, Any

from .base import DELIVERY_KEY
from .delivery import DeadLetter, DeliveryPolicy
from .inmemory_entries import _Entry, _LayerState, _Lease

__all__: list[str] = []  # private: the methods are `inmemory.ChannelLayer`'s

# The layer's logger, as before the split.
logger = logging.getLogger("channels.layers.inmemory")


class _Leasing(_LayerState):
    """The in-memory layer's at-least-once delivery (issue 17): leases, redelivery and
    dead letters. A mixin of `ChannelLayer`, whose lock, queues and counters it uses."""

    if TYPE_CHECKING:
        _waiters: dict[str, set[threading.Condition]]
        _leases: dict[str, _Lease]
        _lease_ids: int
        _dead: dict[str, list[DeadLetter]]
        delivery: DeliveryPolicy
        expiry: int | float

    def _lease(
        self,
        storage: str,
        entry: _Entry,
        kept: dict[str, Any],
        result: tuple[str, dict[str, Any]],
        now: float,
    ) -> tuple[str, dict[str, Any]]:
        channel, message = result
        count = entry.deliveries + 1
        self._lease_ids += 1
        lease_id = str(self._lease_ids)
        self._leases[lease_id] = _Lease(
            storage, channel, kept, count, now + self.delivery.ack_timeout
        )
        if count > 1:
            self._count(storage, redelivered=1)
        message[DELIVERY_KEY] = {"id": lease_id, "count": count}
        return channel, message

    def _reclaim(self, now: float, only: str | None = None) -> None:
        """Leases that ended go back to the head of their queue, or to dead letters."""
        back: dict[str, list[_Entry]] = {}
        for lease_id, lease in list(self._leases.items()):
            if lease.deadline > now and lease_id != only:
                continue
            del self._leases[lease_id]
            if lease.count >= self.delivery.max_deliveries:
                self._dead.setdefault(lease.storage, []).append(
                    DeadLetter(lease.channel, lease.message, lease.count, time.time(), lease_id)
                )
                self._count(lease.storage, dead=1)
                logger.warning(
                    "Message on %s was not acknowledged after %d deliveries; moved to dead letters",
                    lease.channel,
                    lease.count,
                )
                continue
            entry = _Entry(now + self.expiry, deque([lease.channel]), lease.message, lease.count)
            back.setdefault(lease.storage, []).append(entry)
        for storage, entries in back.items():
            queue = self._queues.setdefault(storage, deque())
            queue.extendleft(reversed(entries))
            for condition in self._waiters.get(storage, ()):
                condition.notify()

    def ack(self, channel: str, delivery_id: str) -> bool:
        """Acknowledge an at-least-once delivery; False when its lease had ended already."""
        with self._lock:
            return self._leases.pop(delivery_id, None) is not None

    def nack(self, channel: str, delivery_id: str, delay: float = 0.0) -> bool:
        """Deliver the message again after `delay` seconds (counted as a delivery)."""
        with self._lock:
            lease = self._leases.get(delivery_id)
            if lease is None:
                return False
            now = time.monotonic()
            if lease.count >= self.delivery.max_deliveries:
                delay = 0  # the last delivery failed: a dead letter now
            lease.deadline = now + max(0.0, delay)
            if delay <= 0:
                self._reclaim(now, only=delivery_id)
            return True

    def release(self, channel: str, delivery_id: str) -> bool:
        """Hand a message back unstarted: delivered again at once, not counted."""
        with self._lock:
            lease = self._leases.get(delivery_id)
            if lease is None:
                return False
            lease.count -= 1
            self._reclaim(time.monotonic(), only=delivery_id)
            return True

    def dead_letters(self, pattern: str = "*") -> list[DeadLetter]:
        """The dead letters of channels matching glob `pattern`, oldest first per channel."""
        with self._lock:
            return [
                letter
                for storage, letters in sorted(self._dead.items())
                if fnmatch.fnmatchcase(storage, pattern)
                for letter in letters
            ]

    def requeue_dead_letters(self, pattern: str = "*") -> int:
        """Send the dead letters of matching channels again (counts start over)."""
        with self._lock:
            now = time.monotonic()
            moved = 0
            for storage in [s for s in self._dead if fnmatch.fnmatchcase(s, pattern)]:
                for letter in self._dead.pop(storage):
                    entry = _Entry(now + self.expiry, deque([letter.channel]), letter.content)
                    self._store(storage, entry)
                    moved += 1
            return moved

    def purge_dead_letters(self, pattern: str = "*") -> int:
        """Delete the dead letters of matching channels; returns how many went."""
        with self._lock:
            gone = 0
            for storage in [s for s in self._dead if fnmatch.fnmatchcase(s, pattern)]:
                gone += len(self._dead.pop(storage))
            return gone
