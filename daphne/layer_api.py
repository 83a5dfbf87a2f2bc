"""What daphne needs of a channel layer, as declared capabilities (issue 16 item 5).

daphne works with any ASGI-1 layer object and imports no layer package (D-4): these
are `typing.Protocol`s, checked structurally by mypy, never by inheritance. The
core is `ChannelLayer` (A-7, A-32, A-34, A-36, A-92); the rest are optional
capabilities of faster layers, which daphne tests for with ``getattr`` before
use, as before:

- `BatchSending`: ``send_many(pairs)``, one call for a tick's sends (`outbox`);
- `SocketSending`: ``socket_sender()``, sends written to sockets the reactor
  watches (`outbox`, `layer_pipes`);
- `BufferedReceiving`: ``receive_buffered(channels)``, messages popped earlier
  and kept in memory (`reply_reader.ThreadReader`);
- `SocketReceiving`: ``socket_receive(channels)``, a descriptor the reactor
  watches for replies (`reply_reader.ReactorReader`);
- `Announcing`: ``announced_channels()``, what the workers route (`routed`).

Errors: a layer names its "the backend cannot be used now" class ``Unavailable``
(the project's layers: ``channels.layers.base.LayerUnavailable``, a builtin
``ConnectionError``). `unavailable_errors(layer)` is the tuple to catch an outage
with, for any layer; what it does not catch is a bug (or `ChannelFull` /
`MessageTooLarge`, which the caller handles first).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from typing import Any, Protocol, runtime_checkable

__all__ = [
    "FOREIGN_UNAVAILABLE",
    "Announcing",
    "BatchSending",
    "BufferedReceiving",
    "ChannelLayer",
    "SocketReceive",
    "SocketReceiving",
    "SocketSender",
    "SocketSending",
    "is_unavailable",
    "unavailable_errors",
]

Received = tuple[str | None, dict[str, Any] | None]
# One outcome per message: None when stored, else what `send` would have raised.
Outcomes = Sequence[BaseException | None]


@runtime_checkable
class ChannelLayer(Protocol):
    """The ASGI-1 calls daphne makes on every layer.

    ``Unavailable`` is optional (layers written for 1.x lack it); read it with
    `unavailable_errors`, never as ``layer.Unavailable``. The exception classes are
    read-only members, so a layer's own subclasses (its nested ``ChannelFull``) match.
    """

    @property
    def ChannelFull(self) -> type[Exception]: ...

    @property
    def MessageTooLarge(self) -> type[Exception]: ...

    def send(self, channel: str, message: dict[str, Any]) -> None: ...

    def receive(self, channels: Iterable[str], block: bool = False) -> Received: ...

    def new_channel(self, pattern: str) -> str: ...


@runtime_checkable
class BatchSending(Protocol):
    """A layer that stores several messages with one call (asgi_redis)."""

    def send_many(self, messages: Iterable[tuple[str, dict[str, Any]]]) -> Outcomes: ...


@runtime_checkable
class BufferedReceiving(Protocol):
    """A layer that keeps messages it popped in memory and hands them out without I/O."""

    def receive_buffered(self, channels: Iterable[str]) -> Received: ...


class SocketReceive(Protocol):
    """What `SocketReceiving.socket_receive` returns: a descriptor for the reactor."""

    def fileno(self) -> int: ...

    def read(self) -> list[tuple[str, dict[str, Any]]]: ...

    def close(self) -> None: ...


@runtime_checkable
class SocketReceiving(Protocol):
    """A layer whose blocking receive runs on a socket the reactor watches (asgi_redis).

    ``socket_receive`` raises ``NotImplementedError`` where it cannot (TLS, no
    hiredis); the thread reader then serves the layer.
    """

    def socket_receive(self, channels: Iterable[str]) -> SocketReceive: ...


class SocketSender(Protocol):
    """What `SocketSending.socket_sender` returns (see `layer_pipes` for its pipes)."""

    def submit(
        self, pairs: Sequence[tuple[str, dict[str, Any]]], done: Callable[[Outcomes], None]
    ) -> list[Any]: ...

    def close(self) -> None: ...


@runtime_checkable
class SocketSending(Protocol):
    """A layer whose sends are written to sockets without waiting (asgi_redis, hiredis).

    ``socket_sender`` raises ``NotImplementedError`` where it cannot. Such a layer
    also checks a channel name without I/O (``valid_channel_name``, raising for a bad
    one), so the outbox names new channels itself rather than with a round trip.
    """

    def socket_sender(self) -> SocketSender: ...

    def valid_channel_name(self, name: str, receive: bool = False) -> bool: ...


@runtime_checkable
class Announcing(Protocol):
    """A layer on which workers announce the channels they route (A-82)."""

    def announced_channels(self) -> frozenset[str] | None: ...


# What a layer that declares no ``Unavailable`` raises when its backend is away, as far
# as daphne can tell: socket and OS errors (builtin TimeoutError and ConnectionError are
# OSErrors; they are listed for the reader). A layer's other errors stay bugs.
FOREIGN_UNAVAILABLE: tuple[type[BaseException], ...] = (ConnectionError, TimeoutError, OSError)


def unavailable_errors(layer: object) -> tuple[type[BaseException], ...]:
    """The exception types meaning "the layer's backend cannot be used now" for `layer`.

    - A layer whose ``Unavailable`` is marked ``layer_unavailable = True`` (every
      layer of this project: ``channels.layers.base.LayerUnavailable``) gets
      ``(layer.Unavailable,)``: all its outages derive from it.
    - A layer with another ``Unavailable`` exception class gets that class plus
      `FOREIGN_UNAVAILABLE`.
    - Any other layer (written for 1.x) gets `FOREIGN_UNAVAILABLE`.

    For ``except`` clauses; compute it once per layer, not per call.
    """
    declared = getattr(layer, "Unavailable", None)
    if isinstance(declared, type) and issubclass(declared, BaseException):
        if getattr(declared, "layer_unavailable", False):
            return (declared,)
        return (declared, *FOREIGN_UNAVAILABLE)
    return FOREIGN_UNAVAILABLE


def is_unavailable(layer: object, error: BaseException) -> bool:
    """Whether `error` (an outcome or a caught exception) is `layer`'s backend being away.

    Also true for an error that says so itself (``layer_unavailable = True``).
    """
    return isinstance(error, unavailable_errors(layer)) or bool(
        getattr(error, "layer_unavailable", False)
    )
