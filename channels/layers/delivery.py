"""At-least-once delivery: the options and the contract every layer offering it shares (issue 17).

A layer built with ``at_least_once=[patterns]`` (globs like `channel_capacity`'s)
lists the ``at_least_once`` extension. A message received on a matching channel is
*leased*, not removed: the receiver must `ack` it once handled, or `nack` it to have
it delivered again (after ``delay`` seconds). A lease not acknowledged within
``ack_timeout`` seconds (the worker died) ends and the message is delivered again,
to any receiver. After ``max_deliveries`` deliveries an unacknowledged message goes
to the channel's dead letters (kept, not expired; counted as ``dead_lettered_count``).

How the delivery travels with a message: the received dict holds the reserved key
``__asgi_delivery__`` = ``{"id": str, "count": int}`` (`DELIVERY_KEY`). It appears
only on channels configured for at-least-once, which 1.x code never configured;
`channels.message.Message` removes it from ``content`` and exposes
``message.delivery_id``, ``message.delivery_count`` and ``message.redelivered``.
A message sent with the key has it removed (`BaseChannelLayer.snapshot`), so a
re-sent content never carries a stale delivery.

Only normal names (the ones workers route) can be at-least-once. Process-specific
(``P!L``) and single-reader (``name?suffix``) names never are: their one reader (a
protocol server, or a consumer reading a request body inline with ``receive``) does
not acknowledge.
"""

from __future__ import annotations

import fnmatch
import re
import time
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from .base import DELIVERY_KEY

__all__ = [
    "DELIVERY_KEY",
    "DeadLetter",
    "DeliveryPolicy",
    "NotAtLeastOnce",
    "OPTION_NAMES",
    "refuse_at_least_once",
]

# The layer CONFIG keys (issue 17, named exactly so).
OPTION_NAMES = ("at_least_once", "ack_timeout", "max_deliveries")


class NotAtLeastOnce(RuntimeError):
    """An at-least-once call (``ack``, dead letters) on a layer configured without it."""


@dataclass(frozen=True, slots=True)
class DeadLetter:
    """One message that reached `max_deliveries` without being acknowledged."""

    channel: str
    content: dict[str, Any]
    deliveries: int
    # Unix time (seconds) it was dead-lettered.
    dead_at: float
    # What the layer needs to requeue or purge this one letter.
    id: str = ""


class DeliveryPolicy:
    """Which channels are at-least-once, and the two numbers that govern redelivery.

    `applies(name)` is answered from a cache after the first call per name, so
    at-most-once sends and receives pay one dict lookup.
    """

    # Names whose answer is remembered before the cache starts over.
    cache_size = 10_000

    def __init__(
        self,
        at_least_once: Iterable[Any] | None = None,
        ack_timeout: int | float = 30,
        max_deliveries: int = 5,
    ) -> None:
        if at_least_once is None:
            at_least_once = ()
        if isinstance(at_least_once, (str, bytes)):
            raise ValueError(
                "at_least_once must be a list of channel name patterns, not a bare string; "
                f"write at_least_once=[{at_least_once!r}]"
            )
        patterns = []
        for pattern in at_least_once:
            if isinstance(pattern, str):
                patterns.append(re.compile(fnmatch.translate(pattern)))
            elif hasattr(pattern, "match"):
                patterns.append(pattern)
            else:
                raise ValueError(
                    f"at_least_once entry {pattern!r} must be a glob string or a compiled regex"
                )
        if (
            isinstance(ack_timeout, bool)
            or not isinstance(ack_timeout, (int, float))
            or ack_timeout <= 0
        ):
            raise ValueError(
                f"ack_timeout must be a positive number of seconds, not {ack_timeout!r}"
            )
        if (
            isinstance(max_deliveries, bool)
            or not isinstance(max_deliveries, int)
            or max_deliveries < 1
        ):
            raise ValueError(f"max_deliveries must be a positive int, not {max_deliveries!r}")
        self.patterns = patterns
        self.ack_timeout = ack_timeout
        self.max_deliveries = max_deliveries
        self._cache: dict[str, bool] = {}

    @property
    def enabled(self) -> bool:
        return bool(self.patterns)

    def applies(self, name: str) -> bool:
        """Whether messages on `name` (a channel or storage name) are at-least-once."""
        found = self._cache.get(name)
        if found is None:
            found = (
                "!" not in name
                and "?" not in name
                and any(pattern.match(name) for pattern in self.patterns)
            )
            if len(self._cache) >= self.cache_size:
                self._cache.clear()
            self._cache[name] = found
        return found

    def redelivery_delay(self, delivery_count: int, first: float = 0.5, cap: float = 30.0) -> float:
        """The back-off before redelivering a message whose consumer raised."""
        return float(min(cap, first * 2.0 ** max(0, delivery_count - 1)))


def refuse_at_least_once(layer_name: str, options: dict[str, Any]) -> None:
    """Raise for a layer that cannot offer at-least-once delivery when asked for it."""
    if options.get("at_least_once"):
        raise ValueError(
            f"{layer_name} does not support at-least-once delivery: remove the "
            "'at_least_once' key from its CONFIG (or use asgi_redis.RedisChannelLayer, "
            "which implements it)"
        )


def now() -> float:
    return time.time()
