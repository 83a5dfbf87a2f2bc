"""`RedisChannelLayer`: the production channel layer on one or more Redis servers (L-18..L-44).

The class is a facade over small collaborators, each in its own module:
`discovery` (where the shards come from), `placement` (shard list, keys,
shard choice; pure), `sending`, `receiving`, `groups`, `pipelined` (send then
receive in one round trip), with `popping` / `shards_wait` taking entries off
the lists and `shard` holding each server's client, health and clock.

Theory of operation:

- **One round trip per send.** A send is one Lua script (`scripts.SEND`) that
  appends the entry (``RPUSH``, taken back if that passed the capacity),
  refreshes the list's TTL and counts the statistics (L-39..L-41): four Redis
  commands on the usual path. The payload is stored inline in the list entry
  (`entries`), not under a separate key, so a receive is one round trip too
  and nothing is left behind when the list expires.
- **Expiry without extra keys.** Each entry starts with its deadline on the
  shard's own clock (`TIME` inside the script). Receives drop expired entries
  (A-27); a send that finds the list full trims expired entries from the head
  before refusing, so expired messages do not hold capacity (better than
  L-33 allows).
- **Group sends in one script per shard** (A-44, A-93; `groups`). All members
  behind one process-specific ``P!`` share ONE bundle entry, so a broadcast to
  200 connections of one daphne needs one free slot in its queue, and full
  members are counted (`channel_full_count`) and logged (A-40).
- **Receives without Lua.** A receive is one plain ``LPOP`` (``LMPOP`` over
  several lists, Redis 7; the Lua pop on older servers, `features`), a tenth
  of a Lua call's server time; expired entries are dropped in Python against
  the shard's clock, whose offset a Lua pop measures at most every
  `clock_check_interval` seconds (`popping`). Hot-path commands skip
  redis-py's generic command wrapper (`wire`). Redis 6.2 or newer is required
  (``LPOP`` with a count); the project tests against 7.x (L-44).
- **Process-specific lists are read in batches.** Only one process reads
  ``P!``, so a pop there takes up to `prefetch` entries into a per-instance
  buffer (bundles expand into one buffered message per member); later receives
  are served from memory after checking each entry's deadline against the
  shard's clock. Normal and single-reader lists are never prefetched: other
  workers must be able to take their messages.
- **Blocking receive never sleeps** (`receiving`, `shards_wait`). On one
  shard it is a single blocking pop of `blpop_timeout` (``BLMPOP``, which
  returns at once when an entry waits and takes a whole batch from a ``P!``
  list; ``BLPOP`` before Redis 7), so an idle receiver pays one round trip
  per message. Only when the shard's clock offset is stale does a
  non-blocking Lua pass (which measures it) come first. Over several shards
  it first makes a non-blocking pass over every shard holding one of the
  names, then blocks on all of them at once, so a message on any shard is
  seen as soon as it arrives (A-32). A shard that fails leaves the wait; the
  receive raises only when every shard failed (L-62.5).
- **Batch sends.** `send_many(pairs)` sends several messages with one
  `scripts.SEND_MANY` call per shard and reports each one's outcome (`None`,
  `ChannelFull`, or the shard's connection error), for callers holding several
  messages at once (daphne's frames from one reactor tick, a worker's queued
  replies). It is an addition to the ASGI-1 API, offered only by the Redis
  layers; so are `send_many_then_receive` in one round trip (`pipelined`),
  `receive_buffered`, `socket_receive` and `socket_sender`.
- **Placement** (`placement`, `sharding`): jump consistent hashing, so adding
  a shard moves ~1/(n+1) of the names. ``?``/``!`` names and groups sit on
  their hashed shard (L-25). A normal channel is spread per sender: each
  layer instance sends a given channel to one shard (hash plus a random
  per-instance offset), so one sender's messages stay in order (A-25, L-43)
  while many senders still spread a busy channel over every shard. Receivers
  look at one shard per non-blocking call (rotating, L-25) and at every shard
  when blocking.
- **Keys** sit under Redis Cluster hash tags: ``prefix{channel}`` for lists,
  ``prefix:group:{group}`` for groups, the hash ``stats_prefix{channel}`` for a
  channel's counters and ``stats_prefix#global#`` for the shard's; every key
  starts with `prefix` or `stats_prefix` (L-23, L-42).
- **Cheap statistics.** Counters are ``HINCRBY`` on those two hashes. A hash
  gets its TTL when it is created and afterwards from each sender at most
  once per `statistics_refresh_interval` (group sends always refresh), not on
  every increment: an active channel's counters live on, an idle one's expire
  within ``channel_statistics_expiry`` (L-21).
- **Resilience** (L-62): building the layer connects nothing; every call goes
  through `shard.Shard`, which names the shard in connection errors and logs
  one WARNING / one INFO per outage; redis-py's own retries are switched off
  so a pop or send is never repeated blindly; scripts are reloaded on
  ``NOSCRIPT``; a stale pooled connection (server restarted) is reconnected
  before use (`wire`). With several shards, a receive or group send keeps
  serving the shards that answer and raises only for what it could not do.
  A new connection reads the server's run id, so a restart (which empties a
  Redis without persistence) is logged and counted (`restarts`); Redis out of
  memory raises `errors.LayerOutOfMemory`; messages discarded because they
  expired are counted in ``expired_count`` and logged merged (`expiry`).
"""

