"""Stored delayed messages (C-73, A-91)."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from django.db import models, transaction
from django.utils import timezone

from .content import decode_content


class DelayedMessageQuerySet(models.QuerySet):
    def is_due(self) -> DelayedMessageQuerySet:
        """Messages whose due date has passed (C-73)."""
        return self.filter(due_date__lte=timezone.now())

    def claim_due(self, limit: int) -> list[DelayedMessage]:
        """Delete up to ``limit`` due messages and return them, for the caller to send.

        One transaction for the batch. Row locks (where the database has them) or the
        database's own write serialisation (SQLite: a competing writer makes this raise
        ``OperationalError``, nothing is claimed) keep two delay servers from claiming the
        same row, so each message is sent at most once (A-91).
        """
        with transaction.atomic(using=self.db):
            due = self.is_due().select_for_update(skip_locked=True).order_by("due_date", "pk")
            claimed = list(due[:limit])
            if claimed:
                self.model._base_manager.using(self.db).filter(
                    pk__in=[message.pk for message in claimed]
                ).delete()
        return claimed


class DelayedMessage(models.Model):
    """One ``asgi.delay`` request waiting for its due date (C-73).

    ``content`` holds the message as JSON written by ``channels.delay.content`` so bytes
    survive the database (A-91).
    """

    due_date = models.DateTimeField(db_index=True)
    channel_name = models.CharField(max_length=512)
    content = models.TextField()

    objects = DelayedMessageQuerySet.as_manager()
    # Django's primary key property; `send` sets it to None once the row is gone.
    pk: int | None

    class Meta:
        app_label = "channels_delay"

    def __str__(self) -> str:
        return f"Delayed message for {self.channel_name} due {self.due_date.isoformat()}"

    @property
    def delay(self) -> int:
        """The delay in ms last set on this instance (as 1.x); for a row read from the
        database, the milliseconds from now until its due date (negative once due)."""
        delay = self.__dict__.get("_delay")
        if delay is not None:
            return delay
        return int((self.due_date - timezone.now()) / timedelta(milliseconds=1))

    @delay.setter
    def delay(self, milliseconds: int) -> None:
        self._delay = milliseconds
        self.due_date = timezone.now() + timedelta(milliseconds=milliseconds)

    def send(self, channel_layer: Any = None, requeue_delay: int = 1000) -> bool:
        """Send the message now and delete the row; True if this call sent it (C-73).

        The row is claimed by deleting it first, so the message goes out at most once
        (A-91) even with two delay servers on one database or a crash right after the
        send. If the channel is full the message is stored again ``requeue_delay`` ms
        later; on any other send error it is stored again and the error propagates.
        """
        if channel_layer is None:
            from channels import DEFAULT_CHANNEL_LAYER
            from channels.asgi import channel_layers

            channel_layer = channel_layers[DEFAULT_CHANNEL_LAYER]
        claimed, _ = DelayedMessage.objects.filter(pk=self.pk).delete()
        if not claimed:
            return False  # another delay server sent it already
        self.pk = None  # the row is gone, as after Model.delete() (1.x tests check this)
        return self.deliver(channel_layer, requeue_delay)

    def deliver(self, channel_layer: Any, requeue_delay: int = 1000) -> bool:
        """Send a message whose row is already claimed (deleted); True if sent.

        On ``ChannelFull`` it is stored again ``requeue_delay`` ms later; on any other
        send error it is stored again and the error propagates.
        """
        try:
            channel_layer.send(self.channel_name, decode_content(self.content))
        except channel_layer.ChannelFull:
            self._store_again(requeue_delay)
            return False
        except Exception:
            # Not swallowed: stored again so a broken layer loses nothing, then re-raised.
            self._store_again(requeue_delay)
            raise
        return True

    def _store_again(self, delay: int) -> None:
        self.pk = None
        self._state.adding = True
        self.delay = delay
        self.save()
