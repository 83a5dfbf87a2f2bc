"""The server's ``--metrics-port`` listener (issue 18): ``/metrics``, ``/healthz`` and
``/readyz``, opened by `Server.start()` and closed last when the server stops."""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

from .listening import listen_failure
from .metrics import DaphneMetrics
from .metrics_http import MetricsListenFailed, listen_metrics, server_ready

if TYPE_CHECKING:
    from .http_factory import HTTPFactory
    from .server import Server

__all__ = ["close_metrics", "start_metrics"]

logger = logging.getLogger("daphne.server")


def start_metrics(server: Server, factory: HTTPFactory) -> None:
    """Listen on ``server.config.metrics_port``; the connections then report to
    ``factory.metrics`` (`NULL_METRICS` when this is off or cannot listen).

    Sets ``server.metrics`` and ``server.metrics_listener``. A port that cannot listen
    is logged for a server only `start()`-ed, and raised by `Server.run()` otherwise.
    """
    # D-4: `channels` is imported only when metrics are on, never at import time.
    from channels.layers.collector import LayerCollector

    metrics = DaphneMetrics()
    alias = getattr(server.channel_layer, "alias", None)
    collector = LayerCollector(
        server.channel_layer, alias=alias if isinstance(alias, str) else "default"
    )
    metrics.registry.register(collector)
    host, port = server.config.metrics_host, server.config.metrics_port
    assert port is not None
    try:
        server.metrics_listener = listen_metrics(
            server.reactor, host, port, metrics.registry, server_ready(factory)
        )
    except Exception as error:  # port taken, no permission: as the main port's
        failed = listen_failure(f"metrics:{host}:{port}", error)
        problem = MetricsListenFailed(failed.endpoint, failed.address, failed.reason, failed.errno)
        if not server._running:
            logger.error("%s", problem)
        elif server.listen_error is None:
            server.listen_error = problem
        return
    server.metrics = factory.metrics = metrics
    address = server.metrics_listener.getHost()
    logger.info("Serving metrics on http://%s:%d/metrics", address.host, address.port)


def close_metrics(server: Server) -> None:
    """Stop listening on the metrics port, if the server does."""
    listener, server.metrics_listener = server.metrics_listener, None
    if listener is not None:
        listener.stopListening()
