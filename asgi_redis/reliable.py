"""At-least-once delivery on Redis: leases, redelivery and dead letters (issue 17).

Why lists, a doorbell and a lease set rather than Streams. A worker waits on every
channel it routes in ONE blocking call (``BLMPOP`` over many lists, `popping`), and
most of those channels stay at-most-once plain lists. Streams consumer groups
(``XREADGROUP`` / ``XACK`` / ``XAUTOCLAIM``) would give leases for free, but a
blocking ``XREADGROUP`` cannot wait on lists, so a worker would need two blocking
calls (two connections, a poll, cancellation) for every receive, and the list
machinery already in place (capacity by ``LLEN``, expiry by the entry's deadline
prefix, group bundles, Lua scripts run by SHA) would have to be rebuilt for
streams. Instead, per at-least-once channel ``C`` (all keys under the hash tag
``{C}``, so one channel's keys share one Redis Cluster slot):

- ``prefix{C}``: the data list, exactly as for at-most-once channels (sends,
  capacity and expiry unchanged);
- ``prefix{C}:bell``: the doorbell. A send that stores a message also pushes a
  token here (same script, `scripts.SEND`'s ``b`` flag). The worker's ``BLMPOP``
  waits on the bell instead of the data list: a token means "maybe work", never
  carries the message;
- ``prefix{C}:lease`` (sorted set, score = lease deadline on the shard's clock) and
  ``prefix{C}:held`` (hash, id -> ``count:entry``): what is delivered and not
  acknowledged. `LEASE` atomically pops a live entry from the data list into
  them; ``ack`` is ``ZREM`` + ``HDEL``;
- ``prefix{C}:dead``: dead letters, kept without TTL.

Every lease pass first *reclaims* the channel's expired leases (same script, so no
extra round trip): an entry goes back to the head of the data list with its
delivery count (entry kind ``R``, `entries`) and the bell rings again, or, once it
was delivered `max_deliveries` times, to the dead letters (counted as
``dead_lettered_count``, logged once at WARNING). The pass also returns the
earliest lease deadline, so a blocking receive never waits past it: a killed
worker's message comes back within `ack_timeout` plus a round trip. A lost token
only delays (the pass at each blocking timeout looks at the data lists), never
loses. Plain names listed with at-least-once ones are popped by the same script,
so a worker's non-blocking pass stays one round trip per shard.

A group send to an at-least-once channel stores the entry, then rings its bell
(`Reliable.ring`, one more round trip, only when such a member was stored: the group
scripts name the normal members they stored). A bell lost between the two (the sender
died, Redis unreachable) only delays: a waiting receiver finds the entry at its next
pass, at the latest when its blocking pop times out. Only normal names are
at-least-once (`DeliveryPolicy`).

Channels not matching `at_least_once` never reach this module: their sends and
receives are the at-most-once paths, unchanged (the only added cost is a cached
dict lookup per send). Every process sharing a layer must use the same
`at_least_once` setting.
"""

from __future__ import annotations

import logging
import threading
import time
import uuid
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, TypeVar

import redis

from channels.layers.base import DELIVERY_KEY, layer_random
from channels.layers.delivery import DeadLetter, DeliveryPolicy

from .entries import decode_entry
from .flushing import glob_escape
from .popping import Visit
from .reliable_scripts import ACK, LEASE, NACK, REQUEUE
from .shard import CONNECTION_ERRORS, Shard
from .shards_wait import blocking_pop

if TYPE_CHECKING:
    from .core import RedisChannelLayer
    from .receiving import Received

__all__ = ["BELL_TOKEN", "DeadLetters", "Reliable", "reliable_keys"]

logger = logging.getLogger("asgi_redis")

_T = TypeVar("_T")
# A doorbell token: a deadline no entry reaches, so the receive path never drops it.
BELL_TOKEN = b"9999999999999B"
_SUFFIXES = (":bell", ":lease", ":held", ":dead")


