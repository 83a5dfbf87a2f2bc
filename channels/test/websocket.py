"""`WSClient`: a test client speaking the WebSocket/HTTP message formats (C-69)."""

from __future__ import annotations

import copy
import json
from http.cookies import SimpleCookie
from typing import Any

from django.apps import apps
from django.conf import settings
from django.contrib.sessions.backends.base import SessionBase

from ..sessions import session_for_reply_channel
from .base import Client

__all__ = ["WSClient"]


class WSClient(Client):
    """A `Client` that fills in `path`, `headers` (with cookies), `order` and `text`.

    Until its first send, the client's cookies carry the session of its reply
    channel, so `login`/`force_login` before connecting log the socket in
    through `http_session` decorators.
    """

    def __init__(self, ordered: bool = False, **client_kwargs: Any) -> None:
        super().__init__(**client_kwargs)
        self._ordered = ordered
        self._session: SessionBase | None = None
        self._headers: dict[str, Any] = {}
        self._cookies: dict[str, str] = {}
        self._session_cookie = True
        self.order = 0

    def set_cookie(self, key: str, value: str) -> None:
        self._cookies[key] = value

    def set_header(self, key: str, value: Any) -> None:
        if key == "cookie":
            raise ValueError("Use the set_cookie method to set the cookie header")
        self._headers[key] = value

    def get_cookies(self) -> dict[str, str]:
        cookies = dict(self._cookies)
        if self._session_cookie and apps.is_installed("django.contrib.sessions"):
            cookies[settings.SESSION_COOKIE_NAME] = self.session.session_key
        return cookies

    @property
    def headers(self) -> dict[str, Any]:
        headers = copy.deepcopy(self._headers)
        headers.setdefault("cookie", encode_cookies(self.get_cookies()))
        return headers

    @property
    def session(self) -> SessionBase:
        """The channel session of this client's reply channel (created on first use)."""
        if not apps.is_installed("django.contrib.sessions"):
            raise OSError("Add django.contrib.sessions to INSTALLED_APPS to use WSClient sessions")
        if self._session is None:
            self._session = session_for_reply_channel(self.reply_channel)
        return self._session

    def receive(self, json: bool = True) -> Any:
        """The next reply's `text` (JSON-decoded when `json` and a str), or the whole
        content when it has no `text`, or None when there is no reply (C-69, as 1.x)."""
        content = super().receive()
        if content is None:
            return None
        if "text" not in content:
            return content
        text = content["text"]
        if json and isinstance(text, str):
            return _decode_json(text)
        return text

    def send(self, to: str, content: dict = {}, text: Any = None, path: str = "/") -> None:  # noqa: B006
        """Send to channel `to`, filling in the defaults of `_get_content`.

        Only ``websocket.connect`` carries the query string of `path` (A-83); other
        channels get the path without it.
        """
        if to != "websocket.connect":
            path = path.partition("?")[0]
        self.channel_layer.send(to, self._get_content(content, text, path))
        # The session cookie is only offered on the first message, as a browser
        # only sends cookies with the handshake.
        self._session_cookie = False

    def _get_content(self, content: dict = {}, text: Any = None, path: str = "/") -> dict:  # noqa: B006
        """A copy of `content` with `reply_channel`, `path`, `query_string` (when `path`
        holds a ``?``), `headers`, `order` (ordered clients) and `text` filled in (C-69).

        1.x tests call this directly, so its name, signature and defaults stay.
        """
        content = copy.deepcopy(content)
        content.setdefault("reply_channel", self.reply_channel)
        if "?" in path:
            path, _, query_string = path.partition("?")
            content.setdefault("query_string", query_string)
        content.setdefault("path", path)
        content.setdefault("headers", self.headers)
        if self._ordered:
            if "order" in content:
                raise ValueError('Do not set "order" manually on a WSClient(ordered=True)')
            content["order"] = self.order
            self.order += 1
        # As 1.x: an empty `text` argument falls back to the content's own.
        text = text or content.get("text")
        if text is not None:
            content["text"] = text if isinstance(text, str) else json.dumps(text)
        return content

    def send_and_consume(  # type: ignore[override]
        self,
        channel: str,
        content: dict = {},  # noqa: B006
        text: Any = None,
        path: str = "/",
        fail_on_none: bool = True,
        check_accept: bool = True,
    ) -> Any:
        """Send a message and run its consumer: one full step of a socket's life."""
        self.send(channel, content, text, path)
        return self.consume(channel, fail_on_none=fail_on_none, check_accept=check_accept)

    def consume(self, channel: str, fail_on_none: bool = True, check_accept: bool = True) -> Any:
        result = super().consume(channel, fail_on_none=fail_on_none)
        if channel == "websocket.connect" and check_accept:
            received = self.receive(json=False)
            if received != {"accept": True}:
                raise AssertionError(f"Connection rejected: {received!r} != {{'accept': True}}")
        return result

    def login(self, **credentials: Any) -> bool:
        """Authenticate and log the user into this client's session; False if refused."""
        from django.contrib.auth import authenticate

        user = authenticate(**credentials)
        if user is None or not user.is_active or not apps.is_installed("django.contrib.sessions"):
            return False
        self._login(user)
        return True

    def force_login(self, user: Any, backend: str | None = None) -> None:
        """Log `user` into this client's session without credentials."""
        if backend is None:
            backend = settings.AUTHENTICATION_BACKENDS[0]
        user.backend = backend
        self._login(user)

    def _login(self, user: Any) -> None:
        from django.contrib.auth import login

        login(_LoginRequest(self.session), user)
        self.session.save()


class _LoginRequest:
    """The request `django.contrib.auth.login` needs: a session and a META dict."""

    def __init__(self, session: SessionBase) -> None:
        self.session = session
        self.META: dict[str, Any] = {}


def encode_cookies(cookies: dict[str, str]) -> bytes:
    """Cookies as one ``Cookie`` header value (ASCII bytes)."""
    encoder = SimpleCookie()
    for key, value in cookies.items():
        encoder[key] = value
    return encoder.output(header="", sep=";").encode("ascii")


def _decode_json(text: str) -> Any:
    return json.loads(text)
