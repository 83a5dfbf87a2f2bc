"""Per-user socket groups and closing a user's sockets (issue 15 item 9; C-49..C-52).

Real users and sessions on the SQLite test database, the in-memory layer of
`ChannelTestCase`, consumers run through `WSClient` as a worker would.
"""

from __future__ import annotations

import re
import uuid

import pytest
from django.contrib.auth.models import User
from django.test import override_settings

from channels import route
from channels.asgi import channel_layers
from channels.auth import (
    USER_GROUP_KEY,
    channel_session_user,
    channel_session_user_from_http,
    close_user_sockets,
    user_group_name,
)
from channels.exceptions import DenyConnection
from channels.sessions import session_for_reply_channel
from channels.test import ChannelTestCase, WSClient, apply_routes

# L-9: group names are ASCII letters, digits, hyphens, periods and underscores, < 100.
VALID_GROUP = re.compile(r"[A-Za-z0-9._-]{1,99}\Z")


@channel_session_user_from_http
def connect(message, **kwargs):
    if message.content.get("deny"):
        raise DenyConnection()
    message.reply_channel.send({"accept": True})


@channel_session_user
def disconnect(message, **kwargs):
    pass


class FakeUser:
    def __init__(self, pk):
        self.pk = pk


def test_group_name_from_plain_and_awkward_primary_keys():
    """Issue 15 item 9: every primary key gives a valid group name of its own."""
    assert user_group_name(FakeUser(42)) == "user.42"
    awkward = [uuid.uuid4(), "ali ce", "é", "x" * 200, "h" + "0" * 40]
    names = {user_group_name(FakeUser(pk)) for pk in awkward}
    assert len(names) == len(awkward)
    assert all(VALID_GROUP.match(name) for name in names)
    # A hashed name can never equal a plain one: they have different prefixes.
    assert user_group_name(FakeUser("h" + "0" * 40)) == "user.h" + "0" * 40


@apply_routes([route("websocket.connect", connect), route("websocket.disconnect", disconnect)])
class UserGroupTests(ChannelTestCase):
    def setUp(self):
        self.alice = User.objects.create_user("alice", password="secret")
        self.group = user_group_name(self.alice)

    def members(self):
        return channel_layers["default"].group_channels(self.group)

    def connected_client(self, **content):
        client = WSClient()
        assert client.login(username="alice", password="secret")
        client.send("websocket.connect", content)
        client.consume("websocket.connect", check_accept=False)
        return client

    @override_settings(CHANNELS_USER_GROUPS=True)
    def test_connect_joins_and_close_user_sockets_closes(self):
        """Issue 15 item 9: an authenticated socket joins user.<pk>; closing reaches it."""
        first, second = self.connected_client(), self.connected_client()
        assert first.receive(json=False) == {"accept": True}
        assert second.receive(json=False) == {"accept": True}
        assert sorted(self.members()) == sorted([first.reply_channel, second.reply_channel])
        close_user_sockets(self.alice)
        assert first.receive(json=False) == {"close": True}
        assert second.receive(json=False) == {"close": True}

    @override_settings(CHANNELS_USER_GROUPS=True)
    def test_disconnect_leaves_the_group(self):
        """Issue 15 item 9: disconnect (channel_session_user) discards the socket."""
        client = self.connected_client()
        session = session_for_reply_channel(client.reply_channel)
        assert session[USER_GROUP_KEY] == self.group
        client.send_and_consume("websocket.disconnect")
        assert self.members() == []
        assert USER_GROUP_KEY not in session_for_reply_channel(client.reply_channel)

    @override_settings(CHANNELS_USER_GROUPS=True)
    def test_refused_and_anonymous_sockets_join_nothing(self):
        """Issue 15 item 9: a denied connect or an anonymous socket is in no user group."""
        with pytest.raises(DenyConnection):
            self.connected_client(deny=True)
        anonymous = WSClient()
        anonymous.send_and_consume("websocket.connect")
        assert self.members() == []
        assert channel_layers["default"].group_channels("user.None") == []

    def test_off_by_default(self):
        """Issue 15 item 9: without CHANNELS_USER_GROUPS, connect costs no group call."""
        client = self.connected_client()
        assert client.receive(json=False) == {"accept": True}
        assert self.members() == []