def reliable_keys(list_key: str) -> tuple[str, str, str, str, str]:
    """``(data list, bell, lease set, held hash, dead letters)`` of one channel."""
    return (list_key, *(list_key + suffix for suffix in _SUFFIXES))  # type: ignore[return-value]


@dataclass(slots=True)
class Split:
    """One list of names split by delivery mode (cached per list)."""

    # Names the lease script takes (at-least-once and plain non-``P!`` ones).
    scripted: list[str]
    # Process-specific names (batch pops, prefetch buffer): the plain receiver's.
    buffered: list[str]
    # Shards to visit per scripted name (normal names: every shard).
    homes: dict[str, list[int]] = field(default_factory=dict)


class Reliable:
    """The at-least-once side of one `RedisChannelLayer` (issue 17)."""

    # Expired leases one pass moves per channel.
    reclaim_limit = 100

    def __init__(self, layer: RedisChannelLayer, policy: DeliveryPolicy) -> None:
        self._layer = layer
        self.policy = policy
        self.applies = policy.applies
        self.ack_ms = int(policy.ack_timeout * 1000)
        self._splits: dict[tuple[str, ...], Split | None] = {}
        self.dead = DeadLetters(layer)
        # Per thread: acknowledgements waiting for the next lease pass (`ack_later`).
        self._local = threading.local()
        # Threads blocked in a receive's wait now (`waiting`).
        self._waiting: set[int] = set()

    # -- receive -----------------------------------------------------------------

    def receive(self, channels: Iterable[str], block: bool) -> Received:
        layer = self._layer
        receiver = layer._receiver
        names = receiver.receive_plan(channels).names  # validated once per list
        split = self.split(names)
        if split is None:  # no at-least-once name here: the usual paths
            if getattr(self._local, "acks", None):
                self.flush_acks()
            if block:  # leases nothing: a stopping worker may end it there too
                return self._waiting_in(receiver.receive, names, block)
            return receiver.receive(names, block)
        if receiver.buffer and split.buffered:
            found = receiver.take_buffered(split.buffered)
            if found is not None:
                return found
        give_up = time.monotonic() + layer.blpop_timeout
        while True:
            order = list(split.scripted)
            layer_random.shuffle(order)
            found, next_due = self._lease_pass(split, order)
            if found is not None:
                return found
            if split.buffered:
                buffered = receiver.receive(split.buffered, False)
                if buffered[0] is not None:
                    return buffered
            if not block:
                return None, None
            remaining = give_up - time.monotonic()
            if remaining <= 0:
                return None, None
            timeout = min(remaining, next_due) if next_due is not None else remaining
            popped = self._waiting_in(
                self.wait, self._wait_visits(split, names), max(timeout, 0.01)
            )
            if popped is None:
                continue  # a lease may have ended, or the receive's time is up
            visit, index, entries = popped
            if visit.keys[index].endswith(":bell"):
                continue  # maybe work: the next pass leases it
            return receiver.hand_out(visit.shard, visit.storages[index], entries)

    def waiting(self, thread: int) -> bool:
        """Whether thread `thread` is blocked in a receive's wait, which leases nothing:
        an at-least-once channel is waited on through its doorbell and leased after the
        wait, so a stopping worker group may end the thread there (C-33)."""
        return thread in self._waiting

    def _waiting_in(self, wait: Callable[..., _T], *args: Any) -> _T:
        thread = threading.get_ident()
        self._waiting.add(thread)
        try:
            return wait(*args)
        finally:
            self._waiting.discard(thread)

    def split(self, names: list[str]) -> Split | None:
        key = tuple(names)
        if key in self._splits:
            return self._splits[key]
        split = None
        if any(self.applies(name) for name in names):
            split = Split(
                [name for name in names if not name.endswith("!")],
                [name for name in names if name.endswith("!")],
            )
            for name in split.scripted:
                split.homes[name] = self.homes(name)
        if len(self._splits) >= self._layer.receive_plan_memory:
            self._splits.clear()
        self._splits[key] = split
        return split

    # -- where things are (`cluster_reliable` places by hash slot instead) -------------

    def homes(self, name: str) -> list[int]:
        """The shards a scripted name may have entries on (a normal name: every one)."""
        placement = self._layer._placement
        if "?" in name or placement.ring_size == 1:
            return [placement.index(name)]
        return list(range(placement.ring_size))

    def shard_at(self, index: int) -> Shard:
        return self._layer._placement.shards[index]

    def global_hash(self, index: int) -> str:
        """The shard-global statistics hash the scripts count in on shard `index`."""
        return self._layer._placement.global_stats_hash

    lease_script = LEASE

    def wait(self, visits: list[Visit], timeout: float) -> tuple[Visit, int, list[bytes]] | None:
        """`shards_wait.blocking_pop` on the bells and plain lists of `visits`."""
        return blocking_pop(visits, timeout)

    def _lease_pass(
        self, split: Split, order: list[str]
    ) -> tuple[tuple[str, dict[str, Any]] | None, float | None]:
        """One `LEASE` per shard holding a name; ``(message, seconds to next lease end)``."""
        by_shard: dict[int, list[str]] = {}
        for name in order:
            for index in split.homes[name]:
                by_shard.setdefault(index, []).append(name)
        next_due: float | None = None
        try:
            for index, shard_names in by_shard.items():
                shard = self.shard_at(index)
                found, due = self._lease_on(shard, index, shard_names)
                if found is not None:
                    return found, None
                if due is not None:
                    next_due = due if next_due is None else min(next_due, due)
        finally:
            if getattr(self._local, "acks", None):
                self.flush_acks()  # acks for shards this pass did not visit
        return None, next_due

    def _lease_on(
        self, shard: Shard, index: int, names: list[str]
    ) -> tuple[tuple[str, dict[str, Any]] | None, float | None]:
        keys, args, acks = self.lease_arguments(index, names)
        try:
            reply = shard.script(self.lease_script, keys, args)
        except BaseException:
            self.unsent_acks(index, acks)
            raise
        return self.lease_result(shard, index, names, reply)

    def lease_arguments(
        self, index: int, names: list[str]
    ) -> tuple[list[str], list[Any], list[tuple[str, str, str]]]:
        """KEYS and ARGV of `LEASE` on shard `index` for `names` (in the order to try),
        with this thread's waiting acks for that shard (taken: `unsent_acks` puts them
        back if the call fails)."""
        placement = self._layer._placement
        sender = self._layer._sender
        keys: list[str] = [self.global_hash(index)]
        kinds = []
        for name in names:
            list_key = placement.list_key(name)
            if self.applies(name):
                keys += (*reliable_keys(list_key), placement.stats_hash(name))
                kinds.append("r")
            else:
                keys.append(list_key)
                kinds.append("p")
        token = uuid.uuid4().hex[:16] + "."
        args: list[Any] = [
            self.ack_ms,
            self.policy.max_deliveries,
            sender.expiry_ms,
            token,
            *sender.stats_args,
            "".join(kinds),
        ]
        acks = self._acks_for(index)
        for lease_key, held_key, lease_id in acks:
            keys += (lease_key, held_key)
            args.append(lease_id)
        return keys, args, acks

    def lease_result(
        self, shard: Shard, index: int, names: list[str], reply: list[Any]
    ) -> tuple[tuple[str, dict[str, Any]] | None, float | None]:
        """``(message or None, seconds to the next lease end or None)`` from a reply."""
        now_ms = reply[0]
        shard.note_clock(now_ms)
        dead = reply[2]
        for at in range(0, len(dead), 2):
            self._dead_lettered(names[dead[at] - 1], dead[at + 1])
        if len(reply) == 3:
            due = reply[1]
            return None, (None if due < 0 else max(0.0, (due - now_ms) / 1000))
        position, lease_id, count, entry = reply[3:7]
        storage = names[position - 1]
        _, destinations, payload = decode_entry(entry, storage)
        message = self._layer._codec.decode(payload)
        if lease_id:
            message[DELIVERY_KEY] = {"id": f"{index}:{lease_id.decode()}", "count": count}
        return (destinations[0], message), None

    def _wait_visits(self, split: Split, names: list[str]) -> list[Visit]:
        """Bells of at-least-once names and lists of plain ones, per shard (A-32)."""
        placement = self._layer._placement
        visits: dict[int, Visit] = {}

        def add(index: int, key: str, storage: str, want: int) -> None:
            visit = visits.get(index)
            if visit is None:
                visit = visits[index] = Visit(self.shard_at(index))
            visit.keys.append(key)
            visit.storages.append(storage)
            visit.wants.append(want)

        for name in split.scripted:
            key = placement.list_key(name)
            if self.applies(name):
                key += ":bell"
            for index in split.homes[name]:
                add(index, key, name, 1)
        for name in split.buffered:
            add(placement.index(name), placement.list_key(name), name, self._layer.prefetch)
        order = list(visits.values())
        layer_random.shuffle(order)
        return order

    def _dead_lettered(self, storage: str, count: int) -> None:
        logger.warning(
            "%d message%s on %s %s not acknowledged after %d deliveries; moved to dead letters "
            "(manage.py deadletters)",
            count,
            "" if count == 1 else "s",
            storage,
            "was" if count == 1 else "were",
            self.policy.max_deliveries,
        )

    def ring(self, shard: Shard, names: Iterable[str]) -> None:
        """Ring the doorbells of the at-least-once channels among `names`, whose messages
        a group send has just stored on `shard` (as `scripts.SEND` rings a plain send's).
        A bell that cannot be rung only delays the message (see the module docstring)."""
        placement = self._layer._placement
        bells = [placement.list_key(name) + ":bell" for name in names if self.applies(name)]
        if not bells:
            return
        ttl_ms = self._layer._sender.expiry_ms + 1000

        def run(client: Any) -> None:
            pipe = client.pipeline(transaction=False)
            for bell in bells:
                pipe.rpush(bell, BELL_TOKEN)
                pipe.pexpire(bell, ttl_ms)
            pipe.execute()

        try:
            shard.call(run)
        except (*CONNECTION_ERRORS, redis.RedisError):
            logger.debug("doorbell of %s not rung; found at the next pass", ", ".join(bells))

    # -- ack / nack ---------------------------------------------------------------

    def ack_later(self, channel: str, delivery_id: str) -> None:
        """Acknowledge with this thread's next lease pass on that shard (no round trip
        of its own); `flush_acks` sends what is still waiting. The worker uses it: the
        ack then rides with its next receive. Until sent, the lease may end and the
        message come back (at-least-once allows a duplicate, never a loss)."""
        shard, storage, lease_id = self._located(channel, delivery_id)
        keys = reliable_keys(self._layer._placement.list_key(storage))
        pending = self._waiting_acks()
        pending.setdefault(shard.index, []).append((keys[2], keys[3], lease_id))

    def flush_acks(self) -> None:
        """Send every acknowledgement `ack_later` left waiting in this thread."""
        pending = self._waiting_acks()
        for index in list(pending):
            for lease_key, held_key, lease_id in pending.pop(index):
                self.shard_at(index).script(ACK, (lease_key, held_key), (lease_id,))

    def _waiting_acks(self) -> dict[int, list[tuple[str, str, str]]]:
        pending: dict[int, list[tuple[str, str, str]]] | None = getattr(self._local, "acks", None)
        if pending is None:
            pending = self._local.acks = {}
        return pending

    def _acks_for(self, index: int) -> list[tuple[str, str, str]]:
        pending: dict[int, list[tuple[str, str, str]]] | None = getattr(self._local, "acks", None)
        if not pending:
            return []
        return pending.pop(index, [])

    def unsent_acks(self, index: int, acks: list[tuple[str, str, str]]) -> None:
        if acks:
            self._waiting_acks().setdefault(index, [])[:0] = acks

    def _located(self, channel: str, delivery_id: str) -> tuple[Shard, str, str]:
        index, _, lease_id = delivery_id.partition(":")
        storage = self._layer.non_local_name(channel)
        return self.shard_at(int(index)), storage, lease_id

    def ack(self, channel: str, delivery_id: str) -> bool:
        shard, storage, lease_id = self._located(channel, delivery_id)
        keys = reliable_keys(self._layer._placement.list_key(storage))
        return bool(shard.script(ACK, (keys[2], keys[3]), (lease_id,)))

    def nack(self, channel: str, delivery_id: str, delay: float, release: bool = False) -> bool:
        shard, storage, lease_id = self._located(channel, delivery_id)
        placement = self._layer._placement
        sender = self._layer._sender
        keys = (
            *reliable_keys(placement.list_key(storage)),
            placement.stats_hash(storage),
            self.global_hash(shard.index),
        )
        live, dead = shard.script(
            NACK,
            keys,
            (
                lease_id,
                int(max(0.0, delay) * 1000),
                self.policy.max_deliveries,
                sender.expiry_ms,
                sender.stats_args[1],
                sender.stats_args[2],
                "1" if release else "",
            ),
        )
        if dead:
            self._dead_lettered(storage, dead)
        return bool(live)


