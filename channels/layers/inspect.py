"""What a channel layer holds right now, per channel family: the "htop for channels" (issue 18).

`snapshot(layer)` returns a `LayerSnapshot`: per channel family
(`families.channel_family`) the queue depth and the age of the oldest waiting
message, how many groups there are with a bounded sample of their sizes, and
the drops the layer counted, by reason. ``manage.py channelstatus`` prints it
and `channels.layers.collector.LayerCollector` exports it at scrape time.

Each backend reads its own storage cheaply and without changing it:

- in-memory (here): one pass over the queues under the layer's lock;
- Redis (`asgi_redis.inspect`): a bounded ``SCAN`` per shard, then pipelined
  ``LLEN`` / ``LINDEX 0`` (never ``KEYS``);
- IPC (`asgi_ipc.inspect`): two aggregate queries in one store transaction.

A layer class of another package can offer a ``layer_snapshot()`` method
returning a `LayerSnapshot`. (The hook is not called ``snapshot``:
`BaseChannelLayer.snapshot(message)` already validates messages.)

Depth counts queue *entries*, the unit capacity is measured in (A-37): a group
send to many connections of one daphne is one entry (A-93). Expired entries the
layer has not purged yet are not counted.
"""

from __future__ import annotations

import importlib
import re
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from .families import channel_family

__all__ = [
    "DROP_FIELDS",
    "GROUP_SAMPLE",
    "FamilyStats",
    "LayerSnapshot",
    "UninspectableLayer",
    "describe",
    "dead_letter_summary",
    "drops_from_statistics",
    "group_summary",
    "inmemory_snapshot",
    "snapshot",
    "summarize",
]

# At most this many groups are measured one by one (the rest are only counted).
GROUP_SAMPLE = 100

# Counters of `global_statistics()` that count lost messages, and the drop
# reason each one reports (L-39; asgi_redis also counts expiries, issue 15).
DROP_FIELDS = {
    "channel_full_count": "channel_full",
    "expired_count": "expired",
    "too_large_count": "too_large",  # issue 17 item 2: reported once not zero
}


class UninspectableLayer(TypeError):
    """The layer has no inspection: not a known backend, no ``layer_snapshot()``."""


@dataclass(frozen=True, slots=True)
class FamilyStats:
    """The waiting messages of one channel family."""

    family: str
    # Queue entries waiting, over every channel of the family.
    depth: int
    # Seconds the oldest of them has waited; 0.0 when none waits.
    oldest_age: float
    # Channels of the family with at least one entry.
    channels: int


@dataclass(frozen=True, slots=True)
class LayerSnapshot:
    """One reading of a layer; every figure is from the same moment, give or take the read."""

    layer: str
    families: dict[str, FamilyStats]
    # Groups with at least one live member; None when the layer cannot tell.
    group_count: int | None
    # Up to GROUP_SAMPLE groups and their live member counts, largest first.
    group_sizes: dict[str, int]
    # Messages lost, by reason (channel_full, expired), from the layer's statistics;
    # empty for a layer that keeps none (IPC).
    drops: dict[str, int]
    # Dead letters (issue 17) over every channel; None when the layer has no
    # at-least-once channels (and so none).
    dead_letters: int | None = None
    # Dead letters per channel family (empty when there are none).
    dead_letter_families: dict[str, int] = field(default_factory=dict)
    # True when a bounded read stopped early (a Redis with more keys than the scan bound).
    truncated: bool = False
    # The raw `global_statistics()`, when the layer has them.
    statistics: dict[str, int] = field(default_factory=dict)
    taken_at: float = field(default_factory=time.time)

    @property
    def depth(self) -> int:
        return sum(stats.depth for stats in self.families.values())

    @property
    def oldest_age(self) -> float:
        return max((stats.oldest_age for stats in self.families.values()), default=0.0)


def summarize(queues: Iterable[tuple[str, int, float]]) -> dict[str, FamilyStats]:
    """Fold ``(channel storage name, depth, oldest age)`` per queue into families.

    Queues without entries are left out.
    """
    totals: dict[str, list[float]] = {}
    for name, depth, age in queues:
        if depth <= 0:
            continue
        family = channel_family(name)
        entry = totals.get(family)
        if entry is None:
            totals[family] = [depth, age, 1]
        else:
            entry[0] += depth
            entry[1] = max(entry[1], age)
            entry[2] += 1
    return {
        family: FamilyStats(family, int(depth), max(0.0, age), int(count))
        for family, (depth, age, count) in sorted(totals.items())
    }


