"""A growing delay between tries on the reactor's clock, never blocking it (A-89, L-62.5).

daphne retries in six places: a ``websocket.connect`` or a frame the layer had no room
for (`ws_protocol`, `ws_flow`), an ``http.request`` likewise (`request_send.QueueWait`,
issue 17), a Request Body Chunk (`request_body`), a
``websocket.disconnect`` (`drops.send_reliably`), and the reply readers after a
layer error (`reply_reader`). Each waits `first` seconds, doubles the
wait up to `cap`, starts again from `first` after progress (`reset`), and may give up
`give_up_after` seconds after the last progress (`expired`).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

__all__ = ["RETRY_FIRST_DELAY", "RETRY_MAX_DELAY", "ReactorBackoff"]

# after ChannelFull daphne retries from ~1 ms, doubling, and stops growing at 1.x's
# 50 ms: a full channel frees up within milliseconds.
RETRY_FIRST_DELAY = 0.001
RETRY_MAX_DELAY = 0.05


class ReactorBackoff:
    """Delays `first`, 2×`first`, … at most `cap`; `expired()` after `give_up_after` s.

    `clock` is an `IReactorTime` (the reactor, or a test's `task.Clock`).
    """

    __slots__ = ("clock", "first", "cap", "give_up_after", "delay", "deadline", "call")

    def __init__(
        self,
        clock: Any,
        first: float = RETRY_FIRST_DELAY,
        cap: float = RETRY_MAX_DELAY,
        give_up_after: float | None = None,
    ) -> None:
        self.clock = clock
        self.first = first
        self.cap = cap
        self.give_up_after = give_up_after
        self.call: Any = None
        self.reset()

    def reset(self) -> None:
        """Progress: the next wait is `first` again, and the give-up time starts anew."""
        self.delay = self.first
        after = self.give_up_after
        self.deadline = None if after is None else self.clock.seconds() + after

    def next_delay(self) -> float:
        """The wait before the next try; each call doubles the one after, up to `cap`."""
        delay = min(self.delay, self.cap)  # `cap` may change between tries (`ws_flow`)
        self.delay = delay * 2
        return delay

    def expired(self) -> bool:
        return self.deadline is not None and self.clock.seconds() >= self.deadline

    def later(self, function: Callable[..., Any], *args: Any, at_most: float | None = None) -> Any:
        """Call `function(*args)` after the next delay (shortened to `at_most`)."""
        delay = self.next_delay()
        if at_most is not None and at_most < delay:
            delay = at_most
        self.call = self.clock.callLater(delay, function, *args)
        return self.call

    def cancel(self) -> None:
        call, self.call = self.call, None
        if call is not None and call.active():
            call.cancel()