class DeadLetters:
    """The dead letters of one `RedisChannelLayer`: ``prefix{C}:dead`` lists, found with
    ``SCAN`` on every shard (a rare, operator-driven read; `manage.py deadletters`)."""

    def __init__(self, layer: RedisChannelLayer) -> None:
        self._layer = layer

    def _keys(self, pattern: str) -> list[tuple[Shard, str, str]]:
        """``(shard, dead-letter key, storage)`` of channels matching glob `pattern`."""
        prefix = self._layer.prefix
        match = f"{glob_escape(prefix)}{{{pattern}}}:dead"
        found = []
        for shard in self._layer._shards:
            cursor = 0
            while True:

                def scan(client: Any, at: int = cursor) -> Any:
                    return client.scan(cursor=at, match=match, count=1000)

                cursor, page = shard.call(scan)
                for key in page:
                    text = key.decode("utf-8") if isinstance(key, bytes) else key
                    found.append((shard, text, text[len(prefix) + 1 : -len("}:dead")]))
                if int(cursor) == 0:
                    break
        return sorted(found, key=lambda item: (item[2], item[0].index))

    def dead_letters(self, pattern: str = "*") -> list[DeadLetter]:
        letters = []
        for shard, key, storage in self._keys(pattern):
            for raw in shard.command("LRANGE", key, 0, -1):
                colon = raw.index(b":", 13)
                dead_at = int(raw[:13]) / 1000
                deliveries = int(raw[13:colon])
                _, names, payload = decode_entry(raw[colon + 1 :], storage)
                content = self._layer._codec.decode(payload)
                letters.append(DeadLetter(names[0], content, deliveries, dead_at, key))
        return letters

    def requeue_dead_letters(self, pattern: str = "*") -> int:
        moved = 0
        expiry_ms = self._layer._sender.expiry_ms
        for shard, key, storage in self._keys(pattern):
            list_key = self._layer._placement.list_key(storage)
            moved += int(shard.script(REQUEUE, (key, list_key, list_key + ":bell"), (expiry_ms,)))
        return moved

    def purge_dead_letters(self, pattern: str = "*") -> int:
        gone = 0
        for shard, key, _ in self._keys(pattern):
            gone += int(shard.command("LLEN", key))
            shard.command("DEL", key)
        return gone
