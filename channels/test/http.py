"""Deprecated: `HttpClient` is `WSClient` (C-8). Import from `channels.test` instead."""

import warnings

from .websocket import WSClient

warnings.warn(
    "channels.test.http is deprecated; use channels.test.WSClient instead",
    DeprecationWarning,
    stacklevel=2,
)

HttpClient = WSClient

__all__ = ["HttpClient"]
