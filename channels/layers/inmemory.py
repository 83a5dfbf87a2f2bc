"""The in-memory channel layer: one process, many threads (L-7..L-17).

`runserver` runs daphne and worker threads in one process on this layer, so
every operation holds one lock, and a blocking `receive` sleeps on a condition
that the matching `send` notifies (L-12): no polling.

The pieces: `inmemory_entries` (what is stored), `inmemory_groups` (groups, a mixin)
and `inmemory_leasing` (at-least-once delivery, a mixin); the queues, sends, receives,
flush and statistics are here.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import deque
from collections.abc import Iterable, Mapping
from typing import Any

from .announcements import LocalAnnouncements
from .base import BaseChannelLayer, FullSkipReporter, layer_random
from .delivery import DeadLetter, DeliveryPolicy
from .inmemory_entries import _Counters, _deep_copy, _Entry, _Lease
from .inmemory_groups import _Groups
from .inmemory_leasing import _Leasing

__all__ = ["ChannelLayer", "channel_layer"]

logger = logging.getLogger(__name__)


class ChannelLayer(LocalAnnouncements, _Leasing, _Groups, BaseChannelLayer):
    """In-memory layer for one process (L-8). Thread-safe."""

    extensions = ["groups", "flush", "statistics"]

    # How long a blocking receive waits before returning (None, None) (L-12).
    blocking_timeout = 1.0
    # Unread channels are swept this often so dead reply channels do not pile up.
    sweep_interval = 1.0
    # Per-channel counters of channels idle this long are forgotten.
    channel_statistics_expiry = 3600

    def __init__(
        self,
        expiry: int | float = 60,
        group_expiry: int | float = 86400,
        capacity: int = 10,
        channel_capacity: Mapping[Any, int] | None = None,
        at_least_once: Iterable[Any] | None = None,
        ack_timeout: int | float = 30,
        max_deliveries: int = 5,
    ) -> None:
        super().__init__(
            expiry=expiry,
            group_expiry=group_expiry,
            capacity=capacity,
            channel_capacity=channel_capacity,
        )
        self._lock = threading.Lock()
        self._queues: dict[str, deque[_Entry]] = {}
        # group -> {member channel: monotonic time of latest add}
        self._groups: dict[str, dict[str, float]] = {}
        # storage name -> conditions of receivers blocked on it
        self._waiters: dict[str, set[threading.Condition]] = {}
        self._channel_counters: dict[str, _Counters] = {}
        self._global = _Counters()
        self._next_sweep = time.monotonic() + self.sweep_interval
        self._skips = FullSkipReporter(logger)
        # Issue 17: at-least-once channels, their leases and dead letters.
        self.delivery = DeliveryPolicy(at_least_once, ack_timeout, max_deliveries)
        if self.delivery.enabled:
            self.extensions = [*type(self).extensions, "at_least_once"]
        self._leases: dict[str, _Lease] = {}
        self._lease_ids = 0
        self._dead: dict[str, list[DeadLetter]] = {}

    # -- send / receive -------------------------------------------------------

    def send(self, channel: str, message: dict[str, Any]) -> None:
        self.valid_channel_name(channel)
        snapshot, size = self.snapshot(message)
        storage = self.non_local_name(channel)
        try:
            self.check_size(snapshot, size, channel)
        except self.MessageTooLarge:
            with self._lock:
                self._count(storage, too_large=1)  # issue 17 item 2
            raise
        now = time.monotonic()
        with self._lock:
            self._maybe_sweep(now)
            queue = self._queues.get(storage)
            if queue is not None:
                self._expire(queue, now)
            capacity = self.get_capacity(storage)
            if queue is not None and len(queue) >= capacity:
                self._count(storage, full=1)
                raise self.ChannelFull(f"Channel {storage!r} is full ({capacity} messages pending)")
            self._store(storage, _Entry(now + self.expiry, deque([channel]), snapshot))
            self._count(storage, sent=1)

    def receive(
        self, channels: Iterable[str], block: bool = False
    ) -> tuple[str | None, dict[str, Any] | None]:
        names = self.receive_names(channels)
        if not names:
            return None, None
        layer_random.shuffle(names)
        deadline = None
        with self._lock:
            while True:
                now = time.monotonic()
                self._maybe_sweep(now)
                found = self._pop_first(names, now)
                if found is not None or not block:
                    return found or (None, None)
                if deadline is None:
                    deadline = now + self.blocking_timeout
                elif now >= deadline:
                    return None, None
                wake = deadline
                if self._leases:  # a lease may end (and its message come back) sooner
                    wake = min(wake, min(lease.deadline for lease in self._leases.values()))
                self._wait(names, max(0.0, wake - now))

    def channel_in_use(self, name: str) -> bool:
        with self._lock:
            return bool(self._queues.get(name))

    # -- flush and statistics -------------------------------------------------

    def flush(self) -> None:
        with self._lock:
            self._queues.clear()
            self._groups.clear()
            self._leases.clear()
            self._dead.clear()
            self._channel_counters.clear()
            self._global = _Counters()

    def global_statistics(self) -> dict[str, int]:
        with self._lock:
            figures = {
                "messages_count": self._global.messages_count,
                "channel_full_count": self._global.channel_full_count,
            }
            if self.delivery.enabled:  # issue 17; absent otherwise (L-39's exact keys)
                figures["dead_lettered_count"] = self._global.dead_lettered_count
                figures["redelivered_count"] = self._global.redelivered_count
            if self._global.too_large_count:  # issue 17 item 2, once not zero
                figures["too_large_count"] = self._global.too_large_count
            return figures

    def channel_statistics(self, channel: str) -> dict[str, int]:
        self.valid_channel_name(channel)
        storage = self.non_local_name(channel)
        now = time.monotonic()
        with self._lock:
            queue = self._queues.get(storage)
            if queue is not None:
                self._expire(queue, now)
            counters = self._channel_counters.get(storage) or _Counters()
            pending = len(queue) if queue else 0
            max_age = int(now - (queue[0].deadline - self.expiry)) if queue else 0
            figures = {
                "messages_count": counters.messages_count,
                "messages_pending": pending,
                "messages_max_age": max_age,
                "channel_full_count": counters.channel_full_count,
            }
            if self.delivery.enabled:
                figures["dead_lettered_count"] = counters.dead_lettered_count
                figures["redelivered_count"] = counters.redelivered_count
            if counters.too_large_count:
                figures["too_large_count"] = counters.too_large_count
            return figures

    # -- internals (call with the lock held) ----------------------------------

    def _store(self, storage: str, entry: _Entry) -> None:
        queue = self._queues.get(storage)
        if queue is None:
            queue = self._queues[storage] = deque()
        queue.append(entry)
        for condition in self._waiters.get(storage, ()):
            condition.notify()

    def _pop_first(self, names: list[str], now: float) -> tuple[str, dict[str, Any]] | None:
        if self._leases:
            self._reclaim(now)
        for name in names:
            queue = self._queues.get(name)
            if not queue:
                continue
            self._expire(queue, now)
            if not queue:
                continue
            entry = queue[0]
            leased = self.delivery.enabled and self.delivery.applies(name)
            if leased:
                kept = _deep_copy(entry.message)
            result = entry.pop()
            if not entry.names:
                queue.popleft()
            if not queue:
                del self._queues[name]
            if leased:
                return self._lease(name, entry, kept, result, now)
            return result
        return None

    def _wait(self, names: list[str], timeout: float) -> None:
        condition = threading.Condition(self._lock)
        for name in names:
            self._waiters.setdefault(name, set()).add(condition)
        try:
            condition.wait(timeout)
        finally:
            for name in names:
                waiting = self._waiters[name]
                waiting.discard(condition)
                if not waiting:
                    del self._waiters[name]

    def _expire(self, queue: deque[_Entry], now: float) -> None:
        # Deadlines grow along a queue, so expired entries are at its front.
        while queue and queue[0].deadline <= now:
            self._evict_from_groups(queue.popleft().names)

    def _count(
        self,
        storage: str,
        sent: int = 0,
        full: int = 0,
        dead: int = 0,
        redelivered: int = 0,
        too_large: int = 0,
    ) -> None:
        counters = self._channel_counters.get(storage)
        if counters is None:
            counters = self._channel_counters[storage] = _Counters()
        counters.messages_count += sent
        counters.channel_full_count += full
        counters.touched = time.monotonic()
        self._global.messages_count += sent
        self._global.channel_full_count += full
        if dead or redelivered or too_large:
            counters.too_large_count += too_large
            self._global.too_large_count += too_large
            counters.dead_lettered_count += dead
            counters.redelivered_count += redelivered
            self._global.dead_lettered_count += dead
            self._global.redelivered_count += redelivered

    def _maybe_sweep(self, now: float) -> None:
        """Drop expired messages and stale counters of channels nobody reads."""
        if now < self._next_sweep:
            return
        self._next_sweep = now + self.sweep_interval
        for storage in list(self._queues):
            queue = self._queues[storage]
            self._expire(queue, now)
            if not queue:
                del self._queues[storage]
        stale = now - self.channel_statistics_expiry
        for storage in [s for s, c in self._channel_counters.items() if c.touched < stale]:
            del self._channel_counters[storage]


channel_layer = ChannelLayer()
