"""daphne's Prometheus metrics: one registry per server, one method per event (issue 18).

`DaphneMetrics` owns a private `prometheus_client.CollectorRegistry` (not the
global default: tests and several servers in one process must not collide) and
the ``daphne_`` families below. The protocols call its methods; with metrics off
they hold a `NullMetrics`, whose methods do nothing, so no call site branches.

Labels stay low-cardinality: a connection's protocol, a status class, a
direction, an outcome or reason from a fixed list, and a channel *family*
(`channel_family`), never a per-connection channel name. The values are plain
Python numbers the reactor thread moves in place (`channels.metrics_cells`), exported
by a custom collector at scrape time, so an event costs an ``+=`` and at most a dict
lookup: no lock, no call (issue 18; prometheus_client's ``inc`` was a lock and 3-4
calls each, four per WebSocket echo).

Families (``_total`` is added to counters by the exposition):

- ``daphne_open_connections{protocol}``: gauge; ``http/1.1``, ``h2``, ``websocket``.
- ``daphne_http_responses_total{status_class}``: ``1xx`` … ``5xx``.
- ``daphne_websocket_frames_total{direction}`` and ``daphne_websocket_bytes_total{direction}``:
  ``in`` (from clients) and ``out`` (to clients).
- ``daphne_websocket_handshakes_total{outcome}``: ``accepted``, ``rejected``, ``timed_out``.
- ``daphne_http_first_reply_seconds``: histogram, from sending ``http.request`` to the
  first ``http.response`` message for it.
- ``daphne_messages_dropped_total{channel, reason}``: ``channel_full``, ``too_large``,
  ``reply_channel_unknown``, ``expired``, ``layer_unavailable``.
- ``daphne_backpressure_events_total{event}``: ``reads_paused``, ``http_503``,
  ``outbound_overflow`` (a connection closed for not reading its replies).
- ``daphne_reply_reader_lag_seconds``: histogram, from the reply reader taking a batch of
  replies off the layer to the reactor handing them to their connections.
"""

from __future__ import annotations

from bisect import bisect_left
from typing import TYPE_CHECKING, Any

from prometheus_client import CollectorRegistry

if TYPE_CHECKING:
    from channels.layers.families import channel_family

# A value the hot path moves in place: ``[n]``, or a histogram's bucket counts and sum
# (`channels.metrics_cells`, imported only with metrics on).
Cell = list[float]

__all__ = [
    "BACKPRESSURE_EVENTS",
    "DROP_REASONS",
    "DaphneMetrics",
    "HANDSHAKE_OUTCOMES",
    "NULL_METRICS",
    "NullMetrics",
    "PROTOCOLS",
    "UnknownLabel",
    "channel_family",
    "status_class",
]

PROTOCOLS = ("http/1.1", "h2", "websocket")
STATUS_CLASSES = ("1xx", "2xx", "3xx", "4xx", "5xx")
DIRECTIONS = ("in", "out")
HANDSHAKE_OUTCOMES = ("accepted", "rejected", "timed_out")
DROP_REASONS = (
    "channel_full",
    "too_large",
    "reply_channel_unknown",
    "expired",
    "layer_unavailable",
)
BACKPRESSURE_EVENTS = ("reads_paused", "http_503", "outbound_overflow")

# Latency buckets in seconds: a reply within a millisecond up to a 30 s slow view.
FIRST_REPLY_BUCKETS = (
    0.001,
    0.0025,
    0.005,
    0.01,
    0.025,
    0.05,
    0.1,
    0.25,
    0.5,
    1.0,
    2.5,
    5.0,
    10.0,
    30.0,
)
READER_LAG_BUCKETS = (0.0001, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.5, 1.0)


class UnknownLabel(ValueError):
    """A call site passed a label value outside the family's fixed list.

    Raised rather than exported: an open-ended label is how a metric's
    cardinality explodes, so the lists above are the contract.
    """


