"""The server's outgoing layer sends: one batched call per reactor tick (issue 9).

Every message daphne puts on the channel layer (``http.request``, ``websocket.*``,
``http.disconnect``, a request body's client-gone chunk) goes through the factory's
`Outbox` with a callback that receives the outcome: ``None`` when stored, else the
exception the layer's ``send`` would have raised (``ChannelFull``, ``MessageTooLarge``,
a backend's connection error).

A layer with ``send_many(pairs)`` (asgi_redis) gets the sends of one reactor tick in
ONE call, made on the reactor thread from a ``callLater(0)`` scheduled when the queue
becomes non-empty: with a networked layer each ``send`` was a blocking round trip on
the reactor thread (28% of daphne's CPU under W2 echo load), and the reactor reads
every ready socket before it runs timed calls, so one tick's frames share one round
trip. A layer without ``send_many`` (in-memory, IPC) is sent to at once and the
callback runs before `Outbox.send` returns, as D-53/D-54 require of ``dataReceived``.

Callbacks always run on the reactor thread, in the order the messages were queued.

Order per sender (A-19, A-25): messages queued with the same `key` reach the layer in
queue order. A batch goes to the layer in queue order, so the only way a later message
of a sender could overtake an earlier one is the earlier one failing while the later
one is stored. ``send_many`` runs one atomic script per shard, so a full channel or an
unreachable shard refuses every later message to that channel in the same call; where
the outbox splits a flush into several calls (`MAX_BATCH`, or one ``send`` per message
after ``send_many`` refused a bad message), later messages of a sender that already
failed are not sent and get the same error, so the sender retries them in order.

Never waiting on the network (issue 15): a blocking ``send_many`` on the reactor thread
froze every connection while Redis hung (SIGSTOP, a network stall). A layer offering
``socket_sender()`` (asgi_redis with hiredis, no TLS) is sent to without waiting: the
batch is written to sockets of the outbox's own (`layer_pipes`) and its outcomes arrive
when the reactor sees the replies. One batch is in flight at a time; what is queued
meanwhile goes as the next batch when the answer comes, so batches grow with the load
as before, and a sender's later messages are failed with the same error when an
earlier one was refused (they were queued before its callback ran). The bytes queued
and in flight are bounded (`Outbox.limit`): past it a message is refused at once with
`OutboxFull`, which protocols answer as a full channel (503, close 1013), so nothing
accepted is lost silently and a hung Redis cannot grow daphne without bound. A layer
without it (or a reactor without descriptors, such as tests' ``task.Clock``) gets the
blocking ``send_many`` of the tick as before.
"""

from __future__ import annotations

import logging
import random
import string
from collections.abc import Callable, Iterable, Sequence
from typing import Any, cast

from twisted.internet.base import DelayedCall

from .layer_api import (
    BatchSending,
    ChannelLayer,
    Outcomes,
    SocketSender,
    SocketSending,
    is_unavailable,
)
from .layer_pipes import PipeWatch, pump_until_answered

__all__ = ["Outbox", "OutboxFull", "Sent", "MAX_BATCH"]

logger = logging.getLogger("daphne.server")
_random = random.SystemRandom()

# The outcome callback: (channel, message, None or the error the layer raised).
Sent = Callable[[str, dict[str, Any], BaseException | None], None]
# A queued send: (channel, message, its outcome callback, the sender's ordering key).
Queued = tuple[str, dict[str, Any], Sent, object]

# Messages per send_many call: bounds one Redis script's run time (and the time other
# clients of that Redis wait behind it) when a tick queues thousands of messages.
MAX_BATCH = 512
# Seconds a stop waits for the layer to answer the last sends (D-17).
DRAIN_TIMEOUT = 2.0
# Bytes counted for a message beyond its payload (names, headers, envelope).
MESSAGE_OVERHEAD = 256


class OutboxFull(Exception):
    """The channel layer is not answering and daphne holds as much for it as it may."""


def message_size(message: dict[str, Any]) -> int:
    """A cheap estimate of a message's size: its payload plus a fixed overhead."""
    size = MESSAGE_OVERHEAD
    for key in ("bytes", "text", "body", "content"):
        value = message.get(key)
        if value:
            size += len(value)
    return size


