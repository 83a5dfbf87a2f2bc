"""Messages that expired unread: counted in the statistics and logged (A-27, A-49; issue 15).

A message nobody received within `expiry` seconds is discarded where the layer
meets it: a full send trims expired entries from the head of the list, the Lua
pop drops them, and the plain pops (``LPOP``, ``LMPOP``, ``BLMPOP``), the
socket receive and the ``P!`` prefetch buffer drop them in Python against the
shard's clock. Every such message is counted under ``expired_count`` in its
channel's statistics hash and in the shard's global one, beside
``channel_full_count``:

- the Lua scripts that trim (`scripts.push` via a full send, `scripts.POP`)
  count in the same call, so that costs no round trip;
- a drop in Python is counted with one pipelined ``HINCRBY`` round trip on the
  receiving thread, only when something expired (never on the normal path);
  the socket receive instead writes the counts in front of its next pop, and
  drops in the prefetch buffer (read without Redis) wait for the next of
  either.

The receiving process logs one WARNING per channel per `interval` (10 s)
with the number of messages that expired since its last line, not one line
per message: the first at once, the rest of the interval's by a timer thread at
the interval's end, so a burst that no later expiry follows is still logged with
its true count (issue 15 item 6). A group bundle (one entry for the members behind one ``P!``,
A-93) counts as one message per member.

A normal channel's list outlives its newest entry by 15 minutes (``scripts``,
``EXPIRED_GRACE_MS``), so messages that expired while no worker ran (an outage, a
deploy) are counted by the first receive after it. Not counted: messages of a
``?`` or ``!`` channel whose whole list expired in Redis (no send and no receive
for ``expiry + 1`` seconds, L-23: its one reader is usually gone for good), and
of a normal channel nobody received from for 15 minutes after its last send;
they vanish with the list key and the layer never sees them.
"""

from __future__ import annotations

import logging
import threading
import time
from typing import Any

from .entries import DEADLINE_DIGITS
from .wire import pack_command

__all__ = ["ExpiredMessages", "messages_in"]

logger = logging.getLogger("asgi_redis")

_KIND = DEADLINE_DIGITS
_NAMED = ord("N")


def messages_in(entry: bytes) -> int:
    """Messages one list entry holds: 1, or the member count of a bundle (`entries`)."""
    if entry[_KIND] != _NAMED:
        return 1
    return entry.count(b",", _KIND + 1, entry.index(b"|", _KIND + 1)) + 1


