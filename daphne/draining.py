"""The `HTTPFactory` side of a graceful stop (D-17), and its last step's 503s (issue 14).

A mixin so `http_factory` stays one screenful per class: the factory's connection
registry (`reply_protocols`, `http_channels`) is defined there, the stop's steps here.

Open WebSockets are closed with 1012 (service restart) in batches spread over the
stop's WebSocket drain time (issue 17 item 4), so their clients, reconnecting to the
other servers, do not all arrive in the same instant; the deviation from D-17's
"1001 at once" is in docs/differences.rst.
"""

from __future__ import annotations

from typing import Any

from .ws_state import SocketState

__all__ = ["BATCH_INTERVAL", "CLOSE_HANDSHAKE_MARGIN", "DrainingFactory", "batch_schedule"]

# Seconds between two batches of a stop's WebSocket closes, at the least: 10 batches a
# second spread reconnects smoothly, and 10,000 sockets over 5 s are 200 per batch.
BATCH_INTERVAL = 0.1
# Sockets the stop's last step lets finish their closing handshake (1012).
_CLOSING_FOR_STOP = frozenset({SocketState.OPEN, SocketState.STOPPING})


# Seconds of a graceful stop left after the last WebSocket batch closes: a client has
# up to `ws_protocol.STOP_CLOSE_HANDSHAKE_TIMEOUT` to answer its close.
CLOSE_HANDSHAKE_MARGIN = 2.0


def websocket_spread(drain_time: float, graceful_timeout: float) -> float:
    """Seconds over which a stop closes open WebSockets (issue 17 item 4): the drain time,
    leaving the last batch `CLOSE_HANDSHAKE_MARGIN` seconds of the graceful timeout to
    finish closing; 0 (all at once) when there is no room for that."""
    return float(max(0.0, min(drain_time, graceful_timeout - CLOSE_HANDSHAKE_MARGIN)))


def batch_schedule(count: int, spread: float) -> list[tuple[float, int, int]]:
    """(delay, start, end): close sockets ``[start:end]`` after ``delay`` seconds, for
    `count` sockets over `spread` seconds; the first batch at once, the last at `spread`."""
    if count == 0:
        return []
    if spread <= 0 or count == 1:
        return [(0.0, 0, count)]
    batches = min(count, max(2, round(spread / BATCH_INTERVAL) + 1))
    return [
        (spread * index / (batches - 1), count * index // batches, count * (index + 1) // batches)
        for index in range(batches)
    ]


class DrainingFactory:
    """D-17 steps 2-4 over the factory's registries; `HTTPFactory` mixes it in.

    `request_class` and `websocket_class` are set by the factory (`WebRequest`,
    `WebSocketProtocol`).
    """

    request_class: type[Any]
    websocket_class: type[Any]
    reply_protocols: dict[str, Any]
    http_channels: set[Any]
    reactor: Any
    draining = False
    _drained: Any = None
    _close_batches: list[Any] = []  # the DelayedCalls of the WebSocket batches to come

    _holding: set[Any] | None = None

    @property
    def holding_sockets(self) -> set[Any]:
        """WebSockets whose frames wait for room on the layer (A-89), closed or not: a
        stop waits for them too, so a frame a client sent is not lost to the stop."""
        holding = self._holding
        if holding is None:
            holding = self._holding = set()
        return holding

    def in_flight_requests(self) -> list[Any]:
        return [
            p
            for p in self.reply_protocols.values()
            if isinstance(p, self.request_class) and p.request_start is not None
        ]

    def websockets(self) -> list[Any]:
        return [p for p in self.reply_protocols.values() if isinstance(p, self.websocket_class)]

    def start_drain(self, drained: Any, websocket_spread: float = 0.0) -> int:
        """Begin D-17 steps 2-3; fire `drained` (a Deferred) when nothing is left.

        Handshakes still waiting for the application are refused with 503 at once; open
        WebSockets are closed with 1012 in batches over `websocket_spread` seconds
        (`batch_schedule`). Returns the number of open WebSockets.
        """
        self.draining = True
        self.notify_when_idle(drained)
        sockets = []
        for protocol in self.websockets():
            if protocol.session.state is SocketState.OPEN:
                sockets.append(protocol)
            else:
                protocol.close_for_restart()  # a pending handshake: 503 now
        self._close_batches = []
        for delay, start, end in batch_schedule(len(sockets), websocket_spread):
            batch = sockets[start:end]
            if delay == 0:
                self._close_batch(batch)
            else:
                self._close_batches.append(self.reactor.callLater(delay, self._close_batch, batch))
        for channel in list(self.http_channels):
            channel.drain()
        self.request_finished()
        return len(sockets)

    def _close_batch(self, batch: list[Any]) -> None:
        for protocol in batch:
            protocol.close_for_restart()

    def close_remaining_websockets(self) -> list[Any]:
        """D-17 step 4: the batches not yet due close their sockets now (1012). Returns
        the transports of the sockets now closing by themselves."""
        for call in self._close_batches:
            if call.active():
                call.cancel()
        self._close_batches = []
        closing = []
        for protocol in self.websockets():
            if protocol.session.state in _CLOSING_FOR_STOP and protocol.transport is not None:
                protocol.close_for_restart()
                closing.append(protocol.transport)
        return closing

    def notify_when_idle(self, idle: Any) -> None:
        """Fire `idle` (a Deferred) once no connection is left (replaces an earlier one)."""
        self._drained = idle
        self.request_finished()

    def request_finished(self) -> None:
        drained = self._drained
        if drained is None or drained.called:
            return
        # Connections finish closing (their last bytes flushed) and held frames reach
        # the layer before the drain ends.
        if not self.http_channels and not self.websockets() and not self._holding:
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
