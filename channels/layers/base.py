"""The ASGI-1 channel-layer contract shared by every backend (A-52, A-53).

`BaseChannelLayer` holds what every layer does the same way: name validation,
message validation, capacity lookup and `new_channel`. Backends subclass it and
implement storage. Nothing here imports Django.
"""

from __future__ import annotations

import fnmatch
import logging
import random
import re
import string
import threading
import time
import warnings
from collections.abc import Iterable, Mapping
from typing import Any

import msgpack

from .values import BadValue, check_value, copy_value

__all__ = [
    "BaseChannelLayer",
    "ChannelFull",
    "FullSkipReporter",
    "InvalidChannelName",
    "InvalidGroupName",
    "InvalidMessage",
    "LayerUnavailable",
    "LayerUsageError",
    "MessageTooLarge",
    "ReceiveFailed",
    "UnsupportedMessageValue",
]

# names are ASCII letters, digits, "-", "_" and ".", with at most
# one "?" or "!" type character in channel names.
_NAME_CHARS = r"[a-zA-Z0-9\-_.]"
_CHANNEL_NAME = re.compile(rf"^{_NAME_CHARS}+(?:[?!]{_NAME_CHARS}*)?$", re.ASCII)
_GROUP_NAME = re.compile(rf"^{_NAME_CHARS}+$", re.ASCII)
# valid names have 1 to 99 characters.
MAX_NAME_LENGTH = 100

RESERVED_KEY = "__asgi_channel__"
# Issue 17: carries an at-least-once message's delivery (`delivery`).
DELIVERY_KEY = "__asgi_delivery__"


# -- the error contract --------------------------------------------------------------
#
# A layer call fails in one of three ways, and callers act on which:
#
# - `ChannelFull`: the channel has no room now; retrying later may work.
# - `LayerUnavailable`: the backend (a Redis server, the IPC store) cannot be used
#   now; the same call may work later (a server answers 503, a worker backs off).
# - `LayerUsageError`: the caller's arguments are refused (a bad name, a bad or
#   too large message); retrying the same call can never work: it is a bug.
#
# Every layer exposes the first two as attributes (`layer.ChannelFull`,
# `layer.Unavailable`), so code that must not import this package (daphne, D-4)
# can still catch them.


class ChannelFull(Exception):
    """The channel already holds `capacity` messages; nothing was stored (A-37)."""


class LayerUnavailable(ConnectionError):
    """The layer's backend cannot be used right now; the same call may work later.

    Also available as ``layer.Unavailable`` on every layer. Backends raise
    subclasses that keep their own error type as well: `asgi_redis` raises
    classes that are both redis-py's ``ConnectionError`` (or ``TimeoutError``)
    and this, so existing ``except redis.ConnectionError`` clauses still catch
    them. Whether anything was stored is unknown (L-62.3). The class attribute
    ``layer_unavailable = True`` lets callers that cannot import this module
    test ``getattr(error, "layer_unavailable", False)``.
    """

    layer_unavailable = True


class LayerUsageError(Exception):
    """Mixin of the errors that say the caller broke the layer contract.

    A bad channel or group name, a message that is not a dict, holds an
    unsupported value or is too large: retrying the same call cannot work. Each
    subclass also derives from the exception type ASGI-1 names (A-13, A-16),
    so 1.x ``except TypeError`` / ``except AssertionError`` clauses still
    catch it.
    """


class MessageTooLarge(LayerUsageError):
    """The message is bigger than the layer's `max_message_size` (A-92)."""


class ReceiveFailed(Exception):
    """The receive of `BaseChannelLayer.send_many_then_receive` failed after its sends.

    `outcomes` holds the sends' outcomes, one per message (as `send_many`
    returns them), so the caller can still retry the full ones; `error` (also
    the ``__cause__``) is the receive's own error.
    """

    def __init__(self, outcomes: list[Exception | None], error: Exception) -> None:
        super().__init__(f"Receive failed after sending {len(outcomes)} message(s): {error}")
        self.outcomes = outcomes
        self.error = error


class InvalidChannelName(LayerUsageError, TypeError):
    """A channel name breaks A-10..A-13 (a `TypeError`, as ASGI-1 requires)."""


class InvalidGroupName(LayerUsageError, TypeError):
    """A group name breaks A-14 (a `TypeError`, as ASGI-1 requires)."""


class UnsupportedMessageValue(LayerUsageError, TypeError):
    """A message holds a value type outside A-6; the text names type and key path."""


