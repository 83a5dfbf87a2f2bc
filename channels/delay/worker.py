"""The delay server's loop: store ``asgi.delay`` requests, send them when due (C-74, A-91).

Everything that touches the database, storing requests and sending due messages, runs
in the thread that calls ``run()``. Django gives each thread its own connection, so this
is what lets the worker run inside a test's transaction (1.x tests do, and call ``run()``
repeatedly on one instance; each call reads ``termed`` once per pass of its loop, and
starts with a check for due messages, as 1.1 did).

No polling: the blocking ``receive`` on ``asgi.delay`` runs in a helper thread, one call
at a time, and the loop waits for its result only until the next database check is due.
So a layer whose blocking receive lasts longer than ``database_sleep_duration`` (Redis:
about 5 s, A-32) delays no send, and requests are stored as they arrive. At most one
received request is ever outside both the layer and the database; when ``run()`` ends it
waits for the receive in flight and stores what it returns.

Checks happen at most once per ``database_sleep_duration``; when the earliest known due
date falls between two periodic checks, the next check is moved to that date, so a lone
message goes out when it is due rather than up to a period late. Either way a message
goes out no later than one period (plus the database work) after it is due.
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from datetime import datetime
from typing import Any

from django.core.exceptions import ValidationError
from django.db import DatabaseError, connections, transaction
from django.utils import timezone

from ..retry import Backoff
from ..worker import Worker as ChannelsWorker
from .content import encode_content
from .models import DelayedMessage

__all__ = ["DELAY_CHANNEL", "InvalidDelayRequest", "Worker"]

logger = logging.getLogger("django.channels")

DELAY_CHANNEL = "asgi.delay"


class InvalidDelayRequest(ValueError):
    """An ``asgi.delay`` message lacks a key or has a value A-90 does not allow."""


class Worker(ChannelsWorker):
    """Runs the delay server on ``channel_layer`` (C-74).

    Signal handling is the channel worker's (C-31): SIGTERM/SIGINT while idle exit at
    once (after the receive in flight returned, so its request is not lost), while
    storing or sending exit after that.
    """

    # Due messages claimed per database transaction, at most.
    store_batch_size = 100
    # How long the end of run() waits for the receive in flight (layers bound a blocking
    # receive to a few seconds, A-32).
    receive_wait_at_exit = 15.0

    def __init__(
        self,
        channel_layer: Any,
        signal_handlers: bool = True,
        database_sleep_duration: float = 1,
    ) -> None:
        super().__init__(channel_layer, signal_handlers=signal_handlers)
        self.database_sleep_duration = database_sleep_duration
        # Valid requests received but not yet stored (the database failed), oldest first.
        self._unsaved: list[DelayedMessage] = []

    def run(self) -> None:
        """Store requests and send due messages, in this thread, until stopped."""
        if self.signal_handlers:
            self.install_signal_handler()
        logger.info("Listening on asgi.delay")
        receiver = _Receiver(self.channel_layer)
        schedule = _CheckSchedule(self.database_sleep_duration)
        outage = Backoff(self.receive_retry_first, self.receive_retry_cap)
        store_retry = Backoff(self.receive_retry_first, self.receive_retry_cap)
        retry_store_at = 0.0
        failing = False
        try:
            # `termed` is read once per pass: 1.x tests count passes through it.
            while not self.termed:
                if schedule.is_due():
                    self.in_job = True
                    try:
                        schedule.checked(self.send_due())
                    finally:
                        self.in_job = False
                if self._unsaved:
                    # The database failed: retry the store (checks go on meanwhile) and
                    # take no more requests off the layer until it works.
                    wait = min(retry_store_at - time.monotonic(), schedule.time_left())
                    if wait > 0:
                        self._stop.wait(wait)
                    if time.monotonic() >= retry_store_at:
                        if self._save_unsaved(schedule):
                            store_retry.reset()
                        else:
                            retry_store_at = time.monotonic() + store_retry.next()
                    continue
                try:
                    content = receiver.result(schedule.time_left())
                except (TypeError, AssertionError):
                    raise  # the layer refused our arguments: a bug, not an outage
                except Exception as error:  # any backend failure (L-62)
                    if not failing:
                        logger.error(
                            "Cannot receive from channel layer %s: %s; retrying",
                            self.channel_layer,
                            error,
                        )
                        failing = True
                    self._stop.wait(min(outage.next(), schedule.time_left()))
                    continue
                if failing:
                    logger.info("Receiving from channel layer %s works again", self.channel_layer)
                    failing = False
                    outage.reset()
                if content is None:
                    continue
                self.in_job = True
                try:
                    if not self._accept(content, schedule):
                        retry_store_at = time.monotonic() + store_retry.next()
                finally:
                    self.in_job = False
        finally:
            self._finish(receiver, schedule)

    def _finish(self, receiver: _Receiver, schedule: _CheckSchedule) -> None:
        """Store the request of the receive in flight, if any; report what is lost."""
        content = receiver.close(self.receive_wait_at_exit)
        if content is not None:
            self._accept(content, schedule)
        if self._unsaved:
            names = ", ".join(sorted({message.channel_name for message in self._unsaved}))
            logger.error(
                "%d delayed message(s) for %s lost: the database could not store them "
                "before the delay server stopped",
                len(self._unsaved),
                names,
            )
            self._unsaved = []

    # -- storing --------------------------------------------------------------

    def _accept(self, content: dict[str, Any], schedule: _CheckSchedule) -> bool:
        """Validate and store one request; False if the database failed (kept to retry)."""
        try:
            message = self.build(content)
        except (InvalidDelayRequest, ValidationError, TypeError) as error:
            # TypeError covers an invalid channel name and unsupported content.
            logger.error("Discarding invalid asgi.delay message: %s", error)
            return True
        self._unsaved.append(message)
        return self._save_unsaved(schedule)

    def _save_unsaved(self, schedule: _CheckSchedule) -> bool:
        messages = self._unsaved
        try:
            self._save(messages)
        except DatabaseError as error:
            names = ", ".join(sorted({message.channel_name for message in messages}))
            logger.error("Cannot store delayed message(s) for %s (retrying): %s", names, error)
            _drop_unusable_connections()
            return False
        self._unsaved = []
        schedule.stored(min(message.due_date for message in messages))
        return True

    def store(self, content: dict[str, Any]) -> DelayedMessage | None:
        """Store one request; an invalid one is logged and discarded (C-74, A-91)."""
        stored = self.store_many([content])
        return stored[0] if stored else None

    def store_many(self, contents: list[dict[str, Any]]) -> list[DelayedMessage]:
        """Store valid requests in one transaction; invalid ones are logged and dropped.

        A database error propagates (``run()`` keeps such requests and retries).
        """
        messages = []
        for content in contents:
            try:
                messages.append(self.build(content))
            except (InvalidDelayRequest, ValidationError, TypeError) as error:
                logger.error("Discarding invalid asgi.delay message: %s", error)
        if messages:
            self._save(messages)
        return messages

    def _save(self, messages: list[DelayedMessage]) -> None:
        with transaction.atomic():
            DelayedMessage.objects.bulk_create(messages)
        for message in messages:
            logger.debug(
                "Stored delayed message for %s due %s",
                message.channel_name,
                message.due_date.isoformat(),
            )

    def build(self, content: dict[str, Any]) -> DelayedMessage:
        """A validated, unsaved ``DelayedMessage`` for an A-90 request."""
        missing = [key for key in ("channel", "content", "delay") if key not in content]
        if missing:
            raise InvalidDelayRequest(
                f"missing key(s) {', '.join(missing)}; an asgi.delay message needs "
                f"'channel', 'content' and 'delay' (A-90)"
            )
        delay = content["delay"]
        if isinstance(delay, bool) or not isinstance(delay, int) or delay <= 0:
            raise InvalidDelayRequest(f"'delay' must be a positive int of ms, got {delay!r}")
        if not isinstance(content["content"], dict):
            raise InvalidDelayRequest(
                f"'content' must be a dict (the message to deliver), "
                f"got {type(content['content']).__name__}"
            )
        self.channel_layer.valid_channel_name(content["channel"])
        message = DelayedMessage(
            channel_name=content["channel"], content=encode_content(content["content"])
        )
        message.delay = delay
        message.full_clean()
        return message

    # -- sending --------------------------------------------------------------

    def send_due(self) -> datetime | None:
        """Send every due message from this thread; return the earliest due date left.

        Each batch of rows is claimed (deleted) in one transaction before its messages
        are sent, so a message goes out at most once (A-91); a full channel stores it
        again a second later (C-73). A database error is logged; the rows stay stored
        for the next check.
        """
        _drop_unusable_connections()
        try:
            while True:
                claimed = DelayedMessage.objects.claim_due(self.store_batch_size)
                for message in claimed:
                    try:
                        message.deliver(self.channel_layer)
                    except Exception as error:  # stored again by deliver()
                        logger.error(
                            "Cannot send delayed message to %s (retrying later): %s",
                            message.channel_name,
                            error,
                        )
                if len(claimed) < self.store_batch_size:
                    break
            return (
                DelayedMessage.objects.order_by("due_date")
                .values_list("due_date", flat=True)
                .first()
            )
        except DatabaseError as error:
            logger.error("Cannot read delayed messages (retrying): %s", error)
            _drop_unusable_connections()
            return None


class _CheckSchedule:
    """When the next check for due messages happens, on the monotonic clock (C-74).

    The first check is at once (rows left by an earlier run go out), then one per
    ``period``, moved later (never earlier) onto a known due date that falls before the
    check after it.
    """

    def __init__(self, period: float) -> None:
        self.period = period
        self.last_check: float | None = None
        self.next_check = time.monotonic()
        # Earliest due date known to be stored; None when unknown or nothing is pending.
        self.next_due: datetime | None = None

    def is_due(self) -> bool:
        return time.monotonic() >= self.next_check

    def time_left(self) -> float:
        return max(0.0, self.next_check - time.monotonic())

    def checked(self, earliest: datetime | None) -> None:
        self.last_check = time.monotonic()
        self.next_due = earliest
        self._plan()

    def stored(self, due_date: datetime) -> None:
        if self.next_due is None or due_date < self.next_due:
            self.next_due = due_date
            self._plan()

    def _plan(self) -> None:
        if self.last_check is None:
            return  # the first check is still to come
        periodic = self.last_check + self.period
        self.next_check = periodic
        if self.next_due is not None:
            due_in = (self.next_due - timezone.now()).total_seconds()
            # A millisecond late, so the check (on the database's clock) finds it due.
            due_at = time.monotonic() + due_in + 0.001
            # Rows this server stored are then sent at most a period late; rows another
            # process wrote (unknown here) at most two.
            if periodic < due_at < periodic + self.period:
                self.next_check = due_at


class _Receiver:
    """Blocking receives on ``asgi.delay`` in a helper thread, one call at a time.

    Only the layer is used there, never the database. A new one (and thread) per
    ``run()``, so ``run()`` can be called again.
    """

    # A layer that ignores block=True returns at once; pause this long so as not to spin.
    nonblocking_pause = 0.01

    def __init__(self, channel_layer: Any) -> None:
        self.channel_layer = channel_layer
        self._requests: queue.SimpleQueue[bool] = queue.SimpleQueue()
        self._results: queue.SimpleQueue[tuple[Any, BaseException | None]] = queue.SimpleQueue()
        self._closing = threading.Event()
        self._pending = False
        self._thread = threading.Thread(
            target=self._serve, name="channels-delay-receive", daemon=True
        )
        self._thread.start()

    def _serve(self) -> None:
        while self._requests.get():
            started = time.monotonic()
            try:
                channel, content = self.channel_layer.receive([DELAY_CHANNEL], block=True)
            except BaseException as error:
                self._results.put((None, error))
                continue
            if channel is None and time.monotonic() - started < self.nonblocking_pause / 10:
                self._closing.wait(self.nonblocking_pause)
            self._results.put((content if channel is not None else None, None))

    def result(self, timeout: float) -> dict[str, Any] | None:
        """The next request, or None if none arrived within ``timeout`` seconds.

        A receive still running then is kept for the next call. Raises what the
        layer's receive raised.
        """
        if not self._pending:
            self._requests.put(True)
            self._pending = True
        try:
            content, error = self._results.get(timeout=timeout)
        except queue.Empty:
            return None
        self._pending = False
        if error is not None:
            raise error
        return content

    def close(self, timeout: float) -> dict[str, Any] | None:
        """Stop the thread; return the request the receive in flight brought, if any."""
        self._closing.set()
        self._requests.put(False)
        if not self._pending:
            return None
        try:
            content, error = self._results.get(timeout=timeout)
        except queue.Empty:
            logger.error(
                "The channel layer's receive did not return within %.0f s; a request it "
                "brings later is lost",
                timeout,
            )
            return None
        self._pending = False
        if error is not None:
            logger.error("Cannot receive from channel layer %s: %s", self.channel_layer, error)
        return content


def _drop_unusable_connections() -> None:
    """``close_old_connections`` for connections outside a transaction.

    Closing one inside an atomic block (a test case's) would break that transaction.
    """
    for connection in connections.all(initialized_only=True):
        if not connection.in_atomic_block:
            connection.close_if_unusable_or_obsolete()
