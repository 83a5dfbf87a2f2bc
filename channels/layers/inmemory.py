"""The in-memory channel layer: one process, many threads (L-7..L-17).

`runserver` runs daphne and worker threads in one process on this layer, so
every operation holds one lock, and a blocking `receive` sleeps on a condition
that the matching `send` notifies (L-12): no polling.
"""

from __future__ import annotations

import fnmatch
import logging
import threading
import time
from collections import deque
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from .announcements import LocalAnnouncements
from .base import DELIVERY_KEY, BaseChannelLayer, FullSkipReporter, layer_random
from .delivery import DeadLetter, DeliveryPolicy

__all__ = ["ChannelLayer", "channel_layer"]

logger = logging.getLogger(__name__)


@dataclass(slots=True)
class _Entry:
    """One stored queue entry.

    A plain send stores one name. A group send into a process-specific queue
    stores every member behind that ``P!`` in one entry (A-93), handed out
    one name at a time, each with its own copy of the message.
    """

    deadline: float
    names: deque[str]
    message: dict[str, Any]
    # At-least-once: deliveries so far (issue 17).
    deliveries: int = 0

    def pop(self) -> tuple[str, dict[str, Any]]:
        name = self.names.popleft()
        if self.names:
            return name, _deep_copy(self.message)
        return name, self.message


@dataclass(slots=True)
class _Lease:
    """An at-least-once message handed out and not yet acknowledged (issue 17)."""

    storage: str
    channel: str
    message: dict[str, Any]
    count: int
    deadline: float


@dataclass(slots=True)
class _Counters:
    messages_count: int = 0
    channel_full_count: int = 0
    dead_lettered_count: int = 0
    redelivered_count: int = 0
    too_large_count: int = 0
    touched: float = field(default_factory=time.monotonic)


class _Leasing:
    """The in-memory layer's at-least-once delivery (issue 17): leases, redelivery and
    dead letters. A mixin of `ChannelLayer`, whose lock, queues and counters it uses."""

    if TYPE_CHECKING:
        _lock: threading.Lock
        _queues: dict[str, deque[_Entry]]
        _waiters: dict[str, set[threading.Condition]]
        _leases: dict[str, _Lease]
        _lease_ids: int
        _dead: dict[str, list[DeadLetter]]
        delivery: DeliveryPolicy
        expiry: int | float

        def _store(self, storage: str, entry: _Entry) -> None: ...

        def _count(
            self,
            storage: str,
            sent: int = 0,
            full: int = 0,
            dead: int = 0,
            redelivered: int = 0,
            too_large: int = 0,
        ) -> None: ...

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


class ChannelLayer(LocalAnnouncements, _Leasing, BaseChannelLayer):
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

    # -- groups ---------------------------------------------------------------

    def group_add(self, group: str, channel: str) -> None:
        self.valid_group_name(group)
        self.valid_channel_name(channel)
        with self._lock:
            self._groups.setdefault(group, {})[channel] = time.monotonic()

    def group_discard(self, group: str, channel: str) -> None:
        self.valid_group_name(group)
        self.valid_channel_name(channel)
        with self._lock:
            members = self._groups.get(group)
            if members is not None:
                members.pop(channel, None)
                if not members:
                    del self._groups[group]

    def group_channels(self, group: str) -> list[str]:
        self.valid_group_name(group)
        with self._lock:
            return self._current_members(group, time.monotonic())

    def send_group(self, group: str, message: dict[str, Any]) -> None:
        self.valid_group_name(group)
        snapshot, size = self.snapshot(message)
        self.check_size(snapshot, size, group)
        now = time.monotonic()
        with self._lock:
            # L-11: expired messages evict their channels before we look at members.
            for member in self._current_members(group, now):
                queue = self._queues.get(self.non_local_name(member))
                if queue is not None:
                    self._expire(queue, now)
            by_storage: dict[str, list[str]] = {}
            for member in self._current_members(group, now):
                by_storage.setdefault(self.non_local_name(member), []).append(member)
            for storage, members in by_storage.items():
                if storage.endswith("!"):
                    # one unit of capacity however many members share this P!.
                    self._deliver_group(group, storage, [deque(members)], snapshot, now)
                else:
                    self._deliver_group(
                        group, storage, [deque([m]) for m in members], snapshot, now
                    )

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

    def _deliver_group(
        self,
        group: str,
        storage: str,
        bundles: list[deque[str]],
        snapshot: dict[str, Any],
        now: float,
    ) -> None:
        capacity = self.get_capacity(storage)
        for names in bundles:
            queue = self._queues.get(storage)
            if queue is not None and len(queue) >= capacity:
                # skipped, never raised; counted and logged per member.
                self._count(storage, full=len(names))
                for name in names:
                    self._skips.skipped(group, name)
                continue
            self._store(storage, _Entry(now + self.expiry, names, _deep_copy(snapshot)))
            self._count(storage, sent=len(names))

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

    def _evict_from_groups(self, names: Iterable[str]) -> None:
        # L-11 / A-46: a channel whose message expired unread leaves every group.
        names = set(names)
        for group in list(self._groups):
            members = self._groups[group]
            for name in names & members.keys():
                del members[name]
            if not members:
                del self._groups[group]

    def _current_members(self, group: str, now: float) -> list[str]:
        members = self._groups.get(group)
        if not members:
            return []
        oldest = now - self.group_expiry
        for name in [name for name, added in members.items() if added < oldest]:
            del members[name]
        if not members:
            del self._groups[group]
        return list(members)

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


def _deep_copy(value: Any) -> Any:
    """Copy a validated message like ``copy.deepcopy`` (L-6): dicts and lists are
    copied, a tuple stays a tuple (the same one when it holds only immutable values)."""
    kind = type(value)
    if kind is dict:
        return {key: _deep_copy(item) for key, item in value.items()}
    if kind is list:
        return [_deep_copy(item) for item in value]
    if kind is tuple:
        items = [_deep_copy(item) for item in value]
        if all(copied is item for copied, item in zip(items, value, strict=True)):
            return value
        return tuple(items)
    return value


channel_layer = ChannelLayer()
