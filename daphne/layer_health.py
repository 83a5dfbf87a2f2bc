"""One ERROR when the channel layer goes away, one INFO when it is back (issue 14).

While Redis is down every receive and every request send fails; logging each failure
(once a second, forever, naming no server) buries the one fact the operator needs:
which layer, at which address, since when. `LayerHealth` tracks each activity
("trying to receive messages", "sending http.request") apart, but logs per outage, not
per activity: the first failure at ERROR with the layer's alias and Redis URL, the
first success after it at INFO, and nothing in between (DEBUG). The outage is shared
by everything in the process that uses the same layer (`outage_of`): under
``runserver`` daphne and the worker threads log one ERROR and one INFO between them.
"""

from __future__ import annotations

import logging
import threading
import weakref
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit, urlunsplit

from .metrics import NULL_METRICS

if TYPE_CHECKING:
    from .drops import DropReporter
    from .metrics import DaphneMetrics, NullMetrics

__all__ = ["HealthReporter", "LayerHealth", "Outage", "describe_layer", "outage_of", "redact_url"]

logger = logging.getLogger("daphne.server")


def redact_url(url: str) -> str:
    """`url` without its password (``redis://:secret@host`` → ``redis://***@host``)."""
    try:
        parts = urlsplit(url)
    except ValueError:
        return "<unparsable URL>"
    if parts.password is None and "@" not in parts.netloc:
        return url
    host = parts.netloc.rpartition("@")[2]
    user = parts.username or ""
    netloc = f"{user}:***@{host}" if parts.password is not None else f"{user}@{host}"
    return urlunsplit((parts.scheme, netloc, parts.path, parts.query, parts.fragment))


def describe_layer(layer: Any) -> str:
    """``module.Class`` of the layer and its servers' URLs, after its alias if it has one.

    ``default (asgi_redis.core.RedisChannelLayer at redis://127.0.0.1:6379/5)``, as
    runworker and runserver name a layer; a Channels ``ChannelLayerWrapper`` (runserver
    hands daphne one) is described by the layer it wraps.
    """
    alias = getattr(layer, "alias", None)
    layer = _raw(layer)
    kind = type(layer)
    text = f"{kind.__module__}.{kind.__qualname__}"
    hosts = getattr(layer, "hosts", None)
    if isinstance(hosts, (list, tuple)) and hosts:
        text += " at " + ", ".join(redact_url(str(host)) for host in hosts)
    if isinstance(alias, str):
        text = f"{alias} ({text})"
    return text


def _raw(layer: Any) -> Any:
    """The layer a Channels wrapper wraps (its ``channel_layer``), else `layer`."""
    inner = getattr(layer, "channel_layer", None)
    return layer if inner is None or inner is layer else inner


class Outage:
    """Whether an outage of one layer has been reported (logged at ERROR) in this
    process and not yet reported over; shared through `outage_of`."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.reported = False

    def begin(self) -> bool:
        """True for the first caller of an outage: it logs the ERROR."""
        with self._lock:
            first, self.reported = not self.reported, True
        return first

    def end(self) -> bool:
        """True for the first caller after the outage was reported: it logs the INFO."""
        with self._lock:
            was, self.reported = self.reported, False
        return was


_outages: weakref.WeakKeyDictionary[Any, Outage] = weakref.WeakKeyDictionary()
_outages_lock = threading.Lock()


def outage_of(layer: Any) -> Outage:
    """The process's one `Outage` record for `layer` (a wrapper counts as its layer)."""
    raw = _raw(layer)
    with _outages_lock:
        try:
            outage = _outages.get(raw)
            if outage is None:
                outage = _outages[raw] = Outage()
        except TypeError:  # not weak-referenceable: its own record
            outage = Outage()
    return outage


