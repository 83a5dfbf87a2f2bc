"""Sends written to sockets without waiting for Redis: the send side of `socket_receive`.

daphne sent each reactor tick's messages with `send_many` on its reactor thread,
one blocking round trip per tick. A Redis that stops answering without closing
its connections (SIGSTOP, a network stall) then froze the whole reactor: no
other connection was served, not even requests that need no Redis (issue 15).

`SocketSender` writes the same ``SEND_MANY`` scripts to one connection of its
own per shard and returns at once; the caller's event loop watches each
`ShardPipe`'s socket and calls `ShardPipe.read` when it is readable, which
parses the replies with hiredis and hands every message's outcome to the
callback given with it. Nothing here blocks except `ShardPipe.connect`, which
the caller runs off its loop (a thread). Replies come back in the order the
commands were written, so one sender's messages keep their order (A-19).

A new connection first loads the script (``SCRIPT LOAD``, in the same write as
the first batch), so ``EVALSHA`` never meets ``NOSCRIPT`` on it; a restarted
server closes the connection, and the next batch opens a new one.
"""

from __future__ import annotations

import collections
import functools
import logging
import socket
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

import redis

from . import scripts
from .errors import ShardConnectionError, refusal
from .shard import CONNECTION_ERRORS, Shard, describe_client
from .wire import own_connection

if TYPE_CHECKING:
    from .sending import Queued, Sender

try:
    import hiredis
except ImportError:  # pragma: no cover - hiredis is a dependency
    hiredis = None  # type: ignore[assignment]  # checked before any use

__all__ = ["ShardPipe", "SocketSender", "SocketSendUnsupported"]

logger = logging.getLogger("asgi_redis")

# Outcome of each message of a batch: None when stored, else the error `send` raises.
Results = list[BaseException | None]
Done = Callable[[Results], None]
# Error replies after which the connection is replaced.
_RECONNECT_REPLIES = ("READONLY", "NOSCRIPT")
# Replies to bytes written on a pipe: called with the reply or the connection's error.
_Answer = Callable[[Any], None]


class SocketSendUnsupported(NotImplementedError):
    """Sends cannot run on a socket of their own here; use the blocking `send_many`."""


class ShardPipe:
    """One shard's send connection: commands written without waiting, replies parsed
    as they arrive (`read`). States: new (no socket; `connect` it), connecting,
    open. An error on an open pipe fails every command waiting on it and makes it
    new again: the next command reconnects."""

    # Error replies after which the connection is replaced (a cluster's adds its own).
    reconnect_replies: tuple[str, ...] = _RECONNECT_REPLIES

    def __init__(self, shard: Shard) -> None:
        self.shard = shard
        self.state = "new"
        self._client: redis.Redis | None = None
        self._connection: Any = None
        self._socket: socket.socket | None = None
        self._reader: Any = None
        self._out = bytearray()
        self._answers: collections.deque[_Answer] = collections.deque()
        # Called before the socket closes, so an event loop can stop watching it first.
        self.on_close: Callable[[], None] | None = None

    # -- connecting (off the caller's event loop) --------------------------------

    def connect(self) -> tuple[redis.Redis, Any]:
        """Connect a new connection with the shard client's settings; BLOCKS.

        Run it in a thread (a Sentinel shard may look its master up first), then
        hand the result to `opened` on the loop.
        """
        client = self.shard.client()
        began = self.shard.failures
        connection = own_connection(client)  # not counted by the pool
        try:
            connection.connect()  # address, AUTH, database: the client's own
        except redis.RedisError as exc:
            raise self.shard.lost(client, exc) from None
        sock = connection._sock
        if not isinstance(sock, socket.socket) or hasattr(sock, "pending"):
            connection.disconnect()
            raise SocketSendUnsupported("the connection uses TLS")
        self.shard.answered(describe_client(client), began)
        return client, connection

    def opened(self, connected: tuple[redis.Redis, Any]) -> None:
        """The connection `connect` made is ours: send what waited for it."""
        self._client, connection = connected
        self._connection = connection
        self._socket = connection._sock
        self._socket.setblocking(False)
        self._reader = hiredis.Reader()
        self.state = "open"
        load = scripts.pack_load(scripts.SEND_MANY)
        self._out[0:0] = load
        self._answers.appendleft(self._loaded)

    def _loaded(self, reply: Any) -> None:
        # A lost connection is the shard's outage, logged once by it (L-62.4).
        if isinstance(reply, BaseException) and not isinstance(reply, CONNECTION_ERRORS):
            logger.error("Cannot load the send script on shard %d: %s", self.shard.index, reply)

    # -- the caller's loop ------------------------------------------------------------

    def fileno(self) -> int:
        return self._socket.fileno() if self._socket is not None else -1

    @property
    def waiting(self) -> int:
        """Commands written (or to be written) whose replies have not arrived."""
        return len(self._answers)

    def wants_write(self) -> bool:
        return self.state == "open" and bool(self._out)

    def write(self, packed: bytes, answer: _Answer) -> None:
        """Queue one command; `answer(reply or error)` runs when its reply arrives."""
        self._out += packed
        self._answers.append(answer)
        if self.state == "open":
            self.write_some()

    def write_some(self) -> None:
        """Write what the socket takes now (never blocks); errors fail the pipe."""
        if not self._out or self._socket is None:
            return
        try:
            sent = self._socket.send(self._out)
        except (BlockingIOError, InterruptedError):
            return
        except OSError as exc:
            self.fail(self._lost(redis.ConnectionError(f"Error writing to Redis: {exc}")))
            return
        del self._out[:sent]

    def read(self) -> None:
        """Parse the replies that arrived and run their answers."""
        if self._socket is None:
            return
        try:
            data = self._socket.recv(1 << 16)
        except (BlockingIOError, InterruptedError):
            return
        except OSError as exc:
            self.fail(self._lost(redis.ConnectionError(f"Error reading from Redis: {exc}")))
            return
        if not data:
            self.fail(self._lost(redis.ConnectionError("Connection closed by server.")))
            return
        self._reader.feed(data)
        while self._answers:
            reply = self._reader.gets()
            if reply is False:
                return
            if isinstance(reply, hiredis.ReplyError):
                if str(reply).startswith(self.reconnect_replies):
                    # The master became a replica (a Sentinel shard looks it up again),
                    # or the scripts were flushed: a new connection loads them again.
                    # Nothing ran for such a reply; the senders hear a connection error.
                    self.fail(self._lost(redis.ConnectionError(str(reply))))
                    return
                reply = refusal(redis.ResponseError(str(reply)), self._client)  # e.g. OOM
            _run(self._answers.popleft(), reply)
        if self._reader.gets() is not False:  # a reply nobody asked for: out of step
            self.fail(self._lost(redis.ConnectionError("Unexpected reply from Redis")))

    def fail(self, error: BaseException) -> None:
        """Close the connection and give `error` to every command waiting on it."""
        self.close()
        answers, self._answers = self._answers, collections.deque()
        for answer in answers:
            _run(answer, error)

    def close(self) -> None:
        connection, self._connection, self._socket = self._connection, None, None
        self._out = bytearray()
        self.state = "new"
        if connection is not None:
            if self.on_close is not None:
                self.on_close()
            connection.disconnect()

    def _lost(self, exc: Exception) -> Exception:
        client = self._client
        if client is None:  # never opened: nothing to name
            return exc
        return self.shard.lost(client, exc)