class Outbox:
    """Queues a reactor tick's layer sends and sends them with one ``send_many``."""

    # Bytes (`message_size`) queued and in flight at most while the layer is slow to
    # answer; beyond it `send` refuses with `OutboxFull` (issue 15).
    limit = 16 * 1024 * 1024

    def __init__(self, channel_layer: ChannelLayer, get_reactor: Callable[[], Any]) -> None:
        # The reactor (or a test's `task.Clock`), read when needed: tests swap it.
        self._get_reactor = get_reactor
        self._queue: list[Queued] = []
        self._flush_call: DelayedCall | None = None
        self._pending_bytes = 0
        # Of `_pending_bytes`, those of the socket path's queue and of the batch in
        # flight: summed as messages come, not again per answer (issue 20).
        self._queued_bytes = 0
        self._in_flight_bytes = 0
        self._in_flight: list[Queued] | None = None
        self._watches: dict[Any, PipeWatch] = {}  # by the sender's pipe
        self.refused = 0  # messages refused with OutboxFull
        self.channel_layer = channel_layer

    @property
    def channel_layer(self) -> ChannelLayer:
        return self._channel_layer

    @channel_layer.setter
    def channel_layer(self, layer: ChannelLayer) -> None:
        # Tests swap a factory's layer after building it; what is queued goes first.
        if self._queue:
            self.flush()
        self._channel_layer = layer
        # A capability, not a type check: any layer offering send_many is batched.
        self.batching = callable(getattr(layer, "send_many", None))
        # The layer's socket sender, made at the first send.
        self._sender: SocketSender | None = None
        self._sender_checked = False

    def _send_many(self, pairs: Iterable[tuple[str, dict[str, Any]]]) -> Outcomes:
        # Only called when `batching`: the layer has send_many (`BatchSending`).
        return cast(BatchSending, self._channel_layer).send_many(pairs)

    def _socket_sender(self) -> SocketSender | None:
        if not self._sender_checked:
            self._sender_checked = True
            make = getattr(self._channel_layer, "socket_sender", None)
            reactor = self._get_reactor()
            if make is not None and hasattr(reactor, "addReader"):
                try:
                    self._sender = make()
                except NotImplementedError:  # e.g. no hiredis: the blocking send_many
                    self._sender = None
        return self._sender

    def new_channel(self, pattern: str) -> str:
        """The layer's `new_channel(pattern)`, without its round trip when sends go on
        sockets: its check that the name holds no messages is a blocking call, and
        12 random letters (2^68 names) do not collide in practice (A-34, issue 15)."""
        if self._sender is None and self._socket_sender() is None:
            return self._channel_layer.new_channel(pattern)
        # A socket sender was made: the layer is `SocketSending`.
        layer = cast(SocketSending, self._channel_layer)
        length = getattr(layer, "new_channel_suffix_length", 12)
        name = pattern + "".join(_random.choices(string.ascii_letters, k=length))
        layer.valid_channel_name(name)
        return name

    @property
    def pending_bytes(self) -> int:
        """Estimated bytes queued or waiting for the layer's answer."""
        return self._pending_bytes

    def __len__(self) -> int:
        return len(self._queue)

    def send(self, channel: str, message: dict[str, Any], sent: Sent, key: object = None) -> None:
        """Send `message` to `channel`; `sent(channel, message, error)` gets the outcome.

        `key` names the sender whose messages must keep their order (a connection);
        ``None`` for a message that is independent of every other.
        """
        if not self.batching:
            try:
                self.channel_layer.send(channel, message)
            except Exception as error:  # the outcome goes to the sender, whatever it is
                sent(channel, message, error)
                return
            sent(channel, message, None)
            return
        if self._sender is not None or self._socket_sender() is not None:
            size = message_size(message)
            if self._pending_bytes + size > self.limit:
                self.refused += 1
                sent(
                    channel,
                    message,
                    OutboxFull(
                        f"The channel layer is not answering: "
                        f"{self._pending_bytes} bytes are waiting for it"
                    ),
                )
                return
            self._pending_bytes += size
            self._queued_bytes += size
            self._queue.append((channel, message, sent, key))
            if self._flush_call is None and self._in_flight is None:
                self._flush_call = self._get_reactor().callLater(0, self.flush)
            return
        self._queue.append((channel, message, sent, key))
        if self._flush_call is None:
            self._flush_call = self._get_reactor().callLater(0, self.flush)

    def flush(self) -> None:
        """Send everything queued now and run the callbacks.

        What the callbacks queue (a disconnect that waited for its frames) waits for
        the next tick's flush, with that tick's other messages.
        """
        call, self._flush_call = self._flush_call, None
        if call is not None and call.active():
            call.cancel()
        if self._sender is not None:
            self._flush_to_sockets()
            return
        queue, self._queue = self._queue, []
        failed: dict[object, BaseException] = {}
        if len(queue) <= MAX_BATCH:
            self._send_batch(queue, failed)
            return
        for start in range(0, len(queue), MAX_BATCH):
            self._send_batch(queue[start : start + MAX_BATCH], failed)

    def drain(self, rounds: int = 10) -> None:
        """Flush until nothing is queued, for a stop that will run no more ticks (D-17).

        Bounded: a sender could queue again from every callback, and a layer sent to
        without waiting gets `DRAIN_TIMEOUT` seconds to answer.
        """
        for _ in range(rounds):
            if self._sender is not None and self._in_flight is not None:
                pump_until_answered(list(self._watches.values()), DRAIN_TIMEOUT)
                if self._in_flight is not None:
                    return  # the layer does not answer; the stop goes on
            if not self._queue:
                return
            self.flush()

    # -- without waiting (issue 15) ---------------------------------------------------

    def _flush_to_sockets(self) -> None:
        sender = self._sender
        if sender is None or self._in_flight is not None or not self._queue:
            return  # the next batch goes when the one in flight is answered
        if len(self._queue) <= MAX_BATCH:
            batch, self._queue = self._queue, []
            size, self._queued_bytes = self._queued_bytes, 0
        else:
            batch, self._queue = self._queue[:MAX_BATCH], self._queue[MAX_BATCH:]
            size = sum(message_size(message) for _, message, _, _ in batch)
            self._queued_bytes -= size
        self._in_flight = batch
        self._in_flight_bytes = size
        pipes = sender.submit(
            [(channel, message) for channel, message, _, _ in batch], self._answered
        )
        for pipe in pipes:
            watch = self._watches.get(pipe)
            if watch is None:
                watch = self._watches[pipe] = PipeWatch(
                    self._get_reactor(), pipe, self._sockets_unsupported
                )
            watch.ensure()

    def _sockets_unsupported(self) -> None:
        """Connecting found the layer's sockets unusable here: blocking send_many from now
        on (what waits hears the error and is retried by its sender)."""
        logger.info(
            "The channel layer's connections cannot be watched; sending with blocking calls"
        )
        self._sender = None

    def _answered(self, results: Outcomes) -> None:
        batch, self._in_flight = self._in_flight, None
        if batch is None:  # the sender answers each batch once
            return
        self._pending_bytes -= self._in_flight_bytes
        self._in_flight_bytes = 0
        queued = len(self._queue)
        failed: dict[object, BaseException] = {}
        self._run_callbacks(batch, results, failed)
        if failed and queued:
            # Queued before these callbacks ran: a refused sender's later messages
            # get the same error unsent, so it retries them in order.
            earlier, later = self._queue[:queued], self._queue[queued:]
            keep: list[Queued] = []
            refused: list[Queued] = []
            for item in earlier:
                (refused if item[3] is not None and item[3] in failed else keep).append(item)
            if refused:
                self._queue = keep + later
                size = sum(message_size(item[1]) for item in refused)
                self._pending_bytes -= size
                self._queued_bytes -= size
                self._run_callbacks(refused, [failed[item[3]] for item in refused], {})
        if self._queue and self._flush_call is None:
            self._flush_call = self._get_reactor().callLater(0, self.flush)

    def _run_callbacks(
        self,
        batch: list[Queued],
        results: Sequence[BaseException | None],
        failed: dict[object, BaseException],
    ) -> None:
        for (channel, message, sent, key), error in zip(batch, results, strict=True):
            if error is not None and key is not None:
                failed.setdefault(key, error)
            try:
                sent(channel, message, error)
            except Exception:
                logger.exception("Error handling the outcome of a send to %s", channel)

    def _send_batch(self, batch: list[Queued], failed: dict[object, BaseException]) -> None:
        results = self._results(batch, failed)
        for (channel, message, sent, key), error in zip(batch, results, strict=True):
            if error is not None and key is not None:
                failed.setdefault(key, error)
            try:
                sent(channel, message, error)
            except Exception:
                # One connection's broken handler must not lose the others' outcomes.
                logger.exception("Error handling the outcome of a send to %s", channel)

    def _results(
        self, batch: list[Queued], failed: dict[object, BaseException]
    ) -> list[BaseException | None]:
        """One result per message: sent with send_many, or one by one when it refuses."""
        results: list[BaseException | None] = [None] * len(batch)
        todo: Sequence[int]
        if failed:  # only after an earlier slice of this flush had a refusal
            unfailed: list[int] = []
            for position, (_, _, _, key) in enumerate(batch):
                if key is not None and key in failed:
                    results[position] = failed[key]  # its sender retries it after the failure
                else:
                    unfailed.append(position)
            if not unfailed:
                return results
            todo = unfailed
            pairs = [(batch[position][0], batch[position][1]) for position in todo]
        else:
            todo = range(len(batch))
            pairs = [(channel, message) for channel, message, _, _ in batch]
        try:
            outcomes = self._send_many(pairs)
        except Exception as error:
            if is_unavailable(self._channel_layer, error):
                # The backend is away (L-62): every message of the call hears it, rather
                # than one blocking attempt per message on the reactor thread below.
                for position in todo:
                    results[position] = error
                return results
            # send_many validates every message before sending any: one bad message
            # (MessageTooLarge, an invalid name) refused the lot. Send one at a time
            # so only that message's sender hears about it.
            self._send_each(batch, todo, results, dict(failed))
            return results
        for position, outcome in zip(todo, outcomes, strict=True):
            results[position] = outcome
        return results

    def _send_each(
        self,
        batch: list[Queued],
        todo: Sequence[int],
        results: list[BaseException | None],
        failed: dict[object, BaseException],
    ) -> None:
        send = self.channel_layer.send
        for position in todo:
            channel, message, _, key = batch[position]
            if key is not None and key in failed:
                results[position] = failed[key]
                continue
            try:
                send(channel, message)
            except Exception as error:  # reported to the sender as its outcome
                results[position] = error
                if key is not None:
                    failed[key] = error
