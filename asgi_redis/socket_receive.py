"""A receive on one shard driven by the caller's event loop: no thread, no blocking read.

daphne waits for its replies on one ``P!`` list. With a thread blocking in
`receive` each batch of replies cost a thread switch, a wake-up of the reactor
(`callFromThread`) and a wake-up of the thread again, all under the GIL; on a
busy 2-core machine the reactor thread was often descheduled right after
waking the reader, while still holding the GIL (issue 9 profiles). Here the
reactor itself watches the socket of a ``BLMPOP`` sent without waiting, and
parses the reply with hiredis as bytes arrive, so a batch of replies costs one
readable event and one ``recv``.

The blocking pop and its entries follow the layer's receive exactly: up to
`prefetch` entries per pop (only one process reads a ``P!`` list), entries
past their deadline on the shard's clock are dropped (A-27), bundles expand
into one message per name (A-93). A bundle's payload is decoded once and its
members get copies (issue 20: a broadcast to 2,000 sockets of one daphne is one
entry), each its own dict (A-8). The shard's clock offset is refreshed by a
``TIME`` sent in the same write as the pop when it is older than
`clock_check_interval`; its reply comes at once, before the pop's.
"""

from __future__ import annotations

import collections
import logging
import socket
import time
from typing import Any

import redis

from .entries import decode_entry
from .popping import Visit, blmpop_args
from .shard import describe_client
from .wire import own_connection, pack_command

try:
    import hiredis
except ImportError:  # pragma: no cover - hiredis is a dependency
    hiredis = None  # type: ignore[assignment]  # checked before any use

__all__ = ["SocketReceive", "SocketReceiveUnsupported"]

logger = logging.getLogger("asgi_redis")

_TIME = pack_command(("TIME",))
_CLOCK, _POP, _COUNT = "clock", "pop", "count"
# Error replies of a master turned replica (a blocked pop is unblocked with the second).
_FAILOVER_REPLIES = ("READONLY", "UNBLOCKED")


# Values a shallow copy may share between members: nothing can change them in place.
_SCALARS = frozenset({str, bytes, int, float, bool, type(None)})


def _copies(
    names: list[str], message: dict[str, Any], decode: Any, payload: bytes
) -> list[tuple[str, dict[str, Any]]]:
    """A bundle's members (A-93), each with its own dict (A-8), decoded once: a
    message of plain values (a group's frame) is copied, any other decoded again."""
    if all(type(value) in _SCALARS for value in message.values()):
        copy = message.copy
        return [(names[0], message), *[(name, copy()) for name in names[1:]]]
    return [(names[0], message), *[(name, decode(payload)) for name in names[1:]]]


class SocketReceiveUnsupported(NotImplementedError):
    """This receive cannot run on a socket; use the blocking `receive` in a thread."""


