"""Workers announce the channels they route through the layer (issue 14).

One `ChannelAnnouncer` per layer and process: each running `Worker` adds its channels
when it starts and removes them when it stops; a daemon thread refreshes the
announcement every `interval` seconds with a `ttl` that outlives a missed refresh, and
withdraws it when the last worker stopped. A layer without ``announce_channels``
(see `channels.layers.announcements`) is left alone. Failures (the layer's backend
is down) are retried at the next refresh; the worker's receive loop logs outages.
"""

from __future__ import annotations

import collections
import logging
import os
import socket
import threading
import uuid
from collections.abc import Iterable
from typing import Any

__all__ = ["ChannelAnnouncer", "announcing"]

logger = logging.getLogger("django.channels")


class ChannelAnnouncer:
    """Keeps this process's announcement on one layer alive while workers run."""

    interval = 20.0
    ttl = 60.0

    _registry: dict[int, ChannelAnnouncer] = {}
    _registry_lock = threading.Lock()

    def __init__(self, layer: Any) -> None:
        self.layer = layer
        self.announcer = f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"
        self._channels: collections.Counter[str] = collections.Counter()
        self._wake = threading.Event()
        self._thread: threading.Thread | None = None
        # Held across reading the channels and announcing them, so an exiting thread's
        # withdrawal cannot land after a newer thread's announcement.
        self._announce_lock = threading.Lock()

    @classmethod
    def for_layer(cls, layer: Any) -> ChannelAnnouncer | None:
        """The process's announcer for `layer`, or None if the layer cannot announce."""
        raw = getattr(layer, "channel_layer", layer)  # a `channels` wrapper's raw layer
        if not callable(getattr(raw, "announce_channels", None)):
            return None
        with cls._registry_lock:
            announcer = cls._registry.get(id(raw))
            if announcer is None:
                announcer = cls._registry[id(raw)] = cls(raw)
            return announcer

    def add(self, channels: Iterable[str]) -> None:
        with self._registry_lock:
            self._channels.update(set(channels))
            if self._thread is None:
                self._thread = threading.Thread(
                    target=self._run, name="channels-announcer", daemon=True
                )
                self._thread.start()
        self._wake.set()

    def remove(self, channels: Iterable[str]) -> None:
        with self._registry_lock:
            self._channels.subtract(set(channels))
            self._channels = +self._channels  # drop the zero counts
        self._wake.set()

    def _run(self) -> None:
        while True:
            self._wake.wait(self.interval)
            self._wake.clear()
            with self._announce_lock:
                with self._registry_lock:
                    channels = sorted(self._channels)
                    if not channels:
                        self._thread = None  # the next `add` starts a new thread
                        # Forget the layer (the registry would keep every layer alive).
                        if self._registry.get(id(self.layer)) is self:
                            del self._registry[id(self.layer)]
                try:
                    self.layer.announce_channels(self.announcer, channels, self.ttl)
                except Exception as error:  # the backend is down: next refresh retries
                    logger.debug("Cannot announce channels %s: %s", channels, error)
            if not channels:
                return


class announcing:
    """``with announcing(layer, channels):`` — announced while the block runs."""

    def __init__(self, layer: Any, channels: Iterable[str]) -> None:
        self.announcer = ChannelAnnouncer.for_layer(layer)
        self.channels = list(channels)

    def __enter__(self) -> None:
        if self.announcer is not None:
            self.announcer.add(self.channels)

    def __exit__(self, *exc: Any) -> None:
        if self.announcer is not None:
            self.announcer.remove(self.channels)
