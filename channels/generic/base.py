"""`BaseConsumer`: a class whose instantiation handles one message (C-53)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, ClassVar

from .. import auth, sessions
from ..message import Message
from ..routing import route_class

__all__ = ["BaseConsumer"]


class BaseConsumer:
    """Dispatches a message to the method named for its channel in `method_mapping`.

    The class itself is the consumer: the router calls ``Consumer(message,
    **kwargs)``, and `channel_names` tells `route_class` what to listen on.
    """

    method_mapping: ClassVar[dict[str, str]] = {}
    channel_session = False
    channel_session_user = False

    def __init__(self, message: Message, **kwargs: Any) -> None:
        self.message = message
        self.kwargs = kwargs
        self.dispatch(message, **kwargs)

    @classmethod
    def channel_names(cls) -> set[str]:
        return set(cls.method_mapping)

    @classmethod
    def as_route(cls, attrs: dict[str, Any] | None = None, **filters: Any) -> Any:
        """A `route_class` for this consumer, optionally a subclass with `attrs` set."""
        consumer = cls
        if attrs:
            if not isinstance(attrs, dict):
                # AssertionError is the 1.1 type for this misuse (C-53).
                raise AssertionError(
                    f"as_route(attrs=...) takes a dict of class attributes, not "
                    f"{type(attrs).__name__}"
                )
            consumer = type(cls.__name__, (cls,), attrs)
        return route_class(consumer, **filters)

    def get_handler(self, message: Message, **kwargs: Any) -> Callable:
        """The bound handler method, wrapped in the session decorators the flags ask for."""
        handler = getattr(self, self.method_mapping[message.channel.name])
        if self.channel_session_user:
            return auth.channel_session_user(handler)
        if self.channel_session:
            return sessions.channel_session(handler)
        return handler

    def dispatch(self, message: Message, **kwargs: Any) -> Any:
        return self.get_handler(message, **kwargs)(message, **kwargs)
