"""Reading a Redis layer's queues and groups for ``channelstatus`` and the metrics (issue 18).

Per shard, without changing anything:

1. ``TIME``: the shard's clock, which wrote every entry's deadline (`entries`);
2. ``SCAN MATCH <prefix>*`` in pages of `SCAN_COUNT`, stopping after `MAX_KEYS`
   keys (the snapshot is then marked ``truncated``) — never ``KEYS``, which
   blocks the server for the whole keyspace;
3. one pipeline: ``LLEN`` and ``LINDEX 0`` for every channel list
   (``<prefix>{<storage>}``, `core`'s key layout), and ``ZCOUNT`` of the live
   members (score = time of the latest ``group_add``, newer than
   ``now - group_expiry``) for at most `GROUP_SAMPLE` groups
   (``<prefix>:group:{<group>}``).

The oldest message's age is read from the head entry's deadline minus
`expiry`. Depth is ``LLEN``: entries that expired but no receiver has popped
yet are included (their age then exceeds `expiry`, a sign that nobody reads the
channel). Entries a daphne prefetched from its ``P!`` list into memory are no
longer in Redis and are not counted. Drops come from `global_statistics()`
(``channel_full_count``, ``expired_count``, L-39). Dead letters (issue 17) are the
``LLEN`` of each ``<prefix>{<storage>}:dead`` list the scan finds (`reliable`).
"""

from __future__ import annotations

from typing import Any

from channels.layers.inspect import (
    GROUP_SAMPLE,
    FamilyStats,
    LayerSnapshot,
    dead_letter_summary,
    describe,
    drops_from_statistics,
    group_summary,
    summarize,
)

from .entries import DEADLINE_DIGITS

__all__ = ["MAX_KEYS", "SCAN_COUNT", "snapshot"]

# Keys one SCAN call asks for, and the most keys one snapshot looks at per shard.
SCAN_COUNT = 1000
MAX_KEYS = 20_000


def _escape(text: str) -> str:
    """`text` as a literal in a Redis glob pattern."""
    return "".join("\\" + char if char in "*?[]\\" else char for char in text)


def _text(key: bytes | str) -> str:
    return key.decode("utf-8") if isinstance(key, bytes) else key


def _scan(client: Any, pattern: str) -> tuple[list[str], bool]:
    """Keys matching `pattern`, at most MAX_KEYS of them; True when it stopped early."""
    keys: list[str] = []
    cursor = 0
    while True:
        cursor, page = client.scan(cursor=cursor, match=pattern, count=SCAN_COUNT)
        keys.extend(_text(key) for key in page)
        if int(cursor) == 0:
            return keys, False
        if len(keys) >= MAX_KEYS:
            return keys, True


def _read_shard(
    layer: Any, client: Any
) -> tuple[list[tuple[str, int, float]], dict[str, int], int, bool, dict[str, int]]:
    """``(queues, sampled group sizes, group count, truncated, dead letters per
    channel)`` of one shard."""
    seconds, micros = client.time()
    now_ms = int(seconds) * 1000 + int(micros) // 1000
    list_start = f"{layer.prefix}{{"
    group_start = f"{layer.prefix}:group:{{"
    keys, truncated = _scan(client, _escape(layer.prefix) + "*")
    lists: list[tuple[str, str]] = []
    groups: list[str] = []
    dead: list[tuple[str, str]] = []
    group_count = 0
    for key in keys:
        if key.endswith("}:dead") and key.startswith(list_start):
            dead.append((key, key[len(list_start) : -len("}:dead")]))  # issue 17
            continue
        if not key.endswith("}"):
            continue  # announcements, doorbells, leases, other keys under the prefix
        if key.startswith(group_start):
            group_count += 1
            if len(groups) < GROUP_SAMPLE:
                groups.append(key)
        elif key.startswith(list_start):
            lists.append((key, key[len(list_start) : -1]))
    pipe = client.pipeline(transaction=False)
    for key, _ in lists:
        pipe.llen(key)
        pipe.lindex(key, 0)
    oldest_member = now_ms - int(layer.group_expiry * 1000)
    for key in groups:
        pipe.zcount(key, oldest_member, "+inf")
    for key, _ in dead:
        pipe.llen(key)
    replies = pipe.execute() if lists or groups or dead else []
    queues = []
    expiry_ms = int(layer.expiry * 1000)
    for index, (_, storage) in enumerate(lists):
        depth, head = replies[2 * index], replies[2 * index + 1]
        age = 0.0
        if head:
            sent_ms = int(head[:DEADLINE_DIGITS]) - expiry_ms
            age = max(0, now_ms - sent_ms) / 1000
        queues.append((storage, int(depth), age))
    sizes = {}
    group_replies = replies[2 * len(lists) : 2 * len(lists) + len(groups)]
    for key, members in zip(groups, group_replies, strict=True):
        if members:
            sizes[key[len(group_start) : -1]] = int(members)
    letters: dict[str, int] = {}
    for (_, storage), count in zip(dead, replies[2 * len(lists) + len(groups) :], strict=True):
        letters[storage] = letters.get(storage, 0) + int(count)
    return queues, sizes, group_count, truncated, letters


def _merge(first: dict[str, FamilyStats], second: dict[str, FamilyStats]) -> dict[str, FamilyStats]:
    merged = dict(first)
    for family, stats in second.items():
        other = merged.get(family)
        if other is not None:
            stats = FamilyStats(
                family,
                other.depth + stats.depth,
                max(other.oldest_age, stats.oldest_age),
                other.channels + stats.channels,
            )
        merged[family] = stats
    return dict(sorted(merged.items()))


def snapshot(layer: Any) -> LayerSnapshot:
    """Read every shard of `layer` (a `RedisChannelLayer` or subclass) now.

    A shard that does not answer raises its connection error: a partial
    picture would look like an empty queue.
    """
    queues: list[tuple[str, int, float]] = []
    sizes: dict[str, int] = {}
    group_count = 0
    truncated = False
    dead: dict[str, int] = {}
    for index in range(layer.ring_size):
        shard_queues, shard_sizes, shard_groups, shard_truncated, shard_dead = _read_shard(
            layer, layer.connection(index)
        )
        for storage, count in shard_dead.items():
            dead[storage] = dead.get(storage, 0) + count
        queues.extend(shard_queues)
        for group, members in shard_sizes.items():  # a group lives on one shard
            sizes[group] = sizes.get(group, 0) + members
        group_count += shard_groups
        truncated = truncated or shard_truncated
    families = summarize(queues)
    local = getattr(layer, "local_layer", None)  # RedisLocalChannelLayer: normal names
    if local is not None:
        from asgi_ipc.inspect import snapshot as local_snapshot

        families = _merge(families, local_snapshot(local).families)
    statistics = dict(layer.global_statistics())
    # The layer counts expiries; global_statistics() lists them once not zero (L-39).
    drops = {"channel_full": 0, "expired": 0, **drops_from_statistics(statistics)}
    return LayerSnapshot(
        layer=describe(layer),
        families=families,
        group_count=group_count,
        group_sizes=group_summary(sizes),
        drops=drops,
        dead_letters=sum(dead.values()) if "at_least_once" in layer.extensions or dead else None,
        dead_letter_families=dead_letter_summary(dead),
        truncated=truncated,
        statistics=statistics,
    )