class InvalidMessage(LayerUsageError, AssertionError):
    """The message is not a dict or uses the reserved key (A-5, A-9).

    An `AssertionError` subclass to keep the 1.x exception type (A-16); it is
    raised explicitly, so it also fires under ``python -O``.
    """


def _describe(name: Any) -> str:
    return repr(name) if isinstance(name, str) else f"{type(name).__name__} {name!r}"


class BaseChannelLayer:
    """Base class for channel layers: validation, capacity and naming (A-52).

    Subclasses implement `send`, `receive`, `channel_in_use` and, when they list
    the `groups` / `flush` extensions, `group_add`, `group_discard`,
    `group_channels`, `send_group` and `flush`.
    """

    extensions: list[str] = []

    # 1 MiB of content plus 64 KiB for keys, headers and framing.
    max_message_size = 1_114_112

    # letters appended by `new_channel` (8 in memory, 12 in Redis/IPC).
    new_channel_suffix_length = 8

    ChannelFull = ChannelFull
    MessageTooLarge = MessageTooLarge
    # Raised by backends whose store or server cannot be reached; the in-memory
    # layer never raises it (the attribute is part of the contract all the same).
    Unavailable = LayerUnavailable

    def __init__(
        self,
        expiry: int | float = 60,
        group_expiry: int | float = 86400,
        capacity: int = 100,
        channel_capacity: Mapping[Any, int] | None = None,
    ) -> None:
        if not isinstance(capacity, int) or isinstance(capacity, bool) or capacity < 1:
            raise ValueError(f"capacity must be a positive int, not {capacity!r}")
        for option, value in (("expiry", expiry), ("group_expiry", group_expiry)):
            if isinstance(value, bool) or not isinstance(value, (int, float)) or value <= 0:
                raise ValueError(f"{option} must be a positive number of seconds, not {value!r}")
        self.expiry = expiry
        self.group_expiry = group_expiry
        self.capacity = capacity
        self.channel_capacity = self.compile_capacities(channel_capacity or {})

    # -- capacity (A-37, A-38, A-39) ------------------------------------------

    @staticmethod
    def compile_capacities(mapping: Mapping[Any, int]) -> list[tuple[re.Pattern[str], int]]:
        """Turn ``{glob or compiled regex: capacity}`` into ``[(regex, capacity)]``."""
        if not isinstance(mapping, Mapping):
            raise ValueError(
                "channel_capacity must be a mapping of pattern to int, "
                f"not {type(mapping).__name__}"
            )
        compiled = []
        for pattern, value in mapping.items():
            if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                raise ValueError(
                    f"channel_capacity[{pattern!r}] must be a positive int, not {value!r}"
                )
            if isinstance(pattern, str):
                compiled.append((re.compile(fnmatch.translate(pattern)), value))
            elif hasattr(pattern, "match"):
                compiled.append((pattern, value))
            else:
                raise ValueError(
                    f"channel_capacity key {pattern!r} must be a glob string or a compiled regex"
                )
        return compiled

    def get_capacity(self, channel: str) -> int:
        """Capacity of `channel`: first matching pattern wins, else `capacity` (A-38)."""
        name = self.non_local_name(channel)
        for pattern, value in self.channel_capacity:
            if pattern.match(name):
                return value
        return self.capacity

    # -- names (A-10..A-15, A-53) ---------------------------------------------

    @staticmethod
    def match_type_and_length(name: Any) -> bool:
        return isinstance(name, str) and len(name) < MAX_NAME_LENGTH

    def valid_channel_name(self, name: Any, receive: bool = False) -> bool:
        """Return True or raise `InvalidChannelName` (a `TypeError`) per A-13."""
        if not self.match_type_and_length(name) or not _CHANNEL_NAME.match(name):
            raise InvalidChannelName(
                f"Channel name {_describe(name)} is invalid: use 1-99 ASCII letters, digits, "
                "'-', '_' or '.', optionally with one '?' or '!' type character"
            )
        if "?" in name and name.endswith("?"):
            raise InvalidChannelName(
                f"Channel name {name!r} is invalid: single-reader names need a suffix after '?'"
            )
        if receive and "!" in name and not name.endswith("!"):
            raise InvalidChannelName(
                f"Cannot receive on {name!r}: receive on the process-specific prefix "
                f"{self.non_local_name(name)!r} instead (A-18)"
            )
        return True

    def valid_group_name(self, name: Any) -> bool:
        """Return True or raise `InvalidGroupName` (a `TypeError`) per A-14."""
        if not self.match_type_and_length(name) or not _GROUP_NAME.match(name):
            raise InvalidGroupName(
                f"Group name {_describe(name)} is invalid: use 1-99 ASCII letters, digits, "
                "'-', '_' or '.'"
            )
        return True

    def valid_channel_names(self, names: Any, receive: bool = False) -> bool:
        if not isinstance(names, list) or not names:
            raise InvalidMessage(f"channel names must be a non-empty list, not {names!r}")
        for name in names:
            self.valid_channel_name(name, receive=receive)
        return True

    def receive_names(self, channels: Iterable[str]) -> list[str]:
        """Validate the `channels` argument of `receive` and return it as a list (A-32)."""
        if isinstance(channels, (str, bytes)):
            raise InvalidChannelName(
                f"receive() takes a list of channel names, not a bare {type(channels).__name__} "
                f"{channels!r}"
            )
        names = list(channels)
        for name in names:
            self.valid_channel_name(name, receive=True)
        return names

    @staticmethod
    def non_local_name(name: str) -> str:
        """``P!`` for ``P!L``; the name itself for other kinds (A-17)."""
        if "!" in name:
            return name[: name.find("!") + 1]
        return name

    # -- messages (A-5, A-6, A-8, A-9, A-92) ----------------------------------

    def snapshot(self, message: Any) -> tuple[dict[str, Any], int]:
        """Validate `message` and return ``(independent copy, size upper bound)``.

        The copy shares only immutable values with the caller's dict (A-8). As with
        ``copy.deepcopy`` a tuple stays a tuple (L-6), shared when it holds only
        immutable values; serializing layers turn it into a list. The bound is
        never below the msgpack encoding's length, so a small bound proves the
        message fits without encoding it (A-92).
        """
        message = _top_level(message)
        try:
            return copy_value(message)
        except BadValue as bad:
            raise UnsupportedMessageValue(bad.describe()) from None

    def validated(self, message: Any) -> dict[str, Any]:
        """Validate `message` as `snapshot` does (A-5, A-6, A-9), without copying it.

        For a layer that serializes the message before `send` returns: the bytes are
        the snapshot (A-8). Returns the dict to serialize: `message` itself, or a
        copy of its top level without a received message's delivery key. Values are
        accepted exactly as `snapshot` accepts them (subclasses of the A-6 types
        too, which msgpack packs as their base type).
        """
        message = _top_level(message)
        try:
            check_value(message)
        except BadValue as bad:
            raise UnsupportedMessageValue(bad.describe()) from None
        checked: dict[str, Any] = message
        return checked

    def check_size(self, message: dict[str, Any], size_bound: int, channel: str) -> None:
        """Raise `MessageTooLarge` when the msgpack encoding exceeds the limit (A-92)."""
        if size_bound <= self.max_message_size:
            return
        self.check_encoded_size(len(msgpack.packb(message, use_bin_type=True)), channel)

    def check_encoded_size(self, size: int, channel: str) -> None:
        if size > self.max_message_size:
            raise MessageTooLarge(
                f"Message for {channel!r} is {size} bytes encoded, over the limit of "
                f"{self.max_message_size} bytes; move large payloads onto their own channel"
            )

    # -- naming (A-34) --------------------------------------------------------

    def new_channel(self, pattern: str) -> str:
        """Return ``pattern`` plus random letters, naming a channel holding no messages."""
        if not isinstance(pattern, str) or not pattern.endswith("?"):
            raise InvalidMessage(
                f"new_channel() takes a str pattern ending in '?', not {pattern!r} "
                "(process-specific names are made by their owner, A-20)"
            )
        self.valid_channel_name(pattern + "x")
        while True:
            name = pattern + random_letters(self.new_channel_suffix_length)
            if not self.channel_in_use(name):
                return name

    # -- what subclasses implement ----------------------------------------------

    def channel_in_use(self, name: str) -> bool:
        """Whether `name` currently holds messages (the `new_channel` hook)."""
        raise NotImplementedError

    def send(self, channel: str, message: dict[str, Any]) -> None:
        raise NotImplementedError

    def receive(
        self, channels: Iterable[str], block: bool = False
    ) -> tuple[str | None, dict[str, Any] | None]:
        raise NotImplementedError

    def send_many_then_receive(
        self,
        messages: Iterable[tuple[str, dict[str, Any]]],
        channels: Iterable[str],
        block: bool = False,
    ) -> tuple[list[Exception | None], tuple[str | None, dict[str, Any] | None]]:
        """Send ``(channel, message)`` pairs, then `receive` on `channels` (issue 9).

        An extension of ASGI-1 for a worker that has replies to send before its
        next receive: a layer that can do both in one round trip overrides it
        (`asgi_redis.RedisChannelLayer`); this default sends, then receives, so
        every layer offers it. Returns ``(outcomes, (channel, message))`` with
        one outcome per pair, in order: `None` when stored, a `ChannelFull`
        when that channel was full (A-37), or (layers with ``send_many``) the
        backend error of a message that may not have been stored (L-62.3).

        A bad name in `channels` raises before anything is sent. A receive that
        fails after the sends raises `ReceiveFailed`, carrying the outcomes.
        Without ``send_many`` the messages are sent one at a time: once a
        channel was full, its later messages are refused too, so none
        overtakes another (A-19, A-25); a send that fails otherwise (a bad
        message, A-31) raises at once, the messages before it having been sent.
        """
        names = self.receive_names(channels)
        pairs = list(messages)
        send_many = getattr(self, "send_many", None)
        outcomes = send_many(pairs) if send_many is not None else self._send_each(pairs)
        try:
            received = self.receive(names, block=block)
        except Exception as error:  # any backend failure; the names were checked above
            raise ReceiveFailed(outcomes, error) from error
        return outcomes, received

    def _send_each(self, pairs: list[tuple[str, dict[str, Any]]]) -> list[Exception | None]:
        for channel, _ in pairs:
            self.valid_channel_name(channel)
        outcomes: list[Exception | None] = []
        full: dict[str, Exception] = {}
        for channel, message in pairs:
            if channel in full:
                outcomes.append(full[channel])
                continue
            try:
                self.send(channel, message)
            except self.ChannelFull as exc:
                full[channel] = exc
                outcomes.append(exc)
            else:
                outcomes.append(None)
        return outcomes

    def receive_many(
        self, channels: Iterable[str], block: bool = False
    ) -> tuple[str | None, dict[str, Any] | None]:
        """Deprecated alias of `receive` kept for Channels 1.x code (A-33)."""
        warnings.warn(
            "receive_many() is deprecated; call receive()", DeprecationWarning, stacklevel=2
        )
        return self.receive(channels, block=block)

    def group_add(self, group: str, channel: str) -> None:
        raise NotImplementedError

    def group_discard(self, group: str, channel: str) -> None:
        raise NotImplementedError

    def group_channels(self, group: str) -> Iterable[str]:
        raise NotImplementedError

    def send_group(self, group: str, message: dict[str, Any]) -> None:
        raise NotImplementedError

    def flush(self) -> None:
        raise NotImplementedError

    def __str__(self) -> str:
        return f"{type(self).__name__}()"


