"""Authentication for consumers: ``message.user`` from a session (C-48..C-52).

Django's `get_user` reads the user from ``request.session``; consumers have no
request, so each decorator hands it a stand-in object whose only attribute is
the session in question.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any

from django.contrib import auth
from django.contrib.sessions.backends.base import SessionBase

from .sessions import channel_and_http_session, channel_session, find_message, http_session

__all__ = [
    "channel_and_http_session_user_from_http",
    "channel_session_user",
    "channel_session_user_from_http",
    "http_session_user",
    "transfer_user",
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
        return func(*args, **kwargs)

    return inner


def channel_session_user_from_http(func: Callable) -> Callable:
    """Log the HTTP session's user into the channel session (C-51).

    Meant for ``websocket.connect``, the one message that carries the cookies;
    later messages of the socket find the user in the channel session.
    """

    @http_session_user
    @channel_session
    @functools.wraps(func)
    def inner(*args: Any, **kwargs: Any) -> Any:
        message = find_message(args, "channel_session_user_from_http")
        if message.http_session is not None:
            transfer_user(message.http_session, message.channel_session)
        return func(*args, **kwargs)

    return inner


def channel_and_http_session_user_from_http(func: Callable) -> Callable:
    """Like `channel_session_user_from_http`, keeping the HTTP session too (C-52)."""

    @http_session_user
    @channel_and_http_session
    @functools.wraps(func)
    def inner(*args: Any, **kwargs: Any) -> Any:
        message = find_message(args, "channel_and_http_session_user_from_http")
        if message.http_session is not None:
            transfer_user(message.http_session, message.channel_session)
        return func(*args, **kwargs)

    return inner
