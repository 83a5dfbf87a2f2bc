"""`RedisChannelLayer`: the production channel layer on one or more Redis servers (L-18..L-44).

Design, and why it differs from the 1.x layer that layers.md sketches:

- **One round trip per send.** A send is one Lua script (`scripts.SEND`) that
  appends the entry (``RPUSH``, taken back if that passed the capacity),
  refreshes the list's TTL and counts the statistics (L-39..L-41): four Redis
  commands on the usual path, where 1.x-style counters took eight. The
  payload is stored inline in the list entry (`entries`), not under a
  separate key, so a receive is one round trip too and nothing is left behind
  when the list expires (1.x: two keys per message and a read+delete after
  every pop).
- **Expiry without extra keys.** Each entry starts with its deadline on the
  shard's own clock (`TIME` inside the script). Receives drop expired entries
  (A-27); a send that finds the list full trims expired entries from the head
  before refusing, so expired messages do not hold capacity (better than
  L-33 allows).
- **Group sends in one script per shard** (A-44, A-93). On a single shard
  without per-channel capacities, `scripts.GROUP_SEND` reads the live members
  and delivers in one round trip. Otherwise the members are read first and
  one `PUSH` runs per destination shard. Either way all members behind one
  process-specific ``P!`` share ONE bundle entry, so a broadcast to 200
  connections of one daphne needs one free slot in its queue, and full
  members are counted (`channel_full_count`) and logged (A-40).
- **Receives without Lua.** A receive is one plain ``LPOP`` (``LMPOP`` over
  several lists, Redis 7; the Lua pop on older servers), a tenth of a Lua
  call's server time; expired entries are dropped in Python against the
  shard's clock, whose offset a Lua pop measures at most every
  `clock_check_interval` seconds (`popping`). Hot-path commands skip
  redis-py's generic command wrapper (`wire`): profiling showed half the
  client CPU there. Redis 6.2 or newer is required (``LPOP`` with a count);
  the project tests against 7.x (L-44).
- **Process-specific lists are read in batches.** Only one process reads
  ``P!``, so a pop there takes up to `prefetch` entries into a per-instance
  buffer (bundles expand into one buffered message per member); later receives
  are served from memory after checking each entry's deadline against the
  shard's clock. Normal and single-reader lists are never prefetched: other
  workers must be able to take their messages.
- **Blocking receive never sleeps.** On one shard it is a single blocking
  pop of `blpop_timeout` (``BLMPOP``, which returns at once when an entry
  waits and takes a whole batch from a ``P!`` list; ``BLPOP`` before Redis 7),
  so an idle receiver pays one round trip per message, not a failed
  non-blocking pop plus the wait. Only when the shard's clock offset is stale
  does a non-blocking Lua pass (which measures it) come first. Over several
  shards it first makes a non-blocking pass over every shard holding one of
  the names (normal names on every shard: a worker should not sit on an idle
  shard while another has work, and a busy layer is served by the pass
  alone), then blocks on all of them at once: one ``BLMPOP`` per shard, each
  on a connection of its own, sent together and watched with one ``poll``,
  so a message on any shard is seen as soon as it arrives (A-32; no polling
  floor, unlike a rotation of short pops over the shards). The first shard
  with live entries wins; the other pops are cancelled with ``CLIENT
  UNBLOCK``, and entries one of them popped in the race go back to the head
  of their list in their order (`popping`). A shard that fails leaves the
  wait; the receive raises only when every shard failed (L-62.5).
- **Batch sends.** `send_many(pairs)` sends several messages with one
  `scripts.SEND_MANY` call per shard and reports each one's outcome (`None`,
  `ChannelFull`, or the shard's connection error), for callers holding several
  messages at once (daphne's frames from one reactor tick, a worker's queued
  replies). It is an addition to the ASGI-1 API, offered only by the Redis
  layers.
- **Placement** (`sharding`): jump consistent hashing instead of 1.x's CRC32
  ranges, so adding a shard moves ~1/(n+1) of the names, not most of them.
  ``?``/``!`` names and groups sit on their hashed shard (L-25). A normal
  channel is not spread per message (1.x round-robin) but per sender: each
  layer instance sends a given channel to one shard (hash plus a random
  per-instance offset), so one sender's messages stay in order (A-25, L-43:
  two sends then two receives give the first message first) while many
  senders still spread a busy channel over every shard. Receivers look at one
  shard per non-blocking call (rotating, L-25) and at every shard when
  blocking.
- **Keys** sit under Redis Cluster hash tags: ``prefix{channel}`` for lists,
  ``prefix:group:{group}`` for groups, the hash ``stats_prefix{channel}`` for a
  channel's counters and ``stats_prefix#global#`` for the shard's; every key
  starts with `prefix` or `stats_prefix` (L-23, L-42).
- **Cheap statistics.** Counters are ``HINCRBY`` on those two hashes. A hash
  gets its TTL when it is created and afterwards from each sender at most
  once per `statistics_refresh_interval` (group sends always refresh), not on
  every increment: an active channel's counters live on, an idle one's expire
  within ``channel_statistics_expiry`` (L-21) as before.
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

import asyncio
import functools
import logging
import time
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import redis

from channels.layers.base import BaseChannelLayer, FullSkipReporter, ReceiveFailed, layer_random

from . import scripts
from .announcements import RedisAnnouncements
from .buffer import PrefetchBuffer
from .codec import Codec, build_fernet
from .entries import bundle_header, decode_entry, header_for
from .errors import LayerOutOfMemory
from .flushing import delete_matching, glob_escape
from .options import check_prefix, check_whole_seconds, client_kwargs, redis_urls
from .popping import (
    Visit,
    blocking_pop,
    can_wait_at_once,
    count_expired,
    live_entries,
    packed_plain_pop,
    packed_wait,
    plain_pop_result,
    pop,
)
from .scripts import UnsupportedRedis
from .shard import CONNECTION_ERRORS, Shard
from .sharding import RoundRobin, consistent_hash
from .socket_receive import SocketReceive, SocketReceiveUnsupported
from .socket_send import SocketSender
from .stats import channel_figures, global_figures
from .wire import close_connections

__all__ = ["RedisChannelLayer", "UnsupportedRedis"]

logger = logging.getLogger("asgi_redis")


# One message of a `send_many`: (position in the call, channel, storage name, payload).
_Queued = tuple[int, str, str, bytes]


@dataclass(slots=True)
class _ReceivePlan:
    """What receiving on one list of names needs that depends only on the names."""

    # Validated, in the caller's order.
    names: list[str]
    # When every name sits on one shard (the usual case): ``(names, [visit])`` per
    # rotation of a shuffled order, one picked at random per call. Empty
    # otherwise: normal names on several shards are visited per call (L-25).
    orders: list[tuple[list[str], list[Visit]]]


@dataclass(slots=True)
class _Delivery:
    """What one `PUSH` run on one shard delivers for a group send."""

    keys: list[str] = field(default_factory=list)
    storages: list[str] = field(default_factory=list)
    copies: list[int] = field(default_factory=list)
    args: list[Any] = field(default_factory=list)


class RedisChannelLayer(RedisAnnouncements, BaseChannelLayer):
    """ASGI-1 channel layer on Redis, sharded over `hosts` (L-18)."""

    extensions = ["groups", "flush", "statistics", "twisted", "asyncio"]

    # L-21
    blpop_timeout = 5
    channel_statistics_expiry = 3600
    global_statistics_expiry = 86400
    global_stats_key = "#global#"

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
        self.hosts = self._parse_hosts(hosts)
        self._normal_offset = layer_random.randrange(1 << 16)
        self._receive_rotation = RoundRobin()
        self._buffer = PrefetchBuffer(self._buffer_expired)
        self._skips = FullSkipReporter(logger)
        self._expiry_ms = expiry * 1000
        self._group_expiry_ms = group_expiry * 1000
        self._stats_args = (
            stats_prefix,
            self.channel_statistics_expiry,
            self.global_statistics_expiry,
        )
        self._global_stats_hash = self._stats_hash(self.global_stats_key)
        self._stats_refresh_interval = min(
            self.statistics_refresh_interval,
            self.channel_statistics_expiry / 10,
            self.global_statistics_expiry / 10,
        )
        self._stats_refreshed: dict[str, float] = {}
        self._receive_plans: dict[tuple, _ReceivePlan] = {}
        self._prepare_shards()

    def _parse_hosts(self, hosts: Sequence[Any] | None) -> list[Any]:
        return redis_urls(hosts)  # L-19

    def _prepare_shards(self) -> None:
        """Build every client now (L-22); building one does not connect (L-62.1)."""
        for shard in self._shards:
            shard.expired.configure(*self._stats_args, self.expiry)

    def _buffer_expired(self, storage: str, count: int) -> None:
        shard = self._shards[consistent_hash(storage, self.ring_size)]
        shard.expired.dropped_messages(storage, count)  # counted with the next write

    @functools.cached_property
    def _shards(self) -> list[Shard]:
        return [
            Shard(index, redis.Redis.from_url(url, **self._client_kwargs))
            for index, url in enumerate(self.hosts)
        ]

    # -- shards (L-22, L-25) ----------------------------------------------------

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

    def _send_shard(self, storage: str) -> Shard:
        if self.ring_size == 1:
            return self._shards[0]
        if "?" in storage or storage.endswith("!"):
            return self._shards[consistent_hash(storage, self.ring_size)]
        # A normal channel goes to one shard per sending instance, so one
        # sender's messages stay in order (A-25, L-43); the random per-instance
        # offset spreads a busy channel's senders over the shards.
        index = consistent_hash(storage, self.ring_size) + self._normal_offset
        return self._shards[index % self.ring_size]

    def _group_shard(self, group: str) -> Shard:
        return self._shards[consistent_hash(group, self.ring_size)]

    # -- keys (L-23) --------------------------------------------------------------

    def _list_key(self, storage: str) -> str:
        return f"{self.prefix}{{{storage}}}"

    def _group_key(self, group: str) -> str:
        return f"{self.prefix}:group:{{{group}}}"

    def _stats_hash(self, name: str) -> str:
        """The hash of ``messages_count`` and ``channel_full_count`` for `name`."""
        if name == self.global_stats_key:
            return f"{self.stats_prefix}{name}"
        return f"{self.stats_prefix}{{{name}}}"

    # -- send (A-31, L-27, L-28) --------------------------------------------------

    def _payload(self, message: dict, destination: str) -> bytes:
        snapshot, _ = self.snapshot(message)
        packed = self._codec.pack(snapshot)
        self.check_encoded_size(len(packed), destination)
        return self._codec.seal(packed)

    def send(self, channel: str, message: dict) -> None:
        self.valid_channel_name(channel)
        payload = self._payload(message, channel)
        storage = self.non_local_name(channel)
        capacity = self.get_capacity(storage)
        shard = self._send_shard(storage)
        stored, server_now = shard.script(
            scripts.SEND,
            (self._list_key(storage), self._stats_hash(storage), self._global_stats_hash),
            (
                payload,
                self._expiry_ms,
                self._deadline_text(shard),
                capacity,
                header_for(channel, storage),
                self.channel_statistics_expiry,
                self.global_statistics_expiry,
                self._stats_refresh_due(storage),
            ),
        )
        if server_now >= 0:
            shard.note_clock(server_now)
        if not stored:
            raise self._full(storage, capacity)

    def _full(self, storage: str, capacity: int) -> Exception:
        return self.ChannelFull(
            f"Channel {storage!r} is full ({capacity} messages pending); retry later"
        )

    def send_many(self, messages: Iterable[tuple[str, dict]]) -> list[Exception | None]:
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
        pairs = list(messages)
        return self._send_batches(self._batches(pairs), [None] * len(pairs))

    def _batches(self, pairs: list[tuple[str, dict]]) -> dict[Shard, list[_Queued]]:
        """Validate and pack every pair (raising before anything is sent), by shard."""
        batches: dict[Shard, list[_Queued]] = {}
        for position, (channel, message) in enumerate(pairs):
            self.valid_channel_name(channel)
            payload = self._payload(message, channel)
            storage = self.non_local_name(channel)
            batch = batches.setdefault(self._send_shard(storage), [])
            batch.append((position, channel, storage, payload))
        return batches

    def _note_full(
        self, batch: list[_Queued], stored: list[int], results: list[Exception | None]
    ) -> None:
        for (position, _, storage, _), ok in zip(batch, stored, strict=True):
            if not ok:
                results[position] = self._full(storage, self.get_capacity(storage))

    def _send_batch(self, shard: Shard, batch: list[_Queued]) -> list[int]:
        """Run `scripts.SEND_MANY` for one shard's part of `send_many`; 1/0 per message."""
        keys, args = self._send_many_arguments(shard, batch)
        return self._sent(shard, shard.script(scripts.SEND_MANY, keys, args))

    def _sent(self, shard: Shard, reply: list[int]) -> list[int]:
        server_now, *stored = reply
        if server_now >= 0:
            shard.note_clock(server_now)
        return stored

    def _send_many_arguments(
        self, shard: Shard, batch: list[_Queued]
    ) -> tuple[list[str], list[Any]]:
        keys = [self._global_stats_hash]
        args: list[Any] = [
            self._expiry_ms,
            self._deadline_text(shard),
            self.channel_statistics_expiry,
            self.global_statistics_expiry,
        ]
        for _, channel, storage, payload in batch:
            keys += (self._list_key(storage), self._stats_hash(storage))
            args += (
                payload,
                self.get_capacity(storage),
                header_for(channel, storage),
                self._stats_refresh_due(storage),
            )
        return keys, args

    def _stats_refresh_due(self, storage: str) -> str:
        """'1' when this sender should reset the TTLs of `storage`'s statistics, else ''.

        Resetting them on every send cost two EXPIREs per message; once per
        `statistics_refresh_interval` keeps an active channel's counters alive
        just the same (L-39..L-41). Races between threads only add a refresh.
        """
        now = time.monotonic()
        last = self._stats_refreshed.get(storage)
        if last is not None and now - last < self._stats_refresh_interval:
            return ""
        if len(self._stats_refreshed) >= self.statistics_refresh_memory:
            self._stats_refreshed.clear()  # many short-lived names: start over
        self._stats_refreshed[storage] = now
        return "1"

    def _deadline_text(self, shard: Shard) -> str:
        """The new entry's deadline on the shard's clock (A-27).

        Computed here from the measured clock offset, it spares the script a
        ``TIME`` call and a number formatting; '' lets the script read ``TIME``
        (and report it) when this process has not measured that clock lately.
        """
        if time.monotonic() - shard.clock_checked >= self.clock_check_interval:
            return ""
        return f"{int((time.time() + shard.clock_offset) * 1000) + self._expiry_ms:013d}"

    # -- receive (A-32, L-29, L-30) ------------------------------------------------

    def receive(
        self, channels: Iterable[str], block: bool = False
    ) -> tuple[str | None, dict | None]:
        names, visits = self._receive_order(channels)
        return self._receive_from(names, visits, block)

    def _receive_from(
        self, names: list[str], visits: list[Visit] | None, block: bool
    ) -> tuple[str | None, dict | None]:
        if not names:
            return None, None
        if self._buffer:
            found = self._take_buffered(names)
            if found is not None:
                return found
        if visits is None:
            visits = self._plan(names, every_shard=block)
        if block and can_wait_at_once(visits, self.clock_check_interval):
            return self._blocking_pop(visits)  # returns at once when an entry waits
        found, answering = self._pop_pass(visits)
        if found is not None:
            return found
        if not block:
            return None, None
        return self._blocking_pop(answering)

    def send_many_then_receive(
        self, messages: Iterable[tuple[str, dict]], channels: Iterable[str], block: bool = False
    ) -> tuple[list[Exception | None], tuple[str | None, dict | None]]:
        """`send_many`, then `receive`, in one round trip when one shard holds it all.

        As `BaseChannelLayer.send_many_then_receive` (outcomes as `send_many`
        gives them; every pair and name is checked before anything is sent;
        `ReceiveFailed` when the receive fails after the sends). When the
        messages and the names sit on the same single shard, the ``SEND_MANY``
        script and the pop (``LMPOP``, or ``BLMPOP`` when blocking) go out in one
        pipeline on one connection: a worker's replies and its next message
        cost one round trip instead of two. Otherwise (several shards, a stale
        clock offset, a message already buffered) it sends, then receives.
        An error reply to the script other than ``NOSCRIPT`` (e.g. Redis out
        of memory) is each message's outcome, since the pop may have taken an
        entry that must still be handed out.
        """
        names, visits = self._receive_order(channels)
        pairs = list(messages)
        batches = self._batches(pairs)
        outcomes: list[Exception | None] = [None] * len(pairs)
        if names and visits is not None and len(batches) <= 1:
            visit = visits[0]
            if not batches or visit.shard in batches:
                pipelined = self._pipelined(visit, batches.get(visit.shard), outcomes, block)
                if pipelined is not None:
                    return outcomes, pipelined
                if not self._pipeline_sent(batches):
                    outcomes = self._send_batches(batches, outcomes)
                return outcomes, self._receive_after(outcomes, names, visits, block)
        outcomes = self._send_batches(batches, outcomes)
        return outcomes, self._receive_after(outcomes, names, visits, block)

    def _send_batches(
        self, batches: dict[Shard, list[_Queued]], outcomes: list[Exception | None]
    ) -> list[Exception | None]:
        for shard, batch in batches.items():
            try:
                stored = self._send_batch(shard, batch)
            except (*CONNECTION_ERRORS, LayerOutOfMemory) as exc:
                for position, *_ in batch:
                    outcomes[position] = exc
                continue
            self._note_full(batch, stored, outcomes)
        return outcomes

    def _receive_after(
        self,
        outcomes: list[Exception | None],
        names: list[str],
        visits: list[Visit] | None,
        block: bool,
    ) -> tuple[str | None, dict | None]:
        try:
            return self._receive_from(names, visits, block)
        except (redis.RedisError, UnsupportedRedis) as error:
            raise ReceiveFailed(outcomes, error) from error

    def _pipeline_sent(self, batches: dict[Shard, list[_Queued]]) -> bool:
        # `_pipelined` returns None before sending anything, or after a pipeline
        # whose sends went out: it marks the batch as done by emptying it.
        return all(not batch for batch in batches.values())

    def _pipelined(
        self,
        visit: Visit,
        batch: list[_Queued] | None,
        outcomes: list[Exception | None],
        block: bool,
    ) -> tuple[str | None, dict | None] | None:
        """Send `batch` and pop from `visit` in one pipeline on its shard.

        Returns the received pair, or `None` when the pipeline could not do the
        receive: before sending anything when it does not apply (a stale clock
        offset, a pop that needs Lua, a message waiting in the buffer), or after
        sending when the pop must be redone (an older Redis, expired entries);
        then `batch` has been emptied, and its outcomes are in `outcomes`.
        """
        shard = visit.shard
        if self._buffer or time.monotonic() - shard.clock_checked >= self.clock_check_interval:
            return None
        if block:
            if not can_wait_at_once([visit], self.clock_check_interval):
                return None
            pop = packed_wait(visit, self.blpop_timeout)
        else:
            pop = packed_plain_pop(visit)
        if not pop:
            return None
        commands = [pop]
        if batch:
            keys, args = self._send_many_arguments(shard, batch)
            commands.insert(0, scripts.SEND_MANY.packed(keys, args))
        started = time.monotonic()
        try:
            replies = shard.pipeline(commands, self.blpop_timeout + 5 if block else None)
        except redis.RedisError as error:
            for position, *_ in batch or ():
                outcomes[position] = error
            raise ReceiveFailed(outcomes, error) from error
        if batch:
            self._settle_pipelined(shard, batch, replies[0], outcomes)
            batch.clear()
        reply = replies[-1]
        if isinstance(reply, redis.ResponseError):
            if "unknown command" not in str(reply).lower():
                raise ReceiveFailed(outcomes, reply) from reply
            # Redis before 7: no LMPOP / BLMPOP; the usual receive knows what to do.
            shard.has_lmpop = shard.has_blmpop = False
            visit.forget_packed()
            return None
        if block:
            if reply is None:
                return None, None  # the wait ran out
            key, entries = reply
            index = visit.keys.index(key.decode("utf-8"))
        else:
            popped = plain_pop_result(visit, reply)
            if popped is None:
                return None, None
            index, entries = popped
        entries = live_entries(shard, visit.storages[index], entries)
        count_expired(shard)
        if entries:
            return self._hand_out(shard, visit.storages[index], entries)
        # Only expired entries: they are gone; look again for what is left of
        # the wait (a blocking receive) or once more (a non-blocking one).
        if not block:
            return None
        remaining = self.blpop_timeout - (time.monotonic() - started)
        try:
            popped = blocking_pop([visit], max(remaining, 0))
        except redis.RedisError as error:
            raise ReceiveFailed(outcomes, error) from error
        if popped is None:
            return None, None
        visit, index, entries = popped
        return self._hand_out(visit.shard, visit.storages[index], entries)

    def _settle_pipelined(
        self, shard: Shard, batch: list[_Queued], reply: Any, outcomes: list[Exception | None]
    ) -> None:
        """Outcomes of the pipeline's ``SEND_MANY``; rerun it if the server forgot it."""
        if isinstance(reply, redis.exceptions.NoScriptError):
            # A restarted or flushed server: nothing ran; this loads it (L-62.2).
            try:
                reply = shard.script(scripts.SEND_MANY, *self._send_many_arguments(shard, batch))
            except (*CONNECTION_ERRORS, redis.ResponseError) as exc:
                reply = exc
        if isinstance(reply, redis.ResponseError):
            reply = scripts.unsupported(reply, shard.client())  # e.g. LayerOutOfMemory
        if isinstance(reply, Exception):
            error = reply
            for position, *_ in batch:
                outcomes[position] = error
            return
        self._note_full(batch, self._sent(shard, reply), outcomes)

    def _receive_order(self, channels: Iterable[str]) -> tuple[list[str], list[Visit] | None]:
        """The validated names in this call's order (A-28), and their visits when the
        plan has them ready (names on one shard), else `None` (build them per call)."""
        plan = self._receive_plan(channels)
        orders = plan.orders
        if orders:
            return orders[layer_random.randrange(len(orders))] if len(orders) > 1 else orders[0]
        names = list(plan.names)
        layer_random.shuffle(names)
        return names, None

    def _receive_plan(self, channels: Iterable[str]) -> _ReceivePlan:
        """The cached plan for this list of names, validated (A-13) and built on first use.

        A worker or a protocol server receives on the same names every time;
        validating them, grouping them by shard and packing the pop commands
        again on every call was a fifth of the worker's CPU per message.
        """
        if isinstance(channels, (str, bytes)):
            self.receive_names(channels)  # raises: a bare name is not a list
        try:
            key = tuple(channels)
            plan = self._receive_plans.get(key)
        except TypeError:  # not iterable, or an unhashable (so invalid) name
            return self._build_receive_plan(self.receive_names(channels))
        if plan is None:
            plan = self._build_receive_plan(self.receive_names(key))
            if len(self._receive_plans) >= self.receive_plan_memory:
                self._receive_plans.clear()  # many different lists: start over
            self._receive_plans[key] = plan
        return plan

    def _build_receive_plan(self, names: list[str]) -> _ReceivePlan:
        index = self._only_shard(names)
        if index is None or not names or len(names) > self.receive_plan_orders:
            return _ReceivePlan(names, [])
        # Every rotation of one shuffled order: each name comes first in as many
        # receives as any other, so a busy channel cannot starve a quiet one.
        shuffled = list(names)
        layer_random.shuffle(shuffled)
        orders = []
        for start in range(len(shuffled)):
            order = shuffled[start:] + shuffled[:start]
            orders.append((order, self._plan(order, every_shard=False, only_shard=index)))
        return _ReceivePlan(names, orders)

    def _only_shard(self, names: list[str]) -> int | None:
        """The shard every receive on `names` visits alone, if there is one (L-25)."""
        if self.ring_size == 1:
            return 0
        if any("?" not in name and not name.endswith("!") for name in names):
            return None  # normal names: one shard per call in turn, or every shard
        indexes = {consistent_hash(name, self.ring_size) for name in names}
        return indexes.pop() if len(indexes) == 1 else None

    def _plan(
        self, names: list[str], every_shard: bool, only_shard: int | None = None
    ) -> list[Visit]:
        """Group the names by shard (L-25); normal names go to one or every shard."""
        visits: dict[int, Visit] = {}

        def add(index: int, name: str, want: int) -> None:
            visit = visits.get(index)
            if visit is None:
                visit = visits[index] = Visit(self._shards[index])
            visit.keys.append(self._list_key(name))
            visit.storages.append(name)
            visit.wants.append(want)

        normal_shards = None
        for name in names:
            if name.endswith("!"):
                add(consistent_hash(name, self.ring_size), name, self.prefetch)
            elif "?" in name:
                add(consistent_hash(name, self.ring_size), name, 1)
            else:
                if normal_shards is None:
                    if only_shard is not None:
                        normal_shards = (only_shard,)
                    else:
                        normal_shards = self._normal_receive_shards(every_shard)
                for index in normal_shards:
                    add(index, name, 1)
        order = list(visits.values())
        layer_random.shuffle(order)
        return order

    def _normal_receive_shards(self, every_shard: bool) -> Sequence[int]:
        if every_shard:
            return range(self.ring_size)
        return (self._receive_rotation.next(self.ring_size),)

    def _pop_pass(self, visits: list[Visit]) -> tuple[tuple[str, dict] | None, list[Visit]]:
        """Pop from the first visit with a live entry; also return the visits that answered.

        One unreachable shard must not stop a receive over several (L-62.5): its
        failure is logged by the shard and the others are still served. Only
        when no shard answers does the receive raise.
        """
        answering = []
        failure = None
        for visit in visits:
            try:
                popped = pop(visit, self.clock_check_interval)
            except CONNECTION_ERRORS as exc:
                failure = failure or exc
                continue
            if popped is not None:
                index, entries = popped
                return self._hand_out(visit.shard, visit.storages[index], entries), answering
            answering.append(visit)
        if failure is not None and not answering:
            raise failure
        return None, answering

    def _blocking_pop(self, visits: list[Visit]) -> tuple[str | None, dict | None]:
        """Wait up to `blpop_timeout` on every shard of `visits` at once (A-32, L-62.5)."""
        popped = blocking_pop(visits, self.blpop_timeout)
        if popped is None:
            return None, None
        visit, index, entries = popped
        return self._hand_out(visit.shard, visit.storages[index], entries)

    def _hand_out(self, shard: Shard, storage: str, entries: list[bytes]) -> tuple[str, dict]:
        """Return the first message of `entries`; buffer the rest (process-specific only)."""
        deadline, names, payload = decode_entry(entries[0], storage)
        if len(names) > 1 or len(entries) > 1:
            local_deadline = deadline / 1000 - shard.clock_offset
            extra = [(local_deadline, name, payload) for name in names[1:]]
            for entry in entries[1:]:
                deadline, more_names, more_payload = decode_entry(entry, storage)
                local_deadline = deadline / 1000 - shard.clock_offset
                extra.extend((local_deadline, name, more_payload) for name in more_names)
            self._buffer.add(storage, extra)
        return names[0], self._codec.decode(payload)

    def _take_buffered(self, names: list[str]) -> tuple[str, dict] | None:
        # Buffered messages were popped already: serving them first keeps their
        # wait short; a refill happens only when they are gone (A-28 still holds
        # for the Redis pass, which shuffles).
        found = self._buffer.take(names)
        if found is None:
            return None
        return found[0], self._codec.decode(found[1])

    def channel_in_use(self, name: str) -> bool:
        """`new_channel` hook: does the candidate's list exist on its shard (L-32)?"""
        key = self._list_key(name)
        shard = self._shards[consistent_hash(name, self.ring_size)]
        return bool(shard.call(lambda client: client.exists(key)))

    # -- groups (A-41..A-46, L-34, L-35) --------------------------------------------

    def group_add(self, group: str, channel: str) -> None:
        self.valid_group_name(group)
        self.valid_channel_name(channel)
        self._group_shard(group).script(
            scripts.GROUP_ADD, (self._group_key(group),), (channel, self._group_expiry_ms)
        )

    def group_discard(self, group: str, channel: str) -> None:
        self.valid_group_name(group)
        self.valid_channel_name(channel)
        key = self._group_key(group)
        self._group_shard(group).call(lambda client: client.zrem(key, channel))

    def group_channels(self, group: str) -> list[str]:
        self.valid_group_name(group)
        return [member.decode("utf-8") for member in self._members(group)]

    def _members(self, group: str) -> list[bytes]:
        return self._group_shard(group).script(
            scripts.GROUP_MEMBERS, (self._group_key(group),), (self._group_expiry_ms,)
        )

    def send_group(self, group: str, message: dict) -> None:
        self.valid_group_name(group)
        payload = self._payload(message, f"group {group}")
        if self.ring_size == 1 and not self.channel_capacity:
            skipped = self._shards[0].script(
                scripts.GROUP_SEND,
                (self._group_key(group),),
                (
                    payload,
                    self._expiry_ms,
                    *self._stats_args,
                    self._group_expiry_ms,
                    self.prefix,
                    self.capacity,
                ),
            )
            for index in range(0, len(skipped), 2):
                self._skips.skipped(group, skipped[index].decode("utf-8"), skipped[index + 1])
            return
        members = [member.decode("utf-8") for member in self._members(group)]
        self._send_to_members(group, members, payload)

    def _send_to_members(self, group: str, members: list[str], payload: bytes) -> None:
        """One `PUSH` per shard, one bundle per ``P!`` (A-93); skips counted and logged.

        A shard that cannot be reached does not keep the members on other shards
        from their copy; its error is raised once the others are served (L-62.3).
        """
        failure = None
        for shard, delivery in self._deliveries(members).items():
            try:
                stored = shard.script(
                    scripts.PUSH, delivery.keys, (payload, self._expiry_ms, *delivery.args)
                )
            except (*CONNECTION_ERRORS, LayerOutOfMemory) as exc:
                failure = failure or exc
                continue
            for storage, copies, ok in zip(delivery.storages, delivery.copies, stored, strict=True):
                if not ok:
                    self._skips.skipped(group, storage, copies)
        if failure is not None:
            raise failure

    def _deliveries(self, members: list[str]) -> dict[Shard, _Delivery]:
        """Plan one `PUSH` per shard: one entry per normal member, one bundle per ``P!``."""
        bundles: dict[str, list[str]] = {}
        deliveries: dict[Shard, _Delivery] = {}
        normal_shard = None

        def add(shard: Shard, storage: str, copies: int, header: bytes) -> None:
            delivery = deliveries.get(shard)
            if delivery is None:
                delivery = deliveries[shard] = _Delivery(args=list(self._stats_args))
            delivery.keys.append(self._list_key(storage))
            delivery.storages.append(storage)
            delivery.copies.append(copies)
            delivery.args.extend((self.get_capacity(storage), storage, copies, header))

        for member in members:
            storage = self.non_local_name(member)
            if "!" in member:
                bundles.setdefault(storage, []).append(member)
            elif "?" in member:
                add(self._send_shard(member), member, 1, b"M")
            else:
                if normal_shard is None:
                    normal_shard = self._send_shard(member)
                add(normal_shard, member, 1, b"M")
        for storage, names in bundles.items():
            add(self._send_shard(storage), storage, len(names), bundle_header(names))
        return deliveries

    # -- flush (A-48, L-42) -------------------------------------------------------------

    def flush(self) -> None:
        self._buffer.clear()
        patterns = [glob_escape(self.prefix) + "*", glob_escape(self.stats_prefix) + "*"]
        for shard in self._shards:
            shard.call(functools.partial(delete_matching, patterns=patterns))

    # -- statistics (A-49, L-39..L-41) ----------------------------------------------------

    def global_statistics(self) -> dict[str, int]:
        return global_figures(self._shards, self._global_stats_hash)  # also counts drops

    def channel_statistics(self, channel: str) -> dict[str, int]:
        self.valid_channel_name(channel)
        storage = self.non_local_name(channel)  # L-40: P!L counts as P!
        if "?" in storage or storage.endswith("!"):
            shards = [self._shards[consistent_hash(storage, self.ring_size)]]
        else:
            shards = self._shards
        keys = (self._list_key(storage), self._stats_hash(storage))
        return channel_figures(shards, keys, self._expiry_ms)

    # -- twisted and asyncio (A-50, A-51, L-43, L-61) ----------------------------------------

    def receive_buffered(self, channels: Iterable[str]) -> tuple[str | None, dict | None]:
        """A message this process has popped already (from a ``P!`` batch), or ``(None, None)``.

        Never a round trip: for a reader draining what its blocking receive brought
        (daphne's reply reader), whose closing non-blocking ``receive`` would
        otherwise ask Redis and usually find nothing (issue 9). An addition to the
        ASGI-1 API, like `send_many`.
        """
        names = self._receive_plan(channels).names  # validated once per list
        found = self._take_buffered(names) if self._buffer else None
        return found if found is not None else (None, None)

    def socket_receive(self, channels: Iterable[str]) -> SocketReceive:
        """A receive on `channels` that an event loop drives from a socket (`SocketReceive`).

        For daphne's reply reader: the reactor watches the socket of a blocking
        pop instead of a thread blocking in `receive` (issue 9). The names must
        sit on one shard (a ``P!`` prefix always does); raises
        `SocketReceiveUnsupported` otherwise, or without hiredis, BLMPOP or with
        TLS, and the shard's connection error when Redis is unreachable.
        Messages this instance buffered from earlier receives are not seen by
        it. An addition to the ASGI-1 API, like `send_many`.
        """
        names, visits = self._receive_order(channels)
        if not names or visits is None or len(visits) != 1:
            raise SocketReceiveUnsupported("the names are not all on one shard")
        return SocketReceive(self, visits[0], self.blpop_timeout)

    def socket_sender(self) -> SocketSender:
        """A `send_many` that writes to sockets of its own and returns at once, for an
        event loop that must never wait on Redis (daphne, issue 15; `socket_send`).
        Raises `SocketSendUnsupported` without hiredis. An addition to the ASGI-1 API.
        """
        return SocketSender(self)

    def receive_twisted(self, channels: Iterable[str]) -> Any:
        """A `Deferred` firing with a blocking `receive` run in Twisted's thread pool.

        A message already buffered from a ``P!`` batch fires at once, without a
        thread hop; errors (a bad name, Redis down) arrive as a failed Deferred.
        """
        from twisted.internet import defer, threads

        def start() -> Any:
            names = self._receive_plan(channels).names  # validated once per list
            found = self._take_buffered(names) if self._buffer else None
            if found is not None:
                return found
            return threads.deferToThread(self.receive, names, True)

        return defer.maybeDeferred(start)

    async def receive_async(self, channels: Iterable[str]) -> tuple[str | None, dict | None]:
        """A blocking `receive` in the loop's default executor; never blocks the loop.

        A message already buffered from a ``P!`` batch is returned directly.
        """
        names = self._receive_plan(channels).names  # validated once per list
        found = self._take_buffered(names) if self._buffer else None
        if found is not None:
            return found
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(None, self.receive, names, True)

    def close(self) -> None:
        """Close this layer's connections to Redis; using the layer again reconnects.

        For a process done with a layer (and for tests): otherwise its sockets are
        closed only when garbage collection reaches them.
        """
        for client in self._open_clients():
            close_connections(client)

    def _open_clients(self) -> list[redis.Redis]:
        shards = self.__dict__.get("_shards", [])  # never built: nothing to close
        return [shard._client for shard in shards]

    def __str__(self) -> str:
        return f"{type(self).__name__}(hosts={self.hosts!r})"
