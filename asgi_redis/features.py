"""What a shard's server can do, asked once instead of guessed from error replies (L-28, L-44).

The layer needs Redis 6.2 (``LPOP`` with a count); Redis 7 adds ``LMPOP`` and
``BLMPOP``, which make a receive over several lists, and a blocking batch pop,
one plain command. A `Shard` asks its server once, on first use
(`Shard.features`): ``COMMAND INFO LMPOP BLMPOP`` answers per command, so a
server where one of them was renamed away (``rename-command``) is seen as
lacking it too. When ``COMMAND`` itself is refused (an ACL, a rename), the
version in ``INFO server`` decides; when that is refused as well, the layer
assumes neither, and uses the Lua pop and ``BLPOP``, which every supported
server has.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import redis

from .wire import execute, execute_packed, pack_command

__all__ = ["ShardFeatures", "probe_features"]

_PROBE = pack_command(("COMMAND", "INFO", "LMPOP", "BLMPOP"))


@dataclass(frozen=True, slots=True)
class ShardFeatures:
    """Optional commands of one shard's server."""

    # LMPOP: a non-blocking pop over several lists (Redis 7); else the Lua pop.
    lmpop: bool
    # BLMPOP: a blocking pop taking a batch (Redis 7); else BLPOP, one entry.
    blmpop: bool


# Assumed when the server answers neither question: the fallbacks always work.
BASIC = ShardFeatures(lmpop=False, blmpop=False)


def probe_features(client: redis.Redis) -> ShardFeatures:
    """Ask the server behind `client` (one round trip; two if ``COMMAND`` is refused)."""
    try:
        reply = execute_packed(client, _PROBE)
    except redis.ResponseError:
        return _by_version(client)
    lmpop, blmpop = (bool(entry) for entry in reply)  # nil for an unknown command
    return ShardFeatures(lmpop=lmpop, blmpop=blmpop)


def _by_version(client: redis.Redis) -> ShardFeatures:
    try:
        reply = execute(client, "INFO", "server")
    except redis.ResponseError:
        return BASIC
    major = _major_version(reply)
    return ShardFeatures(lmpop=major >= 7, blmpop=major >= 7)


def _major_version(reply: Any) -> int:
    text = reply.decode("utf-8", "replace") if isinstance(reply, bytes) else str(reply)
    for line in text.splitlines():
        name, _, value = line.partition(":")
        if name.strip() == "redis_version":
            major = value.strip().split(".", 1)[0]
            return int(major) if major.isdigit() else 0
    return 0
