"""Routing messages to consumers by channel name and message keys (C-20..C-26)."""

from __future__ import annotations

import copy
import re
from collections.abc import Callable, Iterable
from typing import Any

from django.core.exceptions import ImproperlyConfigured
from django.utils.module_loading import import_string

__all__ = [
    "Include",
    "Route",
    "RouteClass",
    "Router",
    "connect_consumer",
    "include",
    "null_consumer",
    "route",
    "route_class",
]


class Router:
    """Matches a message against a routing and returns ``(consumer, kwargs)`` (C-20)."""

    def __init__(self, routing: Any) -> None:
        self.root = Include(routing)
        self.channels = self.root.channel_names()

    def add_route(self, route: Any) -> None:
        self.root.routing.append(route)
        self.channels = self.root.channel_names()

    def check_default(self, http_consumer: Callable | None = None) -> None:
        """Append the default consumers after the user's routes, which win (C-21)."""
        if http_consumer is None:
            # Imported here: the handler pulls in Django's request machinery.
            from .handler import ViewConsumer

            http_consumer = ViewConsumer()
        self.add_route(Route("http.request", http_consumer))
        self.add_route(Route("websocket.connect", connect_consumer))
        self.add_route(Route("websocket.receive", null_consumer))
        self.add_route(Route("websocket.disconnect", null_consumer))

    def match(self, message: Any) -> tuple[Callable, dict[str, Any]] | None:
        return self.root.match(message)

    @classmethod
    def resolve_routing(cls, routing: Any) -> list | tuple:
        """A dotted path, dict or list/tuple of routing objects → a list/tuple (C-22)."""
        if isinstance(routing, str):
            try:
                routing = import_string(routing)
            except ImportError as error:
                # import_string turns a missing attribute into ImportError as well.
                raise ImproperlyConfigured(
                    f"Cannot import channel routing {routing!r}: {error}"
                ) from error
        if isinstance(routing, dict):
            return [Route(channel, consumer) for channel, consumer in routing.items()]
        if isinstance(routing, (list, tuple)):
            return routing
        raise ValueError(
            f"Channel routing must be a list, tuple, dict or dotted path, not {routing!r}"
        )

    @classmethod
    def normalise_re_arg(cls, value: Any) -> Any:
        """Decode bytes as ASCII; pass anything else through (C-22)."""
        if isinstance(value, bytes):
            return value.decode("ascii")
        return value


class Route:
    """Routes messages on some channels, optionally filtered by key regexes (C-23)."""

    def __init__(self, channels: str | bytes | Iterable, consumer: Any, **kwargs: Any) -> None:
        if isinstance(channels, (str, bytes)):
            channels = [channels]
        self.channels = {Router.normalise_re_arg(name) for name in channels}
        self.consumer = self._resolve_consumer(consumer)
        self.filters = {key: self._compile_filter(key, value) for key, value in kwargs.items()}
        self._filter_items = tuple(self.filters.items())

    @staticmethod
    def _resolve_consumer(consumer: Any) -> Any:
        if isinstance(consumer, str):
            try:
                return import_string(consumer)
            except ImportError as error:
                raise ImproperlyConfigured(f"Cannot import consumer {consumer!r}") from error
        return consumer

    @staticmethod
    def _compile_filter(key: str, value: Any) -> re.Pattern:
        pattern = re.compile(Router.normalise_re_arg(value))
        if pattern.groups != len(pattern.groupindex):
            raise ValueError(
                f"Filter for {key}: {value!r} has unnamed groups, not allowed; use "
                "(?P<name>...) for groups you want as kwargs, or (?:...) otherwise"
            )
        return pattern

    def match(self, message: Any) -> tuple[Any, dict[str, Any]] | None:
        if message.channel.name not in self.channels:
            return None
        if not self._filter_items:
            return self.consumer, {}
        content = message.content
        kwargs: dict[str, Any] = {}
        for key, pattern in self._filter_items:
            if key not in content:
                return None
            value = filter_value(content[key])
            found = None if value is None else pattern.match(value)
            if found is None:
                return None
            kwargs.update(found.groupdict())
        return self.consumer, kwargs

    def channel_names(self) -> set[str]:
        return set(self.channels)

    def __str__(self) -> str:
        from .utils import name_that_thing

        return "{}[{} -> {}{}]".format(
            type(self).__name__.lower(),
            ",".join(sorted(self.channels)),
            name_that_thing(self.consumer),
            "".join(f" {key}={pattern.pattern}" for key, pattern in self.filters.items()),
        )


class RouteClass(Route):
    """A route whose channels come from ``consumer.channel_names()`` (C-24)."""

    def __init__(self, consumer: Any, **kwargs: Any) -> None:
        consumer = self._resolve_consumer(consumer)
        channel_names = getattr(consumer, "channel_names", None)
        if channel_names is None or not callable(channel_names):
            raise ValueError("The consumer passed to RouteClass has no valid channel_names method")
        super().__init__(channel_names(), consumer, **kwargs)


class Include:
    """A nested routing, optionally behind key prefixes that are cut off (C-25)."""

    def __init__(self, routing: Any, **kwargs: Any) -> None:
        # Our own list, so add_route never mutates the user's routing list.
        self.routing = list(Router.resolve_routing(routing))
        self.prefixes = {key: Route._compile_filter(key, value) for key, value in kwargs.items()}

    def match(self, message: Any) -> tuple[Any, dict[str, Any]] | None:
        kwargs: dict[str, Any] = {}
        if self.prefixes:
            message, kwargs = self._strip_prefixes(message)
            if message is None:
                return None
        for entry in self.routing:
            found = entry.match(message)
            if found is not None:
                if not kwargs:  # the common case: no prefix kwargs to merge
                    return found
                consumer, entry_kwargs = found
                return consumer, {**kwargs, **entry_kwargs}
        return None

    def _strip_prefixes(self, message: Any) -> tuple[Any, dict[str, Any]]:
        # A shallow copy with its own content dict: entries see the cut values, while
        # the consumer is still called with the original message.
        content = dict(message.content)
        kwargs: dict[str, Any] = {}
        for key, pattern in self.prefixes.items():
            if key not in content:
                return None, kwargs
            value = filter_value(content[key])
            if value is None:
                return None, kwargs
            found = pattern.match(value)
            if found is None:
                return None, kwargs
            kwargs.update(found.groupdict())
            content[key] = value[found.end() :]
        stripped = copy.copy(message)
        stripped.content = content
        return stripped, kwargs

    def channel_names(self) -> set[str]:
        names: set[str] = set()
        for entry in self.routing:
            names.update(entry.channel_names())
        return names


def filter_value(value: Any) -> str | None:
    """The text a filter regex runs on: str as is, bytes decoded as ASCII (C-23).

    Anything else (a non-ASCII bytes value, a number, None) cannot match a filter, so
    the route simply does not match instead of raising inside the worker.
    """
    if isinstance(value, str):
        return value
    if isinstance(value, bytes):
        try:
            return value.decode("ascii")
        except UnicodeDecodeError:
            return None
    return None


def null_consumer(*args: Any, **kwargs: Any) -> None:
    """Consumes a message and does nothing (default for websocket.receive/disconnect)."""


def connect_consumer(message: Any, *args: Any, **kwargs: Any) -> None:
    """Accepts every WebSocket connection (default for websocket.connect, C-21)."""
    message.reply_channel.send({"accept": True})


route = Route
route_class = RouteClass
include = Include
