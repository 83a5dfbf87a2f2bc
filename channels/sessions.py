"""Sessions for consumers: per-connection channel sessions and HTTP sessions (C-43..C-47).

A *channel session* belongs to one reply channel (one WebSocket or HTTP
connection): its key is derived from the reply channel name, so every worker
that handles a message of that connection finds the same store. An *HTTP
session* is the ordinary Django session named by the client's cookie (or a
``session_key`` query parameter); it is read, never created.
"""

from __future__ import annotations

import functools
import hashlib
from collections.abc import Callable
from importlib import import_module
from typing import Any

from django.conf import settings
from django.contrib.sessions.backends import signed_cookies
from django.contrib.sessions.backends.base import CreateError, SessionBase

from .exceptions import ConsumeLater
from .message import Message
from .utils import reply_channel_of

__all__ = [
    "channel_and_http_session",
    "channel_session",
    "enforce_ordering",
    "find_message",
    "http_session",
    "session_for_reply_channel",
]

# Key in the channel session holding the `order` of the next message to run (C-45).
NEXT_ORDER_KEY = "__channels_next_order"


def find_message(args: tuple, decorator: str) -> Message:
    """Return the `Message` among the first two positional arguments.

    Consumers are plain functions ``(message, ...)`` or methods
    ``(self, message, ...)``; looking at both positions lets every decorator
    here wrap either (C-44).
    """
    for arg in args[:2]:
        if isinstance(arg, Message):
            return arg
    raise ValueError(f"{decorator} called without Message instance")


def session_for_reply_channel(reply_channel: str) -> SessionBase:
    """The channel session store for `reply_channel`, loaded (C-43).

    The key is "chn" plus 29 hex digits of the name's SHA-1, which fits Django's
    32-character session keys and never collides with Django's own keys.
    """
    session_key = "chn" + hashlib.sha1(reply_channel.encode("utf8")).hexdigest()[:29]
    engine_path = getattr(settings, "CHANNEL_SESSION_ENGINE", None) or settings.SESSION_ENGINE
    session_engine = import_module(engine_path)
    if session_engine is signed_cookies:
        raise ValueError(
            "You cannot use channels session functionality with signed cookie sessions: "
            "set CHANNEL_SESSION_ENGINE (or SESSION_ENGINE) to a server-side engine such as "
            "'django.contrib.sessions.backends.db'"
        )
    session = session_engine.SessionStore(session_key=session_key)
    # Loading a key Django does not know resets it to None, so load (and cache)
    # now and put our computed key back; saves then create the row under it.
    session.keys()
    session._session_key = session_key
    return session


def channel_session(func: Callable) -> Callable:
    """Give the consumer ``message.channel_session``, saved afterwards (C-44)."""

    @functools.wraps(func)
    def inner(*args: Any, **kwargs: Any) -> Any:
        message = find_message(args, "channel_session")
        if hasattr(message, "channel_session"):
            # An outer decorator already opened the session; just persist changes.
            try:
                return func(*args, **kwargs)
            finally:
                if message.channel_session.modified:
                    message.channel_session.save()

        reply_channel = reply_channel_of(message, "@channel_session")
        session = session_for_reply_channel(reply_channel.name)
        if not session.exists(session.session_key):
            try:
                # Create the row now so the key stays valid across workers.
                session.save(must_create=True)
            except CreateError:
                # Another worker is creating this session right now; retry later.
                raise ConsumeLater()
        message.channel_session = session
        try:
            return func(*args, **kwargs)
        finally:
            if session.modified and not session.is_empty():
                session.save()

    return inner


def wait_channel_name(reply_channel: str) -> str:
    """Where out-of-order messages of one connection wait (C-45).

    A process-specific ``P!L`` reply channel becomes the single-reader
    ``__wait__.P?L``, which any worker may receive from.
    """
    return "__wait__." + reply_channel.replace("!", "?")


def requeue_messages(message: Message) -> None:
    """Send every waiting message of this connection back to its original channel."""
    layer = message.channel_layer
    wait_channel = wait_channel_name(reply_channel_of(message, "@enforce_ordering").name)
    while True:
        channel, content = layer.receive([wait_channel], block=False)
        if channel is None:
            return
        original_channel = content.pop("original_channel")
        try:
            layer.send(original_channel, content)
        except layer.ChannelFull:
            raise layer.ChannelFull(
                "Cannot requeue pending __wait__ channel message back on to already full "
                f"channel {original_channel}"
            )


