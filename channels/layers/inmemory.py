"""The in-memory channel layer: one process, many threads (L-7..L-17).

`runserver` runs daphne and worker threads in one process on this layer, so
every operation holds one lock, and a blocking `receive` sleeps on a condition
that the matching `send` notifies (L-12): no polling.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import deque
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from .announcements import LocalAnnouncements
from .base import BaseChannelLayer, FullSkipReporter, layer_random

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

    def pop(self) -> tuple[str, dict[str, Any]]:
        name = self.names.popleft()
        if self.names:
            return name, _deep_copy(self.message)
        return name, self.message


@dataclass(slots=True)
class _Counters:
    messages_count: int = 0
    channel_full_count: int = 0
    touched: float = field(default_factory=time.monotonic)


class ChannelLayer(LocalAnnouncements, BaseChannelLayer):
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

    # -- send / receive -------------------------------------------------------

    def send(self, channel: str, message: dict[str, Any]) -> None:
        self.valid_channel_name(channel)
        snapshot, size = self.snapshot(message)
        self.check_size(snapshot, size, channel)
        storage = self.non_local_name(channel)
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
                self._wait(names, deadline - now)

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
            self._channel_counters.clear()
            self._global = _Counters()

    def global_statistics(self) -> dict[str, int]:
        with self._lock:
            return {
                "messages_count": self._global.messages_count,
                "channel_full_count": self._global.channel_full_count,
            }

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
            return {
                "messages_count": counters.messages_count,
                "messages_pending": pending,
                "messages_max_age": max_age,
                "channel_full_count": counters.channel_full_count,
            }

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
        for name in names:
            queue = self._queues.get(name)
            if not queue:
                continue
            self._expire(queue, now)
            if not queue:
                continue
            entry = queue[0]
            result = entry.pop()
            if not entry.names:
                queue.popleft()
            if not queue:
                del self._queues[name]
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

    def _count(self, storage: str, sent: int = 0, full: int = 0) -> None:
        counters = self._channel_counters.get(storage)
        if counters is None:
            counters = self._channel_counters[storage] = _Counters()
        counters.messages_count += sent
        counters.channel_full_count += full
        counters.touched = time.monotonic()
        self._global.messages_count += sent
        self._global.channel_full_count += full

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
