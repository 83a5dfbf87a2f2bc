"""The at-least-once methods of `RedisChannelLayer` (issue 17; `reliable` does the work).

`AtLeastOnceApi` is a mixin of `core.RedisChannelLayer`: acknowledging, refusing and
handing back a leased delivery, and reading, requeueing and purging dead letters. On a
layer without at-least-once channels (no ``at_least_once`` option) each raises the
layer's `NotAtLeastOnce`, except `flush_acks`, which has nothing to send.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from channels.layers.delivery import DeadLetter, NotAtLeastOnce

from .reliable import Reliable

__all__ = ["AtLeastOnceApi"]


class AtLeastOnceApi:
    """Mixin of `RedisChannelLayer`: ``ack`` .. ``purge_dead_letters`` over its `Reliable`."""

    if TYPE_CHECKING:
        _reliable: Reliable | None
        NotAtLeastOnce: type[NotAtLeastOnce]

    def _at_least_once(self) -> Reliable:
        if self._reliable is None:
            raise self.NotAtLeastOnce(
                f"{self} has no at-least-once channels: set 'at_least_once' in its CONFIG"
            )
        return self._reliable

    def ack(self, channel: str, delivery_id: str) -> bool:
        """Acknowledge a delivery (``message.delivery_id``); False when its lease had
        ended already (it may then be delivered again)."""
        return self._at_least_once().ack(channel, delivery_id)

    def ack_later(self, channel: str, delivery_id: str) -> None:
        """`ack` sent with this thread's next receive (one round trip fewer per message);
        `flush_acks` sends what is left. Used by the worker."""
        self._at_least_once().ack_later(channel, delivery_id)

    def flush_acks(self) -> None:
        """Send the acknowledgements `ack_later` left waiting in this thread."""
        if self._reliable is not None:
            self._reliable.flush_acks()

    def nack(self, channel: str, delivery_id: str, delay: float = 0.0) -> bool:
        """Deliver the message again after `delay` seconds; counted as a delivery, so
        after ``max_deliveries`` it goes to the dead letters instead."""
        return self._at_least_once().nack(channel, delivery_id, delay)

    def release(self, channel: str, delivery_id: str) -> bool:
        """Hand a message back unstarted (a worker stopping): delivered again at once,
        not counted as a delivery."""
        return self._at_least_once().nack(channel, delivery_id, 0.0, release=True)

    def dead_letters(self, pattern: str = "*") -> list[DeadLetter]:
        """Dead letters of the channels matching glob `pattern`."""
        return self._at_least_once().dead.dead_letters(pattern)

    def requeue_dead_letters(self, pattern: str = "*") -> int:
        """Put the dead letters of matching channels back on them; returns how many."""
        return self._at_least_once().dead.requeue_dead_letters(pattern)

    def purge_dead_letters(self, pattern: str = "*") -> int:
        """Delete the dead letters of matching channels; returns how many went."""
        return self._at_least_once().dead.purge_dead_letters(pattern)
