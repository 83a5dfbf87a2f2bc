"""Redis Cluster hash slots: where a name lives and the per-slot pieces (issue 19 item 1).

Pure apart from the Lua text: no Redis call here.

- Every key of the layer carries a hash tag (`placement`): ``prefix{channel}``,
  ``prefix:group:{group}``, ``stats_prefix{channel}``. The slot of a name is the
  slot of its tag, so a channel's list and counters always share one slot and
  a Lua script or a pipeline about one channel touches one slot.
- The shard-global counters (``stats_prefix#global#`` on a plain Redis) would
  be a key of its own slot, which a send's script cannot touch in a cluster.
  They are kept per slot instead, in ``stats_prefix#global#{T}`` where ``T`` is
  a short tag whose own slot is that slot (`slot_tag`); `global_statistics`
  sums every such hash. At most 16384 small hashes, one per slot in use.
- `ClusterPlacement` places every name, normal ones included, on its slot:
  the cluster spreads channels over its masters by slot, so a normal channel
  needs no per-sender spreading (all senders share one list, which also keeps
  FIFO for every receiver, A-25).
- The scripts that build the global key in Lua (`scripts.PUSH`, `scripts.POP`)
  get cluster variants reading it from their last argument.
"""

from __future__ import annotations

import hashlib
import itertools
import string
import threading
from typing import Any

from redis.crc import key_slot

from . import scripts
from .expiry import ExpiredMessages
from .placement import GLOBAL_STATS_KEY, Placement
from .wire import pack_command

__all__ = [
    "SLOTS",
    "ClusterExpiredMessages",
    "ClusterPlacement",
    "cluster_script",
    "global_key",
    "name_slot",
    "slot_tag",
]

SLOTS = 16384

_tags: list[str] | None = None
_tags_lock = threading.Lock()


def name_slot(name: str) -> int:
    """The slot of the keys whose hash tag is `name` (``prefix{name}``)."""
    return int(key_slot(name.encode("utf-8")))


def slot_tag(slot: int) -> str:
    """The shortest (then first) ASCII tag whose slot is `slot`; the same in every process."""
    global _tags
    tags = _tags
    if tags is None:
        with _tags_lock:
            tags = _tags
            if tags is None:
                tags = _tags = _all_tags()
    return tags[slot]


def _all_tags() -> list[str]:
    """One tag per slot, by trying strings of letters and digits in order (~0.2 s, once)."""
    found: list[str | None] = [None] * SLOTS
    missing = SLOTS
    alphabet = string.ascii_letters + string.digits
    for length in itertools.count(1):
        for letters in itertools.product(alphabet, repeat=length):
            tag = "".join(letters)
            slot = key_slot(tag.encode("ascii"))
            if found[slot] is None:
                found[slot] = tag
                missing -= 1
                if not missing:
                    return [tag for tag in found if tag is not None]
    raise AssertionError("unreachable")


def global_key(stats_prefix: str, slot: int) -> str:
    """The global counters of the names in `slot` (summed by `global_statistics`)."""
    return f"{stats_prefix}{GLOBAL_STATS_KEY}{{{slot_tag(slot)}}}"


class ClusterPlacement(Placement[Any]):
    """Every name and group on the shard of its slot (`shard_of` makes it on demand)."""

    def __init__(
        self, shard_of: Any, prefix: str, stats_prefix: str, global_stats_key: str
    ) -> None:
        self.shards = []
        # More than one: the single-shard shortcuts (one script for a whole group
        # send) never apply, since the members sit in many slots.
        self.ring_size = SLOTS
        self.prefix = prefix
        self.stats_prefix = stats_prefix
        self.global_stats_key = global_stats_key
        self._normal_offset = 0
        self.global_stats_hash = f"{stats_prefix}{global_stats_key}"
        self.shard_of = shard_of

    def index(self, name: str) -> int:
        return name_slot(name)

    def home(self, name: str) -> Any:
        return self.shard_of(name_slot(name))

    def send_shard(self, storage: str) -> Any:
        return self.shard_of(name_slot(storage))

    def group_shard(self, group: str) -> Any:
        return self.shard_of(name_slot(group))

    def statistics_shards(self, storage: str) -> list[Any]:
        return [self.shard_of(name_slot(storage))]


class ClusterExpiredMessages(ExpiredMessages):
    """`ExpiredMessages` of one slot: the global counter is the slot's (`global_key`)."""

    def __init__(self, slot: int) -> None:
        super().__init__(slot)
        self.slot = slot

    def packed(self) -> list[bytes]:
        commands = super().packed()
        if not commands:
            return commands
        prefix, _, global_ttl = self.stats_args
        key = global_key(prefix, self.slot)
        # The last two commands count the total in the (non-cluster) global hash.
        total_command = commands[-2]
        total = int(total_command.rsplit(b"\r\n", 2)[-2])
        commands[-2:] = [
            pack_command(("HINCRBY", key, "expired_count", total)),
            pack_command(("EXPIRE", key, global_ttl)),
        ]
        return commands


def _cluster_variant(script: scripts.Script, stats_table: str) -> scripts.Script:
    """`script` reading the global counters' key from its last ARGV (`global_key`)."""
    new_table = stats_table[:-1] + ", ARGV[#ARGV]}"
    source = script.source.replace("stats[1] .. '#global#'", "stats[4]")
    if stats_table not in source or "stats[4]" not in source:
        raise AssertionError(f"cannot make a cluster variant of {script!r}")
    variant = scripts.Script(f"{script.name}_cluster", "")
    variant.source = source.replace(stats_table, new_table)  # the prelude is in it already
    variant.sha = hashlib.sha1(variant.source.encode("utf-8")).hexdigest()
    return variant


_VARIANTS = {
    scripts.PUSH: _cluster_variant(scripts.PUSH, "local stats = {ARGV[3], ARGV[4], ARGV[5]}"),
    scripts.POP: _cluster_variant(
        scripts.POP, "local stats = {ARGV[#KEYS + 1], ARGV[#KEYS + 2], ARGV[#KEYS + 3]}"
    ),
}


def cluster_script(script: scripts.Script) -> scripts.Script | None:
    """The cluster variant of `script` (its ARGV gains the slot's global key), if any."""
    return _VARIANTS.get(script)
