"""WebSocket consumers: raw, JSON, and stream (de)multiplexing (C-54..C-57)."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any, ClassVar

from django.core.serializers.json import DjangoJSONEncoder

from .. import auth, sessions
from ..channel import Channel, Group
from ..exceptions import SendNotAvailableOnDemultiplexer
from ..message import Message
from ..utils import reply_channel_of
from .base import BaseConsumer

__all__ = [
    "JsonWebsocketConsumer",
    "WebsocketConsumer",
    "WebsocketDemultiplexer",
    "WebsocketMultiplexer",
]


def frame_message(text: str | None, bytes: bytes | None, close: bool | int) -> dict:
    """One reply message: `text`, else `bytes`, plus `close` when truthy (C-54)."""
    message: dict[str, Any] = {}
    if close:
        message["close"] = close
    if text is not None:
        message["text"] = text
    elif bytes is not None:
        message["bytes"] = bytes
    else:
        raise ValueError("You must pass text or bytes")
    return message


class WebsocketConsumer(BaseConsumer):
    """Connect/receive/disconnect hooks for one WebSocket connection (C-54).

    Subclasses override `connect`, `receive` and `disconnect`; the ``raw_``
    methods do the bookkeeping around them (group membership, frame decoding).
    """

    method_mapping: ClassVar[dict[str, str]] = {
        "websocket.connect": "raw_connect",
        "websocket.receive": "raw_receive",
        "websocket.disconnect": "raw_disconnect",
    }

    # Take the user from the HTTP session at connect (either implies channel_session_user).
    http_user = False
    http_user_and_session = False
    # Run this connection's messages strictly in `order` (C-45).
    strict_ordering = False
    # Groups every connection joins at connect and leaves at disconnect.
    groups: ClassVar[list[str] | None] = None

    def get_handler(self, message: Message, **kwargs: Any) -> Callable:
        if self.http_user or self.http_user_and_session:
            self.channel_session_user = True
        self.path = message["path"]
        handler = super().get_handler(message, **kwargs)
        if self.http_user_and_session:
            handler = auth.channel_and_http_session_user_from_http(handler)
        elif self.http_user:
            handler = auth.channel_session_user_from_http(handler)
        if getattr(self, "slight_ordering", False):
            raise ValueError(
                "Slight ordering is now always on. Please remove `slight_ordering=True`."
            )
        if self.strict_ordering:
            return sessions.enforce_ordering(handler, slight=False)
        return handler

    def _reply_channel(self) -> Channel:
        reply_channel = self.message.reply_channel
        if reply_channel is None:  # raises, naming the consumer
            return reply_channel_of(self.message, type(self).__name__)
        return reply_channel

    def connection_groups(self, **kwargs: Any) -> list[str]:
        """Group names this connection belongs to; override to depend on route kwargs."""
        return self.groups or []

    def raw_connect(self, message: Message, **kwargs: Any) -> None:
        for group in self.connection_groups(**kwargs):
            Group(group, channel_layer=message.channel_layer).add(
                reply_channel_of(message, type(self).__name__)
            )
        self.connect(message, **kwargs)

    def connect(self, message: Message, **kwargs: Any) -> None:
        """Accept the connection; override to check it, or raise `DenyConnection`."""
        self._reply_channel().send({"accept": True})

    def raw_receive(self, message: Message, **kwargs: Any) -> None:
        # exactly one of text/bytes is set; the other is None or absent.
        text = message.get("text")
        if text is not None:
            self.receive(text=text, **kwargs)
        else:
            self.receive(bytes=message.get("bytes"), **kwargs)

    def receive(self, text: str | None = None, bytes: bytes | None = None, **kwargs: Any) -> None:
        """Handle one frame; override."""

    def send(
        self, text: str | None = None, bytes: bytes | None = None, close: bool = False
    ) -> None:
        """Send one frame to this connection (and close it if `close`)."""
        self._reply_channel().send(frame_message(text, bytes, close))

    @classmethod
    def group_send(
        cls, name: str, text: str | None = None, bytes: bytes | None = None, close: bool = False
    ) -> None:
        """Send one frame to every connection in group `name`."""
        Group(name).send(frame_message(text, bytes, close))

    def close(self, status: bool | int = True) -> None:
        """Close this connection; `status` is True (code 1000) or a close code."""
        self._reply_channel().send({"close": status})

    def raw_disconnect(self, message: Message, **kwargs: Any) -> None:
        for group in self.connection_groups(**kwargs):
            Group(group, channel_layer=message.channel_layer).discard(
                reply_channel_of(message, type(self).__name__)
            )
        self.disconnect(message, **kwargs)

    def disconnect(self, message: Message, **kwargs: Any) -> None:
        """Handle the closed connection; override."""


class JsonWebsocketConsumer(WebsocketConsumer):
    """A `WebsocketConsumer` exchanging JSON text frames (C-55)."""

    def raw_receive(self, message: Message, **kwargs: Any) -> None:
        text = message.get("text")
        if text is None:
            raise ValueError(
                "No text section for incoming WebSocket frame! JsonWebsocketConsumer only "
                "accepts text frames holding JSON"
            )
        self.receive(self.decode_json(text), **kwargs)

    # The 1.x signatures (C-55): JSON consumers take decoded content where the raw consumer
    # takes text/bytes, so these overrides are incompatible with `WebsocketConsumer`'s.
    def receive(self, content: Any, **kwargs: Any) -> None:  # type: ignore[override]
        """Handle one decoded JSON frame; override."""

    def send(self, content: Any, close: bool = False) -> None:  # type: ignore[override]
        super().send(text=self.encode_json(content), close=close)

    @classmethod
    def group_send(cls, name: str, content: Any, close: bool = False) -> None:  # type: ignore[override]
        WebsocketConsumer.group_send(name, cls.encode_json(content), close=close)

    @classmethod
    def decode_json(cls, text: str) -> Any:
        return json.loads(text)

    @classmethod
    def encode_json(cls, content: Any) -> str:
        return json.dumps(content)


class WebsocketMultiplexer:
    """Sends one stream's payloads over a shared socket as ``{stream, payload}`` (C-56)."""

    def __init__(self, stream: str, reply_channel: Channel) -> None:
        self.stream = stream
        self.reply_channel = reply_channel

    def send(self, payload: Any) -> None:
        self.reply_channel.send(self.encode(self.stream, payload))

    @classmethod
    def encode_json(cls, content: Any) -> str:
        return json.dumps(content, cls=DjangoJSONEncoder)

    @classmethod
    def encode(cls, stream: str, payload: Any) -> dict:
        return {"text": cls.encode_json({"stream": stream, "payload": payload})}

    @classmethod
    def group_send(cls, name: str, stream: str, payload: Any, close: bool = False) -> None:
        message = cls.encode(stream, payload)
        if close:
            message["close"] = True
        Group(name).send(message)


