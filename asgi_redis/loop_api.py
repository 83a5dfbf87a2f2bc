"""`RedisChannelLayer`'s receives for event loops (A-50, A-51, L-43, L-61; issues 9, 15).

`EventLoopApi` is a mixin of `core.RedisChannelLayer`: the ``twisted`` and ``asyncio``
extensions (`receive_twisted`, `receive_async`), and the additions to the ASGI-1 API
that let daphne's reactor use the layer without a thread waiting on Redis:
`receive_buffered`, `socket_receive` (`socket_receive`) and `socket_sender`
(`socket_send`).
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

from channels.layers.delivery import DeliveryPolicy

from .receiving import Received, Receiver
from .reliable import Reliable
from .socket_receive import SocketReceive, SocketReceiveUnsupported
from .socket_send import SocketSender

__all__ = ["EventLoopApi"]


class EventLoopApi:
    """Mixin of `RedisChannelLayer`: its receives for Twisted, asyncio and daphne."""

    if TYPE_CHECKING:
        blpop_timeout: int | float
        _reliable: Reliable | None
        delivery: DeliveryPolicy

        @property
        def _receiver(self) -> Receiver: ...

        def receive(self, channels: Iterable[str], block: bool = False) -> Received: ...

    def receive_buffered(self, channels: Iterable[str]) -> Received:
        """A message this process has popped already (from a ``P!`` batch), or ``(None, None)``.

        Never a round trip: for a reader draining what its blocking receive brought
        (daphne's reply reader), whose closing non-blocking ``receive`` would
        otherwise ask Redis and usually find nothing (issue 9). An addition to the
        ASGI-1 API, like `send_many`.
        """
        found = self._receiver.buffered(channels)
        return found if found is not None else (None, None)

    def socket_receive(self, channels: Iterable[str]) -> SocketReceive:
        """A receive on `channels` that an event loop drives from a socket (`SocketReceive`).

        For daphne's reply reader: the reactor watches the socket of a blocking
        pop instead of a thread blocking in `receive` (issue 9). The names must
        sit on one shard (a ``P!`` prefix always does); raises
        `SocketReceiveUnsupported` otherwise, or without hiredis, BLMPOP or with
        TLS, and the shard's connection error when Redis is unreachable.
        Messages this instance buffered from earlier receives are not seen by
        it. An addition to the ASGI-1 API, like `send_many`.
        """
        names, visits = self._receiver.order(channels)
        if not names or visits is None or len(visits) != 1:
            raise SocketReceiveUnsupported("the names are not all on one shard")
        if self._reliable is not None and any(map(self.delivery.applies, names)):
            raise SocketReceiveUnsupported("at-least-once channels are leased, not popped")
        return SocketReceive(self, visits[0], self.blpop_timeout)

    def socket_sender(self) -> SocketSender:
        """A `send_many` that writes to sockets of its own and returns at once, for an
        event loop that must never wait on Redis (daphne, issue 15; `socket_send`).
        Raises `SocketSendUnsupported` without hiredis. An addition to the ASGI-1 API.
        """
        return SocketSender(self)

    def receive_twisted(self, channels: Iterable[str]) -> Any:
        """A `Deferred` firing with a blocking `receive` run in Twisted's thread pool.

        A message already buffered from a ``P!`` batch fires at once, without a
        thread hop; errors (a bad name, Redis down) arrive as a failed Deferred.
        """
        from twisted.internet import defer, threads

        def start() -> Any:
            receiver = self._receiver
            names = receiver.receive_plan(channels).names  # validated once per list
            found = receiver.take_buffered(names) if receiver.buffer else None
            if found is not None:
                return found
            return threads.deferToThread(self.receive, names, True)

        return defer.maybeDeferred(start)

    async def receive_async(self, channels: Iterable[str]) -> Received:
        """A blocking `receive` in the loop's default executor; never blocks the loop.

        A message already buffered from a ``P!`` batch is returned directly.
        """
        receiver = self._receiver
        names = receiver.receive_plan(channels).names  # validated once per list
        found = receiver.take_buffered(names) if receiver.buffer else None
        if found is not None:
            return found
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(None, self.receive, names, True)
