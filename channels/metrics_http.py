"""The worker process's metrics endpoint, served from one daemon thread (issue 18).

``runworker --metrics-port PORT`` starts one `MetricsServer` per process however
many ``--threads`` run consumers: a `ThreadingHTTPServer` answering

- ``/metrics``: the registry in Prometheus' text format (`generate_latest`);
- ``/healthz``: 200 ``ok`` while the process runs;
- ``/readyz``: 200 with the reason when ``ready()`` gives ``(True, reason)``, else 503
  with the reason; an exception from ``ready`` counts as not ready. ``ready`` runs
  in the request's thread, so it may block (ping the layer) without stalling anything.

A second `serve_metrics` while one runs raises `MetricsEndpointRunning`: two
endpoints in one process would report the same registry twice.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest

__all__ = [
    "DEFAULT_METRICS_HOST",
    "MetricsEndpointRunning",
    "MetricsListenFailed",
    "MetricsServer",
    "serve_metrics",
    "worker_ready",
]

logger = logging.getLogger("django.channels")

DEFAULT_METRICS_HOST = "127.0.0.1"
# Seconds close() waits for the serving thread to end.
CLOSE_TIMEOUT = 5.0

ReadyCheck = Callable[[], tuple[bool, str]]

_lock = threading.Lock()
_running: MetricsServer | None = None


class MetricsEndpointRunning(RuntimeError):
    """This process already serves its metrics (one endpoint per process)."""


class MetricsListenFailed(OSError):
    """The metrics port could not be opened; the text names host and port."""


class _Handler(BaseHTTPRequestHandler):
    registry: CollectorRegistry
    ready: ReadyCheck
    server_version = "channels-metrics"

    def do_GET(self) -> None:
        path = self.path.split("?", 1)[0]
        if path == "/metrics":
            try:
                page = generate_latest(self.registry)
            except Exception as error:  # a collector's bug: say so, keep serving
                logger.error("Cannot render metrics: %s", error)
                self._answer(500, b"cannot render metrics\n")
                return
            self._answer(200, page, CONTENT_TYPE_LATEST)
        elif path == "/healthz":
            self._answer(200, b"ok\n")
        elif path == "/readyz":
            try:
                ok, reason = self.ready()
            except Exception as error:  # a failing check is "not ready", said in the reply
                ok, reason = False, f"readiness check failed: {error}"
            self._answer(200 if ok else 503, f"{reason}\n".encode())
        else:
            self._answer(404, b"not found\n")

    def _answer(self, status: int, body: bytes, content_type: str = "") -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type or "text/plain; charset=utf-8")
        self.send_header("Content-Length", str(len(body)))
        self.send_header("Cache-Control", "no-store")
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: Any) -> None:
        pass  # a scraper every 15 s would fill the log


class _Server(ThreadingHTTPServer):
    daemon_threads = True


class MetricsServer:
    """``/metrics``, ``/healthz`` and ``/readyz`` on ``host:port`` from a daemon thread."""

    def __init__(
        self, host: str, port: int, registry: CollectorRegistry, ready: ReadyCheck
    ) -> None:
        handler = type("MetricsHandler", (_Handler,), {"registry": registry, "ready": ready})
        handler.ready = staticmethod(ready)  # type: ignore[attr-defined]  # not bound
        try:
            self._httpd = _Server((host, port), handler)
        except OSError as error:
            raise MetricsListenFailed(
                error.errno, f"Cannot serve metrics on {host}:{port}: {error.strerror or error}"
            ) from error
        self.host = host
        self.port: int = self._httpd.server_address[1]
        self._thread = threading.Thread(
            target=self._httpd.serve_forever, name="channels-metrics", daemon=True
        )

    def start(self) -> MetricsServer:
        self._thread.start()
        return self

    def close(self) -> None:
        global _running
        if self._thread.is_alive():
            self._httpd.shutdown()
            self._thread.join(CLOSE_TIMEOUT)
        self._httpd.server_close()
        with _lock:
            if _running is self:
                _running = None


def serve_metrics(
    registry: CollectorRegistry,
    ready: ReadyCheck,
    port: int,
    host: str = DEFAULT_METRICS_HOST,
) -> MetricsServer:
    """Start this process's metrics endpoint (``port`` 0 picks a free one)."""
    global _running
    with _lock:
        if _running is not None:
            raise MetricsEndpointRunning(
                f"This process already serves metrics on {_running.host}:{_running.port}"
            )
        _running = MetricsServer(host or DEFAULT_METRICS_HOST, port, registry, ready).start()
        return _running


def worker_ready(worker: Any) -> ReadyCheck:
    """``/readyz`` for a `Worker` or `WorkerGroup`: not stopping, and receiving works.

    Uses the layer's shared `channels.log.LayerHealth`, which every receive loop of
    the process marks failing on a backend error and recovered on the next receive
    that works; a worker always has a blocking receive in flight, so an outage shows
    within the layer's blocking timeout. No layer call per probe.
    """
    from .log import LayerHealth, describe_layer

    health = LayerHealth.of(worker.channel_layer)
    description = describe_layer(worker.channel_layer)

    def ready() -> tuple[bool, str]:
        if worker.termed:
            return False, "stopping"
        if health.failing:
            return False, f"channel layer {description} is unreachable"
        return True, "ready"

    return ready
