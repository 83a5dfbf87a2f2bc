"""The layer's own errors for Redis refusals (L-28, L-44; issue 15 item 9).

Redis refuses a write with an error reply in two cases the layer names:

- ``unknown command``: the server is too old (`UnsupportedRedis`);
- ``OOM command not allowed when used memory > 'maxmemory'``: the server is
  full (`LayerOutOfMemory`). Nothing was stored (the send scripts write
  nothing before their first refused write). It subclasses
  `redis.exceptions.OutOfMemoryError` (a `redis.ResponseError`), so existing
  ``except redis.ResponseError`` still catches it, and `LayerUnavailable`, the
  layer's "cannot take messages now, try again later" notion: a server maps it
  to 503 with ``Retry-After`` like an unreachable layer, not to 500.

`LayerUnavailable` carries the class attribute ``layer_unavailable = True`` so
callers that must not import this package (daphne works with any layer) can
test ``getattr(error, "layer_unavailable", False)``.
"""

from __future__ import annotations

import redis

__all__ = [
    "LayerOutOfMemory",
    "LayerUnavailable",
    "UnsupportedRedis",
    "describe_client",
    "refusal",
]


class UnsupportedRedis(Exception):
    """The Redis server lacks a command this layer needs (L-28, L-44)."""


class LayerUnavailable(Exception):
    """The layer cannot take messages right now; the same call may work later."""

    layer_unavailable = True


class LayerOutOfMemory(redis.exceptions.OutOfMemoryError, LayerUnavailable):
    """Redis refused a write: it reached ``maxmemory`` (and evicts nothing)."""

    # What channels' worker and daphne test, without importing asgi_redis or redis.
    layer_out_of_memory = True


def describe_client(client: redis.Redis) -> str:
    """``host:port`` (or the socket path) of a client, for messages."""
    kwargs = client.connection_pool.connection_kwargs
    if "path" in kwargs:
        return f"unix:{kwargs['path']}"
    return f"{kwargs.get('host', 'localhost')}:{kwargs.get('port', 6379)}"


def is_out_of_memory(exc: BaseException) -> bool:
    return isinstance(exc, redis.exceptions.OutOfMemoryError) or str(exc).startswith("OOM ")


def refusal(exc: redis.ResponseError, client: redis.Redis | None = None) -> Exception:
    """The layer's error for an error reply: `UnsupportedRedis`, `LayerOutOfMemory`,
    or `exc` itself. `client` names the server in the message."""
    text = str(exc)
    if "unknown command" in text.lower():
        return UnsupportedRedis(
            f"The Redis server does not support a command this layer needs ({exc}); "
            "use Redis 6.2 or newer (tested with 7.x)"
        )
    if isinstance(exc, LayerOutOfMemory) or not is_out_of_memory(exc):
        return exc
    where = f"Redis at {describe_client(client)}" if client is not None else "Redis"
    error = LayerOutOfMemory(
        f"{where} is out of memory and refused the message ({text.split('. script:')[0]}); "
        "nothing was stored. Let consumers catch up, lower capacity or expiry, or raise "
        "maxmemory (keep maxmemory-policy noeviction: evicting would drop queued messages "
        "and groups)"
    )
    error.__cause__ = exc
    return error