def enforce_ordering(func: Callable | None = None, slight: bool = False) -> Callable:
    """Run a connection's messages strictly in their `order` (C-45).

    A message that arrives early is parked on the connection's wait channel;
    the consumer of the message it waits for puts it back afterwards.
    """
    if slight:
        raise ValueError(
            "Slight ordering is now always on due to Channels changes. Please remove the decorator."
        )

    def decorator(func: Callable) -> Callable:
        @channel_session
        @functools.wraps(func)
        def inner(*args: Any, **kwargs: Any) -> Any:
            message = find_message(args, "enforce_ordering")
            if "order" not in message.content:
                raise ValueError(
                    "No `order` value in message; @enforce_ordering can only be used on "
                    "messages containing it."
                )
            order = int(message.content["order"])
            session = message.channel_session
            if order == session.get(NEXT_ORDER_KEY, 0):
                result = func(*args, **kwargs)
                session[NEXT_ORDER_KEY] = order + 1
                session.save()
                session.modified = False
                requeue_messages(message)
                return result
            _park(message)
            # The message we wait for may have finished while we parked this
            # one; then nobody else will requeue it, so do it now.
            if order == session.load().get(NEXT_ORDER_KEY, 0):
                requeue_messages(message)
            return None

        return inner

    if func is not None:
        return decorator(func)
    return decorator


def _park(message: Message) -> None:
    layer = message.channel_layer
    reply_name = reply_channel_of(message, "@enforce_ordering").name
    message.content["original_channel"] = message.channel.name
    try:
        layer.send(wait_channel_name(reply_name), message.content)
    except layer.ChannelFull:
        raise layer.ChannelFull(
            f"Cannot add unordered message to already full __wait__ channel for socket {reply_name}"
        )


def http_session(func: Callable) -> Callable:
    """Give the consumer ``message.http_session`` from the client's cookie (C-46).

    The session is None when the client sent no session key; none is created.
    """

    @functools.wraps(func)
    def inner(*args: Any, **kwargs: Any) -> Any:
        message = find_message(args, "http_session")
        if hasattr(message, "http_session"):
            try:
                return func(*args, **kwargs)
            finally:
                if message.http_session is not None and message.http_session.modified:
                    message.http_session.save()

        message.http_session = _http_session_from_message(message)
        result = func(*args, **kwargs)
        # Only a normal return saves: a failed consumer must not persist half a change.
        if message.http_session is not None and message.http_session.modified:
            message.http_session.save()
        return result

    return inner


def _http_session_from_message(message: Message) -> SessionBase | None:
    # Imported here: the handler pulls in Django's request machinery, which
    # plain channel-session users never need.
    from .handler import AsgiRequest

    # WebSocket messages look like HTTP requests except for the method.
    message.content.setdefault("method", "FAKE")
    try:
        request = AsgiRequest(message)
    except Exception as exc:
        # Any parse failure means the consumer is not behind HTTP; say so,
        # keeping the original error chained for the traceback.
        raise ValueError(
            f"Cannot parse HTTP message - are you sure this is a HTTP consumer? {exc}"
        ) from exc
    session_key = request.GET.get("session_key")
    if session_key is None:
        session_key = request.COOKIES.get(settings.SESSION_COOKIE_NAME)
    if not session_key:
        return None
    return http_session_store(session_key)


def http_session_store(session_key: str) -> SessionBase:
    """A `SESSION_ENGINE` store for `session_key` (not loaded until used)."""
    return import_module(settings.SESSION_ENGINE).SessionStore(session_key=session_key)


def channel_and_http_session(func: Callable) -> Callable:
    """Both sessions; the HTTP session key is remembered in the channel session (C-47).

    Later messages of the connection (which carry no cookies) get their
    ``http_session`` back from the stored key.
    """

    @http_session
    @channel_session
    @functools.wraps(func)
    def inner(*args: Any, **kwargs: Any) -> Any:
        message = find_message(args, "channel_and_http_session")
        cookie_name = settings.SESSION_COOKIE_NAME
        if message.http_session is not None and cookie_name not in message.channel_session:
            message.channel_session[cookie_name] = message.http_session.session_key
        elif message.http_session is None and cookie_name in message.channel_session:
            message.http_session = http_session_store(message.channel_session[cookie_name])
        return func(*args, **kwargs)

    return inner
