"""daphne's metrics endpoint: ``/metrics``, ``/healthz`` and ``/readyz`` on a port of their own.

`listen_metrics` serves, on the reactor, a tiny Twisted site separate from the
application's listeners (``--metrics-port``; ``--metrics-host`` defaults to
loopback, so metrics are not exposed by accident):

- ``/metrics``: the registry in Prometheus' text format (`generate_latest`), rendered
  in the reactor's thread pool, since a layer collector may wait for Redis;
- ``/healthz``: 200 ``ok`` while the process runs (liveness);
- ``/readyz``: 200 with the reason when ``ready()`` gives ``(True, reason)``, else
  503 with the reason (readiness: the layer answers, the server is not draining).
  ``ready`` may return a Deferred (e.g. a ``deferToThread`` ping of the layer), so
  a slow check never blocks the reactor; an exception counts as not ready.

Requests to this site are not access-logged: a scraper every 15 s would fill the log.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any, cast

from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest
from twisted.internet import defer, threads
from twisted.internet.interfaces import IListeningPort
from twisted.python.failure import Failure
from twisted.web import http, resource, server

from .errors import ListenFailed

__all__ = [
    "DEFAULT_METRICS_HOST",
    "MetricsListenFailed",
    "ReadyCheck",
    "listen_metrics",
    "metrics_site",
    "server_ready",
]

logger = logging.getLogger("daphne.server")

DEFAULT_METRICS_HOST = "127.0.0.1"

# ready() -> (ready?, reason), or a Deferred firing with that pair.
ReadyCheck = Callable[[], Any]

_TEXT = b"text/plain; charset=utf-8"


class MetricsListenFailed(ListenFailed):
    """``--metrics-port`` cannot listen (port taken, no permission): `Server.run()` raises
    it as it does `ListenFailed` for the main endpoints, worded for the metrics port."""

    def __str__(self) -> str:
        return f"cannot serve metrics on {self.address}: {self.reason}"


class _Metrics(resource.Resource):
    isLeaf = True

    def __init__(self, registry: CollectorRegistry, reactor: Any) -> None:
        super().__init__()
        self.registry = registry
        self.reactor = reactor

    def render_GET(self, request: server.Request) -> Any:
        # Rendered in the reactor's thread pool: a registered `LayerCollector` reads the
        # channel layer (Redis round trips) at collect time, and the reactor never waits
        # for Redis (issue 15). prometheus_client's metrics are thread-safe.
        request.setHeader(b"content-type", CONTENT_TYPE_LATEST.encode("ascii"))
        request.setHeader(b"cache-control", b"no-store")
        gone: list[bool] = []
        request.notifyFinish().addErrback(lambda _: gone.append(True))

        def answer(result: Any) -> None:
            if gone:
                return
            if isinstance(result, Failure):
                logger.error("Cannot render metrics: %s", result.getErrorMessage())
                request.setResponseCode(500)
                request.setHeader(b"content-type", _TEXT)
                result = b"cannot render metrics\n"
            request.write(result)
            request.finish()

        threads.deferToThreadPool(
            self.reactor, self.reactor.getThreadPool(), generate_latest, self.registry
        ).addBoth(answer)
        return server.NOT_DONE_YET


class _Health(resource.Resource):
    isLeaf = True

    def render_GET(self, request: server.Request) -> bytes:
        request.setHeader(b"content-type", _TEXT)
        return b"ok\n"


class _Ready(resource.Resource):
    isLeaf = True

    def __init__(self, ready: ReadyCheck) -> None:
        super().__init__()
        self.ready = ready

    def render_GET(self, request: server.Request) -> Any:
        request.setHeader(b"content-type", _TEXT)
        request.setHeader(b"cache-control", b"no-store")
        finished: list[bool] = []
        request.notifyFinish().addErrback(lambda _: finished.append(True))

        def answer(result: Any) -> None:
            if finished:  # the scraper hung up while the check ran
                return
            if isinstance(result, Failure):
                ok, reason = False, f"readiness check failed: {result.getErrorMessage()}"
            else:
                ok, reason = result
            request.setResponseCode(200 if ok else 503)
            request.write(f"{reason}\n".encode())
            request.finish()

        defer.maybeDeferred(self.ready).addBoth(answer)
        return server.NOT_DONE_YET


class _QuietSite(server.Site):
    """A `Site` that writes no access log line per request."""

    noisy = False

    def log(self, request: http.Request) -> None:
        pass


def metrics_site(registry: CollectorRegistry, ready: ReadyCheck, reactor: Any) -> server.Site:
    root = resource.Resource()
    # Resources provide IResource through zope's @implementer, which mypy does not read.
    root.putChild(b"metrics", cast(resource.IResource, _Metrics(registry, reactor)))
    root.putChild(b"healthz", cast(resource.IResource, _Health()))
    root.putChild(b"readyz", cast(resource.IResource, _Ready(ready)))
    return _QuietSite(root)


def listen_metrics(
    reactor: Any,
    host: str,
    port: int,
    registry: CollectorRegistry,
    ready: ReadyCheck,
) -> IListeningPort:
    """Serve the metrics site on ``host:port`` (``port`` 0 picks a free one)."""
    return reactor.listenTCP(
        port, metrics_site(registry, ready, reactor), interface=host or DEFAULT_METRICS_HOST
    )


def server_ready(factory: Any) -> ReadyCheck:
    """``/readyz`` for a daphne `HTTPFactory`: not draining (D-17) and the layer answers.

    Reads state daphne keeps anyway, so a probe costs no layer call: the factory's
    `LayerHealth` is marked down by a failed request send or reply receive (the
    reply reader always has a receive in flight, so an outage is seen within the
    layer's blocking timeout even when no client is connected) and up by the next
    one that works.
    """

    def ready() -> tuple[bool, str]:
        if factory.draining:
            return False, "draining: the server is stopping"
        health = factory.layer_health
        if health.down:
            return False, f"channel layer {health.description} is unreachable"
        return True, "ready"

    return ready
