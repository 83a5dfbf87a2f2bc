"""The ASGI-1 channel-layer contract (A-2): base class, in-memory layer, conformance suite.

Importable without Django settings; the conformance suite is imported on demand
(`channels.layers.conformance`) because it pulls in `unittest`.
"""

from .base import (
    BaseChannelLayer,
    ChannelFull,
    InvalidChannelName,
    InvalidGroupName,
    InvalidMessage,
    LayerUnavailable,
    LayerUsageError,
    MessageTooLarge,
    UnsupportedMessageValue,
)

__all__ = [
    "BaseChannelLayer",
    "ChannelFull",
    "InvalidChannelName",
    "InvalidGroupName",
    "InvalidMessage",
    "LayerUnavailable",
    "LayerUsageError",
    "MessageTooLarge",
    "UnsupportedMessageValue",
]
