"""What the in-memory layer (`inmemory`) stores: queue entries, at-least-once leases and
statistics counters, and the message copy that group sends and leases need (L-6)."""

from __future__ import annotations

import threading
import time
from collections import deque
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .base import FullSkipReporter

__all__: list[str] = []  # private to the in-memory layer's modules


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


class _LayerState:
    """What the in-memory layer's mixins (`_Groups`, `_Leasing`) use of `ChannelLayer`:
    its lock, queues and counters, declared once for the type checker. Call the
    underscored methods with the lock held."""

    if TYPE_CHECKING:
        _lock: threading.Lock
        _queues: dict[str, deque[_Entry]]
        _skips: FullSkipReporter

        def _store(self, storage: str, entry: _Entry) -> None: ...

        def _expire(self, queue: deque[_Entry], now: float) -> None: ...

        def _count(
            self,
            storage: str,
            sent: int = 0,
            full: int = 0,
            dead: int = 0,
            redelivered: int = 0,
            too_large: int = 0,
        ) -> None: ...


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
