"""Fresh in-memory layers for the core runtime tests (no mocks: a real layer)."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from channels.asgi import ChannelLayerWrapper, channel_layers
from channels.layers.inmemory import ChannelLayer


@contextmanager
def fresh_layer(routing: Any = (), alias: str = "default", **config: Any) -> Iterator[Any]:
    """Install a wrapper around a new in-memory layer as `alias`; restore afterwards."""
    wrapper = ChannelLayerWrapper(ChannelLayer(**config), alias, list(routing))
    old = channel_layers.set(alias, wrapper)
    try:
        yield wrapper
    finally:
        if old is None:
            channel_layers.backends.pop(alias, None)
        else:
            channel_layers.set(alias, old)