class WebsocketDemultiplexer(JsonWebsocketConsumer):
    """Routes ``{stream, payload}`` frames to one consumer per stream (C-57).

    Each consumer gets a ``multiplexer`` keyword to answer on its own stream;
    the demultiplexer itself cannot send.
    """

    # stream name -> consumer callable (a consumer class, `Binding.consumer`, ...)
    consumers: ClassVar[dict[str, Callable]] = {}
    multiplexer_class = WebsocketMultiplexer

    def connect(self, message: Message, **kwargs: Any) -> None:
        """Accept, then forward the connect to every stream's consumer."""
        self._reply_channel().send({"accept": True})
        self._forward_to_all(message, **kwargs)

    def disconnect(self, message: Message, **kwargs: Any) -> None:
        """Forward the disconnect to every stream's consumer."""
        self._forward_to_all(message, **kwargs)

    def _forward_to_all(self, message: Message, **kwargs: Any) -> None:
        for stream, consumer in self.consumers.items():
            kwargs["multiplexer"] = self.multiplexer_class(stream, self._reply_channel())
            consumer(message, **kwargs)

    def receive(self, content: Any, **kwargs: Any) -> None:  # type: ignore[override]  # C-55
        if not (isinstance(content, dict) and "stream" in content and "payload" in content):
            raise ValueError(
                "Invalid multiplexed frame received: expected a JSON object with 'stream' "
                "and 'payload' keys"
            )
        stream = content["stream"]
        consumer = self.consumers.get(stream) if isinstance(stream, str) else None
        if consumer is None:
            raise ValueError(
                f"Invalid multiplexed frame received: stream {stream!r} is not mapped in "
                f"{type(self).__name__}.consumers"
            )
        payload = content["payload"]
        if not isinstance(payload, dict):
            raise ValueError(
                f"Multiplexed frame payload for stream {stream!r} is not a dict "
                f"(got {type(payload).__name__})"
            )
        # The stream's consumer is a JSON consumer that decodes `text` itself.
        self.message.content["text"] = self.encode_json(payload)
        kwargs["multiplexer"] = self.multiplexer_class(stream, self._reply_channel())
        if hasattr(consumer, "send"):
            # Replies must go through the multiplexer; a bare send would be unframed.
            consumer.send = self.send
        consumer(self.message, **kwargs)

    def send(self, *args: Any, **kwargs: Any) -> None:
        raise SendNotAvailableOnDemultiplexer(
            "Use multiplexer.send of the multiplexer kwarg to send on a stream."
        )

    @classmethod
    def group_send(cls, name: str, stream: str, payload: Any, close: bool = False) -> None:  # type: ignore[override]
        raise SendNotAvailableOnDemultiplexer(
            "Use WebsocketMultiplexer.group_send to send to a group on a stream."
        )

    @classmethod
    def encode(cls, stream: str, payload: Any) -> dict:
        """`multiplexer_class.encode`: a stream frame for sending to a group yourself."""
        return cls.multiplexer_class.encode(stream, payload)
