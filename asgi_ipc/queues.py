"""Message queues of the IPC layer, as statements inside one store transaction.

Every function takes the connection of an open `Store.transaction()`; the
caller decides what belongs in one atomic step. Rows of a storage name are
read in ``id`` order, which is send order (A-19, A-25).
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterable
from typing import NamedTuple

__all__ = [
    "QueueEntry",
    "charge",
    "Room",
    "room",
    "enqueue",
    "has_pending",
    "memory_used",
    "pop_first",
    "purge_expired",
    "register_waiter",
    "unregister_waiter",
    "remove_waiters",
]

# Bytes charged per stored entry beyond its payload and names: the 1.x sizing
# guide of about 50 bytes of routing data per message (L-56.10).
ROUTING_OVERHEAD = 50

QueueEntry = tuple[str, bytes]


def charge(payload_size: int, names: Iterable[str]) -> int:
    """Bytes an entry counts against `message_memory`."""
    return payload_size + sum(len(name) + 1 for name in names) + ROUTING_OVERHEAD


def memory_used(db: sqlite3.Connection) -> int:
    used: int = db.execute("SELECT bytes FROM message_usage").fetchone()[0]
    return used


def purge_expired(db: sqlite3.Connection, now: float) -> None:
    """Delete every expired entry (L-56.5: they never count, never deliver)."""
    db.execute("DELETE FROM messages WHERE deadline <= ?", (now,))


class Room(NamedTuple):
    """What a send needs to know about a storage, read in one statement."""

    full: bool  # holds `capacity` unexpired entries (A-37, L-56.5)
    bytes_used: int  # charged to message_memory by every entry of the store
    waiters: list[str]  # blocked receivers to wake after storing


def room(db: sqlite3.Connection, storage: str, now: float, capacity: int) -> Room:
    """Capacity, memory and waiters of `storage` in one query (the send hot path).

    Counts at most `capacity` rows, so a deep queue costs no more than a full one.
    """
    pending, used, waiters = db.execute(
        "SELECT (SELECT count(*) FROM (SELECT 1 FROM messages "
        "WHERE storage = :storage AND deadline > :now LIMIT :capacity)), "
        "(SELECT bytes FROM message_usage), "
        "(SELECT group_concat(waiter, ' ') FROM waiters WHERE storage = :storage)",
        # Named parameters from a mapping: numbered ones (?1) with a sequence are deprecated
        # in Python 3.12 and an error from 3.14.
        {"storage": storage, "now": now, "capacity": capacity},
    ).fetchone()
    return Room(pending >= capacity, used, waiters.split(" ") if waiters else [])


def has_pending(db: sqlite3.Connection, storage: str, now: float) -> bool:
    row = db.execute(
        "SELECT 1 FROM messages WHERE storage = ? AND deadline > ? LIMIT 1", (storage, now)
    ).fetchone()
    return row is not None


def enqueue(
    db: sqlite3.Connection,
    storage: str,
    names: list[str],
    payload: bytes,
    deadline: float,
    size: int,
) -> None:
    db.execute(
        "INSERT INTO messages (storage, deadline, names, payload, size) VALUES (?, ?, ?, ?, ?)",
        (storage, deadline, " ".join(names), payload, size),
    )


def pop_first(db: sqlite3.Connection, storages: list[str], now: float) -> QueueEntry | None:
    """Take the oldest unexpired message from the first non-empty storage, in list order.

    A bundle (A-93) hands out its first recipient and keeps the rest queued
    at the same place, so the other members keep their FIFO position.
    """
    for storage in storages:
        while True:
            row = db.execute(
                "SELECT id, deadline, names, payload, size FROM messages "
                "WHERE storage = ? ORDER BY id LIMIT 1",
                (storage,),
            ).fetchone()
            if row is None:
                break
            entry_id, deadline, names, payload, size = row
            if deadline <= now:
                db.execute("DELETE FROM messages WHERE id = ?", (entry_id,))
                continue
            first, _, rest = names.partition(" ")
            if rest:
                db.execute(
                    "UPDATE messages SET names = ?, size = ? WHERE id = ?",
                    (rest, size - len(first) - 1, entry_id),
                )
            else:
                db.execute("DELETE FROM messages WHERE id = ?", (entry_id,))
            return first, payload
    return None


# -- blocked receivers (see wakeup.py) -------------------------------------------


def register_waiter(db: sqlite3.Connection, storages: list[str], waiter: str) -> None:
    db.executemany(
        "INSERT OR IGNORE INTO waiters (storage, waiter) VALUES (?, ?)",
        [(storage, waiter) for storage in storages],
    )


def unregister_waiter(db: sqlite3.Connection, storages: list[str], waiter: str) -> None:
    db.executemany(
        "DELETE FROM waiters WHERE storage = ? AND waiter = ?",
        [(storage, waiter) for storage in storages],
    )


def remove_waiters(db: sqlite3.Connection, waiters: Iterable[str]) -> None:
    db.executemany("DELETE FROM waiters WHERE waiter = ?", [(waiter,) for waiter in waiters])
