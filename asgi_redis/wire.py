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

A blocking receive over several shards waits on one connection per shard at
once: `take` a connection, `send_blocking` the pop without reading, watch
them all with a `ReplyWatch`, `read_reply` the one that answers, and
`give_back` every connection afterwards (a failed one disconnected).
"""

from __future__ import annotations

import errno
import math
import os
import select
import threading
from typing import Any

import redis

# Present with or without hiredis installed (a dependency); without it no connection
# uses this parser, and every read goes through redis-py.
from redis._parsers.hiredis import NOT_ENOUGH_DATA, _HiredisParser

__all__ = [
    "ReplyWatch",
    "own_connection",
    "execute",
    "execute_packed",
    "execute_pipeline",
    "give_back",
    "bulk_length",
    "pack_argument",
    "pack_command",
    "read_replies",
    "read_reply",
    "reply_ready",
    "send_blocking",
    "take",
]

_DEFAULT = object()
_free_lock = threading.Lock()
# The attribute of a redis-py client holding ``(generation, idle connections)``.
_FREE = "_asgi_redis_free"
# Bumped in a forked child, so it never shares the parent's sockets.
_generation = 0
# The attribute of a redis-py connection holding ``(socket, poll object)``.
_POLLER = "_asgi_redis_poller"
# The attribute of a redis-py connection holding ``(socket, CLIENT ID reply)``:
# the id belongs to one socket, since a reconnect makes a new server-side client.
_CLIENT_ID = "_asgi_redis_client_id"


def _forked() -> None:
    global _generation
    _generation += 1


os.register_at_fork(after_in_child=_forked)


# Packed forms of the str and int arguments seen before (issue 20): most of a send's
# arguments (script SHA, key count, keys, TTLs, capacities, entry headers) repeat
# from call to call. Short names only, bounded: a full cache starts over.
_PACKED_STR: dict[str, bytes] = {}
_PACKED_INT: dict[int, bytes] = {}
_PACKED_MAX = 4096
_PACKED_STR_MAX_LENGTH = 200


def _packed_new(arg: Any, kind: type) -> bytes:
    if kind is str:
        data = arg.encode("utf-8")
        cache: dict[Any, bytes] | None = _PACKED_STR if len(arg) <= _PACKED_STR_MAX_LENGTH else None
    elif kind is int:
        data, cache = b"%d" % arg, _PACKED_INT
    else:
        data, cache = str(arg).encode("utf-8"), None
    packed = b"$%d\r\n%b\r\n" % (len(data), data)
    if cache is not None:
        if len(cache) >= _PACKED_MAX:
            cache.clear()
        cache[arg] = packed
    return packed


def bulk_length(length: int) -> bytes:
    """The ``$<length>\\r\\n`` in front of a bulk string of `length` bytes."""
    head = _LENGTHS.get(length)
    if head is None:
        head = b"$" + str(length).encode("ascii") + b"\r\n"
        if length < _LENGTHS_MAX:
            _LENGTHS[length] = head
    return head


_LENGTHS: dict[int, bytes] = {}
_LENGTHS_MAX = 4096


def pack_argument(arg: Any) -> bytes:
    """One argument (bytes, str or int) in RESP, as `pack_command` packs it."""
    kind = type(arg)
    if kind is bytes:
        data: bytes = arg
        return bulk_length(len(data)) + data + b"\r\n"
    packed = _PACKED_STR.get(arg) if kind is str else _PACKED_INT.get(arg) if kind is int else None
    return packed if packed is not None else _packed_new(arg, kind)


def pack_command(args: tuple[Any, ...]) -> bytes:
    """RESP encoding of a command whose arguments are bytes, str or int.

    Not hiredis's ``pack_command``, though it is three times faster: it runs
    Python signal handlers from inside its C code and crashes (SIGSEGV) when
    one raises, as a worker's SIGTERM while idle does (C-31: SystemExit) and
    Ctrl-C does (KeyboardInterrupt). Hot commands are packed once and kept, and
    repeated str and int arguments are packed once (`_PACKED_STR`, `_PACKED_INT`).
    """
    parts = [b"*%d\r\n" % len(args)]
    append = parts.append
    strings, ints, lengths = _PACKED_STR, _PACKED_INT, _LENGTHS
    for arg in args:
        kind = type(arg)
        if kind is bytes:
            append(lengths.get(len(arg)) or bulk_length(len(arg)))
            append(arg)
            append(b"\r\n")
            continue
        packed = strings.get(arg) if kind is str else ints.get(arg) if kind is int else None
        append(packed if packed is not None else _packed_new(arg, kind))
    return b"".join(parts)


def _free_list(client: redis.Redis) -> list[Any]:
    owned = getattr(client, _FREE, None)
    if owned is not None and owned[0] == _generation:
        free: list[Any] = owned[1]
        return free
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


def _acquire(client: redis.Redis, connect_timeout: float | None = None) -> tuple[list[Any], Any]:
    # `_free_list` and `_is_stale` inline on the hot path: one call less each per command.
    owned = getattr(client, _FREE, None)
    free = owned[1] if owned is not None and owned[0] == _generation else _free_list(client)
    try:
        connection = free.pop()
    except IndexError:
        connection = client.connection_pool.make_connection()
    try:
        sock = connection._sock
        if sock is None:
            if connect_timeout is None:
                connection.connect()
            else:
                _connect_within(connection, connect_timeout)
        else:
            poller = getattr(connection, _POLLER, None)
            if poller is not None and poller[0] is sock:
                try:
                    stale = bool(poller[1].poll(0))
                except OSError:
                    stale = True
            else:
                stale = _is_stale(connection, sock)
            if stale:
                connection.disconnect()
                connection.connect()
    except BaseException:
        # Keep the (disconnected) connection: making a new one for every failed
        # attempt during an outage would run into the pool's max_connections.
        free.append(connection)
        raise
    return free, connection


def _connect_within(connection: Any, timeout: float) -> None:
    """Connect `connection` with a TCP connect timeout of at most `timeout` seconds (the
    handshake with Redis after it keeps the socket timeout)."""
    configured = connection.socket_connect_timeout
    if configured is None or configured > timeout:
        connection.socket_connect_timeout = timeout
    try:
        connection.connect()
    finally:
        connection.socket_connect_timeout = configured


def own_connection(client: redis.Redis) -> Any:
    """A new, unconnected connection with `client`'s settings that its pool does not count.

    For a connection its user closes itself (`socket_receive`, `socket_send`): made
    with ``make_connection`` every one counted against the pool's
    ``max_connections`` (100) and was never counted down, so after 100 reconnects
    (a long outage, or many short ones) no new one could be made at all.
    """
    pool = client.connection_pool
    return pool.connection_class(**pool.connection_kwargs)


def execute(
    client: redis.Redis,
    *args: Any,
    read_timeout: Any = _DEFAULT,
    connect_timeout: float | None = None,
) -> Any:
    """Send ``args`` as one command and return the reply (bytes, not decoded).

    `read_timeout` overrides the socket timeout for this reply only (a blocking
    pop waits longer than redis-py's default socket timeout); `connect_timeout`
    shortens the TCP connect timeout, should a connection have to be made.
    """
    return execute_packed(
        client, pack_command(args), read_timeout=read_timeout, connect_timeout=connect_timeout
    )


def execute_packed(
    client: redis.Redis,
    packed: bytes,
    read_timeout: Any = _DEFAULT,
    connect_timeout: float | None = None,
) -> Any:
    """As `execute`, for a command packed by `pack_command` (callers keep hot ones)."""
    free, connection = _acquire(client, connect_timeout)
    try:
        parser = connection._parser
        if type(parser) is not _HiredisParser:
            connection.send_packed_command((packed,), check_health=False)
            if read_timeout is _DEFAULT:
                return connection.read_response()
            return connection.read_response(timeout=read_timeout)
        try:
            connection._sock.sendall(packed)
        except OSError as exc:
            raise _write_failed(exc) from exc
        reply = _read(connection, parser, 1, read_timeout)[0]
        if isinstance(reply, redis.ResponseError):
            raise reply
        return reply
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
        parser = connection._parser
        if type(parser) is not _HiredisParser:
            return _pipeline_through_redis_py(connection, packed, read_timeout)
        try:
            connection._sock.sendall(b"".join(packed))
        except OSError as exc:
            raise _write_failed(exc) from exc
        return _read(
            connection, parser, len(packed), _DEFAULT if read_timeout is None else read_timeout
        )
    except BaseException:
        connection.disconnect()
        raise
    finally:
        free.append(connection)


def read_replies(connection: Any, count: int) -> list[Any]:
    """`count` replies to commands sent earlier on `connection` (from `take`), read as
    `execute_pipeline` reads them: error replies returned as their
    `redis.ResponseError`; any other failure disconnects the connection."""
    try:
        parser = connection._parser
        if type(parser) is not _HiredisParser:
            replies: list[Any] = []
            for _ in range(count):
                try:
                    replies.append(connection.read_response())
                except redis.ResponseError as exc:
                    replies.append(exc)
            return replies
        return _read(connection, parser, count, _DEFAULT)
    except BaseException:
        connection.disconnect()
        raise


def _pipeline_through_redis_py(
    connection: Any, packed: Any, read_timeout: float | None
) -> list[Any]:
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


# -- the write and the reads without redis-py's per-reply layers (issue 20) ------------
#
# `Connection.read_response` formats the host string, tests the protocol and wraps
# the parser's own `read_response` (push frames, RESP3) for every reply, and
# `send_packed_command` checks the socket and the health first: a fifth of the
# client's cost of a worker's send-then-receive. On a connection parsed by hiredis
# the replies come straight from its reader (RESP3 push frames handed to the
# parser's handler, as redis-py does); failures are reported as
# redis-py reports them (`TimeoutError`, `ConnectionError` naming the host) and the
# callers disconnect the connection, as redis-py does.


def _write_failed(exc: OSError) -> redis.RedisError:
    """redis-py's error for a failed write (`send_packed_command`); the caller disconnects."""
    if isinstance(exc, TimeoutError):  # socket.timeout
        if exc.errno == errno.ETIMEDOUT:  # from the OS: the connection is dead
            return redis.ConnectionError(
                f"Error {exc.errno} while writing to socket. {exc.strerror}."
            )
        return redis.TimeoutError("Timeout writing to socket")
    code, text = ("UNKNOWN", exc.args[0]) if len(exc.args) == 1 else exc.args[:2]
    return redis.ConnectionError(f"Error {code} while writing to socket. {text}.")


def _read(connection: Any, parser: Any, count: int, last_timeout: Any) -> list[Any]:
    """`count` replies, error replies returned as their `redis.ResponseError`.

    `last_timeout` (seconds, or `_DEFAULT` for the socket's own) applies to each
    wait for the last reply's bytes, as redis-py's ``read_response(timeout=)``
    does. The caller disconnects on failure.
    """
    replies: list[Any] = []
    timeout: Any = _DEFAULT
    try:
        while count:
            count -= 1
            if not count:
                timeout = last_timeout
            reader = parser._reader
            if reader is None:
                raise redis.ConnectionError("Connection closed by server.")
            reply = reader.gets()
            while reply is NOT_ENOUGH_DATA:
                if timeout is not _DEFAULT:
                    parser.read_from_socket(timeout=timeout)
                else:
                    # `read_from_socket` inline for the socket's own timeout.
                    sock, buffer = parser._sock, parser._buffer
                    if sock is None:
                        raise redis.ConnectionError("Connection closed by server.")
                    try:
                        length = sock.recv_into(buffer)
                    except TimeoutError as exc:  # socket.timeout
                        if exc.errno == errno.ETIMEDOUT:  # from the OS: the connection is dead
                            raise redis.ConnectionError(
                                f"Error while reading from socket: {exc.args}"
                            ) from exc
                        raise redis.TimeoutError("Timeout reading from socket") from exc
                    if not length:
                        raise redis.ConnectionError("Connection closed by server.")
                    reader.feed(buffer, 0, length)
                reply = reader.gets()
            kind = type(reply)
            if kind is bytes or kind is list or kind is int or reply is None:
                # The usual replies; a list may still hold a LOADING-like error first.
                if kind is list and reply and isinstance(reply[0], redis.ConnectionError):
                    raise reply[0]
                replies.append(reply)
                continue
            push = parser._hiredis_PushNotificationType
            if push is not None and isinstance(reply, push):
                parser.handle_push_response(reply)  # RESP3 push frame: as redis-py does
                count += 1
                continue
            if isinstance(reply, redis.ConnectionError):
                raise reply  # e.g. LOADING, MASTERDOWN: redis-py raises these
            replies.append(reply)
    except (TimeoutError, redis.TimeoutError) as exc:
        raise redis.TimeoutError(f"Timeout reading from {connection._host_error()}") from exc
    except OSError as exc:
        raise redis.ConnectionError(
            f"Error while reading from {connection._host_error()} : {exc.args}"
        ) from exc
    return replies


# -- replies read later: a wait on several shards at once ---------------------------


_PACKED_CLIENT_ID = pack_command(("CLIENT", "ID"))


def take(client: redis.Redis) -> Any:
    """A connected connection of `client` for the caller alone, until `give_back`."""
    return _acquire(client)[1]


def give_back(client: redis.Redis, connection: Any) -> None:
    """Return a connection from `take`: its reply read whole, or disconnected."""
    _free_list(client).append(connection)


def send_blocking(connection: Any, packed: bytes, read_timeout: float) -> int:
    """Send `packed` (a blocking pop) without reading its reply; return the client id.

    The id is what ``CLIENT UNBLOCK`` on another connection needs to cancel
    the pop. It is asked once per socket, in the same write as the first pop
    (its reply comes at once, before the pop's), and kept on the connection.
    Any failure leaves the connection disconnected: a pop may be pending on it.
    """
    known = getattr(connection, _CLIENT_ID, None)
    sock = connection._sock
    try:
        if known is not None and known[0] is sock:
            connection.send_packed_command((packed,), check_health=False)
            known_id: int = known[1]
            return known_id
        connection.send_packed_command((_PACKED_CLIENT_ID + packed,), check_health=False)
        client_id: int = connection.read_response(timeout=read_timeout)
    except BaseException:
        connection.disconnect()
        raise
    setattr(connection, _CLIENT_ID, (sock, client_id))
    return client_id


def read_reply(connection: Any, timeout: float) -> Any:
    """Read the reply of a command sent earlier, waiting at most `timeout` seconds.

    An error reply is raised as `redis.ResponseError` with the connection still
    usable (the reply was read whole); any other failure disconnects it.
    """
    try:
        return connection.read_response(timeout=timeout)
    except redis.ResponseError:
        raise
    except BaseException:
        connection.disconnect()
        raise


def reply_ready(connection: Any, timeout: float = 0) -> bool:
    """Whether a reply (or the server's close) can be read, waiting up to `timeout` s.

    redis-py's `Connection.can_read` first looks at what is already above the
    socket: bytes in the parser's buffer (the hiredis reader's) and decrypted
    bytes held by a TLS socket, which ``poll`` on the socket cannot see; then
    it polls the socket. A closed socket counts as ready: reading it raises.
    It would reconnect a disconnected connection, which must not happen to
    one whose reply is awaited (the reply would never come), hence the guard.
    """
    if connection._sock is None:
        return True  # disconnected: `read_reply` raises the connection error
    try:
        ready: bool = connection.can_read(timeout=timeout)
    except redis.ConnectionError:
        return True
    return ready


class ReplyWatch:
    """Connections awaiting a reply, watched together by one ``poll`` object.

    ``select.poll``, not ``select.select``: a daphne holds more than 1024
    descriptors. Each connection comes with an owner, which `ready` returns.
    """

    def __init__(self) -> None:
        self._poll = select.poll()
        self._watched: dict[int, tuple[Any, Any]] = {}

    def __bool__(self) -> bool:
        return bool(self._watched)

    def add(self, connection: Any, owner: Any) -> int:
        """Watch `connection` (connected) for `owner`; return the key for `discard`."""
        descriptor: int = connection._sock.fileno()
        self._poll.register(descriptor, select.POLLIN)
        self._watched[descriptor] = (connection, owner)
        return descriptor

    def discard(self, descriptor: int) -> None:
        if self._watched.pop(descriptor, None) is not None:
            self._poll.unregister(descriptor)

    def owners(self) -> list[Any]:
        return [owner for _, owner in self._watched.values()]

    def ready(self, timeout: float) -> list[Any]:
        """Owners whose connection has a reply (or a failure) to read; [] after `timeout` s."""
        watched = self._watched.values()
        buffered = [owner for connection, owner in watched if reply_ready(connection)]
        if buffered:
            return buffered
        events = self._poll.poll(max(0, math.ceil(timeout * 1000)))
        return [self._watched[fd][1] for fd, _ in events if fd in self._watched]
