"""`Message` and the store that defers sends to the end of a consumer (C-17..C-19)."""

from __future__ import annotations

import copy
import sys
import threading
import time
from collections.abc import Callable
from typing import Any

from .signals import consumer_finished, consumer_started

__all__ = ["Message", "PendingMessageStore", "layer_out_of_memory", "pending_message_store"]

# ``retry(sender, message, refused)``: sends `message` now (or, when `refused`, after a
# first wait), retrying while the channel is full with its own policy (`PendingMessageStore`).
Retry = Callable[[Any, dict, bool], None]
# A queued send: (Channel or Group, message, its Retry or None for the store's policy).
Entry = tuple[Any, dict, Retry | None]


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


class PendingMessageStore:
    """Per-thread queue of sends made inside a consumer, flushed when it finishes (C-19).

    Consecutive `Channel` sends on a layer with ``send_many`` (the Redis layers) go
    out in one call; each one that came back full is then retried as a lone send
    would be. Other senders (groups, `Channel` subclasses, layers without
    ``send_many``) are sent one by one, in queue order.

    Queue entries are ``(sender, message, retry)``. `retry` is `None` for the
    store's own policy (`retry_time`, `retry_interval`, then `RuntimeError`), or a
    `Retry` callable ``retry(sender, message, refused)`` that sends the message
    with its own policy: `ViewConsumer` queues a response's last message so, with
    C-40's (issue 9).
    """

    # Bounds, as in 1.1 (A-89 note): give up on one message after `retry_time`
    # seconds; never wait longer than `retry_interval` between tries.
    retry_time = 2
    retry_interval = 0.2

    def __init__(self) -> None:
        self.threadlocal = threading.local()

    def prepare(self, **kwargs: Any) -> None:
        self.threadlocal.messages = []
        self.threadlocal.held = False

    @property
    def active(self) -> bool:
        return getattr(self.threadlocal, "messages", None) is not None

    @property
    def holding(self) -> bool:
        """True while the worker's receive loop will send this thread's queue itself
        (`hold`): a consumer may then queue what it would send at its very end."""
        return getattr(self.threadlocal, "held", False)

    def append(
        self, sender: Any, message: dict, retry: Retry | None = None, first: bool = False
    ) -> None:
        """Queue `message` for `sender`: last, or (`first`) ahead of everything queued,
        for a message that would have been sent before them; `retry` as in the class
        docstring."""
        if first:
            self.threadlocal.messages.insert(0, (sender, message, retry))
        else:
            self.threadlocal.messages.append((sender, message, retry))

    def send_and_flush(self, **kwargs: Any) -> None:
        local = self.threadlocal
        if getattr(local, "held", False):
            return  # `hold`: the worker sends the queue itself, see `release`
        messages = getattr(local, "messages", None)
        if messages is None:
            return
        # Dropped first: sends below must go out at once, not back into this queue.
        local.messages = None
        if len(messages) == 1:
            self.send_one(*messages[0])  # the usual single reply: nothing to batch
        elif messages:
            self.send_all(messages)

    # -- the worker's hand-over (C-19 as users see it; issue 9) ----------------

    def hold(self) -> None:
        """Keep this thread's queue past ``consumer_finished`` for `release`.

        The worker's receive loop calls it before running a consumer (after
        ``consumer_started``) and `unhold` if the consumer raises; after a normal
        return it sends the queue together with its next receive. Sends made by
        later ``consumer_finished`` receivers still join the queue, after the
        consumer's own, so the order of everything sent stays as it was.
        """
        self.threadlocal.held = True

    def unhold(self) -> None:
        """Undo `hold`: ``consumer_finished`` flushes the queue as usual."""
        self.threadlocal.held = False

    def release(self) -> list[Entry] | None:
        """Take this thread's queue (`None` when none is active) and deactivate it."""
        messages = getattr(self.threadlocal, "messages", None)
        # Dropped first: sends made while flushing go out at once, not back in here.
        self.threadlocal.messages = None
        self.threadlocal.held = False
        return messages

    # -- sending ---------------------------------------------------------------

    @staticmethod
    def batchable(sender: Any, layer: Any = None) -> bool:
        """Whether `sender` is a plain `Channel` whose layer has ``send_many``
        (and is `layer`, when given)."""
        if type(sender) is not Channel:
            return False
        if layer is not None:
            return sender.channel_layer is layer
        return _has_send_many(sender.channel_layer)

    def send_all(self, messages: list[Entry]) -> None:
        """Send queued ``(sender, message, retry)`` entries in order (C-19).

        Raises `RuntimeError` for a message whose channel stayed full for
        `retry_time` (or what its own `retry` raises), or the layer's error, at
        the first such message; the messages after it are then not sent (as with
        one send at a time).
        """
        run: list[Entry] = []
        for entry in messages:
            sender = entry[0]
            if self.batchable(sender):
                if run and run[0][0].channel_layer is not sender.channel_layer:
                    self.send_batch(run)
                    run = []
                run.append(entry)
                continue
            if run:
                self.send_batch(run)
                run = []
            self.send_one(*entry)
        if run:
            self.send_batch(run)

    def send_batch(self, entries: list[Entry]) -> None:
        """Send `Channel` sends of one layer with one ``send_many``, then `settle` them."""
        layer = entries[0][0].channel_layer
        try:
            outcomes = layer.send_many([(entry[0].name, entry[1]) for entry in entries])
        except (TypeError, AssertionError, layer.MessageTooLarge):
            # A message the layer refuses (bad name or content, too large: ):
            # send_many raises before sending anything, so one at a time raises at that
            # message, after sending the ones before it, as it did.
            for entry in entries:
                self.send_one(*entry)
            return
        except Exception as error:
            if not layer_out_of_memory(error):
                raise
            # Refused for memory before storing anything (issue 15): each one's outcome.
            outcomes = [error] * len(entries)
        self.settle(entries, outcomes)

    def settle(self, entries: list[Entry], outcomes: list[Exception | None]) -> None:
        """Act on ``send_many``'s outcomes for `entries`, in order: retry the full ones,
        raise the first error (the sends after it in `entries` went out already)."""
        for (sender, message, retry), outcome in zip(entries, outcomes, strict=True):
            if outcome is None:
                continue
            if isinstance(outcome, sender.channel_layer.ChannelFull) or (
                retry is not None and layer_out_of_memory(outcome)
            ):
                # A message with its own policy (a view's response, C-40) also waits
                # out a layer that is out of memory (issue 15).
                self.send_one(sender, message, retry, refused=True)
            else:
                raise outcome

    def send_one(
        self, sender: Any, message: dict, retry: Retry | None = None, refused: bool = False
    ) -> None:
        """Send one queued message now, retrying while its channel is full with its
        `retry` (the store's policy when `None`); `refused`: a first try (in a batch)
        already came back full."""
        if retry is None:
            self._send_with_retry(sender, message, refused)
        else:
            retry(sender, message, refused)

    def _send_with_retry(self, sender: Any, message: dict, refused: bool = False) -> None:
        # `refused`: the first try already came back full (from a batch).
        deadline = time.monotonic() + self.retry_time
        delay = 0.001
        while True:
            if not refused:
                try:
                    sender.send(message, immediately=True)
                    return
                except sender.channel_layer.ChannelFull:
                    pass
            refused = False
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise RuntimeError(
                    f"Failed to send queued message to {sender.name} after retrying for "
                    f"{self.retry_time}s: the channel stayed full. Run more consumers for "
                    "it, raise the layer's capacity, or send with immediately=True and "
                    "handle ChannelFull yourself."
                )
            time.sleep(min(delay, remaining))
            delay = min(delay * 2, self.retry_interval)


