"""Reading an IPC layer's queues and groups for ``channelstatus`` and the metrics (issue 18).

Two aggregate queries in one store transaction (`store.Store.transaction`), so
the figures are consistent with each other; nothing is purged on the way:

- per storage name, the unexpired entries and the earliest deadline (the oldest
  entry: deadlines are send time plus `expiry`, wall clock, shared by every process);
- per group, its unexpired memberships: the count of groups, and the
  `GROUP_SAMPLE` largest.

The IPC layer keeps no statistics, so ``drops`` is empty.
"""

from __future__ import annotations

import time
from typing import Any

from channels.layers.inspect import GROUP_SAMPLE, LayerSnapshot, describe, summarize

__all__ = ["snapshot"]

_QUEUES = (
    "SELECT storage, count(*), min(deadline) FROM messages WHERE deadline > ? GROUP BY storage"
)
_GROUP_COUNT = "SELECT count(DISTINCT grp) FROM groups.memberships WHERE deadline > ?"
_GROUP_SIZES = (
    "SELECT grp, count(*) AS size FROM groups.memberships WHERE deadline > ? "
    "GROUP BY grp ORDER BY size DESC, grp LIMIT ?"
)


def snapshot(layer: Any) -> LayerSnapshot:
    """Read `layer` (an `IPCChannelLayer`) now."""
    now = time.time()
    with layer._store().transaction() as db:
        rows = db.execute(_QUEUES, (now,)).fetchall()
        (group_count,) = db.execute(_GROUP_COUNT, (now,)).fetchone()
        sizes = db.execute(_GROUP_SIZES, (now, GROUP_SAMPLE)).fetchall()
    queues = [
        (storage, depth, now - (deadline - layer.expiry)) for storage, depth, deadline in rows
    ]
    return LayerSnapshot(
        layer=describe(layer),
        families=summarize(queues),
        group_count=group_count,
        group_sizes={group: size for group, size in sizes},
        drops={},
    )