def _run(answer: _Answer, reply: Any) -> None:
    try:
        answer(reply)
    except Exception:
        # One sender's broken callback must not lose the other replies of the read.
        logger.exception("Error handling a Redis reply")


class _Batch:
    """The messages of one `SocketSender.submit`, answered shard by shard."""

    __slots__ = ("sender", "results", "done", "shards_left")

    def __init__(self, sender: Sender, results: Results, done: Done, shards: int) -> None:
        self.sender = sender
        self.results = results
        self.done = done
        self.shards_left = shards

    def answer(self, shard: Shard, part: list[Queued], reply: Any) -> None:
        results = self.results
        if isinstance(reply, BaseException):
            for position, *_ in part:
                results[position] = reply
        else:
            stored = self.sender.sent(shard, reply)
            self.sender.note_full(part, stored, results)
        self.shards_left -= 1
        if not self.shards_left:
            self.done(results)


class SocketSender:
    """`send_many` that writes to sockets and returns at once (see the module doc).

    One per caller; `pipes` lists every shard's `ShardPipe`, which the caller
    connects (in a thread) when its state is "new" and watches while open.
    """

    def __init__(self, layer: Any) -> None:
        if hiredis is None:
            raise SocketSendUnsupported("hiredis is not installed")
        hosts = getattr(layer, "hosts", None) or []
        if layer._client_kwargs.get("ssl") or any(
            isinstance(host, str) and host.startswith("rediss:") for host in hosts
        ):
            # A TLS socket keeps decrypted bytes that its descriptor does not show.
            raise SocketSendUnsupported("the connections use TLS")
        self._layer = layer
        self._sender: Sender = layer._sender
        self.pipes = {shard: ShardPipe(shard) for shard in layer._shards}

    def submit(self, pairs: Sequence[tuple[str, dict[str, Any]]], done: Done) -> list[ShardPipe]:
        """Send ``(channel, message)`` pairs; `done(results)` gets one outcome per pair.

        Outcomes are as `send_many` reports them, except that a message failing
        validation (bad name, `MessageTooLarge`) gets its error without stopping
        the others. `done` runs when every shard answered or failed (at once when
        nothing was sendable). Returns the pipes written to: the caller connects
        those that are new.
        """
        layer = self._layer
        sender = self._sender
        send_shard = sender.placement.send_shard
        results: Results = [None] * len(pairs)
        parts: dict[Shard, list[Queued]] = {}
        for position, (channel, message) in enumerate(pairs):
            try:
                layer.valid_channel_name(channel)
                payload = sender.payload(message, channel)
            except Exception as error:  # this message's outcome, the others still go
                results[position] = error
                continue
            storage = layer.non_local_name(channel)
            parts.setdefault(send_shard(storage), []).append((position, channel, storage, payload))
        if not parts:
            done(results)
            return []
        batch = _Batch(sender, results, done, len(parts))
        used = []
        for shard, part in parts.items():
            pipe = self.pipes[shard]
            keys, args = sender.send_many_arguments(shard, part)
            pipe.write(
                scripts.SEND_MANY.packed(keys, args),
                functools.partial(batch.answer, shard, part),
            )
            used.append(pipe)
        return used

    def close(self) -> None:
        for pipe in self.pipes.values():
            pipe.fail(ShardConnectionError("The sender was closed"))
