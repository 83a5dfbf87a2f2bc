"""The `statistics` extension's figures, read from the counters the scripts keep (L-39..L-41).

Sends and group sends count ``messages_count`` and ``channel_full_count`` in
the same Lua call that stores (or refuses) the message, per channel and per
shard; these functions only read and sum them.
"""

from __future__ import annotations

from collections.abc import Sequence

from . import scripts
from .shard import Shard

__all__ = ["channel_figures", "global_figures"]


def global_figures(shards: Sequence[Shard], key: str) -> dict[str, int]:
    """L-39: ``messages_count`` and ``channel_full_count`` summed over `shards`.

    `key` is the hash of the shard-global counters.
    """
    totals = {"messages_count": 0, "channel_full_count": 0}
    for shard in shards:
        sent, full = shard.command("HMGET", key, "messages_count", "channel_full_count")
        totals["messages_count"] += int(sent or 0)
        totals["channel_full_count"] += int(full or 0)
    return totals


def channel_figures(
    shards: Sequence[Shard], keys: tuple[str, str], expiry_ms: int
) -> dict[str, int]:
    """L-40: the four figures of one storage name over `shards`.

    `keys` are the list key and the channel's counters hash. The age of the
    oldest pending entry comes from its deadline on the shard's own clock.
    """
    figures = {
        "messages_count": 0,
        "messages_pending": 0,
        "messages_max_age": 0,
        "channel_full_count": 0,
    }
    for shard in shards:
        sent, full, pending, head_deadline, now = shard.script(scripts.CHANNEL_STATS, keys, ())
        figures["messages_count"] += sent
        figures["channel_full_count"] += full
        figures["messages_pending"] += pending
        if head_deadline >= 0:
            age = (now - (head_deadline - expiry_ms)) // 1000
            figures["messages_max_age"] = max(figures["messages_max_age"], age)
    return figures