# The layers' own generator: drawing names and shuffles from the `random` module's global one
# would move a state that applications and test tools (seeded tests, hypothesis) rely on.
layer_random = random.Random()


def random_letters(count: int) -> str:
    return "".join(layer_random.choices(string.ascii_letters, k=count))


def _top_level(message: Any) -> dict[str, Any]:
    """`message` checked as a dict without the reserved key (A-5, A-9); a received
    at-least-once message sent on loses its delivery key (its delivery is not the new
    one's), in a copy of its top level."""
    if not isinstance(message, dict):
        raise InvalidMessage(f"A message must be a dict, not {type(message).__name__} (A-5)")
    if RESERVED_KEY in message:
        raise InvalidMessage(f"The key {RESERVED_KEY!r} is reserved for channel layers (A-9)")
    if DELIVERY_KEY in message:
        return {key: value for key, value in message.items() if key != DELIVERY_KEY}
    return message


class FullSkipReporter:
    """Logs group-send skips of full members, merged to one line per channel per 10 s (A-40)."""

    interval = 10.0

    def __init__(self, logger: logging.Logger) -> None:
        self.logger = logger
        self._lock = threading.Lock()
        # channel -> (time of last line, skips not yet logged, last group)
        self._pending: dict[str, tuple[float, int, str]] = {}

    def skipped(self, group: str, channel: str, count: int = 1) -> None:
        now = time.monotonic()
        with self._lock:
            last, unlogged, _ = self._pending.get(channel, (0.0, 0, group))
            unlogged += count
            if now - last < self.interval:
                self._pending[channel] = (last, unlogged, group)
                return
            self._pending[channel] = (now, 0, group)
            if len(self._pending) > 10_000:
                self._forget_old(now)
        self.logger.warning(
            "Group %r skipped full channel %r (%d message%s dropped since the last report)",
            group,
            channel,
            unlogged,
            "" if unlogged == 1 else "s",
        )

    def _forget_old(self, now: float) -> None:
        for channel, (last, unlogged, _) in list(self._pending.items()):
            if now - last >= self.interval and not unlogged:
                del self._pending[channel]
