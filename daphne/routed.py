"""Whether the workers route ``http.disconnect``, from their announcements (issue 14).

Nobody routes ``http.disconnect`` in most projects, yet A-82 has daphne send one per
request: the channel fills up, every send after that is refused (a WARNING every
10 s), and each costs a layer call on the request path. Workers announce the channels
they listen on through the layer (`channels.layers.announcements`); `RoutedChannels`
asks the layer every `refresh_interval` seconds, off the reactor thread, and keeps
the answer in one attribute the request path reads. Until workers have announced (or
with a layer that cannot tell) everything is sent as before, so D-37/D-54 hold for
test suites running daphne on an in-memory layer with no worker.
"""

from __future__ import annotations

import logging
from typing import Any

from twisted.internet import threads

__all__ = ["RoutedChannels"]

logger = logging.getLogger("daphne.server")


class RoutedChannels:
    """The cached answer to "does any worker listen on http.disconnect?"."""

    refresh_interval = 5.0
    # While no worker has announced (daphne started first, as runserver does), ask
    # more often, so the unconsumed channel does not fill up in the meantime.
    unknown_refresh_interval = 1.0

    def __init__(self, channel_layer: Any) -> None:
        self.channel_layer = channel_layer
        # Read on every request: True until workers announced without it.
        self.http_disconnect = True
        self._reactor: Any = None
        self._call: Any = None
        self._stopped = False
        self._known = False

    def start(self, reactor: Any) -> None:
        """Refresh now and every `refresh_interval` s, if the layer can tell at all."""
        if not callable(getattr(self.channel_layer, "announced_channels", None)):
            return
        self._reactor = reactor
        self._refresh()

    def stop(self) -> None:
        self._stopped = True
        if self._call is not None and self._call.active():
            self._call.cancel()

    def _refresh(self) -> None:
        self._call = None
        if self._stopped:
            return
        # In a thread: on a networked layer it is a round trip that must not hold
        # the reactor, least of all while the backend does not answer.
        asking = threads.deferToThreadPool(
            self._reactor, self._reactor.getThreadPool(), self.channel_layer.announced_channels
        )
        asking.addCallbacks(self.update, self._failed)
        asking.addBoth(self._schedule)

    def update(self, announced: frozenset[str] | None) -> None:
        """Take the layer's answer (None: no worker announced anything)."""
        self._known = announced is not None
        wanted = announced is None or "http.disconnect" in announced
        if wanted != self.http_disconnect:
            logger.debug(
                "http.disconnect is %s by the workers' routing",
                "consumed" if wanted else "not consumed; not sending it",
            )
        self.http_disconnect = wanted

    def _failed(self, failure: Any) -> None:
        # The layer is down (logged by the readers); keep the last answer.
        logger.debug("Cannot read the workers' announcements: %s", failure.getErrorMessage())

    def _schedule(self, _: Any) -> None:
        if not self._stopped and self._reactor.running:
            interval = self.refresh_interval if self._known else self.unknown_refresh_interval
            self._call = self._reactor.callLater(interval, self._refresh)
