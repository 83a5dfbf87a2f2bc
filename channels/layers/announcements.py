"""Which channels the running workers route, announced through the layer (issue 14).

A protocol server sends some messages that only matter when a consumer is routed for
them: nobody routes ``http.disconnect`` in most projects, yet daphne sends one per
request, which fills the channel and costs a send on every request. Workers announce
the channels they listen on (`channels.announce`); daphne asks the layer and skips
``http.disconnect`` when workers have announced and none routes it. With no live
announcement (no worker, an older worker, a layer without this extension) the server
sends as before (A-82).

The extension is two methods a layer may offer:

- ``announce_channels(announcer, channels, ttl)``: `announcer` (a str unique per
  process) listens on `channels` for the next `ttl` seconds; an empty `channels` or
  ``ttl <= 0`` withdraws the announcement.
- ``announced_channels()``: the union of the live announcements as a frozenset, or
  ``None`` when there is none.

`LocalAnnouncements` keeps them in the process (in-memory layer); asgi_redis stores
them in Redis so daphne on another machine sees them.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterable

__all__ = ["LocalAnnouncements"]


class LocalAnnouncements:
    """`announce_channels` / `announced_channels` for a layer of one process."""

    _announcements_lock = threading.Lock()

    def announce_channels(self, announcer: str, channels: Iterable[str], ttl: float) -> None:
        names = frozenset(channels)
        with self._announcements_lock:
            table = self.__dict__.setdefault("_announcements", {})
            if not names or ttl <= 0:
                table.pop(announcer, None)
            else:
                table[announcer] = (time.monotonic() + ttl, names)

    def announced_channels(self) -> frozenset[str] | None:
        now = time.monotonic()
        with self._announcements_lock:
            table = self.__dict__.get("_announcements")
            if not table:
                return None
            for announcer in [a for a, (expiry, _) in table.items() if expiry <= now]:
                del table[announcer]
            if not table:
                return None
            return frozenset().union(*(names for _, names in table.values()))
