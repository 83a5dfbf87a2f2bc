"""The example of docs/testing.rst, run as a test so the docs stay true (C-67..C-70)."""

import json

from django.contrib.auth.models import User

from channels.auth import channel_session_user, channel_session_user_from_http
from channels.routing import route
from channels.test import ChannelTestCase, WSClient, apply_routes


@channel_session_user_from_http
def connect(message):
    message.reply_channel.send({"accept": True})


@channel_session_user
def echo(message):
    reply = {"user": message.user.username, "said": message["text"]}
    message.reply_channel.send({"text": json.dumps(reply)})


class EchoTests(ChannelTestCase):
    def test_echo_names_the_logged_in_user(self):
        client = WSClient()
        client.force_login(User.objects.create_user("alice", password="secret"))
        with apply_routes([route("websocket.connect", connect), route("websocket.receive", echo)]):
            client.send_and_consume("websocket.connect", path="/echo/")
            client.send_and_consume("websocket.receive", text="hi", path="/echo/")
        self.assertEqual(client.receive(), {"user": "alice", "said": "hi"})
