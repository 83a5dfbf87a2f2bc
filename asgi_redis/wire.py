"""Running one Redis command on a connection of the layer's own, with minimal overhead.

Profiling a send+receive pair (benchmarks/redis_layer.py) showed redis-py's
per-command machinery taking about half the client's CPU time: argument
encoding through its generic packer, and pool check-out/check-in with metrics
recording on every call. The layer's hot path sends a handful of known
argument types, so this module packs them directly and keeps a small
free-list of connections per client. The connections are made by the
client's own pool (`make_connection`), so address, TLS, password, database
and socket options are the client's. Before reuse an idle connection is
checked as redis-py's pool does: one that is readable (the server closed it,
e.g. a restart) is reconnected, so the next operation after a restart works
(L-62.2). A connection that fails mid-command is disconnected, never reused
half-read.
"""

from __future__ import annotations

import os
import threading
import weakref
from typing import Any

import redis

__all__ = ["execute", "pack_command"]

_DEFAULT = object()
_free_lock = threading.Lock()
# client -> (pid that made the connections, idle connections)
_free: weakref.WeakKeyDictionary[redis.Redis, tuple[int, list]] = weakref.WeakKeyDictionary()


def pack_command(args: tuple[Any, ...]) -> bytes:
    """RESP encoding of a command whose arguments are bytes, str or int."""
    parts = [b"*%d\r\n" % len(args)]
    for arg in args:
        if type(arg) is bytes:
            data = arg
        elif type(arg) is str:
            data = arg.encode("utf-8")
        elif type(arg) is int:
            data = b"%d" % arg
        else:
            data = str(arg).encode("utf-8")
        parts.append(b"$%d\r\n" % len(data))
        parts.append(data)
        parts.append(b"\r\n")
    return b"".join(parts)


def _acquire(client: redis.Redis) -> tuple[list, Any]:
    pid = os.getpid()
    owner, free = _free.get(client, (None, None))
    if owner != pid:
        with _free_lock:  # first use by several threads at once: one list for all
            owner, free = _free.get(client, (None, None))
            if owner != pid:
                # New client, or a forked child: never share the parent's sockets.
                free = []
                _free[client] = (pid, free)
    try:
        connection = free.pop()
    except IndexError:
        connection = client.connection_pool.make_connection()
    try:
        connection.connect()  # no-op while connected
        try:
            stale = connection.can_read()
        except (redis.ConnectionError, redis.TimeoutError, OSError):
            stale = True
        if stale:
            # EOF from a restarted server or leftover data: start afresh.
            connection.disconnect()
            connection.connect()
    except BaseException:
        # Keep the (disconnected) connection: making a new one for every failed
        # attempt during an outage would run into the pool's max_connections.
        free.append(connection)
        raise
    return free, connection


def execute(client: redis.Redis, *args: Any, read_timeout: Any = _DEFAULT) -> Any:
    """Send ``args`` as one command and return the reply (bytes, not decoded).

    `read_timeout` overrides the socket timeout for this reply only (a blocking
    pop waits longer than redis-py's default socket timeout).
    """
    free, connection = _acquire(client)
    try:
        connection.send_packed_command([pack_command(args)], check_health=False)
        if read_timeout is _DEFAULT:
            return connection.read_response()
        return connection.read_response(timeout=read_timeout)
    except redis.ResponseError:
        raise  # the error reply was read whole; the connection is fine
    except BaseException:
        connection.disconnect()
        raise
    finally:
        free.append(connection)
