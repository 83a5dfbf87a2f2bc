"""At-least-once delivery on `RedisClusterChannelLayer` (issue 17, issue 19 item 1).

The design is `reliable`'s (data list, doorbell, lease set, held hash, dead letters
per channel ``C``, all under the hash tag ``{C}``); this module only places it by
hash slot:

- a channel's five keys and its statistics hash share the slot of ``C``; the
  shard-global counters a script touches are that slot's own (`slots.global_key`,
  passed as the script's first key), so every `LEASE`, ``ACK``, ``NACK`` and
  ``REQUEUE`` touches one slot and runs on its `cluster.SlotShard` (redirections
  and failovers followed as for every other script);
- one `LEASE` per slot holding names of the receive (a normal name lives in its
  slot only), and the wait on the bells is one ``BLMPOP`` per slot, started
  again when a redirection ends it;
- a delivery id names the slot (``slot:lease``), never a node: after a failover
  the promoted replica holds the replicated lease, so the message is acked,
  nacked or reclaimed there. What Redis had not yet replicated when the master
  died is lost with it (see `cluster`'s docstring): a lease taken in that window
  may vanish, and then so may its message;
- group sends ring the doorbells of the at-least-once members they stored, one
  pipeline per slot (`cluster_parts.ClusterGroups`);
- dead letters are found with ``SCAN`` on every master.
"""

from __future__ import annotations

import hashlib
import time
from typing import TYPE_CHECKING, Any

import redis
from redis.exceptions import MovedError

from .cluster_parts import is_redirect
from .errors import ShardConnectionError
from .flushing import glob_escape
from .popping import Visit
from .reliable import DeadLetters, Reliable
from .reliable_scripts import LEASE
from .scripts import Script
from .shard import CONNECTION_ERRORS, Shard, describe_client
from .slots import name_slot

if TYPE_CHECKING:
    from .cluster import RedisClusterChannelLayer, SlotShard

__all__ = ["CLUSTER_LEASE", "ClusterDeadLetters", "ClusterReliable"]


def _lease_variant() -> Script:
    """`LEASE` counting a plain name's expired messages in the slot's global counters
    (its first key) instead of a key of another slot."""
    stats_table = "local stats = {ARGV[5], ARGV[6], ARGV[7]}"
    source = LEASE.source.replace("stats[1] .. '#global#'", "stats[4]")
    if stats_table not in source or "stats[4]" not in source:
        raise AssertionError("cannot make the cluster variant of LEASE")
    variant = Script("lease_cluster", "")
    variant.source = source.replace(stats_table, stats_table[:-1] + ", KEYS[1]}")
    variant.sha = hashlib.sha1(variant.source.encode("utf-8")).hexdigest()
    return variant


CLUSTER_LEASE = _lease_variant()


class ClusterReliable(Reliable):
    """`Reliable` placing by hash slot: a shard index is a slot."""

    lease_script = CLUSTER_LEASE

    def __init__(self, layer: RedisClusterChannelLayer, policy: Any) -> None:
        super().__init__(layer, policy)
        self._cluster_layer = layer
        self.dead = ClusterDeadLetters(layer)

    def homes(self, name: str) -> list[int]:
        return [name_slot(name)]

    def shard_at(self, index: int) -> Shard:
        return self._cluster_layer._cluster_shards.shard_of(index)

    def global_hash(self, index: int) -> str:
        shard: SlotShard = self._cluster_layer._cluster_shards.shard_of(index)
        return shard.global_key()

    def wait(self, visits: list[Visit], timeout: float) -> tuple[Visit, int, list[bytes]] | None:
        """As `Reliable.wait`; a redirection (a slot moved or failed over) updates the
        slot map and ends the wait empty, so the caller's next lease pass follows it."""
        try:
            return super().wait(visits, timeout)
        except redis.ResponseError as exc:
            if not is_redirect(exc):
                raise
            for visit in visits:
                slot: SlotShard = visit.shard  # type: ignore[assignment]
                slot.lost_slot(exc)
            if not isinstance(exc, MovedError):
                time.sleep(0.05)  # an election or a migration in progress: back off
            return None


class ClusterDeadLetters(DeadLetters):
    """`DeadLetters` found on every master of the cluster."""

    def __init__(self, layer: RedisClusterChannelLayer) -> None:
        super().__init__(layer)
        self._cluster_layer = layer

    def _keys(self, pattern: str) -> list[tuple[Shard, str, str]]:
        layer = self._cluster_layer
        prefix = layer.prefix
        match = f"{glob_escape(prefix)}{{{pattern}}}:dead"
        found: dict[str, tuple[Shard, str, str]] = {}
        for client in layer._cluster_shards.topology.masters():
            try:
                keys = list(client.scan_iter(match=match, count=1000))
            except CONNECTION_ERRORS as exc:
                raise ShardConnectionError(f"{describe_client(client)}: {exc}") from exc
            for key in keys:
                text = key.decode("utf-8") if isinstance(key, bytes) else key
                storage = text[len(prefix) + 1 : -len("}:dead")]
                found[text] = (layer.slot_shard(storage), text, storage)
        return sorted(found.values(), key=lambda item: (item[2], item[0].index))
