"""Utilities for testing consumers: test cases, clients, route overrides (C-67..C-71)."""

from .base import ChannelTestCase, Client, TransactionChannelTestCase, apply_routes
from .liveserver import ChannelLiveServerTestCase
from .websocket import WSClient

# C-8: the 1.x name; `HttpClient` and `WSClient` are the same class.
HttpClient = WSClient

__all__ = [
    "ChannelLiveServerTestCase",
    "ChannelTestCase",
    "Client",
    "HttpClient",
    "TransactionChannelTestCase",
    "WSClient",
    "apply_routes",
]