def group_summary(sizes: Mapping[str, int]) -> dict[str, int]:
    """The GROUP_SAMPLE largest groups of `sizes`, largest first (then by name)."""
    ranked = sorted(sizes.items(), key=lambda item: (-item[1], item[0]))
    return dict(ranked[:GROUP_SAMPLE])


def dead_letter_summary(counts: Mapping[str, int]) -> dict[str, int]:
    """Fold dead letters per channel (storage) name into channel families."""
    families: dict[str, int] = {}
    for name, count in counts.items():
        if count > 0:
            family = channel_family(name)
            families[family] = families.get(family, 0) + count
    return dict(sorted(families.items()))


def drops_from_statistics(statistics: Mapping[str, int]) -> dict[str, int]:
    return {
        reason: int(statistics[counter])
        for counter, reason in DROP_FIELDS.items()
        if counter in statistics
    }


_PASSWORD = re.compile(r"://[^/@\s'\"]*@")


def describe(layer: Any) -> str:
    """``str(layer)`` with any password in a URL replaced by ``***``."""
    return _PASSWORD.sub("://***@", str(layer))


def global_statistics(layer: Any) -> dict[str, int]:
    """`layer.global_statistics()` when it lists the ``statistics`` extension, else {}."""
    if "statistics" not in getattr(layer, "extensions", ()):
        return {}
    return dict(layer.global_statistics())


# -- dispatch -------------------------------------------------------------------------

# (package of the defining module, class name) -> "module:function" reading it.
# By name, so importing this module imports no backend; subclasses (the
# Sentinel and local Redis layers) are found through the MRO.
_IMPLEMENTATIONS = {
    ("asgi_redis", "RedisChannelLayer"): "asgi_redis.inspect:snapshot",
    ("asgi_ipc", "IPCChannelLayer"): "asgi_ipc.inspect:snapshot",
    ("channels", "ChannelLayer"): f"{__name__}:inmemory_snapshot",
}


def snapshot(layer: Any) -> LayerSnapshot:
    """Read `layer` (a backend, or the Django wrapper around one) now."""
    layer = getattr(layer, "channel_layer", layer)  # channels.asgi.ChannelLayerWrapper
    hook = getattr(layer, "layer_snapshot", None)
    if callable(hook):
        taken: LayerSnapshot = hook()
        return taken
    for cls in type(layer).__mro__:
        found = _IMPLEMENTATIONS.get((cls.__module__.partition(".")[0], cls.__name__))
        if found is not None:
            module, _, function = found.partition(":")
            read: Callable[[Any], LayerSnapshot] = getattr(
                importlib.import_module(module), function
            )
            return read(layer)
    raise UninspectableLayer(
        f"Cannot inspect {type(layer).__module__}.{type(layer).__qualname__}: "
        "channelstatus and the layer metrics know the in-memory, Redis and IPC layers, "
        "or a layer with a layer_snapshot() method"
    )


# -- the in-memory layer -----------------------------------------------------------------


def inmemory_snapshot(layer: Any) -> LayerSnapshot:
    """One pass under the in-memory layer's lock; nothing is expired or swept on the way."""
    now = time.monotonic()
    queues = []
    with layer._lock:
        for storage, queue in layer._queues.items():
            live = [entry for entry in queue if entry.deadline > now]
            if live:
                queues.append((storage, len(live), now - (live[0].deadline - layer.expiry)))
        oldest_member = now - layer.group_expiry
        sizes = {}
        for group, members in layer._groups.items():
            live_members = sum(1 for added in members.values() if added >= oldest_member)
            if live_members:
                sizes[group] = live_members
        dead = {storage: len(letters) for storage, letters in layer._dead.items()}
    statistics = global_statistics(layer)
    enabled = "at_least_once" in layer.extensions
    return LayerSnapshot(
        layer=describe(layer),
        families=summarize(queues),
        group_count=len(sizes),
        group_sizes=group_summary(sizes),
        drops=drops_from_statistics(statistics),
        dead_letters=sum(dead.values()) if enabled or dead else None,
        dead_letter_families=dead_letter_summary(dead),
        statistics=statistics,
    )