def status_class(status: int) -> str:
    """``2xx`` for 204 and so on; `UnknownLabel` outside 100..599."""
    if not isinstance(status, int) or not 100 <= status <= 599:
        raise UnknownLabel(f"HTTP status {status!r} is outside 100..599")
    return STATUS_CLASSES[status // 100 - 1]


class DaphneMetrics:
    """The ``daphne_`` families on a registry of their own (issue 18).

    Every method runs on the reactor thread (the protocols, the outbox's callbacks, the
    reply readers' hand-over), so the values are plain cells with one writer
    (`channels.metrics_cells`): an event is a dict lookup at most and an ``+=``, no lock
    and no call. The registry's scrape reads them from the reactor's thread pool.
    """

    enabled = True

    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        # D-4: daphne imports nothing of `channels` at import time; a server with
        # metrics on reads channel families (and the layer, `LayerCollector`) with it.
        from channels.layers.families import FamilyCap, channel_family
        from channels.metrics_cells import MetricSet

        self.registry = registry if registry is not None else CollectorRegistry()
        families = self.families = MetricSet()
        open_connections = families.gauge(
            "daphne_open_connections", "Open client connections.", ["protocol"], PROTOCOLS
        )
        http_responses = families.counter(
            "daphne_http_responses",
            "HTTP responses started, by status class.",
            ["status_class"],
            STATUS_CLASSES,
        )
        websocket_frames = families.counter(
            "daphne_websocket_frames",
            "WebSocket data frames, in from clients and out to them.",
            ["direction"],
            DIRECTIONS,
        )
        websocket_bytes = families.counter(
            "daphne_websocket_bytes",
            "WebSocket payload bytes, in from clients and out to them.",
            ["direction"],
            DIRECTIONS,
        )
        websocket_handshakes = families.counter(
            "daphne_websocket_handshakes",
            "WebSocket handshakes by outcome.",
            ["outcome"],
            HANDSHAKE_OUTCOMES,
        )
        http_first_reply = families.histogram(
            "daphne_http_first_reply_seconds",
            "Seconds from sending http.request to the first reply message for it.",
            FIRST_REPLY_BUCKETS,
        )
        self._messages_dropped = families.counter(
            "daphne_messages_dropped",
            "Messages daphne could not hand over, by channel family and reason.",
            ["channel", "reason"],
        )
        backpressure_events = families.counter(
            "daphne_backpressure_events",
            "Backpressure events: client reads paused, requests answered 503, connections "
            "closed for not reading their replies.",
            ["event"],
            BACKPRESSURE_EVENTS,
        )
        reply_reader_lag = families.histogram(
            "daphne_reply_reader_lag_seconds",
            "Seconds from the reply reader taking replies off the layer to the reactor "
            "handing them to their connections.",
            READER_LAG_BUCKETS,
        )
        self.registry.register(families)
        # The reactor's cells: the only writer.
        cells = self._cells = families.cells()
        self._connections = cells.fixed(open_connections, PROTOCOLS)
        self._responses = cells.fixed(http_responses, STATUS_CLASSES)
        self._by_status: dict[int, Cell] = {}  # 100..599 only: status_class checks first
        frames = cells.fixed(websocket_frames, DIRECTIONS)
        sizes = cells.fixed(websocket_bytes, DIRECTIONS)
        self._frames_in, self._frames_out = frames["in"], frames["out"]
        self._bytes_in, self._bytes_out = sizes["in"], sizes["out"]
        self._handshakes = cells.fixed(websocket_handshakes, HANDSHAKE_OUTCOMES)
        self._backpressure = cells.fixed(backpressure_events, BACKPRESSURE_EVENTS)
        self._first_reply = cells.child(http_first_reply)
        self._reader_lag = cells.child(reply_reader_lag)
        # (family, reason) -> cell; families are few (see channel_family), and capped.
        self._drops: dict[tuple[str, str], Cell] = {}
        self._family = FamilyCap()
        self._channel_family = channel_family

    # -- connections ------------------------------------------------------------

    def connection_opened(self, protocol: str) -> None:
        try:
            self._connections[protocol][0] += 1
        except KeyError:
            raise _unknown("protocol", protocol, PROTOCOLS) from None

    def connection_closed(self, protocol: str) -> None:
        try:
            self._connections[protocol][0] -= 1
        except KeyError:
            raise _unknown("protocol", protocol, PROTOCOLS) from None

    # -- HTTP -------------------------------------------------------------------

    def response_started(self, status: int) -> None:
        # The cell by status code: one dict lookup per response (issue 18).
        cell = self._by_status.get(status) if type(status) is int else None
        if cell is None:
            cell = self._by_status[status] = self._responses[status_class(status)]
        cell[0] += 1

    def first_reply(self, seconds: float) -> None:
        cell = self._first_reply
        cell[bisect_left(FIRST_REPLY_BUCKETS, seconds)] += 1
        cell[-1] += seconds

    # -- WebSocket --------------------------------------------------------------

    def frame_in(self, size: int) -> None:
        self._frames_in[0] += 1
        self._bytes_in[0] += size

    def frame_out(self, size: int) -> None:
        self._frames_out[0] += 1
        self._bytes_out[0] += size

    def handshake(self, outcome: str) -> None:
        try:
            self._handshakes[outcome][0] += 1
        except KeyError:
            raise _unknown("handshake outcome", outcome, HANDSHAKE_OUTCOMES) from None

    # -- drops and backpressure -------------------------------------------------

    def dropped(self, channel: str, reason: str, count: int = 1) -> None:
        """`count` messages for `channel` (any name; its family is the label) lost."""
        key = (self._family(self._channel_family(channel)), reason)
        cell = self._drops.get(key)
        if cell is None:
            if reason not in DROP_REASONS:
                raise _unknown("drop reason", reason, DROP_REASONS)
            cell = self._drops[key] = self._cells.child(self._messages_dropped, key)
        cell[0] += count

    def backpressure(self, event: str) -> None:
        try:
            self._backpressure[event][0] += 1
        except KeyError:
            raise _unknown("backpressure event", event, BACKPRESSURE_EVENTS) from None

    def reader_lag(self, seconds: float) -> None:
        cell = self._reader_lag
        cell[bisect_left(READER_LAG_BUCKETS, seconds)] += 1
        cell[-1] += seconds


def _unknown(what: str, value: object, allowed: tuple[str, ...]) -> UnknownLabel:
    return UnknownLabel(f"{what} {value!r} is not one of {', '.join(sorted(allowed))}")


def __getattr__(name: str) -> Any:
    # `channel_family` re-exported lazily (D-4: no `channels` import at import time).
    if name == "channel_family":
        from channels.layers.families import channel_family

        return channel_family
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


class NullMetrics:
    """`DaphneMetrics`' interface doing nothing: what a server holds with metrics off."""

    enabled = False
    registry = None

    def connection_opened(self, protocol: str) -> None:
        pass

    def connection_closed(self, protocol: str) -> None:
        pass

    def response_started(self, status: int) -> None:
        pass

    def first_reply(self, seconds: float) -> None:
        pass

    def frame_in(self, size: int) -> None:
        pass

    def frame_out(self, size: int) -> None:
        pass

    def handshake(self, outcome: str) -> None:
        pass

    def dropped(self, channel: str, reason: str, count: int = 1) -> None:
        pass

    def backpressure(self, event: str) -> None:
        pass

    def reader_lag(self, seconds: float) -> None:
        pass


NULL_METRICS = NullMetrics()
"""One shared `NullMetrics`: it holds no state."""
