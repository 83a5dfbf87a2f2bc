"""Helpers for consumers of at-least-once channels (issue 17; docs/delivery.rst).

A message on an at-least-once channel may be handled more than once (a worker killed
after the consumer's side effects, before its acknowledgement). `once` is a small
dedupe check for making such a consumer idempotent.
"""

from __future__ import annotations

__all__ = ["once"]

# Prefix of every key `once` stores, so they cannot collide with the project's own.
KEY_PREFIX = "channels.once:"


def once(key: str, ttl: int = 3600, cache: str = "default") -> bool:
    """True the first time `key` is seen within `ttl` seconds, False afterwards.

    Uses Django's cache `cache` (``cache.add`` is atomic on the Redis and Memcached
    backends). With more than one worker process, configure a shared cache: the
    local-memory cache is per process.
    """
    from django.core.cache import caches

    return bool(caches[cache].add(KEY_PREFIX + key, 1, ttl))
