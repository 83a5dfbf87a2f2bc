"""The delay server's loop: store ``asgi.delay`` requests, send them when due (C-74, A-91).

Two threads, neither polling: the calling thread blocks on ``receive(["asgi.delay"])`` and
stores requests as they arrive (those already waiting together, in one transaction); a
sender thread sleeps on a condition until the next database check and sends every due
message. Checks happen at most once per ``database_sleep_duration``; when the earliest
known due date falls between two periodic checks, the next check is moved to that date, so
a lone message goes out when it is due rather than up to a period late. Either way a
message goes out no later than one period (plus the database work) after it is due.
"""

from __future__ import annotations

import logging
import threading
from datetime import datetime, timedelta
from typing import Any

from django.core.exceptions import ValidationError
from django.db import DatabaseError, close_old_connections, connections, transaction
from django.utils import timezone

from ..worker import Backoff
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

    Signal handling is the channel worker's (C-31): SIGTERM/SIGINT while idle exit at once,
    while storing requests exit after them; the sender thread finishes sending the batch
    it has claimed before the process ends.
    """

    # Requests stored (and due messages claimed) per database transaction, at most.
    store_batch_size = 100

    def __init__(
        self,
        channel_layer: Any,
        signal_handlers: bool = True,
        database_sleep_duration: float = 1,
    ) -> None:
        super().__init__(channel_layer, signal_handlers=signal_handlers)
        self.database_sleep_duration = database_sleep_duration
        self.sender = DueMessageSender(
            channel_layer, database_sleep_duration, batch_size=self.store_batch_size
        )

    def stop(self) -> None:
        super().stop()
        self.sender.stop()

    def run(self) -> None:
        """Store requests until stopped, with due messages sent from a second thread."""
        if self.signal_handlers:
            self.install_signal_handler()
        logger.info("Listening on asgi.delay")
        self.sender.start()
        try:
            self.receive_loop([DELAY_CHANNEL], self._drain_and_store)
        finally:
            self.sender.stop()
            # Bounded: the sender has at most one claimed batch left to send.
            self.sender.join(timeout=30)

    def _drain_and_store(self, channel: str, first: dict[str, Any]) -> None:
        """Store ``first`` with whatever else is already waiting, in one transaction.

        Under a burst this makes one database commit per batch instead of per message.
        A receive error while draining propagates (to the outage handling) only after
        the messages already received are stored.
        """
        batch = [first]
        try:
            while len(batch) < self.store_batch_size:
                channel, content = self.channel_layer.receive([DELAY_CHANNEL], block=False)
                if channel is None:
                    break
                batch.append(content)
        finally:
            self.store_many(batch)

    def store(self, content: dict[str, Any]) -> DelayedMessage | None:
        """Store one request; an invalid one is logged and discarded (C-74, A-91)."""
        stored = self.store_many([content])
        return stored[0] if stored else None

    def store_many(self, contents: list[dict[str, Any]]) -> list[DelayedMessage]:
        """Store valid requests in one transaction; invalid ones are logged and dropped."""
        messages = []
        for content in contents:
            try:
                messages.append(self.build(content))
            except (InvalidDelayRequest, ValidationError, TypeError) as error:
                # TypeError covers an invalid channel name and unsupported content.
                logger.error("Discarding invalid asgi.delay message: %s", error)
        if not messages or not self._save(messages):
            return []
        for message in messages:
            logger.debug(
                "Stored delayed message for %s due %s",
                message.channel_name,
                message.due_date.isoformat(),
            )
        self.sender.notify_due(min(message.due_date for message in messages))
        return messages

    def _save(self, messages: list[DelayedMessage]) -> bool:
        """Save, retrying while the database fails; False only if stopped meanwhile.

        The requests are already taken off the layer, so giving up would lose them.
        """
        backoff = Backoff(self.receive_retry_first, self.receive_retry_cap)
        while True:
            try:
                with transaction.atomic():
                    DelayedMessage.objects.bulk_create(messages)
                return True
            except DatabaseError as error:
                names = ", ".join(sorted({message.channel_name for message in messages}))
                if self.termed:
                    logger.error(
                        "%d delayed message(s) for %s lost: cannot store them (%s) while "
                        "shutting down",
                        len(messages),
                        names,
                        error,
                    )
                    return False
                logger.error("Cannot store delayed message(s) for %s (retrying): %s", names, error)
                # Drops a connection the error left unusable, so the retry reconnects.
                close_old_connections()
                self._stop.wait(backoff.next())

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


class DueMessageSender(threading.Thread):
    """Sends due messages; sleeps on a condition between database checks (C-74)."""

    def __init__(self, channel_layer: Any, period: float, batch_size: int = 100) -> None:
        super().__init__(name="channels-delay-sender", daemon=True)
        self.channel_layer = channel_layer
        self.period = timedelta(seconds=period)
        self.batch_size = batch_size
        self._condition = threading.Condition()
        self._stopping = False
        # Earliest due date known to be stored; None when unknown or nothing is pending.
        self._next_due: datetime | None = None
        # Earliest due date notified while a check runs, which its query may have missed.
        self._noticed_due: datetime | None = None

    def notify_due(self, due_date: datetime) -> None:
        """A message due at ``due_date`` was stored; wake up for it if it is earliest."""
        with self._condition:
            self._noticed_due = _earliest(self._noticed_due, due_date)
            if self._next_due is None or due_date < self._next_due:
                self._next_due = due_date
                self._condition.notify()

    def stop(self) -> None:
        with self._condition:
            self._stopping = True
            self._condition.notify()

    def run(self) -> None:
        last_check: datetime | None = None
        try:
            while self._wait_for_check(last_check):
                last_check = timezone.now()
                try:
                    self._send_due()
                except DatabaseError as error:
                    # Rows stay stored; the next check (one period on) tries again.
                    logger.error("Cannot read delayed messages (retrying): %s", error)
        finally:
            connections.close_all()  # this thread's connections only

    def _wait_for_check(self, last_check: datetime | None) -> bool:
        """Block until the next check is due; False once stopping."""
        with self._condition:
            while not self._stopping:
                remaining = (self._next_check(last_check) - timezone.now()).total_seconds()
                if remaining <= 0:
                    return True
                self._condition.wait(remaining)
            return False

    def _next_check(self, last_check: datetime | None) -> datetime:
        if last_check is None:
            return timezone.now()  # first check at start: messages pending from before
        periodic = last_check + self.period
        due = self._next_due
        # Move the periodic check later (never earlier, so never more often than once a
        # period) to land on a due date that falls before the check after it. Rows this
        # server stored are then sent at most a period late; rows another process wrote
        # (unknown here) at most two.
        if due is not None and periodic < due < periodic + self.period:
            return due
        return periodic

    def _send_due(self) -> None:
        with self._condition:
            self._noticed_due = None
        close_old_connections()
        while not self._is_stopping():
            claimed = DelayedMessage.objects.claim_due(self.batch_size)
            for message in claimed:
                try:
                    message.deliver(self.channel_layer)
                except Exception as error:  # stored again by deliver(); logged
                    logger.error(
                        "Cannot send delayed message to %s (retrying later): %s",
                        message.channel_name,
                        error,
                    )
            if len(claimed) < self.batch_size:
                break
        earliest = DelayedMessage.objects.order_by("due_date").values_list("due_date", flat=True)[
            :1
        ]
        with self._condition:
            self._next_due = _earliest(earliest[0] if earliest else None, self._noticed_due)

    def _is_stopping(self) -> bool:
        with self._condition:
            return self._stopping


def _earliest(first: datetime | None, second: datetime | None) -> datetime | None:
    if first is None or second is None:
        return first or second
    return min(first, second)
