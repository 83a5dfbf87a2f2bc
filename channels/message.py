"""`Message`: a received message with its channel and layer (C-17, C-18).

The store that defers sends to the end of a consumer (C-19) lives in
`channels.pending`; its 1.x names stay importable from here.
"""

from __future__ import annotations

import copy
from typing import TYPE_CHECKING, Any

from .channel import Channel
from .layers.base import DELIVERY_KEY
from .pending import PendingMessageStore, pending_message_store
from .retry import layer_out_of_memory

if TYPE_CHECKING:
    from django.contrib.sessions.backends.base import SessionBase

__all__ = ["Message", "PendingMessageStore", "layer_out_of_memory", "pending_message_store"]


def _channel(name: Any, channel_layer: Any) -> Channel:
    """``Channel(name, channel_layer=channel_layer)``; for a str name on a given layer
    (every received message), the two attributes set without the constructor's call
    (issue 20)."""
    if type(name) is not str or not channel_layer:
        return Channel(name, channel_layer=channel_layer)
    channel = _new(Channel)
    channel.name = name
    channel.channel_layer = channel_layer
    return channel


_new = object.__new__


class Message:
    """A received message: content plus the channel and layer it came from (C-17)."""

    # Set only by the consumer decorators, never here: `channels.sessions` (C-44, C-46)
    # and `channels.auth` (C-48..C-50). Declared so that their readers type-check.
    channel_session: SessionBase
    http_session: SessionBase | None
    user: Any

    # Issue 17: the delivery of an at-least-once message (`channels.layers.delivery`):
    # its id for the layer's ack/nack (None on at-most-once channels), how many times it
    # has been delivered (1 the first time) and whether this is a redelivery.
    delivery_id: str | None = None
    delivery_count = 1
    redelivered = False

    def __init__(self, content: dict, channel_name: str, channel_layer: Any) -> None:
        if DELIVERY_KEY in content:
            delivery = content.pop(DELIVERY_KEY)
            self.delivery_id = delivery["id"]
            self.delivery_count = count = delivery["count"]
            self.redelivered = count > 1
        self.content = content
        self.channel_layer = channel_layer
        self.channel = _channel(channel_name, channel_layer)
        reply = content.get("reply_channel")
        self.reply_channel = _channel(reply, channel_layer) if reply else None

    def __getitem__(self, key: str) -> Any:
        return self.content[key]

    def __setitem__(self, key: str, value: Any) -> None:
        self.content[key] = value

    def __contains__(self, key: str) -> bool:
        return key in self.content

    def keys(self):
        return self.content.keys()

    def values(self):
        return self.content.values()

    def items(self):
        return self.content.items()

    def get(self, key: str, default: Any = None) -> Any:
        return self.content.get(key, default)

    def copy(self) -> Message:
        """A new message of the same class with a deep copy of the content (C-18)."""
        return type(self)(copy.deepcopy(self.content), self.channel.name, self.channel_layer)

    def __repr__(self) -> str:
        return f"<{type(self).__name__} on {self.channel.name}>"
