"""daphne's socket paths on a Redis Cluster: `socket_receive` and `socket_sender` (issue 19).

On a plain Redis daphne's reactor reads its replies from the socket of a blocking
pop (`socket_receive`) and writes its sends to sockets of its own
(`socket_send`), never waiting on Redis. On a cluster both work per hash slot:

- a ``P!`` prefix lives in one slot, so the reply reader is one ``BLMPOP`` on the
  master serving that slot now (`ClusterSocketReceive`);
- the sender keeps one connection per slot it sends to (`ClusterSocketSender`:
  daphne sends to a handful of channels, ``websocket.receive`` and kin), each
  on the master serving the slot now, made on first use.

A slot that moves or a master that fails over shows on these sockets as a
redirection (``MOVED``, ``ASK``, ``TRYAGAIN``, ``CLUSTERDOWN``), an ``UNBLOCKED``
/ ``READONLY`` reply, or a closed connection. None of them proves anything ran
(a redirection is answered instead of running), so the socket is dropped and
the error raised is the layer's unavailable error (`LayerUnavailable`): daphne
holds what waits and tries again, on a new socket opened in a thread. The error
of a slot migrating (``MOVED``, ``ASK``, ``TRYAGAIN``) carries
``layer_redirected = True``: daphne logs it at INFO, not as an outage. The slot
map is updated without a round trip when the ``MOVED`` reply names a known
node, and read again by that new socket's connect otherwise: nothing here
touches the network on the caller's event loop except the reads and writes of
the sockets themselves.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

import redis
from redis._parsers.base import BaseParser
from redis.exceptions import RedisClusterException

from .errors import unavailable
from .shard import Shard
from .socket_receive import SocketReceive, SocketReceiveUnsupported
from .socket_send import ShardPipe, SocketSender

try:
    import hiredis
except ImportError:  # pragma: no cover - hiredis is a dependency
    hiredis = None  # type: ignore[assignment]  # checked before any use

if TYPE_CHECKING:
    from .cluster import RedisClusterChannelLayer, SlotShard

__all__ = [
    "MIGRATION_REPLIES",
    "ClusterShardPipe",
    "ClusterSocketReceive",
    "ClusterSocketSender",
    "socket_receive",
]

# Error replies of a cluster node meaning "not here / not now": nothing ran.
REDIRECT_REPLIES = ("MOVED", "ASK", "TRYAGAIN", "CLUSTERDOWN")
# Of those, the replies of a slot migrating (a reshard): normal operation, not an outage.
MIGRATION_REPLIES = ("MOVED", "ASK", "TRYAGAIN")


def _redirected(shard: SlotShard, text: str) -> Exception:
    """Note a redirection reply `text` on the slot map (no round trip) and return the
    unavailable error the caller raises: drop the socket, try again on a new one."""
    parse: Any = BaseParser.parse_error  # untyped in redis-py
    shard.redirected(parse(text))
    error = unavailable(
        redis.ConnectionError(text),
        f"Redis Cluster slot {shard.slot}: {text} (the slot moved or its master is "
        "failing over; trying again on a new connection)",
    )
    if text.startswith(MIGRATION_REPLIES):
        # A slot moving is normal operation: daphne logs it at INFO, not as an outage.
        error.layer_redirected = True  # type: ignore[attr-defined]
    return error


def _connection_lost(shard: SlotShard, client: redis.Redis, exc: Exception) -> Exception:
    """`Shard.lost` without reading the slot map on the caller's loop: the next
    connect (in a thread) reads it."""
    shard.topology.mark_stale()
    return Shard.lost(shard, client, exc)


def _not_served(shard: SlotShard, exc: Exception) -> Exception:
    """No master serves the slot now (an election): the layer's unavailable error."""
    shard.topology.mark_stale()
    return unavailable(redis.ConnectionError(str(exc)), f"Redis Cluster slot {shard.slot}: {exc}")


class ClusterSocketReceive(SocketReceive):
    """`SocketReceive` on the master of one slot; redirections drop the socket."""

    _shard: SlotShard

    def _take(self, kind: str, reply: Any, messages: list[tuple[str, dict[str, Any]]]) -> None:
        if (
            kind != "count"
            and isinstance(reply, hiredis.ReplyError)
            and str(reply).startswith(REDIRECT_REPLIES)
        ):
            raise _redirected(self._shard, str(reply))
        super()._take(kind, reply, messages)

    def _lost(self, exc: Exception) -> Exception:
        return _connection_lost(self._shard, self._client, exc)


def socket_receive(layer: RedisClusterChannelLayer, channels: Iterable[str]) -> SocketReceive:
    """`RedisChannelLayer.socket_receive` on a cluster: names of one slot only (a ``P!``
    prefix always is). May wait on the network (the slot map, the connect): daphne
    runs it in a thread after a failure."""
    names, visits = layer._receiver.order(channels)
    if not names or visits is None or len(visits) != 1:
        raise SocketReceiveUnsupported("the names are not all in one hash slot")
    if layer._reliable is not None and any(map(layer.delivery.applies, names)):
        raise SocketReceiveUnsupported("at-least-once channels are leased, not popped")
    shard: SlotShard = visits[0].shard  # type: ignore[assignment]  # a cluster's shards
    shard.topology.refresh_if_stale()
    try:
        return ClusterSocketReceive(layer, visits[0], layer.blpop_timeout)
    except (redis.ResponseError, RedisClusterException) as exc:  # the slot not served now
        raise _not_served(shard, exc) from None


class ClusterShardPipe(ShardPipe):
    """`ShardPipe` on the master of one slot; redirections fail the pipe (nothing ran)
    and the next write connects again, to the slot's master then."""

    shard: SlotShard
    reconnect_replies = (*ShardPipe.reconnect_replies, *REDIRECT_REPLIES, "UNBLOCKED")

    def connect(self) -> tuple[redis.Redis, Any]:
        self.shard.topology.refresh_if_stale()
        try:
            return super().connect()
        except (redis.ResponseError, RedisClusterException) as exc:
            raise _not_served(self.shard, exc) from None

    def _lost(self, exc: Exception) -> Exception:
        if str(exc).startswith(REDIRECT_REPLIES):
            return _redirected(self.shard, str(exc))
        client = self._client
        if client is None:
            return exc
        return _connection_lost(self.shard, client, exc)


class _Pipes(dict[Any, ShardPipe]):
    """A pipe per slot, made on first use."""

    def __missing__(self, shard: Any) -> ShardPipe:
        pipe = self[shard] = ClusterShardPipe(shard)
        return pipe


class ClusterSocketSender(SocketSender):
    """`SocketSender` with one pipe per slot sent to (see the module doc)."""

    def __init__(self, layer: RedisClusterChannelLayer) -> None:
        super().__init__(layer)
        self.pipes = _Pipes()
