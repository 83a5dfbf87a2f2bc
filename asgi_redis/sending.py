"""Sending: `send` and `send_many`, one script call per message or per shard (A-31, L-27, L-28).

A send is one `scripts.SEND` call: it appends the entry (taken back if that
passed the capacity), refreshes the list's TTL and counts the statistics
(L-39..L-41). `send_many` packs every message first (so a bad one raises before
anything is sent), groups them by shard and runs one `scripts.SEND_MANY` per
shard, reporting each message's outcome. The pipelined send-then-receive
(`pipelined`) and the socket sender (`socket_send`) reuse the packing and the
reading of the reply from here.
"""

from __future__ import annotations

import time
from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

from . import scripts
from .entries import DEADLINE_DIGITS, header_for
from .errors import LayerOutOfMemory
from .placement import Placement
from .shard import CONNECTION_ERRORS, Shard
from .wire import bulk_length, pack_argument

if TYPE_CHECKING:
    from .core import RedisChannelLayer

__all__ = ["Outcomes", "Queued", "Sender"]

# One message of a `send_many`: (position in the call, channel, storage name, payload).
Queued = tuple[int, str, str, bytes]
# One outcome per message of a `send_many`: None when stored, else the error.
Outcomes = list[Exception | None]

# The header of a message to the list's own channel (`entries.header_for`), packed.
_PACKED_OWN = pack_argument(header_for("m", "m"))
# A message's flags (`Sender.flags`), packed.
_PACKED_FLAGS = {flags: pack_argument(flags) for flags in ("", "1", "b", "1b")}


