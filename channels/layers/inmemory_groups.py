"""The in-memory layer's groups (A-41..A-46, A-93, L-11): membership with expiry and group
sends, as `_Groups`, a mixin of `inmemory.ChannelLayer`."""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

from .base import BaseChannelLayer
from .inmemory_entries import _deep_copy, _Entry, _LayerState

__all__: list[str] = []  # private: the methods are `inmemory.ChannelLayer`'s


class _Groups(_LayerState, BaseChannelLayer):
    """Mixin of `ChannelLayer` (before `BaseChannelLayer` in its bases): groups, over its
    lock, queues and counters. Call the underscored methods with the lock held."""

    if TYPE_CHECKING:
        _groups: dict[str, dict[str, float]]

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
