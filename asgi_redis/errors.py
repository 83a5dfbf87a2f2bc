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

A server that cannot be reached (or does not answer in time) raises redis-py's
``ConnectionError`` / ``TimeoutError`` (or a subclass, e.g. ``BusyLoadingError``);
`Shard.failed` re-makes it with `unavailable`, as a class that is both that
redis-py type and `LayerUnavailable` (`ShardConnectionError`,
`ShardTimeoutError`). So ``except redis.ConnectionError`` keeps working and
``except layer.Unavailable`` catches every outage, whatever the backend.

`LayerUnavailable` is `channels.layers.base.LayerUnavailable` (a builtin
``ConnectionError``), the same class on every layer; it carries
``layer_unavailable = True`` so callers that must not import channels (daphne
works with any layer) can test ``getattr(error, "layer_unavailable", False)``.
Why `LayerOutOfMemory` is one too, though the server answered: like an outage it
refuses every write until something changes on the server, nothing was stored,
and the caller's right answer is the same (503 with ``Retry-After``, back off);
callers that wait out memory but not outages tell it apart by its
``layer_out_of_memory`` attribute.
"""

from __future__ import annotations

import threading
from typing import Any

import redis

from channels.layers.base import LayerUnavailable

__all__ = [
    "LayerOutOfMemory",
    "LayerUnavailable",
    "ShardConnectionError",
    "ShardTimeoutError",
    "UnsupportedRedis",
    "describe_client",
    "refusal",
    "unavailable",
]


class UnsupportedRedis(Exception):
    """The Redis server lacks a command this layer needs (L-28, L-44)."""


class LayerOutOfMemory(redis.exceptions.OutOfMemoryError, LayerUnavailable):
    """Redis refused a write: it reached ``maxmemory`` (and evicts nothing)."""

    # What channels' worker and daphne test, without importing asgi_redis or redis.
    layer_out_of_memory = True


class ShardConnectionError(redis.ConnectionError, LayerUnavailable):
    """A Redis server of the layer cannot be reached: a redis-py ``ConnectionError``
    and a `LayerUnavailable` (the message names the shard and its address)."""

    def __reduce__(self) -> tuple[Any, ...]:
        return _remade, (redis.ConnectionError, self.args), self.__dict__


class ShardTimeoutError(redis.TimeoutError, LayerUnavailable):
    """A Redis server of the layer did not answer in time: a redis-py ``TimeoutError``
    and a `LayerUnavailable`."""

    def __reduce__(self) -> tuple[Any, ...]:
        return _remade, (redis.TimeoutError, self.args), self.__dict__


# redis-py type -> its dual class; the subclasses (BusyLoadingError, MasterNotFoundError,
# AuthenticationError, ...) get theirs on first use, so `except` on them keeps working.
_DUAL: dict[type[Exception], type[LayerUnavailable]] = {
    redis.ConnectionError: ShardConnectionError,
    redis.TimeoutError: ShardTimeoutError,
}
_dual_lock = threading.Lock()


def _dual(kind: type[Exception]) -> type[LayerUnavailable]:
    with _dual_lock:
        dual = _DUAL.get(kind)
        if dual is None:
            dual = _DUAL[kind] = type(
                kind.__name__,
                (kind, LayerUnavailable),
                {
                    "__module__": __name__,
                    "__doc__": f"redis-py's {kind.__name__} that is also a `LayerUnavailable`.",
                    "__reduce__": _reduce_dual,
                },
            )
        return dual


def _reduce_dual(self: BaseException) -> tuple[Any, ...]:
    # The redis-py type is the first base; pickling rebuilds the dual class from it.
    return _remade, (type(self).__bases__[0], self.args), self.__dict__


def _remade(kind: type[Exception], args: tuple[Any, ...]) -> LayerUnavailable:
    return _dual(kind)(*args)


def unavailable(exc: Exception, message: str) -> LayerUnavailable:
    """`exc` re-made with `message`: of `exc`'s own redis-py type and `LayerUnavailable`.

    The original is the new error's ``__cause__``.
    """
    kind = type(exc)
    dual = kind if issubclass(kind, LayerUnavailable) else _dual(kind)
    error = dual(message)
    error.__cause__ = exc
    return error


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
