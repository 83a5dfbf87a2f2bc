"""`Channel` and `Group`: named destinations on a channel layer (C-14..C-16)."""

from __future__ import annotations

from typing import Any

from . import DEFAULT_CHANNEL_LAYER
from .asgi import channel_layers
from .pending import pending_message_store

__all__ = ["Channel", "Group"]


class _Named:
    """A name on a layer: `name` (str, or ASCII bytes decoded) and `channel_layer` (C-14).

    No ``__slots__``: as in 1.x, code may set attributes on these objects and tests patch
    methods of one instance (``mock.patch.object(message.reply_channel, "send")``).
    """

    def __init__(
        self,
        name: str | bytes,
        alias: str = DEFAULT_CHANNEL_LAYER,
        channel_layer: Any = None,
    ) -> None:
        self.name = name.decode("ascii") if isinstance(name, bytes) else name
        self.channel_layer = channel_layer if channel_layer else channel_layers[alias]

    def __str__(self) -> str:
        return self.name

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.name}>"


class Channel(_Named):
    """A channel on a layer; `send` defers to the end of the running consumer (C-14, C-15)."""

    # The pending store may send this class's queued messages with the layer's
    # send_many; not a subclass's, which may override `send` (read from the class's
    # own __dict__ by `PendingMessageStore.batchable`).
    _batchable = True

    def send(self, content: dict, immediately: bool = False) -> None:
        if not isinstance(content, dict):
            raise TypeError(f"You can only send dicts as content on channels, not {content!r}")
        if immediately or not pending_message_store.queue(self, content):
            self.channel_layer.send(self.name, content)


class Group(_Named):
    """A group on a layer: add/discard members and broadcast to them (C-16)."""

    def add(self, channel: Channel | str) -> None:
        if isinstance(channel, Channel):
            channel = channel.name
        self.channel_layer.group_add(self.name, channel)

    def discard(self, channel: Channel | str) -> None:
        if isinstance(channel, Channel):
            channel = channel.name
        self.channel_layer.group_discard(self.name, channel)

    def send(self, content: dict, immediately: bool = False) -> None:
        # C-16: a ValueError here, unlike Channel.send, as in Channels 1.1.
        if not isinstance(content, dict):
            raise ValueError(f"You can only send dicts as content on groups, not {content!r}")
        if immediately or not pending_message_store.queue(self, content):
            self.channel_layer.send_group(self.name, content)
