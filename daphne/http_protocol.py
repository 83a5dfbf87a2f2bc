"""HTTP/1.1 requests ⇄ ASGI-1 ``http.*`` messages: the 1.4 import path (D-16..D-37).

The code lives in one module per concept; this module keeps 1.4's names importable:

- `WebRequest` (`web_request`): one request, the adapter over its `HttpExchange`
  (`http_state`, the sans-I/O decisions);
- `HTTPFactory` (`http_factory`): builds connections, owns the reply-channel registry
  the reply reader dispatches into (D-22), holds the `ServerConfig`;
- `HTTPChannel` (`http_channel`): Twisted's parser with D-64's edge limits.
"""

from __future__ import annotations

from .http_channel import HTTPChannel
from .http_factory import HTTPFactory
from .web_request import WebRequest

__all__ = ["HTTPChannel", "HTTPFactory", "WebRequest"]
