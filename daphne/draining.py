"""The `HTTPFactory` side of a graceful stop (D-17), and its last step's 503s (issue 14).

A mixin so `http_factory` stays one screenful per class: the factory's connection
registry (`reply_protocols`, `http_channels`) is defined there, the stop's steps here.
"""

from __future__ import annotations

from typing import Any

__all__ = ["DrainingFactory"]


class DrainingFactory:
    """D-17 steps 2-4 over the factory's registries; `HTTPFactory` mixes it in.

    `request_class` and `websocket_class` are set by the factory (`WebRequest`,
    `WebSocketProtocol`).
    """

    request_class: type[Any]
    websocket_class: type[Any]
    reply_protocols: dict[str, Any]
    http_channels: set[Any]
    draining = False
    _drained: Any = None

    def in_flight_requests(self) -> list[Any]:
        return [
            p
            for p in self.reply_protocols.values()
            if isinstance(p, self.request_class) and p.request_start is not None
        ]

    def websockets(self) -> list[Any]:
        return [p for p in self.reply_protocols.values() if isinstance(p, self.websocket_class)]

    def start_drain(self, drained: Any) -> int:
        """Begin D-17 steps 2-3; fire `drained` (a Deferred) when nothing is left."""
        self.draining = True
        self.notify_when_idle(drained)
        for protocol in self.websockets():
            protocol.close_going_away()
        for channel in list(self.http_channels):
            channel.drain()
        count = len(self.in_flight_requests())
        self.request_finished()
        return count

    def notify_when_idle(self, idle: Any) -> None:
        """Fire `idle` (a Deferred) once no connection is left (replaces an earlier one)."""
        self._drained = idle
        self.request_finished()

    def request_finished(self) -> None:
        drained = self._drained
        if drained is None or drained.called:
            return
        # Connections finish closing (their last bytes flushed) before the drain ends.
        if not self.http_channels and not self.websockets():
            self._drained = None
            drained.callback(None)

    def answer_waiting(self) -> list[Any]:
        """D-17 step 4 (issue 14): requests still waiting for the application's response
        get 503 with ``Connection: close`` instead of a dropped connection. Returns the
        transports that are writing those answers and closing by themselves."""
        closing = []
        for request in self.in_flight_requests():
            if request.waiting_for_response():
                transport = request.transport
                request.refuse_for_stop()
                if transport is not None:
                    closing.append(transport)
        return closing

    def drop_all(self, keep: Any = ()) -> None:
        """D-17 step 4: drop every remaining connection but those in `keep`."""
        for protocol in list(self.reply_protocols.values()):
            transport = protocol.transport
            if transport is not None and transport not in keep:
                transport.abortConnection()
        for channel in list(self.http_channels):
            if channel.transport is not None and channel.transport not in keep:
                channel.transport.abortConnection()