class SocketReceive:
    """Blocking pops on one shard's lists, sent and read without blocking the caller.

    The caller watches `fileno()` for reading (Twisted: `reactor.addReader`) and
    calls `read()` whenever it is readable; `read()` returns the messages that
    arrived (often none) and sends the next pop itself. Any error means the
    connection is gone: `close()` this object and make a new one (it reconnects).
    """

    def __init__(self, layer: Any, visit: Visit, timeout: float) -> None:
        shard = visit.shard
        if hiredis is None:
            raise SocketReceiveUnsupported("hiredis is not installed")
        if not shard.features().blmpop:  # asked once per shard (`features`)
            raise SocketReceiveUnsupported("the Redis server has no BLMPOP (Redis 7)")
        self._layer = layer
        self._visit = visit
        self._shard = shard
        self._client = shard.client()
        self._packed_pop = pack_command(blmpop_args(visit.keys, timeout, visit.batch()))
        self._expected: collections.deque[str] = collections.deque()
        self._reader = hiredis.Reader()
        began = shard.failures
        connection = own_connection(self._client)  # not counted by the pool
        try:
            connection.connect()  # address, TLS, AUTH, database: the client's own
        except redis.RedisError as exc:
            raise self._shard.lost(self._client, exc) from None
        self._shard.answered(describe_client(self._client), began)  # INFO after an outage
        self._connection = connection
        self._socket: socket.socket = connection._sock
        if not isinstance(self._socket, socket.socket) or hasattr(self._socket, "pending"):
            # A TLS socket keeps decrypted bytes that its descriptor does not show.
            self.close()
            raise SocketReceiveUnsupported("the connection uses TLS")
        self._socket.setblocking(False)
        self._send_pop()

    def fileno(self) -> int:
        return self._socket.fileno()

    def read(self) -> list[tuple[str, dict[str, Any]]]:
        """The messages that arrived; sends the next pop once a pop has answered."""
        try:
            data = self._socket.recv(1 << 16)
        except (BlockingIOError, InterruptedError):
            return []
        except OSError as exc:
            raise self._lost(redis.ConnectionError(f"Error reading from Redis: {exc}"))
        if not data:
            raise self._lost(redis.ConnectionError("Connection closed by server."))
        self._reader.feed(data)
        messages: list[tuple[str, dict[str, Any]]] = []
        while (reply := self._reader.gets()) is not False:
            self._take(self._expected.popleft(), reply, messages)
        return messages

    def close(self) -> None:
        """Drop the connection (a pop may be pending on it: it is never reused)."""
        self._connection.disconnect()

    def _take(self, kind: str, reply: Any, messages: list[tuple[str, dict[str, Any]]]) -> None:
        if isinstance(reply, hiredis.ReplyError):
            if kind == _COUNT:
                return  # not counted (e.g. out of memory); the pop still counts
            error = redis.ResponseError(str(reply))
            if str(reply).startswith(_FAILOVER_REPLIES):
                # This server became a replica: a Sentinel shard looks up its master again.
                raise self._lost(error)
            raise error
        if kind == _COUNT:
            return  # an expired_count increment sent with the pop (`expiry`)
        if kind == _CLOCK:
            seconds, microseconds = reply
            self._shard.note_clock(int(seconds) * 1000 + int(microseconds) // 1000)
            return
        if reply is not None:  # None: the pop's time ran out
            key, entries = reply
            self._add_live(self._visit.keys.index(key.decode("utf-8")), entries, messages)
        self._send_pop()

    def _add_live(
        self, index: int, entries: list[bytes], messages: list[tuple[str, dict[str, Any]]]
    ) -> None:
        storage = self._visit.storages[index]
        decode = self._layer._codec.decode
        server_now_ms = (time.time() + self._shard.clock_offset) * 1000
        for entry in entries:
            deadline, names, payload = decode_entry(entry, storage)
            if deadline <= server_now_ms:
                # Expired while it waited: counted with the next pop (`expiry`).
                self._shard.expired.dropped_messages(storage, len(names))
                continue
            try:
                message = decode(payload)
                if len(names) == 1:
                    messages.append((names[0], message))
                else:
                    messages.extend(_copies(names, message, decode, payload))
            except Exception as exc:  # e.g. a token sealed with another key (L-37)
                logger.error("Dropped an unreadable message on %s: %r", storage, exc)

    def _send_pop(self) -> None:
        packed = self._packed_pop
        if time.monotonic() - self._shard.clock_checked >= self._layer.clock_check_interval:
            packed = _TIME + packed
            self._expected.append(_CLOCK)
        if self._shard.expired:
            counts = self._shard.expired.packed()
            packed = b"".join(counts) + packed
            # Their replies come first: in front of the clock's and the pop's.
            self._expected.extend([_COUNT] * len(counts))
            self._expected.rotate(len(counts))
        self._expected.append(_POP)
        try:
            sent = self._socket.send(packed)
        except OSError as exc:
            raise self._lost(redis.ConnectionError(f"Error writing to Redis: {exc}"))
        if sent != len(packed):
            # A few hundred bytes into an idle socket's empty send buffer.
            raise self._lost(redis.ConnectionError("Redis socket send buffer full"))

    def _lost(self, exc: Exception) -> Exception:
        # Not closed here: the caller's loop must stop watching the descriptor first.
        return self._shard.lost(self._client, exc)
