"""The `statistics` extension's figures, read from the counters the scripts keep (L-39..L-41).

Sends and group sends count ``messages_count`` and ``channel_full_count`` in
the same Lua call that stores (or refuses) the message, per channel and per
shard; ``expired_count`` counts messages discarded unread because they expired
(`expiry`), and the global ``shard_restarts`` the restarts of a shard that the
layer's processes noticed (`restarts`); those two appear once they are not zero,
so the figures otherwise have exactly the keys of L-39 and L-40. These functions
only read and sum them (after writing this process's uncounted expiry drops, so a
reader sees them).
"""

from __future__ import annotations

from collections.abc import Sequence

from . import scripts
from .shard import Shard

__all__ = [
    "DELIVERY_FIELDS",
    "GLOBAL_FIELDS",
    "RARE_FIELDS",
    "channel_figures",
    "global_figures",
    "without_zero_rare_fields",
]

# The keys of `global_figures`, in its order.
GLOBAL_FIELDS = ("messages_count", "channel_full_count", "expired_count", "shard_restarts")
# Issue 17: counters of at-least-once delivery, reported by a layer configured for it.
DELIVERY_FIELDS = ("dead_lettered_count", "redelivered_count")
# Counters reported only once they are not zero, so that the usual figures keep their
# exact 1.x keys (L-39, L-40: 1.x tests compare the whole dict): expired messages and
# noticed restarts (issue 15), messages refused as too large (A-92, issue 17).
RARE_FIELDS = ("expired_count", "shard_restarts", "too_large_count")


def global_figures(shards: Sequence[Shard], key: str, delivery: bool = False) -> dict[str, int]:
    """L-39 (and issue 15): the global counters summed over `shards`.

    `key` is the hash of the shard-global counters. `delivery`: the layer has
    at-least-once channels, so `DELIVERY_FIELDS` are reported (even when 0).
    """
    fields = GLOBAL_FIELDS + DELIVERY_FIELDS + ("too_large_count",)
    totals = dict.fromkeys(fields, 0)
    for shard in shards:
        shard.expired.write(shard)
        values = shard.command("HMGET", key, *fields)
        for field, value in zip(fields, values, strict=True):
            totals[field] += int(value or 0)
    return _reported(totals, delivery)


def _reported(figures: dict[str, int], delivery: bool) -> dict[str, int]:
    if not delivery:
        for field in DELIVERY_FIELDS:
            del figures[field]
    return without_zero_rare_fields(figures)


def without_zero_rare_fields(figures: dict[str, int]) -> dict[str, int]:
    """Drop the `RARE_FIELDS` that are 0 from `figures` (in place) and return it."""
    for field in RARE_FIELDS:
        if field in figures and not figures[field]:
            del figures[field]
    return figures


def channel_figures(
    shards: Sequence[Shard], keys: tuple[str, str], expiry_ms: int, delivery: bool = False
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
        "dead_lettered_count": 0,
        "redelivered_count": 0,
        "too_large_count": 0,
    }
    for shard in shards:
        shard.expired.write(shard)
        sent, full, pending, head_deadline, now, expired, dead, again, large = shard.script(
            scripts.CHANNEL_STATS, keys, ()
        )
        figures["messages_count"] += sent
        figures["channel_full_count"] += full
        figures["expired_count"] += expired
        figures["dead_lettered_count"] += dead
        figures["redelivered_count"] += again
        figures["too_large_count"] += large
        figures["messages_pending"] += pending
        if head_deadline >= 0:
            age = (now - (head_deadline - expiry_ms)) // 1000
            figures["messages_max_age"] = max(figures["messages_max_age"], age)
    return _reported(figures, delivery)