# Whether a layer (usually a ChannelLayerWrapper, whose failed attribute lookups raise
# inside __getattr__: microseconds per message) has send_many, per layer object.
_send_many_layers: dict[Any, bool] = {}


def _has_send_many(layer: Any) -> bool:
    known = _send_many_layers.get(layer)
    if known is None:
        known = hasattr(layer, "send_many")
        if len(_send_many_layers) >= 64:
            _send_many_layers.clear()  # many short-lived layers (tests): start over
        _send_many_layers[layer] = known
    return known


pending_message_store = PendingMessageStore()
consumer_started.connect(pending_message_store.prepare)
consumer_finished.connect(pending_message_store.send_and_flush)

# Imported after the store exists: channels.channel imports it from here.
from .channel import Channel  # noqa: E402


class Message:
    """A received message: content plus the channel and layer it came from (C-17)."""

    def __init__(self, content: dict, channel_name: str, channel_layer: Any) -> None:
        self.content = content
        self.channel_layer = channel_layer
        self.channel = Channel(channel_name, channel_layer=channel_layer)
        reply = content.get("reply_channel")
        self.reply_channel = Channel(reply, channel_layer=channel_layer) if reply else None

    def __getitem__(self, key: str) -> Any:
        return self.content[key]

    def __setitem__(self, key: str, value: Any) -> None:
        self.content[key] = value

    def __contains__(self, key: str) -> bool:
        return key in self.content

    def keys(self):
        return self.content.keys()

    def values(self):
        return self.content.values()

    def items(self):
        return self.content.items()

    def get(self, key: str, default: Any = None) -> Any:
        return self.content.get(key, default)

    def copy(self) -> Message:
        """A new message of the same class with a deep copy of the content (C-18)."""
        return type(self)(copy.deepcopy(self.content), self.channel.name, self.channel_layer)

    def __repr__(self) -> str:
        return f"<{type(self).__name__} on {self.channel.name}>"
