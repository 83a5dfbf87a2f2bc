"""`IPCChannelLayer`: a channel layer shared by the processes of one machine (L-55, L-56).

Processes using the same `prefix` share one store (`store.py`), so they see
the same channels and groups with no server process. Each operation is one
transaction under the store's lock; a blocked `receive` is woken through its
own FIFO by the send that fills one of its channels (`wakeup.py`).
"""

from __future__ import annotations

import contextlib
import logging
import os
import sqlite3
import time
from collections.abc import Iterable, Mapping
from typing import Any

import msgpack

from channels.layers.base import BaseChannelLayer, FullSkipReporter, layer_random
from channels.layers.delivery import refuse_at_least_once

from . import groups, queues
from .store import Store, open_store, valid_prefix
from .wakeup import notify, wake_path

__all__ = ["IPCChannelLayer"]

logger = logging.getLogger(__name__)


class IPCChannelLayer(BaseChannelLayer):
    """Channel layer in shared memory for processes on one machine (L-1, L-55)."""

    extensions = ["groups", "flush"]

    # A-34, L-56.7: twelve letters, as the Redis layer.
    new_channel_suffix_length = 12
    # L-56.7: a blocking receive returns (None, None) after about this long.
    blocking_timeout = 1.0
    # Seconds between sweeps of expired messages in `send` (L-56.5: purging may be lazy).
    purge_interval = 1.0

    def __init__(
        self,
        prefix: str = "asgi",
        expiry: int | float = 60,
        group_expiry: int | float = 86400,
        capacity: int = 100,
        channel_capacity: Mapping[Any, int] | None = None,
        message_memory: int = 100 * 1024 * 1024,
        group_memory: int = 20 * 1024 * 1024,
        at_least_once: Any = None,
        ack_timeout: Any = None,
        max_deliveries: Any = None,
    ) -> None:
        # Issue 17: accepted by name only to refuse them with a clear message.
        refuse_at_least_once("IPCChannelLayer", {"at_least_once": at_least_once})
        super().__init__(
            expiry=expiry,
            group_expiry=group_expiry,
            capacity=capacity,
            channel_capacity=channel_capacity,
        )
        for option, value in (("message_memory", message_memory), ("group_memory", group_memory)):
            if not isinstance(value, int) or isinstance(value, bool) or value <= 0:
                raise ValueError(f"{option} must be a positive number of bytes, not {value!r}")
        self.prefix = valid_prefix(prefix)
        self.message_memory = message_memory
        self.group_memory = group_memory
        self._skips = FullSkipReporter(logger)
        self._store_pid: int | None = None
        self._next_purge = 0.0
        self._opened_store: Store | None = None
        self._store()  # create or check the store now, not on first use

    def __str__(self) -> str:
        return f"{type(self).__name__}(prefix={self.prefix})"  # L-5

    # -- send / receive ---------------------------------------------------------

    def send(self, channel: str, message: dict[str, Any]) -> None:
        self.valid_channel_name(channel)
        payload = self._encode(message, channel)
        storage = self.non_local_name(channel)
        size = self._charge(payload, [channel], channel)
        now = time.time()
        store = self._store()
        capacity = self.get_capacity(storage)
        with store.transaction() as db:
            self._maybe_purge(db, now)
            room = queues.room(db, storage, now, capacity)
            if room.full:
                raise self.ChannelFull(f"Channel {storage!r} is full ({capacity} messages pending)")
            if not self._fits(db, room.bytes_used, size, now):
                raise self.ChannelFull(
                    f"The IPC layer {self.prefix!r} has no room for {size} more bytes "
                    f"(message_memory={self.message_memory}); messages are not being received"
                )
            queues.enqueue(db, storage, [channel], payload, now + self.expiry, size)
        self._wake(store, room.waiters)

    def receive(
        self, channels: Iterable[str], block: bool = False
    ) -> tuple[str | None, dict[str, Any] | None]:
        names = self.receive_names(channels)
        if not names:
            return None, None
        layer_random.shuffle(names)  # A-28; the layers' own generator, not the global one
        if not block:
            with self._store().transaction() as db:
                found = queues.pop_first(db, names, time.time())
            return self._decode(found)
        return self._receive_blocking(names)

    def channel_in_use(self, name: str) -> bool:
        with self._store().transaction() as db:
            return queues.has_pending(db, name, time.time())

    def _receive_blocking(self, names: list[str]) -> tuple[str | None, dict[str, Any] | None]:
        """Wait for a message on `names`, woken by the send that stores it (L-56.7)."""
        store = self._store()
        waker = store.waker()
        give_up = time.monotonic() + self.blocking_timeout
        registered = False
        try:
            while True:
                with store.transaction() as db:
                    found = queues.pop_first(db, names, time.time())
                    if found is not None and registered:
                        queues.unregister_waiter(db, names, waker.name)
                        registered = False
                    elif found is None and not registered:
                        # Same transaction as the empty look: no send can slip between.
                        queues.register_waiter(db, names, waker.name)
                        registered = True
                if found is not None:
                    return self._decode(found)
                remaining = give_up - time.monotonic()
                if remaining <= 0:
                    return None, None
                waker.wait(remaining)
        finally:
            if registered:
                with store.transaction() as db:
                    queues.unregister_waiter(db, names, waker.name)

    # -- groups -------------------------------------------------------------------

    def group_add(self, group: str, channel: str) -> None:
        self.valid_group_name(group)
        self.valid_channel_name(channel)
        now = time.time()
        deadline = now + self.group_expiry
        with self._store().transaction() as db:
            if groups.refresh(db, group, channel, deadline):
                return
            if groups.memory_used(db) + groups.MEMBERSHIP_SIZE > self.group_memory:
                groups.purge_expired(db, now)
                if groups.memory_used(db) + groups.MEMBERSHIP_SIZE > self.group_memory:
                    raise self.ChannelFull(
                        f"The IPC layer {self.prefix!r} has no room for another group "
                        f"membership (group_memory={self.group_memory}); discard unused "
                        "members or raise group_memory"
                    )
            groups.add(db, group, channel, deadline)

    def group_discard(self, group: str, channel: str) -> None:
        self.valid_group_name(group)
        self.valid_channel_name(channel)
        with self._store().transaction() as db:
            groups.discard(db, group, channel)

    def group_channels(self, group: str) -> list[str]:
        self.valid_group_name(group)
        with self._store().transaction() as db:
            return groups.members(db, group, time.time())

    def send_group(self, group: str, message: dict[str, Any]) -> None:
        self.valid_group_name(group)
        self._send_to_members(group, message, None)

    def send_to_members(self, group: str, members: Iterable[str], message: dict[str, Any]) -> None:
        """Deliver `message` to `members` as `send_group` would, with the members given.

        For layers that keep groups elsewhere but messages here
        (`asgi_redis.RedisLocalChannelLayer`, L-48). `group` names the group in
        the skip warnings (A-40).
        """
        members = list(members)
        for member in members:
            self.valid_channel_name(member)
        self._send_to_members(group, message, members)

    def _send_to_members(
        self, group: str, message: dict[str, Any], members: list[str] | None
    ) -> None:
        """One transaction: read the members (unless given) and queue every copy."""
        payload = self._encode(message, group)
        self._charge(payload, [], group)
        now = time.time()
        store = self._store()
        skipped: list[str] = []
        waiters: set[str] = set()
        with store.transaction() as db:
            self._maybe_purge(db, now)
            if members is None:
                members = groups.members(db, group, now)
            by_storage: dict[str, list[str]] = {}
            for member in members:
                by_storage.setdefault(self.non_local_name(member), []).append(member)
            for storage, names in by_storage.items():
                # one entry, so one unit of capacity, per P! queue.
                bundles = [names] if storage.endswith("!") else [[name] for name in names]
                for bundle in bundles:
                    woken = self._enqueue_for_group(db, storage, bundle, payload, now)
                    if woken is None:
                        skipped.extend(bundle)
                    else:
                        waiters.update(woken)
        for member in skipped:  # skipped, never raised, but logged
            self._skips.skipped(group, member)
        self._wake(store, waiters)

    def _enqueue_for_group(
        self, db: sqlite3.Connection, storage: str, bundle: list[str], payload: bytes, now: float
    ) -> list[str] | None:
        """Queue one group copy (or bundle); its storage's waiters, or None if it is full."""
        size = queues.charge(len(payload), bundle)
        room = queues.room(db, storage, now, self.get_capacity(storage))
        if room.full or not self._fits(db, room.bytes_used, size, now):
            return None
        queues.enqueue(db, storage, bundle, payload, now + self.expiry, size)
        return room.waiters

    # -- flush ----------------------------------------------------------------------

    def flush(self) -> None:
        """Empty the messages and groups of this prefix only (L-56.9)."""
        with self._store().transaction() as db:
            db.execute("DELETE FROM messages")
            groups.clear(db)

    # -- internals --------------------------------------------------------------------

    def _store(self) -> Store:
        # Checked per call so a forked child opens its own connection and lock.
        if self._store_pid != os.getpid():
            self._opened_store = open_store(self.prefix)
            self._store_pid = os.getpid()
        assert self._opened_store is not None
        return self._opened_store

    def _encode(self, message: dict[str, Any], target: str) -> bytes:
        # snapshot() validates types, keys and the reserved key with messages
        # naming the offending path; the encoding is the copy.
        snapshot, _ = self.snapshot(message)
        payload: bytes = msgpack.packb(snapshot, use_bin_type=True)  # L-6
        self.check_encoded_size(len(payload), target)
        return payload

    def _charge(self, payload: bytes, names: list[str], target: str) -> int:
        size = queues.charge(len(payload), names)
        if size > self.message_memory:
            raise self.MessageTooLarge(
                f"Message for {target!r} needs {size} bytes, more than the whole "
                f"message_memory of {self.message_memory} bytes; raise message_memory"
            )
        return size

    def _fits(self, db: sqlite3.Connection, bytes_used: int, size: int, now: float) -> bool:
        """Whether `size` more bytes fit in message_memory, after purging if needed (L-56.4)."""
        if bytes_used + size <= self.message_memory:
            return True
        queues.purge_expired(db, now)
        return queues.memory_used(db) + size <= self.message_memory

    def _maybe_purge(self, db: sqlite3.Connection, now: float) -> None:
        """Drop expired messages of channels nobody reads, at most once per interval.

        Not needed for correctness (they never count or deliver, and `_fits`
        purges before refusing); it keeps the store small between reads.
        """
        if now >= self._next_purge:
            self._next_purge = now + self.purge_interval
            queues.purge_expired(db, now)

    def _wake(self, store: Store, waiters: Iterable[str]) -> None:
        stale = [
            waiter
            for waiter in waiters
            if not notify(wake_path(store.directory, store.prefix, waiter))
        ]
        if stale:
            # Their processes died while blocked; nobody else will clean up.
            with store.transaction() as db:
                queues.remove_waiters(db, stale)
            for waiter in stale:
                with contextlib.suppress(FileNotFoundError):
                    os.unlink(wake_path(store.directory, store.prefix, waiter))

    @staticmethod
    def _decode(found: queues.QueueEntry | None) -> tuple[str | None, dict[str, Any] | None]:
        if found is None:
            return None, None
        name, payload = found
        return name, msgpack.unpackb(payload, raw=False)  # L-6
