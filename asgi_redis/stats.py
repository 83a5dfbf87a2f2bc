"""The `statistics` extension's figures, read from the counters the scripts keep (L-39..L-41).

Sends and group sends count ``messages_count`` and ``channel_full_count`` in
the same Lua call that stores (or refuses) the message, per channel and per
shard; ``expired_count`` counts messages discarded unread because they expired
(`expiry`), and the global ``shard_restarts`` the restarts of a shard that the
layer's processes noticed (`restarts`). These functions only read and sum them
(after writing this process's uncounted expiry drops, so a reader sees them).
"""

from __future__ import annotations

from collections.abc import Sequence

from . import scripts
from .shard import Shard

__all__ = ["GLOBAL_FIELDS", "channel_figures", "global_figures"]

# The keys of `global_figures`, in its order.
GLOBAL_FIELDS = ("messages_count", "channel_full_count", "expired_count", "shard_restarts")


def global_figures(shards: Sequence[Shard], key: str) -> dict[str, int]:
    """L-39 (and issue 15): the global counters summed over `shards`.

    `key` is the hash of the shard-global counters.
    """
    totals = dict.fromkeys(GLOBAL_FIELDS, 0)
    for shard in shards:
        shard.expired.write(shard)
        values = shard.command("HMGET", key, *GLOBAL_FIELDS)
        for field, value in zip(GLOBAL_FIELDS, values, strict=True):
            totals[field] += int(value or 0)
    return totals


def channel_figures(
    shards: Sequence[Shard], keys: tuple[str, str], expiry_ms: int
) -> dict[str, int]:
    """L-40 (and issue 15): the five figures of one storage name over `shards`.

    `keys` are the list key and the channel's counters hash. The age of the
    oldest pending entry comes from its deadline on the shard's own clock.
    """
    figures = {
        "messages_count": 0,
        "messages_pending": 0,
        "messages_max_age": 0,
        "channel_full_count": 0,
        "expired_count": 0,
    }
    for shard in shards:
        shard.expired.write(shard)
        sent, full, pending, head_deadline, now, expired = shard.script(
            scripts.CHANNEL_STATS, keys, ()
        )
        figures["messages_count"] += sent
        figures["channel_full_count"] += full
        figures["expired_count"] += expired
        figures["messages_pending"] += pending
        if head_deadline >= 0:
            age = (now - (head_deadline - expiry_ms)) // 1000
            figures["messages_max_age"] = max(figures["messages_max_age"], age)
    return figures
