"""Small helpers shared by the Django side."""

from __future__ import annotations

import types
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .channel import Channel
    from .message import Message

__all__ = ["name_that_thing"]


def reply_channel_of(message: Message, user: str) -> Channel:
    """`message`'s reply channel, which `user` (a decorator or consumer) needs.

    Connection messages (``http.request``, ``websocket.*``) always carry one (A-74);
    a ValueError names `user` for a message routed there without it.
    """
    if message.reply_channel is None:
        raise ValueError(
            f"No reply_channel sent with the message; {user} can only be used on messages "
            "containing it."
        )
    return message.reply_channel


def name_that_thing(thing: Any) -> str:
    """A readable dotted name for a consumer, layer or other object (C-7). Never raises."""
    try:
        return _name(thing)
    except Exception:  # naming is used inside error reporting; it must not fail
        return object.__repr__(thing)


def _name(thing: Any) -> str:
    if type(thing).__module__.startswith("unittest.mock"):
        return "<mock>"
    if isinstance(thing, types.MethodType) and not isinstance(thing.__self__, type):
        owner = type(thing.__self__)
        return f"{owner.__module__}.{owner.__qualname__}.{thing.__func__.__name__}"
    if isinstance(thing, (types.FunctionType, types.BuiltinFunctionType, type, types.MethodType)):
        module = getattr(thing, "__module__", None)
        name = getattr(thing, "__qualname__", None) or getattr(thing, "__name__", None)
        if module and name:
            return f"{module}.{name}"
    if hasattr(type(thing), "__module__") and not isinstance(
        thing, (str, bytes, int, float, list, tuple, dict, set, type(None))
    ):
        cls = type(thing)
        return f"{cls.__module__}.{cls.__qualname__}"
    return repr(thing)
