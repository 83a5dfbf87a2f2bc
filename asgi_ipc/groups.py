"""Group memberships of the IPC layer, as statements inside one store transaction.

A membership is a row ``(group, channel, deadline)``; `group_add` sets the
deadline to ``now + group_expiry`` (L-56.8). Expired rows are ignored at once
and deleted lazily.
"""

from __future__ import annotations

import sqlite3

__all__ = [
    "MEMBERSHIP_SIZE",
    "add",
    "discard",
    "clear",
    "members",
    "memory_used",
    "purge_expired",
    "refresh",
]

# Bytes charged per membership against `group_memory`: two names of up to 99
# characters, a deadline and index overhead. Gives the 1.x guide of about
# 4000 memberships per MiB (L-56.10).
MEMBERSHIP_SIZE = 256


def memory_used(db: sqlite3.Connection) -> int:
    members: int = db.execute("SELECT members FROM group_usage").fetchone()[0]
    return members * MEMBERSHIP_SIZE


def refresh(db: sqlite3.Connection, group: str, channel: str, deadline: float) -> bool:
    """Move an existing membership's deadline; False when there is none."""
    cursor = db.execute(
        "UPDATE memberships SET deadline = ? WHERE grp = ? AND channel = ?",
        (deadline, group, channel),
    )
    return cursor.rowcount > 0


def add(db: sqlite3.Connection, group: str, channel: str, deadline: float) -> None:
    db.execute(
        "INSERT INTO memberships (grp, channel, deadline) VALUES (?, ?, ?)",
        (group, channel, deadline),
    )


def discard(db: sqlite3.Connection, group: str, channel: str) -> None:
    db.execute("DELETE FROM memberships WHERE grp = ? AND channel = ?", (group, channel))


def members(db: sqlite3.Connection, group: str, now: float) -> list[str]:
    """Unexpired members of `group`, dropping its expired ones on the way."""
    db.execute("DELETE FROM memberships WHERE grp = ? AND deadline <= ?", (group, now))
    return [
        channel
        for (channel,) in db.execute("SELECT channel FROM memberships WHERE grp = ?", (group,))
    ]


def purge_expired(db: sqlite3.Connection, now: float) -> None:
    db.execute("DELETE FROM memberships WHERE deadline <= ?", (now,))


def clear(db: sqlite3.Connection) -> None:
    db.execute("DELETE FROM memberships")