class ExpiredMessages:
    """One shard's expired-message accounting: merged log lines and uncounted drops."""

    # Seconds between two WARNING lines about one channel.
    interval = 10.0
    # Channels remembered before forgetting those that are quiet.
    memory = 10_000

    def __init__(self, shard_index: int) -> None:
        self.shard_index = shard_index
        self._lock = threading.Lock()
        # channel -> (time of the last line, messages not yet logged)
        self._lines: dict[str, tuple[float, int]] = {}
        # Logs the counts held back by the interval when it ends (issue 15).
        self._timer: threading.Timer | None = None
        # channel -> messages dropped in Python, not yet counted in Redis nor logged
        self.uncounted: dict[str, int] = {}
        self.expiry = 60
        self.stats_prefix = "asgi-meta:"
        # ARGV the Lua pop needs to count: stats_prefix, channel TTL, global TTL.
        self.stats_args: tuple[Any, ...] = (self.stats_prefix, 3600, 86400)

    def configure(self, stats_prefix: str, channel_ttl: int, global_ttl: int, expiry: int) -> None:
        self.expiry = expiry
        self.stats_prefix = stats_prefix
        self.stats_args = (stats_prefix, channel_ttl, global_ttl)

    def __bool__(self) -> bool:
        """Whether drops wait to be counted in Redis (read without the lock)."""
        return bool(self.uncounted)

    # -- noting -----------------------------------------------------------------

    def counted(self, storage: str, count: int) -> None:
        """`count` messages of `storage` expired and a Lua script counted them."""
        self._report(storage, count)

    def dropped(self, storage: str, entries: list[bytes]) -> None:
        """`entries` of `storage` were dropped in Python: counted and logged by
        `packed` (or `write`), so one receive's drops make one count and one line."""
        self.dropped_messages(storage, sum(messages_in(entry) for entry in entries))

    def dropped_messages(self, storage: str, count: int) -> None:
        if count <= 0:
            return
        with self._lock:
            self.uncounted[storage] = self.uncounted.get(storage, 0) + count

    def _report(self, storage: str, count: int) -> None:
        if count <= 0:
            return
        now = time.monotonic()
        with self._lock:
            last, unlogged = self._lines.get(storage, (float("-inf"), 0))
            unlogged += count
            if now - last < self.interval:
                self._lines[storage] = (last, unlogged)
                self._flush_later(last + self.interval - now)
                return
            self._lines[storage] = (now, 0)
            if len(self._lines) > self.memory:
                self._forget_quiet(now)
        self._log(storage, unlogged)

    def _flush_later(self, delay: float) -> None:
        """Arm the timer that logs held-back counts (called with the lock held)."""
        if self._timer is not None:
            return
        timer = self._timer = threading.Timer(max(delay, 0.0), self._flush_due)
        timer.daemon = True
        timer.start()

    def _flush_due(self) -> None:
        """The interval ended: log every channel's held-back count with its true value."""
        due = []
        with self._lock:
            self._timer = None
            now = time.monotonic()
            later = None
            for storage, (last, unlogged) in self._lines.items():
                if not unlogged:
                    continue
                left = last + self.interval - now
                if left <= 0:
                    self._lines[storage] = (now, 0)
                    due.append((storage, unlogged))
                else:
                    later = left if later is None else min(later, left)
            if later is not None:
                self._flush_later(later)
        for storage, unlogged in due:
            self._log(storage, unlogged)

    def _log(self, storage: str, unlogged: int) -> None:
        logger.warning(
            "%d message%s on channel %r expired unread on Redis shard %d (expiry %d s): "
            "no consumer received %s in time (counted in expired_count; merged for %d s)",
            unlogged,
            "" if unlogged == 1 else "s",
            storage,
            self.shard_index,
            self.expiry,
            "it" if unlogged == 1 else "them",
            self.interval,
        )

    def _forget_quiet(self, now: float) -> None:
        for storage, (last, unlogged) in list(self._lines.items()):
            if now - last >= self.interval and not unlogged:
                del self._lines[storage]

    # -- counting in Redis ---------------------------------------------------------

    def packed(self) -> list[bytes]:
        """The commands counting every uncounted drop (taken: the caller must send them).

        The drops are logged now (merged, `_report`).
        """
        with self._lock:
            uncounted, self.uncounted = self.uncounted, {}
        if not uncounted:
            return []
        for storage, count in uncounted.items():
            self._report(storage, count)
        prefix, channel_ttl, global_ttl = self.stats_args
        global_hash = f"{prefix}#global#"
        commands = []
        for storage, count in uncounted.items():
            channel_hash = f"{prefix}{{{storage}}}"
            commands.append(pack_command(("HINCRBY", channel_hash, "expired_count", count)))
            commands.append(pack_command(("EXPIRE", channel_hash, channel_ttl)))
        total = sum(uncounted.values())
        commands.append(pack_command(("HINCRBY", global_hash, "expired_count", total)))
        commands.append(pack_command(("EXPIRE", global_hash, global_ttl)))
        return commands

    def write(self, shard: Any) -> None:
        """Count the uncounted drops now: one pipelined round trip (blocking callers only)."""
        commands = self.packed()
        if not commands:
            return
        try:
            shard.pipeline(commands)
        except Exception as exc:  # a count is not worth failing a receive for
            logger.debug("Could not count expired messages on shard %d: %s", self.shard_index, exc)
