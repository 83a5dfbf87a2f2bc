"""Authentication for consumers: ``message.user`` from a session (C-48..C-52).

Django's `get_user` reads the user from ``request.session``; consumers have no
request, so each decorator hands it a stand-in object whose only attribute is
the session in question.

Logging out deletes the HTTP session; sockets opened before keep the login copied
into their channel session. With ``CHANNELS_USER_GROUPS = True`` the ``*_from_http``
decorators put each authenticated socket in a per-user group on connect (one layer
call per connect, none per frame), the user decorators take it out on disconnect,
and `close_user_sockets` (or `close_sockets_on_logout` on Django's
``user_logged_out``) closes them all (issue 15 item 9).
"""

from __future__ import annotations

import functools
import hashlib
import re
from collections.abc import Callable
from typing import Any

from django.conf import settings
from django.contrib import auth
from django.contrib.sessions.backends.base import SessionBase

from .channel import Group
from .message import Message
from .sessions import channel_and_http_session, channel_session, find_message, http_session
from .utils import reply_channel_of

__all__ = [
    "channel_and_http_session_user_from_http",
    "channel_session_user",
    "channel_session_user_from_http",
    "close_sockets_on_logout",
    "close_user_sockets",
    "http_session_user",
    "transfer_user",
    "user_group_name",
]

# What `django.contrib.auth.login` stores in a session (C-48).
AUTH_SESSION_KEYS = (auth.BACKEND_SESSION_KEY, auth.SESSION_KEY, auth.HASH_SESSION_KEY)


def transfer_user(from_session: SessionBase, to_session: SessionBase) -> None:
    """Copy the logged-in user from one session to another (C-48).

    Nothing is copied unless all three auth keys are present, so a half
    logged-in session never produces a half logged-in copy.
    """
    if all(key in from_session for key in AUTH_SESSION_KEYS):
        for key in AUTH_SESSION_KEYS:
            to_session[key] = from_session[key]


# Where a socket's channel session remembers the user group it joined on connect.
USER_GROUP_KEY = "__channels_user_group"
# A primary key usable in a group name as is (L-9: ASCII letters, digits, ``-._``).
_PLAIN_PK = re.compile(r"[A-Za-z0-9._-]{1,80}\Z")


def user_group_name(user: Any) -> str:
    """The group holding `user`'s WebSockets: ``user.<pk>``, or ``user_<sha1>`` for a
    primary key that is not a valid group name (the two forms never collide)."""
    pk = str(user.pk)
    if _PLAIN_PK.match(pk):
        return "user." + pk
    return "user_" + hashlib.sha1(pk.encode("utf-8")).hexdigest()


def close_user_sockets(user: Any, code: bool | int = True) -> None:
    """Close every WebSocket `user` opened while ``CHANNELS_USER_GROUPS`` was on.

    Sends ``{"close": code}`` to the user's group (inside a consumer, when it
    returns, as every send there). Sockets opened in another way are not reached.
    """
    Group(user_group_name(user)).send({"close": code})


def close_sockets_on_logout(
    sender: Any, request: Any = None, user: Any = None, **kwargs: Any
) -> None:
    """A receiver for ``django.contrib.auth.signals.user_logged_out``: logging out
    closes the user's open WebSockets (see `close_user_sockets`)."""
    if user is not None and user.is_authenticated:
        close_user_sockets(user)


def _user_groups() -> bool:
    return getattr(settings, "CHANNELS_USER_GROUPS", False)


def _join_user_group(message: Message) -> None:
    """On ``websocket.connect``, put an authenticated socket in its user's group."""
    if message.channel.name != "websocket.connect" or not _user_groups():
        return
    user = message.user
    if not user.is_authenticated:
        return
    name = user_group_name(user)
    Group(name, channel_layer=message.channel_layer).add(
        reply_channel_of(message, "CHANNELS_USER_GROUPS")
    )
    message.channel_session[USER_GROUP_KEY] = name


def _leave_user_group(message: Message) -> None:
    """On ``websocket.disconnect``, take the socket out of the group it joined."""
    if message.channel.name != "websocket.disconnect":
        return
    session = getattr(message, "channel_session", None)
    name = session.pop(USER_GROUP_KEY, None) if session is not None else None
    if name is not None:  # popped: a second decorator on the same message finds none
        Group(name, channel_layer=message.channel_layer).discard(
            reply_channel_of(message, "CHANNELS_USER_GROUPS")
        )


class _SessionRequest:
    """The request stand-in `auth.get_user` needs: it only reads ``.session``."""

    def __init__(self, session: SessionBase) -> None:
        self.session = session


def _user_for(session: SessionBase | None) -> Any:
    if session is None:
        # Imported here, not at module level: the models need django.contrib.auth (and
        # contenttypes) installed, and channels.generic imports this module, so a project
        # without them could not otherwise import WebsocketConsumer.
        from django.contrib.auth.models import AnonymousUser

        return AnonymousUser()
    return auth.get_user(_SessionRequest(session))


def http_session_user(func: Callable) -> Callable:
    """``message.http_session`` plus ``message.user`` from it (C-49)."""

    @http_session
    @functools.wraps(func)
    def inner(*args: Any, **kwargs: Any) -> Any:
        message = find_message(args, "http_session_user")
        message.user = _user_for(message.http_session)
        return func(*args, **kwargs)

    return inner


def channel_session_user(func: Callable) -> Callable:
    """``message.channel_session`` plus ``message.user`` from it (C-50)."""

    @channel_session
    @functools.wraps(func)
    def inner(*args: Any, **kwargs: Any) -> Any:
        message = find_message(args, "channel_session_user")
        message.user = _user_for(message.channel_session)
        try:
            return func(*args, **kwargs)
        finally:
            _leave_user_group(message)

    return inner


def channel_session_user_from_http(func: Callable) -> Callable:
    """Log the HTTP session's user into the channel session (C-51).

    Meant for ``websocket.connect``, the one message that carries the cookies;
    later messages of the socket find the user in the channel session.
    """

    return _user_from_http(func, channel_session, "channel_session_user_from_http")


def channel_and_http_session_user_from_http(func: Callable) -> Callable:
    """Like `channel_session_user_from_http`, keeping the HTTP session too (C-52)."""

    return _user_from_http(
        func, channel_and_http_session, "channel_and_http_session_user_from_http"
    )


def _user_from_http(func: Callable, sessions: Callable, name: str) -> Callable:
    """`func` with `sessions` (the channel session, or both) and the HTTP session's
    user transferred into the channel session before it runs (C-51, C-52)."""

    @http_session_user
    @sessions
    @functools.wraps(func)
    def inner(*args: Any, **kwargs: Any) -> Any:
        message = find_message(args, name)
        if message.http_session is not None:
            transfer_user(message.http_session, message.channel_session)
        try:
            result = func(*args, **kwargs)
        finally:
            _leave_user_group(message)
        _join_user_group(message)  # only once the consumer accepted the socket
        return result

    return inner