from __future__ import annotations

import functools
import logging
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import redis

from channels.layers.base import BaseChannelLayer, FullSkipReporter, layer_random
from channels.layers.delivery import DeliveryPolicy, NotAtLeastOnce

from .announcements import RedisAnnouncements
from .buffer import PrefetchBuffer
from .codec import Codec, build_fernet
from .discovery import ShardSource, StaticShards
from .flushing import delete_matching, glob_escape
from .groups import Groups
from .lookahead import Lookahead
from .loop_api import EventLoopApi
from .options import check_prefix, check_whole_seconds, client_kwargs, redis_urls
from .pipelined import SendThenReceive
from .placement import GLOBAL_STATS_KEY, Placement
from .receiving import Received, Receiver
from .reliable import Reliable
from .reliable_api import AtLeastOnceApi
from .reliable_pipelined import reliable_send_then_receive
from .scripts import UnsupportedRedis
from .sending import Outcomes, Sender
from .shard import Shard
from .sharding import consistent_hash
from .stats import channel_figures, global_figures
from .wire import close_connections

__all__ = ["RedisChannelLayer", "UnsupportedRedis"]

logger = logging.getLogger("asgi_redis")


class RedisChannelLayer(AtLeastOnceApi, EventLoopApi, RedisAnnouncements, BaseChannelLayer):
    """ASGI-1 channel layer on Redis, sharded over `hosts` (L-18).

    The at-least-once methods (``ack`` .. ``purge_dead_letters``) come from
    `reliable_api.AtLeastOnceApi`, the receives for event loops (``receive_twisted``,
    ``receive_async``, ``receive_buffered``, ``socket_receive``, ``socket_sender``) from
    `loop_api.EventLoopApi`.

    `shards` (keyword only, not a 1.x option) gives the shards another way
    than `hosts`: `RedisSentinelChannelLayer` passes a `sentinel.SentinelShards`.
    """

    extensions = ["groups", "flush", "statistics", "twisted", "asyncio"]
    NotAtLeastOnce = NotAtLeastOnce

    # L-21
    blpop_timeout = 5
    channel_statistics_expiry = 3600
    global_statistics_expiry = 86400
    global_stats_key = GLOBAL_STATS_KEY

    # 12 random letters in the Redis layers.
    new_channel_suffix_length = 12
    # Entries one pop may take from a process-specific list (single reader).
    prefetch = 64
    # Seconds between measurements of each shard's clock offset.
    clock_check_interval = 30.0
    # Seconds between one sender's TTL refreshes of a channel's statistics hash
    # (capped at a tenth of the statistics' TTLs); a new hash gets its TTL at once.
    statistics_refresh_interval = 60.0
    # Channels whose refresh times a layer remembers before forgetting them all.
    statistics_refresh_memory = 10_000
    # Lists of names whose receive plans a layer keeps before forgetting them all,
    # and the most names a plan precomputes every order for.
    receive_plan_memory = 256
    receive_plan_orders = 16

    def __init__(
        self,
        expiry: int = 60,
        hosts: Sequence[Any] | None = None,
        prefix: str = "asgi:",
        group_expiry: int = 86400,
        capacity: int = 100,
        channel_capacity: Mapping[Any, int] | None = None,
        symmetric_encryption_keys: Sequence[str | bytes] | None = None,
        stats_prefix: str = "asgi-meta:",
        connection_kwargs: Mapping[str, Any] | None = None,
        at_least_once: Iterable[Any] | None = None,
        ack_timeout: int | float = 30,
        max_deliveries: int = 5,
        *,
        shards: ShardSource | None = None,
    ) -> None:
        check_whole_seconds("expiry", expiry)
        check_whole_seconds("group_expiry", group_expiry)
        check_prefix("prefix", prefix)
        check_prefix("stats_prefix", stats_prefix)
        super().__init__(
            expiry=expiry,
            group_expiry=group_expiry,
            capacity=capacity,
            channel_capacity=channel_capacity,
        )
        self.prefix = prefix
        self.stats_prefix = stats_prefix
        fernet = None
        if symmetric_encryption_keys is not None:
            fernet = build_fernet(symmetric_encryption_keys)
        self.crypter = fernet
        self._codec = Codec(fernet, expiry)
        self._client_kwargs = client_kwargs(connection_kwargs)
        if shards is None:
            shards = StaticShards(redis_urls(hosts), self._client_kwargs)  # L-19, L-22
        self._shard_source = shards
        self.hosts = shards.hosts
        self._normal_offset = layer_random.randrange(1 << 16)
        self._buffer = PrefetchBuffer(self._buffer_expired)
        self._skips = FullSkipReporter(logger)
        # Issue 17: at-least-once channels (`reliable`); None keeps every path as it was.
        self.delivery = DeliveryPolicy(at_least_once, ack_timeout, max_deliveries)
        self._reliable: Reliable | None = None
        if self.delivery.enabled:
            self.extensions = [*type(self).extensions, "at_least_once"]
            self._reliable = Reliable(self, self.delivery)
        stats_args = (stats_prefix, self.channel_statistics_expiry, self.global_statistics_expiry)
        shards.prepare(lambda shard: shard.expired.configure(*stats_args, expiry))

    # -- collaborators, built on first use (a Sentinel layer finds its shards then) -------

    @functools.cached_property
    def _shards(self) -> list[Shard]:
        return self._shard_source.shards()

    @functools.cached_property
    def _placement(self) -> Placement[Shard]:
        return Placement(
            self._shards, self.prefix, self.stats_prefix, self._normal_offset, self.global_stats_key
        )

    @functools.cached_property
    def _sender(self) -> Sender:
        return Sender(self, self._placement)

    @functools.cached_property
    def _receiver(self) -> Receiver:
        return Receiver(self, self._placement, self._buffer)

    @functools.cached_property
    def _groups(self) -> Groups:
        return Groups(self, self._placement, self._sender, self._skips)

    @functools.cached_property
    def _send_then_receive(self) -> SendThenReceive:
        return SendThenReceive(self, self._sender, self._receiver)

    def _buffer_expired(self, storage: str, count: int) -> None:
        # Counted with the next write to that shard (`expiry`).
        self._placement.home(storage).expired.dropped_messages(storage, count)

    # -- shards (L-22, L-24, L-25) ---------------------------------------------------------

    @property
    def ring_size(self) -> int:
        return len(self._shards)

    def connection(self, index: int | None) -> redis.Redis:
        """The redis-py client of shard `index`, or of a random shard for `None`."""
        if index is None:
            index = layer_random.randrange(self.ring_size)
        if not isinstance(index, int) or not 0 <= index < self.ring_size:
            raise ValueError(
                f"There are only {self.ring_size} shards (0 to {self.ring_size - 1}), not {index!r}"
            )
        return self._shards[index].client()

    def consistent_hash(self, value: str) -> int:
        return consistent_hash(value, self.ring_size)

    # -- send (A-31, L-27, L-28) ------------------------------------------------------------

    def send(self, channel: str, message: dict[str, Any]) -> None:
        self._sender.send(channel, message)

    def send_many(self, messages: Iterable[tuple[str, dict[str, Any]]]) -> list[Exception | None]:
        """Send several ``(channel, message)`` pairs with one round trip per shard.

        Returns one result per pair, in order: `None` when stored, a
        `ChannelFull` when that channel was full (A-37; counted as for `send`),
        `LayerOutOfMemory` for each message of a shard out of memory (none
        stored), or the shard's `redis.ConnectionError` / `TimeoutError` for
        each message of a shard that failed (such a message may or may not
        have been stored, L-62.3). Every pair is validated first: a bad name or
        message raises before anything is sent. Messages to one channel are
        stored in the order given (A-19, A-25).
        """
        return self._sender.send_many(messages)

    # -- receive (A-32, L-29, L-30) ---------------------------------------------------------

    def receive(self, channels: Iterable[str], block: bool = False) -> Received:
        if self._reliable is not None:
            return self._reliable.receive(channels, block)
        return self._receiver.receive(channels, block)

    def waiting_to_receive(self, thread: int) -> bool:
        """Whether a stopping worker may end thread `thread` (a `threading.get_ident`)
        now without leaving a message leased and unhandled (C-33, issue 17): always
        without at-least-once channels, else while it is blocked in a receive's wait
        (a message is leased after the wait, never during it)."""
        return self._reliable is None or self._reliable.waiting(thread)

    def send_many_then_receive(
        self,
        messages: Iterable[tuple[str, dict[str, Any]]],
        channels: Iterable[str],
        block: bool = False,
    ) -> tuple[Outcomes, Received]:
        """`send_many`, then `receive`, in one round trip when one shard holds it all.

        As `BaseChannelLayer.send_many_then_receive` (outcomes as `send_many`
        gives them; every pair and name is checked before anything is sent;
        `ReceiveFailed` when the receive fails after the sends). When the
        messages and the names sit on the same single shard, the ``SEND_MANY``
        script and the pop go out in one pipeline on one connection
        (`pipelined`); otherwise it sends, then receives. An error reply to the
        script other than ``NOSCRIPT`` (e.g. Redis out of memory) is each
        message's outcome, since the pop may have taken an entry that must
        still be handed out.
        """
        if self._reliable is not None:
            # At-least-once names are leased, never popped by the pipeline's plain pop.
            return reliable_send_then_receive(self, messages, channels, block)
        return self._send_then_receive(messages, channels, block)

    def lookahead(self) -> Lookahead | None:
        """What lets one worker thread handle a message while its replies and the next pop
        travel (issue 20, `lookahead`); `None` where that does not apply: at-least-once
        channels, and the Sentinel, cluster and local layers."""
        if self._reliable is not None or type(self) is not RedisChannelLayer:
            return None
        return Lookahead(self)

    def channel_in_use(self, name: str) -> bool:
        """`new_channel` hook: does the candidate's list exist on its shard (L-32)?"""
        return self._receiver.channel_in_use(name)

    # -- groups (A-41..A-46, L-34, L-35) ------------------------------------------------------

    def group_add(self, group: str, channel: str) -> None:
        self.valid_group_name(group)
        self.valid_channel_name(channel)
        self._groups.add(group, channel)

    def group_discard(self, group: str, channel: str) -> None:
        self.valid_group_name(group)
        self.valid_channel_name(channel)
        self._groups.discard(group, channel)

    def group_channels(self, group: str) -> list[str]:
        self.valid_group_name(group)
        return [member.decode("utf-8") for member in self._groups.members(group)]

    def send_group(self, group: str, message: dict[str, Any]) -> None:
        self.valid_group_name(group)
        self._groups.send(group, message)

    # -- flush (A-48, L-42) ---------------------------------------------------------------------

    def flush(self) -> None:
        self._buffer.clear()
        patterns = [glob_escape(self.prefix) + "*", glob_escape(self.stats_prefix) + "*"]
        for shard in self._shards:
            shard.call(functools.partial(delete_matching, patterns=patterns))

    # -- statistics (A-49, L-39..L-41) ------------------------------------------------------------

    def global_statistics(self) -> dict[str, int]:
        # Also counts drops not yet written (`expiry`).
        return global_figures(
            self._shards, self._placement.global_stats_hash, self.delivery.enabled
        )

    def channel_statistics(self, channel: str) -> dict[str, int]:
        self.valid_channel_name(channel)
        storage = self.non_local_name(channel)  # L-40: P!L counts as P!
        placement = self._placement
        keys = (placement.list_key(storage), placement.stats_hash(storage))
        shards = placement.statistics_shards(storage)
        return channel_figures(shards, keys, self._sender.expiry_ms, self.delivery.enabled)

    def close(self) -> None:
        """Close this layer's connections to Redis; using the layer again reconnects.

        For a process done with a layer (and for tests): otherwise its sockets are
        closed only when garbage collection reaches them.
        """
        for client in self._shard_source.open_clients():
            close_connections(client)

    def __str__(self) -> str:
        return f"{type(self).__name__}(hosts={self.hosts!r})"
