"""`flush` (A-48, L-42): delete every key under the layer's prefixes with SCAN and UNLINK."""

from __future__ import annotations

import redis

__all__ = ["delete_matching", "glob_escape"]


def glob_escape(text: str) -> str:
    """Escape Redis glob characters so a prefix matches only itself."""
    return "".join("\\" + char if char in "*?[]\\" else char for char in text)


def delete_matching(client: redis.Redis, patterns: list[str]) -> None:
    for pattern in patterns:
        batch = []
        for key in client.scan_iter(match=pattern, count=1000):
            batch.append(key)
            if len(batch) >= 1000:
                client.unlink(*batch)
                batch.clear()
        if batch:
            client.unlink(*batch)
