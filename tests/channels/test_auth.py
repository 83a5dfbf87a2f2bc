"""Users for consumers from HTTP and channel sessions (C-48..C-52).

Real users on the SQLite test database, logged in through `WSClient.login`,
which stores them in a real database session.
"""

from __future__ import annotations

import pytest
from django.contrib.auth import BACKEND_SESSION_KEY, HASH_SESSION_KEY, SESSION_KEY
from django.contrib.auth.models import User
from django.contrib.sessions.backends.db import SessionStore

from channels import route
from channels.auth import (
    channel_and_http_session_user_from_http,
    channel_session_user,
    channel_session_user_from_http,
    http_session_user,
    transfer_user,
)
from channels.sessions import session_for_reply_channel
from channels.test import ChannelTestCase, WSClient, apply_routes


def describe_user(message):
    user = message.user
    message.reply_channel.send(
        {"authenticated": user.is_authenticated, "username": user.get_username()}
    )


@http_session_user
def http_user_consumer(message, **kwargs):
    describe_user(message)


@channel_session_user
def channel_user_consumer(message, **kwargs):
    describe_user(message)


@channel_session_user_from_http
def connect_from_http(message, **kwargs):
    message.reply_channel.send({"accept": True})


@channel_and_http_session_user_from_http
def connect_keeping_http(message, **kwargs):
    message.reply_channel.send(
        {"accept": True, "http_key": getattr(message.http_session, "session_key", None)}
    )


class StandaloneConsumer:
    @channel_session_user
    def receive(self, message, **kwargs):
        describe_user(message)


ANONYMOUS = {"authenticated": False, "username": ""}
ALICE = {"authenticated": True, "username": "alice"}


class TransferUserTests(ChannelTestCase):
    def test_copies_all_three_keys(self):
        """C-48: backend, id and hash are copied together."""
        source = SessionStore()
        source.update({BACKEND_SESSION_KEY: "b", SESSION_KEY: "1", HASH_SESSION_KEY: "h", "x": 1})
        target = SessionStore()
        transfer_user(source, target)
        assert dict(target.items()) == {
            BACKEND_SESSION_KEY: "b",
            SESSION_KEY: "1",
            HASH_SESSION_KEY: "h",
        }

    def test_copies_nothing_when_a_key_is_missing(self):
        """C-48: a partial login is not copied at all."""
        for missing in (BACKEND_SESSION_KEY, SESSION_KEY, HASH_SESSION_KEY):
            source = SessionStore()
            source.update({BACKEND_SESSION_KEY: "b", SESSION_KEY: "1", HASH_SESSION_KEY: "h"})
            del source[missing]
            target = SessionStore()
            transfer_user(source, target)
            assert dict(target.items()) == {}


@apply_routes(
    [
        route("websocket.connect", connect_from_http),
        route("websocket.receive", channel_user_consumer),
        route("http.request", http_user_consumer),
    ]
)
class AuthDecoratorTests(ChannelTestCase):
    def setUp(self):
        self.alice = User.objects.create_user("alice", password="secret")

    def logged_in_client(self):
        client = WSClient()
        assert client.login(username="alice", password="secret")
        return client

    def test_http_session_user(self):
        """C-49: message.user comes from the HTTP session named by the cookie."""
        client = self.logged_in_client()
        client.send_and_consume("http.request", {"method": "GET"})
        assert client.receive(json=False) == ALICE

    def test_http_session_user_anonymous_without_session(self):
        """C-49: no HTTP session -> AnonymousUser."""
        client = WSClient()
        client.send("http.request", {"method": "GET", "headers": []})
        client.consume("http.request")
        assert client.receive(json=False) == ANONYMOUS

    def test_user_carried_from_connect_to_later_frames(self):
        """C-50, C-51: connect copies the HTTP user into the channel session; frames see it."""
        client = self.logged_in_client()
        client.send_and_consume("websocket.connect")
        channel_session = session_for_reply_channel(client.reply_channel)
        assert channel_session[SESSION_KEY] == str(self.alice.pk)
        # The session cookie went with the connect only; the frame has none.
        client.send_and_consume("websocket.receive", text="hello")
        assert client.receive(json=False) == ALICE

    def test_channel_session_user_anonymous(self):
        """C-50: a channel session without a login gives AnonymousUser."""
        client = WSClient()
        client.send_and_consume("websocket.connect")
        client.send_and_consume("websocket.receive", text="hello")
        assert client.receive(json=False) == ANONYMOUS

    def test_logout_elsewhere_invalidates(self):
        """C-50: a changed password (session hash) logs the socket out, as Django does."""
        client = self.logged_in_client()
        client.send_and_consume("websocket.connect")
        self.alice.set_password("changed")
        self.alice.save()
        client.send_and_consume("websocket.receive", text="hello")
        assert client.receive(json=False) == ANONYMOUS

    def test_method_consumer(self):
        """C-50: the decorators work on methods (message as second argument)."""
        client = self.logged_in_client()
        client.send_and_consume("websocket.connect")
        client.send("websocket.receive", text="x")
        StandaloneConsumer().receive(client.get_next_message("websocket.receive"))
        assert client.receive(json=False) == ALICE

    def test_force_login(self):
        """C-69 with C-51: force_login users are carried to the socket too."""
        bob = User.objects.create_user("bob")
        client = WSClient()
        client.force_login(bob)
        client.send_and_consume("websocket.connect")
        client.send_and_consume("websocket.receive", text="x")
        assert client.receive(json=False) == {"authenticated": True, "username": "bob"}

    def test_channel_and_http_session_user_from_http(self):
        """C-52: like C-51, and the HTTP session is kept for later messages."""
        client = self.logged_in_client()
        http_key = client.session.session_key
        with apply_routes(
            [
                route("websocket.connect", connect_keeping_http),
                route("websocket.receive", connect_keeping_http),
            ]
        ):
            client.send("websocket.connect")
            client.consume("websocket.connect", check_accept=False)
            assert client.receive(json=False) == {"accept": True, "http_key": http_key}
            client.send_and_consume("websocket.receive", text="x")
            assert client.receive(json=False) == {"accept": True, "http_key": http_key}
        channel_session = session_for_reply_channel(client.reply_channel)
        assert channel_session[SESSION_KEY] == str(self.alice.pk)


@pytest.mark.django_db
def test_message_required():
    """C-49: decorators need a Message argument."""
    with pytest.raises(ValueError, match="called without Message instance"):
        http_user_consumer("not a message")
