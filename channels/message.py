"""`Message` and the store that defers sends to the end of a consumer (C-17..C-19)."""

from __future__ import annotations

import copy
import threading
import time
from typing import Any

from .signals import consumer_finished, consumer_started

__all__ = ["Message", "PendingMessageStore", "pending_message_store"]


class PendingMessageStore:
    """Per-thread queue of sends made inside a consumer, flushed when it finishes (C-19)."""

    # Bounds, as in 1.1 (A-89 note): give up on one message after `retry_time`
    # seconds; never wait longer than `retry_interval` between tries.
    retry_time = 2
    retry_interval = 0.2

    def __init__(self) -> None:
        self.threadlocal = threading.local()

    def prepare(self, **kwargs: Any) -> None:
        self.threadlocal.messages = []

    @property
    def active(self) -> bool:
        return getattr(self.threadlocal, "messages", None) is not None

    def append(self, sender: Any, message: dict) -> None:
        self.threadlocal.messages.append((sender, message))

    def send_and_flush(self, **kwargs: Any) -> None:
        messages = getattr(self.threadlocal, "messages", None)
        if messages is None:
            return
        # Dropped first: sends below must go out at once, not back into this queue.
        self.threadlocal.messages = None
        for sender, message in messages:
            self._send_with_retry(sender, message)

    def _send_with_retry(self, sender: Any, message: dict) -> None:
        deadline = time.monotonic() + self.retry_time
        delay = 0.001
        while True:
            try:
                sender.send(message, immediately=True)
                return
            except sender.channel_layer.ChannelFull:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    raise RuntimeError(
                        f"Failed to send queued message to {sender.name} after retrying for "
                        f"{self.retry_time}s: the channel stayed full. Run more consumers for "
                        "it, raise the layer's capacity, or send with immediately=True and "
                        "handle ChannelFull yourself."
                    )
                time.sleep(min(delay, remaining))
                delay = min(delay * 2, self.retry_interval)


pending_message_store = PendingMessageStore()
consumer_started.connect(pending_message_store.prepare)
consumer_finished.connect(pending_message_store.send_and_flush)

# Imported after the store exists: channels.channel imports it from here.
from .channel import Channel  # noqa: E402


class Message:
    """A received message: content plus the channel and layer it came from (C-17)."""

    def __init__(self, content: dict, channel_name: str, channel_layer: Any) -> None:
        self.content = content
        self.channel_layer = channel_layer
        self.channel = Channel(channel_name, channel_layer=channel_layer)
        reply = content.get("reply_channel")
        self.reply_channel = Channel(reply, channel_layer=channel_layer) if reply else None

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
