"""Waiting out a refused send: the A-89 backoff and the one retry loop (issue 16).

A sender whose message a layer refuses because the channel is full (or, for the
replies that may, because the layer is out of memory: issue 15) waits and tries
again. How long to wait is not binding (A-89 note): every retry here starts near
1 ms and doubles up to a cap, which is named once below per kind of sender.
"""

from __future__ import annotations

import math
import sys
import time
from typing import Any

__all__ = [
    "FIRST_RETRY_DELAY",
    "REPLY_RETRY_CAP",
    "STORE_RETRY_INTERVAL",
    "STORE_RETRY_TIME",
    "Backoff",
    "layer_out_of_memory",
    "send_retrying",
]

# A-89 note: the first wait after a refusal (1.x slept a fixed interval instead).
FIRST_RETRY_DELAY = 0.001
# C-40, C-32: at most this long between tries of a view's reply or a ConsumeLater
# requeue (1.1 slept exactly 0.05 s).
REPLY_RETRY_CAP = 0.05
# C-19: the pending-message store never waits longer than this between tries of one
# queued message (1.1 waited exactly this long each time) ...
STORE_RETRY_INTERVAL = 0.2
# ... and gives up on it (RuntimeError) after this many seconds.
STORE_RETRY_TIME = 2


class Backoff:
    """A doubling delay between `first` and `cap` seconds (A-89 note, L-62)."""

    __slots__ = ("cap", "delay", "first")

    def __init__(self, first: float, cap: float) -> None:
        self.first = first
        self.cap = cap
        self.delay = first

    def next(self) -> float:
        delay = self.delay
        self.delay = min(self.delay * 2, self.cap)
        return delay

    def reset(self) -> None:
        self.delay = self.first


def layer_out_of_memory(error: BaseException) -> bool:
    """Whether `error` is a channel layer refusing a write for lack of memory (issue 15).

    Redis with ``maxmemory`` and ``maxmemory-policy noeviction`` refuses writes with
    ``OOM command not allowed ...``, which redis-py raises as ``OutOfMemoryError`` (a
    ``ResponseError``). Like a full channel, it passes when memory is freed (messages
    consumed or expired), so a send may wait for it. A layer's own exception class can
    say the same with a true ``layer_out_of_memory`` attribute. Checked only after a
    send failed: redis is looked up among the loaded modules, never imported.
    """
    if getattr(error, "layer_out_of_memory", False):
        return True
    redis = sys.modules.get("redis")
    if redis is None:
        return False
    exceptions = redis.exceptions
    out_of_memory = getattr(exceptions, "OutOfMemoryError", None)
    if out_of_memory is not None and isinstance(error, out_of_memory):
        return True
    return isinstance(error, exceptions.ResponseError) and str(error).startswith("OOM ")


def send_retrying(
    sender: Any,
    message: dict,
    deadline: float = math.inf,
    *,
    first: float = FIRST_RETRY_DELAY,
    cap: float = REPLY_RETRY_CAP,
    tries: int | None = None,
    refused: BaseException | None = None,
    out_of_memory: bool = False,
) -> BaseException | None:
    """Send `message` with ``sender.send(message, immediately=True)`` (a `Channel` or
    `Group`), trying again while the layer refuses it as full.

    Waits a `Backoff` from `first` up to `cap` between tries, and gives up
    at `deadline` (a `time.monotonic()` time) or after `tries` tries, whichever comes
    first. `refused`: a first try made elsewhere (a batched send) was refused with this
    error, so this one waits before its first try. `out_of_memory`: a layer out of
    memory (`layer_out_of_memory`) is waited out like a full channel; otherwise, as any
    other error of the layer, it is raised.

    Returns None once the message is stored, or the error that refused the last try
    (the layer's ``ChannelFull``, or its out-of-memory error) when it gave up.
    """
    full = sender.channel_layer.ChannelFull
    backoff: Backoff | None = None
    attempts = 0
    while True:
        if not refused:
            attempts += 1
            try:
                sender.send(message, immediately=True)
                return None
            except full as error:
                refused = error
            except Exception as error:
                if not (out_of_memory and layer_out_of_memory(error)):
                    raise
                refused = error
        remaining = deadline - time.monotonic()
        if remaining <= 0 or (tries is not None and attempts >= tries):
            return refused
        if backoff is None:
            backoff = Backoff(first, cap)
        time.sleep(min(backoff.next(), remaining))
        refused = None