class LayerHealth:
    """Tracks whether each activity on the layer currently fails; logs one ERROR when
    the layer goes away and one INFO when it is back, per outage and process."""

    def __init__(self, layer: Any, log: logging.Logger = logger) -> None:
        self.description = describe_layer(layer)
        self.log = log
        self.outage = outage_of(layer)
        self._failing: set[str] = set()
        self._lock = threading.Lock()  # the reader thread and the reactor both report
        # True while any activity fails: lets the hot path skip `ok` in one check.
        self.down = False

    def failed(self, activity: str, error: BaseException) -> None:
        """`activity` failed with `error`; logged at ERROR only when the layer worked
        before (no other activity, here or elsewhere in the process, failing).

        Worded ``Error <activity>: <error> (...)``, so the reader's line still starts
        as D-14 words it (``Error trying to receive messages: ...``).
        """
        if getattr(error, "layer_redirected", False):
            # A Redis Cluster slot that moved (a reshard), followed on a new connection:
            # normal operation, not an outage (issue 19).
            self.log.info("Following a moved slot while %s: %s", activity, error)
            return
        with self._lock:
            if activity in self._failing:
                return
            self._failing.add(activity)
            self.down = True
        # A layer that answers but refuses (asgi_redis.LayerOutOfMemory) says so itself.
        state = "refuses" if getattr(error, "layer_out_of_memory", False) else "is unreachable"
        log = self.log.error if self.outage.begin() else self.log.debug
        log(
            "Error %s: %s (channel layer %s %s; retrying, and logging again only when it is back)",
            activity,
            error,
            self.description,
            state,
        )

    def failing(self, activity: str) -> bool:
        return activity in self._failing

    def ok(self, activity: str) -> None:
        """`activity` worked: the layer is back. Logged at INFO once per outage; the
        other activities that failed count as back too (a new failure is a new outage)."""
        with self._lock:
            if activity not in self._failing:
                return
            self._failing.clear()
            self.down = False
        log = self.log.info if self.outage.end() else self.log.debug
        log("Channel layer %s is reachable again (%s works)", self.description, activity)


class HealthReporter:
    """A `FullChannelReporter` stand-in for `send_best_effort` and the protocols: full
    channels still go to `reporter` (merged warnings, A-89), but a layer that cannot
    reach its backend goes to `health` (one ERROR per outage) under `activity`.

    Each message reported lost is also counted in `metrics` by reason (issue 18):
    `full` as ``channel_full``, `failed` as ``layer_unavailable``, `gave_up` (a
    retried send out of time) as ``expired``; `unavailable` is an outage that lost
    nothing (frames held for a retry).
    """

    __slots__ = ("reporter", "health", "activity", "metrics")

    def __init__(
        self,
        reporter: DropReporter,
        health: LayerHealth,
        activity: str,
        metrics: DaphneMetrics | NullMetrics = NULL_METRICS,
    ) -> None:
        self.reporter = reporter
        self.health = health
        self.activity = activity
        self.metrics = metrics

    def recently_full(self, channel: str) -> bool:
        return self.reporter.recently_full(channel)

    def found_full(self, channel: str) -> None:
        self.reporter.found_full(channel)

    def full(self, channel: str, what: str) -> None:
        self.reporter.full(channel, what)
        self.metrics.dropped(channel, "channel_full")

    def failed(self, channel: str, what: str, error: BaseException) -> None:
        self.health.failed(self.activity, error)
        self.metrics.dropped(channel, "layer_unavailable")

    def unavailable(self, error: BaseException) -> None:
        """The layer's backend is away, and nothing was lost (yet): health only."""
        self.health.failed(self.activity, error)

    def gave_up(self, channel: str, what: str, error: BaseException, full: bool) -> None:
        """A send retried until its deadline (`drops.send_reliably`) is dropped."""
        if full:
            self.reporter.full(channel, what)
        else:
            self.health.failed(self.activity, error)
        self.metrics.dropped(channel, "expired")

    def worked(self) -> None:
        """A send of this activity worked: INFO if the layer had been reported down."""
        if self.health.down:
            self.health.ok(self.activity)