class Sender:
    """The send side of one layer instance."""

    def __init__(self, layer: RedisChannelLayer, placement: Placement[Shard]) -> None:
        self._layer = layer
        self.placement = placement
        # Bound once: these run for every message.
        self._valid_channel_name = layer.valid_channel_name
        self._non_local_name = layer.non_local_name
        self._get_capacity = layer.get_capacity
        self._validated = layer.validated
        self._check_encoded_size = layer.check_encoded_size
        self._codec = layer._codec
        self._send_shard = placement.send_shard
        self._list_key = placement.list_key
        self._stats_hash = placement.stats_hash
        self._global_stats_hash = placement.global_stats_hash
        self.expiry_ms = int(layer.expiry) * 1000  # whole seconds (`options`)
        self._channel_ttl = layer.channel_statistics_expiry
        self._global_ttl = layer.global_statistics_expiry
        # ARGV a script counting statistics needs: stats_prefix, channel TTL, global TTL.
        self.stats_args = (placement.stats_prefix, self._channel_ttl, self._global_ttl)
        self._refresh_interval = min(
            layer.statistics_refresh_interval, self._channel_ttl / 10, self._global_ttl / 10
        )
        self._refreshed: dict[str, float] = {}
        # Issue 17: at-least-once channels ring their doorbell (`reliable`); None when
        # the layer has none, so the usual send pays nothing.
        delivery = getattr(layer, "delivery", None)
        self._rings = delivery.applies if delivery is not None and delivery.enabled else None
        # `packed_send_many` (issue 20): the packed ``EVALSHA`` of `scripts.SEND_MANY`
        # built from pieces packed once, unless a subclass changes its arguments.
        self._packs_itself = type(self).send_many_arguments is Sender.send_many_arguments
        self._packed_heads: dict[int, bytes] = {}
        self._packed_keys: dict[str, bytes] = {}
        self._packed_global_key = pack_argument(self._global_stats_hash)
        self._packed_expiry = pack_argument(self.expiry_ms)
        self._packed_ttls = pack_argument(self._channel_ttl) + pack_argument(self._global_ttl)

    # -- packing (A-5, A-6, A-9, A-92) ---------------------------------------------

    def payload(self, message: dict[str, Any], destination: str) -> bytes:
        # packed at once, so the bytes are the snapshot.
        codec = self._codec
        packed = codec.pack(self._validated(message))
        try:
            self._check_encoded_size(len(packed), destination)
        except self._layer.MessageTooLarge:
            self.count_too_large(destination)
            raise
        return codec.seal(packed)

    def count_too_large(self, destination: str) -> None:
        """Count a message refused as too large (issue 17 item 2); never raises."""
        storage = self._non_local_name(destination)
        channel_hash, global_hash = self._stats_hash(storage), self._global_stats_hash

        def count(client: Any) -> Any:
            pipe = client.pipeline(transaction=False)
            pipe.hincrby(channel_hash, "too_large_count", 1)
            pipe.expire(channel_hash, self._channel_ttl)
            pipe.hincrby(global_hash, "too_large_count", 1)
            pipe.expire(global_hash, self._global_ttl)
            return pipe.execute()

        try:
            self._send_shard(storage).call(count)
        except Exception:  # counting must not hide the caller's error
            pass

    def batches(self, pairs: list[tuple[str, dict[str, Any]]]) -> dict[Shard, list[Queued]]:
        """Validate and pack every pair (raising before anything is sent), by shard."""
        batches: dict[Shard, list[Queued]] = {}
        valid_channel_name = self._valid_channel_name
        non_local_name = self._non_local_name
        send_shard = self._send_shard
        validated = self._validated
        codec = self._codec
        pack = codec.pack
        limit = self._layer.max_message_size
        for position, (channel, message) in enumerate(pairs):
            valid_channel_name(channel)
            # `payload` inline (issue 20): one call less per message.
            payload = pack(validated(message))  # the bytes are the snapshot
            if len(payload) > limit:
                payload = self.payload(message, channel)  # raises MessageTooLarge
            if codec.sealing:
                payload = codec.seal(payload)
            storage = non_local_name(channel)
            batch = batches.setdefault(send_shard(storage), [])
            batch.append((position, channel, storage, payload))
        return batches

    # -- one message (A-31, L-27) ------------------------------------------------------

    def send(self, channel: str, message: dict[str, Any]) -> None:
        self._valid_channel_name(channel)
        payload = self.payload(message, channel)
        storage = self._non_local_name(channel)
        capacity = self._get_capacity(storage)
        shard = self._send_shard(storage)
        flags = self._stats_refresh_due(storage)
        if self._rings is not None and self._rings(storage):
            flags += "b"  # at-least-once: ring the doorbell (issue 17)
        stored, server_now = shard.script(
            scripts.SEND,
            (self._list_key(storage), self._stats_hash(storage), self._global_stats_hash),
            (
                payload,
                self.expiry_ms,
                self.deadline_text(shard),
                capacity,
                header_for(channel, storage),
                self._channel_ttl,
                self._global_ttl,
                flags,
            ),
        )
        if server_now >= 0:
            shard.note_clock(server_now)
        if not stored:
            raise self.full(storage, capacity)

    def full(self, storage: str, capacity: int) -> Exception:
        return self._layer.ChannelFull(
            f"Channel {storage!r} is full ({capacity} messages pending); retry later"
        )

    # -- several messages (A-37, L-62.3) -----------------------------------------------

    def send_many(self, messages: Iterable[tuple[str, dict[str, Any]]]) -> Outcomes:
        pairs = list(messages)
        return self.send_batches(self.batches(pairs), [None] * len(pairs))

    def send_batches(self, batches: dict[Shard, list[Queued]], outcomes: Outcomes) -> Outcomes:
        for shard, batch in batches.items():
            try:
                keys, args = self.send_many_arguments(shard, batch)
                stored = self.sent(shard, shard.script(scripts.SEND_MANY, keys, args))
            except (*CONNECTION_ERRORS, LayerOutOfMemory) as exc:
                for position, *_ in batch:
                    outcomes[position] = exc
                continue
            self.note_full(batch, stored, outcomes)
        return outcomes

    def send_many_arguments(self, shard: Shard, batch: list[Queued]) -> tuple[list[str], list[Any]]:
        """KEYS and ARGV of `scripts.SEND_MANY` for one shard's part of a `send_many`."""
        list_key = self._list_key
        stats_hash = self._stats_hash
        get_capacity = self._get_capacity
        # Without at-least-once channels the flags are the refresh alone: one call less
        # per message (issue 16).
        flags = self._stats_refresh_due if self._rings is None else self.flags
        keys = [self._global_stats_hash]
        args: list[Any] = [
            self.expiry_ms,
            self.deadline_text(shard),
            self._channel_ttl,
            self._global_ttl,
        ]
        for _, channel, storage, payload in batch:
            keys += (list_key(storage), stats_hash(storage))
            args += (
                payload,
                get_capacity(storage),
                header_for(channel, storage),
                flags(storage),
            )
        return keys, args

    def packed_send_many(self, shard: Shard, batch: list[Queued]) -> bytes:
        """`scripts.SEND_MANY` for `send_many_arguments`, packed for a pipeline.

        The same bytes as ``SEND_MANY.packed(*send_many_arguments(shard, batch))``
        (a test holds it to that), without packing about 13 arguments per message
        one by one: the command's head per batch size, the keys per storage name
        and the layer's fixed numbers are packed once.
        """
        if not self._packs_itself:
            return scripts.SEND_MANY.packed(*self.send_many_arguments(shard, batch))
        count = len(batch)
        head = self._packed_heads.get(count)
        if head is None:
            key_count = 1 + 2 * count
            head = self._packed_heads[count] = b"*%d\r\n%b%b%b" % (
                3 + key_count + 4 + 4 * count,
                pack_argument("EVALSHA"),
                pack_argument(scripts.SEND_MANY.sha),
                pack_argument(key_count),
            )
        storage_keys = self._packed_keys
        get_capacity = self._get_capacity
        flags = self._stats_refresh_due if self._rings is None else self.flags
        deadline = self.deadline_text(shard)
        keys = [head, self._packed_global_key]
        args = [self._packed_expiry, pack_argument(deadline), self._packed_ttls]
        for _, channel, storage, payload in batch:
            packed_keys = storage_keys.get(storage)
            if packed_keys is None:
                packed_keys = self._pack_keys(storage)
            keys.append(packed_keys)
            args += (
                bulk_length(len(payload)),
                payload,
                b"\r\n",
                pack_argument(get_capacity(storage)),
            )
            if channel == storage:
                args.append(_PACKED_OWN)
            else:  # `header_for` packed in place: ``N<channel>|``
                args += (bulk_length(len(channel) + 2), b"N", channel.encode("ascii"), b"|\r\n")
            flag = flags(storage)
            args.append(_PACKED_FLAGS.get(flag) or pack_argument(flag))
        keys += args
        return b"".join(keys)

    def _pack_keys(self, storage: str) -> bytes:
        packed_keys = self._packed_keys
        if len(packed_keys) >= self._layer.statistics_refresh_memory:
            packed_keys.clear()  # many short-lived names: start over
        packed = packed_keys[storage] = pack_argument(self._list_key(storage)) + pack_argument(
            self._stats_hash(storage)
        )
        return packed

    def sent(self, shard: Shard, reply: list[int]) -> list[int]:
        """1/0 per message of a `scripts.SEND_MANY` reply; notes the server's clock."""
        server_now, *stored = reply
        if server_now >= 0:
            shard.note_clock(server_now)
        return stored

    def note_full(
        self,
        batch: list[Queued],
        stored: list[int],
        outcomes: Outcomes | list[BaseException | None],
    ) -> None:
        for (position, _, storage, _), ok in zip(batch, stored, strict=True):
            if not ok:
                outcomes[position] = self.full(storage, self._get_capacity(storage))

    # -- clock and statistics TTLs -------------------------------------------------------

    def flags(self, storage: str) -> str:
        """A message's flags for the send scripts: the statistics refresh ('1' or ''),
        then 'b' when `storage` is at-least-once (its doorbell rings, `reliable`)."""
        refresh = self._stats_refresh_due(storage)
        rings = self._rings
        if rings is not None and rings(storage):
            return refresh + "b"
        return refresh

    def _stats_refresh_due(self, storage: str) -> str:
        """'1' when this sender should reset the TTLs of `storage`'s statistics, else ''.

        Resetting them on every send cost two EXPIREs per message; once per
        `statistics_refresh_interval` keeps an active channel's counters alive
        just the same (L-39..L-41). Races between threads only add a refresh.
        """
        now = time.monotonic()
        refreshed = self._refreshed
        last = refreshed.get(storage)
        if last is not None and now - last < self._refresh_interval:
            return ""
        if len(refreshed) >= self._layer.statistics_refresh_memory:
            refreshed.clear()  # many short-lived names: start over
        refreshed[storage] = now
        return "1"

    def deadline_text(self, shard: Shard) -> bytes:
        """The new entry's deadline on the shard's clock (A-27).

        Computed here from the measured clock offset, it spares the script a
        ``TIME`` call and a number formatting; '' lets the script read ``TIME``
        (and report it) when this process has not measured that clock lately.
        """
        if time.monotonic() - shard.clock_checked >= self._layer.clock_check_interval:
            return b""
        # bytes: new on every call, so `wire.pack_command` does not keep its packed form.
        # `str` then `encode`: a third of what the bytes `%013d` costs.
        return (
            str(int((time.time() + shard.clock_offset) * 1000) + self.expiry_ms)
            .zfill(DEADLINE_DIGITS)
            .encode("ascii")
        )
