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

Per call this costs one list pop and append, one ``poll`` for the stale
check and the write and the read themselves: the free-list
hangs on the client object (no weak-dictionary lookup), a fork is noticed
through `os.register_at_fork` (no ``getpid`` per call), and an open
connection is not routed through redis-py's connect-with-retry wrapper.
With ``hiredis`` installed (a dependency) redis-py parses replies in C.
"""

from __future__ import annotations

import os
import select
import threading
from typing import Any

import redis

__all__ = ["execute", "execute_packed", "execute_pipeline", "pack_command"]

try:
    from hiredis import pack_command as _hiredis_pack
except ImportError:  # hiredis before 2.1, or not installed
    _hiredis_pack = None

_DEFAULT = object()
_free_lock = threading.Lock()
# The attribute of a redis-py client holding ``(generation, idle connections)``.
_FREE = "_asgi_redis_free"
# Bumped in a forked child, so it never shares the parent's sockets.
_generation = 0
# The attribute of a redis-py connection holding ``(socket, poll object)``.
_POLLER = "_asgi_redis_poller"


def _forked() -> None:
    global _generation
    _generation += 1


os.register_at_fork(after_in_child=_forked)


def pack_command(args: tuple[Any, ...]) -> bytes:
    """RESP encoding of a command whose arguments are bytes, str or int.

    hiredis (a dependency) does it in C, three times faster than the loop below,
    which remains for other argument types (and a hiredis without it).
    """
    if _hiredis_pack is not None:
        try:
            return _hiredis_pack(args)
        except (TypeError, OverflowError):
            pass
    parts = [b"*%d\r\n" % len(args)]
    for arg in args:
        kind = type(arg)
        if kind is str:
            arg = arg.encode("utf-8")
        elif kind is int:
            arg = b"%d" % arg
        elif kind is not bytes:
            arg = str(arg).encode("utf-8")
        parts.append(b"$%d\r\n%b\r\n" % (len(arg), arg))
    return b"".join(parts)


def _free_list(client: redis.Redis) -> list:
    owned = getattr(client, _FREE, None)
    if owned is not None and owned[0] == _generation:
        return owned[1]
    with _free_lock:  # first use by several threads at once: one list for all
        owned = getattr(client, _FREE, None)
        if owned is None or owned[0] != _generation:
            # New client, or a forked child: never share the parent's sockets.
            owned = (_generation, [])
            setattr(client, _FREE, owned)
    return owned[1]


def _is_stale(connection: Any, sock: Any) -> bool:
    """Whether an idle connection has something to read: EOF from a restarted
    server, or leftover data. Either way it cannot carry the next command.

    One ``poll`` syscall with a poll object kept per socket (``select`` fails
    on descriptors above 1024, which a daphne holding many sockets reaches).
    """
    poller = getattr(connection, _POLLER, None)
    if poller is None or poller[0] is not sock:
        poller = (sock, select.poll())
        poller[1].register(sock, select.POLLIN)
        setattr(connection, _POLLER, poller)
    try:
        return bool(poller[1].poll(0))
    except OSError:
        return True


def close_connections(client: redis.Redis) -> None:
    """Disconnect `client`'s idle connections: this module's and its pool's.

    A connection taken again later reconnects (`_acquire`).
    """
    for connection in list(_free_list(client)):
        connection.disconnect()
    client.connection_pool.disconnect()


def _acquire(client: redis.Redis) -> tuple[list, Any]:
    free = _free_list(client)
    try:
        connection = free.pop()
    except IndexError:
        connection = client.connection_pool.make_connection()
    try:
        sock = connection._sock
        if sock is None:
            connection.connect()
        elif _is_stale(connection, sock):
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
    return execute_packed(client, pack_command(args), read_timeout=read_timeout)


def execute_packed(client: redis.Redis, packed: bytes, read_timeout: Any = _DEFAULT) -> Any:
    """As `execute`, for a command packed by `pack_command` (callers keep hot ones)."""
    free, connection = _acquire(client)
    try:
        connection.send_packed_command((packed,), check_health=False)
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


def execute_pipeline(
    client: redis.Redis, packed: Any, read_timeout: float | None = None
) -> list[Any]:
    """Send packed commands in one write and return their replies in order.

    An error reply is returned as its `redis.ResponseError` (it was read whole,
    and the later replies are still read), so the caller decides per command.
    `read_timeout`, when given, applies to the last reply (a blocking pop).
    """
    free, connection = _acquire(client)
    try:
        connection.send_packed_command((b"".join(packed),), check_health=False)
        replies: list[Any] = []
        last = len(packed) - 1
        for index in range(last + 1):
            try:
                if index == last and read_timeout is not None:
                    replies.append(connection.read_response(timeout=read_timeout))
                else:
                    replies.append(connection.read_response())
            except redis.ResponseError as exc:
                replies.append(exc)
        return replies
    except BaseException:
        connection.disconnect()
        raise
    finally:
        free.append(connection)
