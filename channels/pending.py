"""The store that defers a consumer's sends until it returns (C-19), and its `ReplyBatch`.

While a consumer runs (between ``consumer_started`` and ``consumer_finished``),
`Channel.send` and `Group.send` queue their messages here instead of sending them
(C-15, C-16). Each run of a consumer gets one `ReplyBatch`: the consumer's final
replies (`PendingMessageStore.reply`, each with its own retry policy: a view's
response, C-40), then the messages it deferred, in order. ``consumer_finished``
flushes the batch, unless the worker's receive loop opened it: the worker then sends
it itself, with its next receive when it can (`Worker`, issue 9).

Imports neither `channels.channel` nor `channels.message` (issue 16 item 4): a sender
is any object with ``name``, ``channel_layer`` and ``send(message, immediately)``; one
whose class declares ``_batchable = True`` (`Channel`, not its subclasses, which may
override ``send``) may go out with its layer's ``send_many``.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import Any

from .retry import STORE_RETRY_INTERVAL, STORE_RETRY_TIME, layer_out_of_memory, send_retrying
from .signals import consumer_finished, consumer_started

__all__ = ["Entry", "PendingMessageStore", "ReplyBatch", "Retry", "pending_message_store"]

# ``retry(sender, message, refused)``: sends `message` with its own policy while the
# channel is full; `refused` is the error a first try (in a batch) already met, or None.
# It may return False when it gave up (logged); a queued one's result is not used.
Retry = Callable[[Any, dict, BaseException | None], object]
# A queued send: (Channel or Group, message, its Retry or None for the store's policy).
Entry = tuple[Any, dict, Retry | None]


class ReplyBatch:
    """What one run of a consumer sends after it returns (C-19, C-40).

    `replies` are final replies queued with `PendingMessageStore.reply`: 1.x sent them
    at once, so they go first, in order. `messages` are the sends deferred by
    `Channel.send` / `Group.send`, in order, after them. `carried`: the worker opened
    this batch (`PendingMessageStore.open_batch`) and sends it itself after
    ``consumer_finished`` (`PendingMessageStore.close_batch`); the flush at
    ``consumer_finished`` leaves it alone.
    """

    __slots__ = ("carried", "messages", "replies")

    def __init__(self) -> None:
        self.replies: list[Entry] = []
        self.messages: list[Entry] = []
        self.carried = False

    def entries(self) -> list[Entry]:
        """Everything queued, in the order it goes out."""
        return self.replies + self.messages if self.replies else self.messages

    def hand_back(self) -> None:
        """Leave this batch to the flush at ``consumer_finished``, as if never opened
        (the worker, when the consumer raised: C-19 sends it before the exception's own
        handling, a DenyConnection's close, sends)."""
        self.carried = False

    def __len__(self) -> int:
        return len(self.replies) + len(self.messages)

    def __repr__(self) -> str:
        carried = ", carried" if self.carried else ""
        return f"<ReplyBatch {len(self.replies)} replies, {len(self.messages)} messages{carried}>"


class PendingMessageStore:
    """Per-thread `ReplyBatch` of sends made inside a consumer, flushed when it finishes
    (C-19).

    Consecutive `Channel` sends on a layer with ``send_many`` (the Redis layers) go
    out in one call; each one that came back full is then retried as a lone send
    would be. Other senders (groups, `Channel` subclasses, layers without
    ``send_many``) are sent one by one, in queue order.

    Queue entries are ``(sender, message, retry)``. `retry` is `None` for the
    store's own policy (`retry_time`, `retry_interval`, then `RuntimeError`), or a
    `Retry` callable that sends the message with its own policy (a view's reply,
    C-40, issue 9).
    """

    # Bounds, as in 1.1 (A-89 note): give up on one message after `retry_time`
    # seconds; never wait longer than `retry_interval` between tries.
    retry_time = STORE_RETRY_TIME
    retry_interval = STORE_RETRY_INTERVAL

    def __init__(self) -> None:
        self.threadlocal = threading.local()

    def prepare(self, **kwargs: Any) -> None:
        """Start this thread's batch (``consumer_started``)."""
        self.threadlocal.batch = ReplyBatch()

    @property
    def active(self) -> bool:
        return getattr(self.threadlocal, "batch", None) is not None

    def append(self, sender: Any, message: dict) -> None:
        """Queue `message` for `sender` (a `Channel` or `Group`), last."""
        self.threadlocal.batch.messages.append((sender, message, None))

    def queue(self, sender: Any, message: dict) -> bool:
        """`append` when a consumer is running here (`active`); False when not, and the
        caller sends at once (``Channel.send``: one look-up of the batch, issue 20)."""
        batch = getattr(self.threadlocal, "batch", None)
        if batch is None:
            return False
        batch.messages.append((sender, message, None))
        return True

    def reply(self, sender: Any, message: dict, retry: Retry) -> bool:
        """Queue a consumer's final reply: it goes out ahead of the messages the
        consumer deferred, after the replies queued before it, with `retry` as its
        policy (C-40). Sent now, with `retry`, when no consumer is running here;
        False when `retry` then returned False (it gave up)."""
        batch = getattr(self.threadlocal, "batch", None)
        if batch is None:
            return retry(sender, message, None) is not False
        batch.replies.append((sender, message, retry))
        return True

    def send_and_flush(self, **kwargs: Any) -> None:
        """Send this thread's batch and end it (``consumer_finished``); a batch the
        worker opened is left to it."""
        local = self.threadlocal
        batch = getattr(local, "batch", None)
        if batch is None or batch.carried:
            return
        # Dropped first: sends below must go out at once, not back into this batch.
        local.batch = None
        entries = batch.entries()
        if len(entries) == 1:
            self.send_one(*entries[0])  # the usual single reply: nothing to batch
        elif entries:
            self.send_all(entries)

    # -- the worker's batch (C-19 as users see it; issue 9) --------------------

    def open_batch(self) -> ReplyBatch | None:
        """Take charge of this thread's batch (`None` when no consumer is running).

        The worker's receive loop calls it after ``consumer_started`` and before the
        consumer: what the consumer and later ``consumer_finished`` receivers queue
        stays in the batch, in order, until `close_batch`.
        """
        batch = getattr(self.threadlocal, "batch", None)
        if batch is not None:
            batch.carried = True
        return batch

    def close_batch(self, batch: ReplyBatch) -> list[Entry]:
        """End `batch` (from `open_batch`) and return its entries for the worker to
        send; empty when it was handed back (and so flushed at ``consumer_finished``)."""
        if getattr(self.threadlocal, "batch", None) is batch:
            # Dropped first: sends made while the worker sends go out at once.
            self.threadlocal.batch = None
        if not batch.carried:
            return []
        batch.carried = False
        return batch.entries()

    # -- sending ---------------------------------------------------------------

    @staticmethod
    def batchable(sender: Any, layer: Any = None) -> bool:
        """Whether `sender`'s class declares ``_batchable`` (a plain `Channel`) and its
        layer has ``send_many`` (or is `layer`, when given)."""
        if not type(sender).__dict__.get("_batchable", False):
            return False
        if layer is not None:
            return sender.channel_layer is layer
        return getattr(sender.channel_layer, "send_many", None) is not None

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
            if type(sender).__dict__.get("_batchable", False):
                if run and run[0][0].channel_layer is not sender.channel_layer:
                    self._send_run(run)
                    run = []
                run.append(entry)
                continue
            if run:
                self._send_run(run)
                run = []
            self.send_one(*entry)
        if run:
            self._send_run(run)

    def _send_run(self, run: list[Entry]) -> None:
        # `Channel` sends on one layer: one send_many when the layer has it.
        if getattr(run[0][0].channel_layer, "send_many", None) is None:
            for entry in run:
                self.send_one(*entry)
        else:
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
                self.send_one(sender, message, retry, refused=outcome)
            else:
                raise outcome

    def send_one(
        self,
        sender: Any,
        message: dict,
        retry: Retry | None = None,
        refused: BaseException | None = None,
    ) -> None:
        """Send one queued message now, retrying while its channel is full with its
        `retry` (the store's policy when `None`); `refused`: the error a first try (in
        a batch) already met."""
        if retry is None:
            self._send_with_retry(sender, message, refused)
        else:
            retry(sender, message, refused)

    def _send_with_retry(
        self, sender: Any, message: dict, refused: BaseException | None = None
    ) -> None:
        if refused is None:
            try:  # the usual case, without the retry loop's set-up
                sender.send(message, immediately=True)
                return
            except sender.channel_layer.ChannelFull as error:
                refused = error
        deadline = time.monotonic() + self.retry_time
        refused = send_retrying(sender, message, deadline, cap=self.retry_interval, refused=refused)
        if refused is not None:
            raise RuntimeError(
                f"Failed to send queued message to {sender.name} after retrying for "
                f"{self.retry_time}s: the channel stayed full. Run more consumers for "
                "it, raise the layer's capacity, or send with immediately=True and "
                "handle ChannelFull yourself."
            )


pending_message_store = PendingMessageStore()
# Held strongly: the store lives as long as this module, and a weak bound method costs a
# `WeakMethod` call and a new bound method per message (issue 20).
consumer_started.connect(pending_message_store.prepare, weak=False)
consumer_finished.connect(pending_message_store.send_and_flush, weak=False)
