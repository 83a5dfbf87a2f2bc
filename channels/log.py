"""Console logging for the management commands (C-76, issue 14).

One handler and one format (`daphne.logfmt.LOG_FORMAT`, shared with the ``daphne``
command) for everything runworker, runserver and rundelay print: Channels' own logger,
daphne's, and the channel layers' (``asgi_redis``, ``asgi_ipc``, the in-memory layer),
whose lines would otherwise go to Python's last-resort handler, without time or level,
or not appear at all (INFO). `describe_layer` and `LayerHealth` word and deduplicate the
worker's outage lines.
"""

from __future__ import annotations

import logging
import threading
import weakref
from typing import Any
from urllib.parse import urlsplit, urlunsplit

from daphne.layer_health import Outage, outage_of
from daphne.logfmt import LOG_FORMAT

__all__ = ["LayerHealth", "describe_layer", "handler", "setup_logger"]

handler = logging.StreamHandler()

_DAPHNE_LOGGERS = ("daphne.ws_protocol", "daphne.http_protocol", "daphne.server")
# The layer packages' loggers. A project that configured one of them itself (LOGGING)
# keeps its own set-up.
LAYER_LOGGERS = ("asgi_redis", "asgi_ipc", "channels.layers")


def setup_logger(name: str, verbosity: int = 1) -> logging.Logger:
    """Send `name`, daphne's and the layers' loggers to the module-level `handler`."""
    # Looked up at call time so tests can replace `channels.log.handler`.
    current = globals()["handler"]
    current.setFormatter(logging.Formatter(LOG_FORMAT))
    level = logging.DEBUG if verbosity > 1 else logging.INFO
    logger = logging.getLogger(name)
    _attach(logger, current, level)
    for daphne_name in _DAPHNE_LOGGERS:
        _attach(logging.getLogger(daphne_name), current, level)
    for layer_name in LAYER_LOGGERS:
        layer_logger = logging.getLogger(layer_name)
        if all(existing is current for existing in layer_logger.handlers):
            _attach(layer_logger, current, level)
    return logger


def _attach(logger: logging.Logger, handler: logging.Handler, level: int) -> None:
    if handler not in logger.handlers:
        logger.addHandler(handler)
    logger.setLevel(level)
    logger.propagate = False


def describe_layer(layer: Any) -> str:
    """``str(layer)`` plus where the layer's servers are, without passwords.

    ``default (asgi_redis.core.RedisChannelLayer at redis://127.0.0.1:6379/0)``: a layer
    whose raw layer lists its servers in ``hosts`` (the Redis layers: URLs, or
    ``(host, port)`` pairs for Sentinels) names them; any other is just ``str(layer)``.
    """
    hosts = getattr(getattr(layer, "channel_layer", layer), "hosts", None)
    if not isinstance(hosts, list | tuple) or not hosts:
        return str(layer)
    places = ", ".join(_without_password(host) for host in hosts)
    text = str(layer)
    if text.endswith(")"):
        return f"{text[:-1]} at {places})"
    return f"{text} at {places}"


def _without_password(host: Any) -> str:
    if isinstance(host, list | tuple) and len(host) == 2:
        return f"{host[0]}:{host[1]}"
    if not isinstance(host, str):
        return "?"
    try:
        parts = urlsplit(host)
        netloc = parts.netloc
    except ValueError:
        return "?"
    if "@" not in netloc:
        return host
    userinfo, _, address = netloc.rpartition("@")
    # "user:password" keeps the user; a lone word may be a password (redis://secret@host).
    user, colon, _ = userinfo.partition(":")
    credentials = f"{user}:***@" if colon and user else "***@"
    return urlunsplit(parts._replace(netloc=credentials + address))


class LayerHealth:
    """Whether receiving from a layer fails, shared by every worker on that layer, so
    an outage is logged once (ERROR) and its end once (INFO) per process, not once per
    thread (L-62, issue 14). Under runserver daphne shares the process: whichever of
    the two meets the outage first logs it (`daphne.layer_health.outage_of`)."""

    _by_layer: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()
    _registry_lock = threading.Lock()

    def __init__(self, outage: Outage | None = None) -> None:
        self._lock = threading.Lock()
        self._failing = False
        self._outage = outage or Outage()

    @classmethod
    def of(cls, layer: Any) -> LayerHealth:
        with cls._registry_lock:
            try:
                health = cls._by_layer.get(layer)
                if health is None:
                    health = cls._by_layer[layer] = cls(outage_of(layer))
            except TypeError:  # not weak-referenceable: this worker's own
                health = cls(outage_of(layer))
        return health

    @property
    def failing(self) -> bool:
        """Whether the last receive from the layer failed (an outage is on)."""
        return self._failing

    def failed(self) -> bool:
        """Record a failure; True if it starts an outage nobody in the process reported."""
        with self._lock:
            started, self._failing = not self._failing, True
        return started and self._outage.begin()

    def recovered(self) -> bool:
        """Record a success; True if it ends an outage that was reported and not yet
        reported over."""
        with self._lock:
            ended, self._failing = self._failing, False
        return ended and self._outage.end()
