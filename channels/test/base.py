"""Test cases, a channel client and route overrides for testing consumers (C-67, C-68, C-70)."""

from __future__ import annotations

import copy
import functools
import string
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, ClassVar

from django.db import close_old_connections
from django.test.testcases import TestCase, TransactionTestCase

from .. import DEFAULT_CHANNEL_LAYER
from ..asgi import ChannelLayerWrapper, channel_layers
from ..exceptions import ChannelSocketException
from ..layers.base import layer_random
from ..layers.inmemory import ChannelLayer as InMemoryChannelLayer
from ..message import Message
from ..routing import Router, include
from ..signals import consumer_finished, consumer_started

if TYPE_CHECKING:
    # What the mixin is mixed into: its `super()` calls and `self.fail` are Django's.
    from django.test.testcases import TransactionTestCase as _TestCaseBase
else:
    _TestCaseBase = object

__all__ = [
    "ChannelTestCase",
    "ChannelTestCaseMixin",
    "Client",
    "TransactionChannelTestCase",
    "apply_routes",
]


class ChannelTestCaseMixin(_TestCaseBase):
    """Gives every test fresh in-memory layers for `test_channel_aliases` (C-67).

    Django 5.2 calls `_pre_setup` as a classmethod (eagerly from `setUpClass`
    for transaction test cases), so the swapped-out layers are kept on the class.
    """

    test_channel_aliases = [DEFAULT_CHANNEL_LAYER]
    # The layers `_pre_setup` swapped out, by alias, until `_post_teardown` puts them back.
    _old_layers: ClassVar[dict[str, ChannelLayerWrapper]]

    @classmethod
    def _pre_setup(cls) -> None:
        super()._pre_setup()
        cls._old_layers = {}
        for alias in cls.test_channel_aliases:
            original = channel_layers[alias]
            routing = copy.copy(original.routing)
            channel_layers.set(alias, ChannelLayerWrapper(InMemoryChannelLayer(), alias, routing))
            cls._old_layers[alias] = original

    def _post_teardown(self) -> None:
        cls = type(self)
        for alias, wrapper in cls._old_layers.items():
            channel_layers.set(alias, wrapper)
        del cls._old_layers
        super()._post_teardown()

    def get_next_message(
        self, channel: str, alias: str = DEFAULT_CHANNEL_LAYER, require: bool = False
    ) -> Message | None:
        """The next message on `channel` (without blocking), or None (fails if `require`)."""
        message = next_message(channel, alias)
        if message is None and require:
            self.fail(f"Expected a message on channel {channel}, got none")
        return message


class ChannelTestCase(ChannelTestCaseMixin, TestCase):
    """`TestCase` (each test in a transaction) with fresh in-memory channel layers."""


class TransactionChannelTestCase(ChannelTestCaseMixin, TransactionTestCase):
    """`TransactionTestCase` with fresh in-memory channel layers."""


def next_message(channel: str, alias: str = DEFAULT_CHANNEL_LAYER) -> Message | None:
    layer = channel_layers[alias]
    received, content = layer.receive([channel], block=False)
    if received is None:
        return None
    return Message(content, received, layer)


