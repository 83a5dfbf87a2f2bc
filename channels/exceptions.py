"""Exceptions consumers raise to steer the worker and the handler (C-66)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from .utils import reply_channel_of

if TYPE_CHECKING:
    from .message import Message

__all__ = [
    "ChannelSocketException",
    "ConsumeLater",
    "DenyConnection",
    "RequestAborted",
    "RequestTimeout",
    "ResponseLater",
    "SendNotAvailableOnDemultiplexer",
    "WebsocketCloseException",
]


class ConsumeLater(Exception):
    """Put the message back on its channel and try again later (C-32)."""


class ResponseLater(Exception):
    """A view hands its HTTP response over to another consumer (C-37)."""


class RequestTimeout(Exception):
    """The request body did not arrive within `body_receive_timeout` (C-35)."""


class RequestAborted(Exception):
    """The client went away while the request body was streaming (C-35)."""


class DenyConnection(Exception):
    """Refuse a `websocket.connect`; the worker answers ``{"close": True}`` (C-32)."""


class ChannelSocketException(Exception):
    """An exception carrying an action the worker performs with `run(message)`."""

    def run(self, message: Message) -> None:
        raise NotImplementedError(f"{type(self).__name__} must implement run(message)")


class WebsocketCloseException(ChannelSocketException):
    """Close the WebSocket the message came from, with an optional close code (C-66)."""

    def __init__(self, code: int | None = None) -> None:
        # close codes are 1000 or 3000-4999.
        if code is not None and (
            isinstance(code, bool)
            or not isinstance(code, int)
            or not (code == 1000 or 3000 <= code <= 4999)
        ):
            raise ValueError(f"Invalid WebSocket close code {code!r}: use None, 1000 or 3000-4999")
        super().__init__(code)
        self._code = code

    def run(self, message: Message) -> None:
        # The incoming channel tells us it is a socket; Daphne's reply channel names
        # ("daphne.response.…!…") carry no "websocket" prefix to test.
        if not message.channel.name.startswith("websocket."):
            raise ValueError(
                "You cannot raise WebsocketCloseException from a non-websocket handler "
                f"(message came from {message.channel.name!r})"
            )
        reply_channel_of(message, "WebsocketCloseException").send({"close": self._code or True})


class SendNotAvailableOnDemultiplexer(Exception):
    """`send` was called on a demultiplexer; send through its multiplexer (C-57)."""
