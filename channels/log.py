"""Console logging for the management commands (C-76)."""

from __future__ import annotations

import logging

__all__ = ["handler", "setup_logger"]

handler = logging.StreamHandler()

_FORMAT = "%(asctime)s - %(levelname)s - %(module)s - %(message)s"
_DAPHNE_LOGGERS = ("daphne.ws_protocol", "daphne.http_protocol", "daphne.server")


def setup_logger(name: str, verbosity: int = 1) -> logging.Logger:
    """Send `name` and daphne's loggers to the module-level `handler`."""
    # Looked up at call time so tests can replace `channels.log.handler`.
    current = globals()["handler"]
    current.setFormatter(logging.Formatter(_FORMAT))
    level = logging.DEBUG if verbosity > 1 else logging.INFO
    logger = logging.getLogger(name)
    _attach(logger, current, level)
    for daphne_name in _DAPHNE_LOGGERS:
        _attach(logging.getLogger(daphne_name), current, level)
    return logger


def _attach(logger: logging.Logger, handler: logging.Handler, level: int) -> None:
    if handler not in logger.handlers:
        logger.addHandler(handler)
    logger.setLevel(level)
    logger.propagate = False
