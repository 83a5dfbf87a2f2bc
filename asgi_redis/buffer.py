"""Messages taken early from process-specific lists, per layer instance (A-17, A-93).

Only one process reads a ``P!`` list (A-20), so a receive there may pop a
batch of entries and keep the rest here; a group bundle (one entry for many
members) is expanded into one item per member. Items keep their deadline,
converted to this machine's clock, and an expired item is never handed out
(A-27): it is dropped and reported to `expired` (counted in the statistics,
`expiry`). Items of one ``P!`` come out in the order they were stored (A-19).
"""

from __future__ import annotations

import threading
import time
from collections import deque
from collections.abc import Callable, Iterable

__all__ = ["PrefetchBuffer"]


class PrefetchBuffer:
    """Thread-safe FIFO per ``P!`` of ``(deadline, channel name, payload)``."""

    def __init__(self, expired: Callable[[str, int], None] | None = None) -> None:
        self._lock = threading.Lock()
        # Told (storage name, messages) of items dropped because they expired.
        self._expired = expired
        self._queues: dict[str, deque[tuple[float, str, bytes]]] = {}

    def __bool__(self) -> bool:
        # Read without the lock: a stale answer only costs one locked look.
        return bool(self._queues)

    def add(self, storage: str, items: Iterable[tuple[float, str, bytes]]) -> None:
        with self._lock:
            self._queues.setdefault(storage, deque()).extend(items)

    def take(self, names: Iterable[str]) -> tuple[str, bytes] | None:
        """The oldest live ``(channel, payload)`` under the first name holding one."""
        now = time.time()
        found = None
        dropped: dict[str, int] = {}
        with self._lock:
            for name in names:
                queue = self._queues.get(name)
                while queue:
                    deadline, channel, payload = queue.popleft()
                    if deadline > now:
                        found = channel, payload
                        break
                    dropped[name] = dropped.get(name, 0) + 1
                if queue is not None and not queue:
                    del self._queues[name]
                if found is not None:
                    break
        if dropped and self._expired is not None:
            for name, count in dropped.items():
                self._expired(name, count)
        return found

    def clear(self) -> None:
        with self._lock:
            self._queues.clear()