class Client:
    """Plays the protocol server: sends messages and runs their consumers in-process (C-68).

    Replies to the client's own `reply_channel` are read with `receive`.
    """

    def __init__(self, alias: str = DEFAULT_CHANNEL_LAYER) -> None:
        self.alias = alias
        self.reply_channel = alias + "".join(layer_random.choices(string.ascii_letters, k=5))

    @property
    def channel_layer(self) -> ChannelLayerWrapper:
        # Looked up each time: test cases swap the layer per test.
        return channel_layers[self.alias]

    def get_next_message(self, channel: str) -> Message | None:
        return next_message(channel, self.alias)

    def get_consumer_by_channel(self, channel: str) -> Callable | None:
        message = Message({"text": ""}, channel, self.channel_layer)
        match = self.channel_layer.router.match(message)
        return match[0] if match else None

    def send(self, to: str, content: dict = {}) -> None:  # noqa: B006 - never mutated
        content = copy.deepcopy(content)
        content.setdefault("reply_channel", self.reply_channel)
        self.channel_layer.send(to, content)

    def consume(self, channel: str, fail_on_none: bool = True) -> Any:
        """Receive one message on `channel` and run its consumer as a worker would."""
        message = self.get_next_message(channel)
        if message is None:
            if fail_on_none:
                raise AssertionError(f"No message to consume on channel {channel}")
            return None
        match = self.channel_layer.router.match(message)
        if match is None:
            if fail_on_none:
                raise AssertionError(f"Can't find consumer for message {message.content!r}")
            return None
        consumer, kwargs = match
        return run_consumer(consumer, message, kwargs, sender=type(self))

    def send_and_consume(self, channel: str, content: dict = {}, fail_on_none: bool = True) -> Any:  # noqa: B006
        self.send(channel, content)
        return self.consume(channel, fail_on_none=fail_on_none)

    def receive(self) -> dict | None:
        """The content of the next reply to this client, or None."""
        message = self.get_next_message(self.reply_channel)
        return message.content if message is not None else None

    def join_group(self, group_name: str) -> None:
        self.channel_layer.group_add(group_name, self.reply_channel)


def run_consumer(consumer: Callable, message: Message, kwargs: dict, sender: type) -> Any:
    """Run `consumer` between the worker's signals, deferring its sends (C-19, C-68)."""
    try:
        consumer_started.send(sender=sender, environ={})
        return consumer(message, **kwargs)
    except ChannelSocketException as exc:
        exc.run(message)
        return None
    finally:
        # Closing connections would end the test's transaction; Django's own test
        # client disconnects the same handler from request_finished.
        consumer_finished.disconnect(close_old_connections)
        try:
            consumer_finished.send(sender=sender)
        finally:
            consumer_finished.connect(close_old_connections)


class apply_routes:
    """Swap in `routes` for the given layer aliases (C-70).

    A context manager, and a decorator for test functions or test classes (it
    then wraps `setUp`/`tearDown`). `routes` is one routing object, a list of
    them, or a list of lists (each becomes an `include`).
    """

    def __init__(self, routes: Any, aliases: list[str] | None = [DEFAULT_CHANNEL_LAYER]) -> None:  # noqa: B006 (C-70's default; copied, never mutated)
        self.routes = routes
        # None is taken as the default alias too; the list is copied.
        self.aliases = list(aliases) if aliases is not None else [DEFAULT_CHANNEL_LAYER]
        self._saved: list[dict[str, tuple[Any, Router]]] = []

    def normalised_routes(self) -> list:
        routes = self.routes
        if not isinstance(routes, (list, tuple)):
            return [routes]
        if routes and isinstance(routes[0], (list, tuple)):
            return [include(group) for group in routes]
        return list(routes)

    def enter(self) -> None:
        saved = {}
        routes = self.normalised_routes()
        for alias in self.aliases:
            wrapper = channel_layers[alias]
            saved[alias] = (wrapper.routing, wrapper.router)
            wrapper.routing = routes
            wrapper.router = Router(routes)
        # A stack, so nested uses of the same instance restore in order.
        self._saved.append(saved)

    def exit(self, exc_type: Any = None, exc_val: Any = None, exc_tb: Any = None) -> None:
        for alias, (routing, router) in self._saved.pop().items():
            wrapper = channel_layers[alias]
            wrapper.routing = routing
            wrapper.router = router

    __enter__ = enter
    __exit__ = exit

    def __call__(self, target: Any) -> Any:
        if isinstance(target, type):
            return self._decorate_class(target)

        @functools.wraps(target)
        def inner(*args: Any, **kwargs: Any) -> Any:
            with self:
                return target(*args, **kwargs)

        return inner

    def _decorate_class(self, cls: type[Any]) -> type[Any]:
        old_setup = cls.setUp
        old_teardown = cls.tearDown

        def setUp(this: Any) -> None:
            self.enter()
            try:
                old_setup(this)
            except BaseException:
                # unittest skips tearDown when setUp fails; restore routes here.
                self.exit()
                raise

        def tearDown(this: Any) -> None:
            try:
                old_teardown(this)
            finally:
                self.exit()

        cls.setUp = setUp
        cls.tearDown = tearDown
        return cls
