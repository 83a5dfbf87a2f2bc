"""A Redis that refuses writes for lack of memory, for the issue 15 item 9 tests.

``redis-server --maxmemory 2mb --maxmemory-policy noeviction`` answers every write
with ``OOM command not allowed`` once full; reads and pops still work. Filler keys
share one prefix so a test can free the memory again.
"""

from __future__ import annotations

import redis

MAXMEMORY_ARGS = ["--maxmemory", "2mb", "--maxmemory-policy", "noeviction"]
FILLER_PREFIX = "test-filler:"
# Far more than 2 MB of keys: each loop always ends on an OOM refusal.
_MAX_FILLER_KEYS = 10_000


def fill_until_out_of_memory(client: redis.Redis) -> int:
    """Write filler keys until Redis refuses even a tiny one; return how many it stored.

    A refused large write may leave room for smaller ones (its own request buffer
    counted against the limit), so the sizes step down until a 10-byte write fails:
    then every write a layer makes is refused.
    """
    stored = 0
    for size in (10_000, 1_000, 100, 10):
        for _ in range(_MAX_FILLER_KEYS):
            try:
                client.set(f"{FILLER_PREFIX}{stored}", b"x" * size)
            except redis.exceptions.OutOfMemoryError:
                break
            stored += 1
        else:
            raise AssertionError("Redis never ran out of memory: is maxmemory set?")
    return stored


def free_memory(client: redis.Redis) -> None:
    keys = list(client.scan_iter(f"{FILLER_PREFIX}*", count=1000))
    if keys:
        client.delete(*keys)


def out_of_memory_refusals(client: redis.Redis) -> int:
    """How many commands the server refused with OOM so far (INFO errorstats)."""
    stats = client.info("errorstats").get("errorstat_OOM")
    return stats["count"] if stats else 0
