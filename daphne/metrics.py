"""daphne's Prometheus metrics: one registry per server, one method per event (issue 18).

`DaphneMetrics` owns a private `prometheus_client.CollectorRegistry` (not the
global default: tests and several servers in one process must not collide) and
the ``daphne_`` families below. The protocols call its methods; with metrics off
they hold a `NullMetrics`, whose methods do nothing, so no call site branches.

Labels stay low-cardinality: a connection's protocol, a status class, a
direction, an outcome or reason from a fixed list, and a channel *family*
(`channel_family`), never a per-connection channel name. The label children of
the fixed label values are created once, so an increment on the hot path is a
dict lookup and a locked add.

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

from typing import TYPE_CHECKING, Any

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

if TYPE_CHECKING:
    from channels.layers.families import channel_family

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


def _children(metric: Any, values: tuple[str, ...]) -> dict[str, Any]:
    return {value: metric.labels(value) for value in values}


def _child(children: dict[str, Any], value: str, what: str) -> Any:
    try:
        return children[value]
    except KeyError:
        raise UnknownLabel(
            f"{what} {value!r} is not one of {', '.join(sorted(children))}"
        ) from None


class DaphneMetrics:
    """The ``daphne_`` families on a registry of their own (issue 18)."""

    enabled = True

    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry if registry is not None else CollectorRegistry()
        r = self.registry
        self.open_connections = Gauge(
            "daphne_open_connections", "Open client connections.", ["protocol"], registry=r
        )
        self.http_responses = Counter(
            "daphne_http_responses",
            "HTTP responses started, by status class.",
            ["status_class"],
            registry=r,
        )
        self.websocket_frames = Counter(
            "daphne_websocket_frames",
            "WebSocket data frames, in from clients and out to them.",
            ["direction"],
            registry=r,
        )
        self.websocket_bytes = Counter(
            "daphne_websocket_bytes",
            "WebSocket payload bytes, in from clients and out to them.",
            ["direction"],
            registry=r,
        )
        self.websocket_handshakes = Counter(
            "daphne_websocket_handshakes",
            "WebSocket handshakes by outcome.",
            ["outcome"],
            registry=r,
        )
        self.http_first_reply = Histogram(
            "daphne_http_first_reply_seconds",
            "Seconds from sending http.request to the first reply message for it.",
            buckets=FIRST_REPLY_BUCKETS,
            registry=r,
        )
        self.messages_dropped = Counter(
            "daphne_messages_dropped",
            "Messages daphne could not hand over, by channel family and reason.",
            ["channel", "reason"],
            registry=r,
        )
        self.backpressure_events = Counter(
            "daphne_backpressure_events",
            "Backpressure events: client reads paused, requests answered 503, connections "
            "closed for not reading their replies.",
            ["event"],
            registry=r,
        )
        self.reply_reader_lag = Histogram(
            "daphne_reply_reader_lag_seconds",
            "Seconds from the reply reader taking replies off the layer to the reactor "
            "handing them to their connections.",
            buckets=READER_LAG_BUCKETS,
            registry=r,
        )
        self._connections = _children(self.open_connections, PROTOCOLS)
        self._responses = _children(self.http_responses, STATUS_CLASSES)
        self._by_status: dict[int, Any] = {}  # 100..599 only: status_class checks first
        self._frames = _children(self.websocket_frames, DIRECTIONS)
        self._bytes = _children(self.websocket_bytes, DIRECTIONS)
        self._handshakes = _children(self.websocket_handshakes, HANDSHAKE_OUTCOMES)
        self._backpressure = _children(self.backpressure_events, BACKPRESSURE_EVENTS)
        # D-4: daphne imports nothing of `channels` at import time; a server with
        # metrics on reads channel families (and the layer, `LayerCollector`) with it.
        from channels.layers.families import FamilyCap, channel_family

        # (family, reason) -> child; families are few (see channel_family), and capped.
        self._drops: dict[tuple[str, str], Any] = {}
        self._family = FamilyCap()
        self._channel_family = channel_family

    # -- connections ------------------------------------------------------------

    def connection_opened(self, protocol: str) -> None:
        _child(self._connections, protocol, "protocol").inc()

    def connection_closed(self, protocol: str) -> None:
        _child(self._connections, protocol, "protocol").dec()

    # -- HTTP -------------------------------------------------------------------

    def response_started(self, status: int) -> None:
        # The child by status code: one dict lookup per response (issue 18).
        child = self._by_status.get(status) if type(status) is int else None
        if child is None:
            child = self._by_status[status] = self._responses[status_class(status)]
        child.inc()

    def first_reply(self, seconds: float) -> None:
        self.http_first_reply.observe(seconds)

    # -- WebSocket --------------------------------------------------------------

    def frame_in(self, size: int) -> None:
        self._frames["in"].inc()
        self._bytes["in"].inc(size)

    def frame_out(self, size: int) -> None:
        self._frames["out"].inc()
        self._bytes["out"].inc(size)

    def handshake(self, outcome: str) -> None:
        _child(self._handshakes, outcome, "handshake outcome").inc()

    # -- drops and backpressure -------------------------------------------------

    def dropped(self, channel: str, reason: str, count: int = 1) -> None:
        """`count` messages for `channel` (any name; its family is the label) lost."""
        key = (self._family(self._channel_family(channel)), reason)
        child = self._drops.get(key)
        if child is None:
            if reason not in DROP_REASONS:
                raise UnknownLabel(f"drop reason {reason!r} is not one of {DROP_REASONS}")
            child = self._drops[key] = self.messages_dropped.labels(*key)
        child.inc(count)

    def backpressure(self, event: str) -> None:
        _child(self._backpressure, event, "backpressure event").inc()

    def reader_lag(self, seconds: float) -> None:
        self.reply_reader_lag.observe(seconds)


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
