"""Groups: membership on the group's shard, and group sends (A-41..A-46, A-93, L-34, L-35).

A group is a sorted set on its hashed shard, scored by each member's expiry
(`group_expiry`). On a single shard without per-channel capacities,
`scripts.GROUP_SEND` reads the live members and delivers in one round trip.
Otherwise the members are read first and one `scripts.PUSH` runs per
destination shard. Either way all members behind one process-specific ``P!``
share ONE bundle entry, so a broadcast to 200 connections of one daphne needs
one free slot in its queue, and full members are counted
(``channel_full_count``) and logged (A-40).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from channels.layers.base import FullSkipReporter

from . import scripts
from .entries import bundle_header
from .errors import LayerOutOfMemory
from .placement import Placement
from .sending import Sender
from .shard import CONNECTION_ERRORS, Shard

if TYPE_CHECKING:
    from .core import RedisChannelLayer

__all__ = ["Groups"]


@dataclass(slots=True)
class _Delivery:
    """What one `PUSH` run on one shard delivers for a group send."""

    keys: list[str] = field(default_factory=list)
    storages: list[str] = field(default_factory=list)
    copies: list[int] = field(default_factory=list)
    args: list[Any] = field(default_factory=list)


class Groups:
    """The group operations of one layer instance."""

    def __init__(
        self,
        layer: RedisChannelLayer,
        placement: Placement[Shard],
        sender: Sender,
        skips: FullSkipReporter,
    ) -> None:
        self._layer = layer
        self._placement = placement
        self._sender = sender
        self._skips = skips
        self._group_expiry_ms = layer.group_expiry * 1000

    def add(self, group: str, channel: str) -> None:
        placement = self._placement
        placement.group_shard(group).script(
            scripts.GROUP_ADD, (placement.group_key(group),), (channel, self._group_expiry_ms)
        )

    def discard(self, group: str, channel: str) -> None:
        key = self._placement.group_key(group)
        self._placement.group_shard(group).call(lambda client: client.zrem(key, channel))

    def members(self, group: str) -> list[bytes]:
        placement = self._placement
        result: list[bytes] = placement.group_shard(group).script(
            scripts.GROUP_MEMBERS, (placement.group_key(group),), (self._group_expiry_ms,)
        )
        return result

    def send(self, group: str, message: dict[str, Any]) -> None:
        payload = self._sender.payload(message, f"group {group}")
        placement = self._placement
        layer = self._layer
        if placement.ring_size == 1 and not layer.channel_capacity:
            reliable = layer._reliable
            shard = placement.shards[0]
            skipped = shard.script(
                scripts.GROUP_SEND,
                (placement.group_key(group),),
                (
                    payload,
                    self._sender.expiry_ms,
                    *self._sender.stats_args,
                    self._group_expiry_ms,
                    placement.prefix,
                    layer.capacity,
                    "1" if reliable is not None else "0",
                ),
            )
            if reliable is not None:  # issue 17: at-least-once members' doorbells
                skipped, stored = skipped
                if stored:
                    reliable.ring(shard, [name.decode("utf-8") for name in stored])
            for index in range(0, len(skipped), 2):
                self._skips.skipped(group, skipped[index].decode("utf-8"), skipped[index + 1])
            return
        members = [member.decode("utf-8") for member in self.members(group)]
        self.send_to_members(group, members, payload)

    def send_to_members(self, group: str, members: list[str], payload: bytes) -> None:
        """One `PUSH` per shard, one bundle per ``P!`` (A-93); skips counted and logged.

        A shard that cannot be reached does not keep the members on other shards
        from their copy; its error is raised once the others are served (L-62.3).
        """
        failure = None
        expiry_ms = self._sender.expiry_ms
        reliable = self._layer._reliable
        for shard, delivery in self._deliveries(members).items():
            try:
                stored = shard.script(
                    scripts.PUSH, delivery.keys, (payload, expiry_ms, *delivery.args)
                )
            except (*CONNECTION_ERRORS, LayerOutOfMemory) as exc:
                failure = failure or exc
                continue
            for storage, copies, ok in zip(delivery.storages, delivery.copies, stored, strict=True):
                if not ok:
                    self._skips.skipped(group, storage, copies)
            if reliable is not None:  # issue 17: at-least-once members' doorbells
                reliable.ring(
                    shard, [name for name, ok in zip(delivery.storages, stored, strict=True) if ok]
                )
        if failure is not None:
            raise failure

    def _deliveries(self, members: list[str]) -> dict[Shard, _Delivery]:
        """Plan one `PUSH` per shard: one entry per normal member, one bundle per ``P!``."""
        placement = self._placement
        layer = self._layer
        stats_args = self._sender.stats_args
        bundles: dict[str, list[str]] = {}
        deliveries: dict[Shard, _Delivery] = {}
        normal_shard = None

        def add(shard: Shard, storage: str, copies: int, header: bytes) -> None:
            delivery = deliveries.get(shard)
            if delivery is None:
                delivery = deliveries[shard] = _Delivery(args=list(stats_args))
            delivery.keys.append(placement.list_key(storage))
            delivery.storages.append(storage)
            delivery.copies.append(copies)
            delivery.args.extend((layer.get_capacity(storage), storage, copies, header))

        for member in members:
            storage = layer.non_local_name(member)
            if "!" in member:
                bundles.setdefault(storage, []).append(member)
            elif "?" in member:
                add(placement.send_shard(member), member, 1, b"M")
            else:
                if normal_shard is None:
                    normal_shard = placement.send_shard(member)
                add(normal_shard, member, 1, b"M")
        for storage, names in bundles.items():
            add(placement.send_shard(storage), storage, len(names), bundle_header(names))
        return deliveries
