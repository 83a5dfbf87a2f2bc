"""Daphne: the HTTP/WebSocket protocol server of Channels' channel-layer design (D-1)."""

__version__ = "1.4.2"
