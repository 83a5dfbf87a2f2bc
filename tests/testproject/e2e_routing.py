"""Consumers for the real-process tests, written in the Channels 1.x style.

- ``/auth/``: a WebSocket that authenticates from the HTTP session cookie (C-51).
- ``/room/``: every socket joins the ``room`` group; each frame is broadcast to it.
- ``test.hold``: a consumer that stays busy until released, for shutdown tests.
"""

from channels import Channel, Group, route
from channels.auth import channel_session_user, channel_session_user_from_http
from channels.exceptions import DenyConnection


@channel_session_user_from_http
def auth_connect(message):
    if not message.user.is_authenticated:
        raise DenyConnection()
    message.reply_channel.send({"accept": True})
    message.reply_channel.send({"text": f"hello {message.user.username}"})


@channel_session_user
def auth_receive(message):
    message.reply_channel.send({"text": f"{message.user.username} said {message['text']}"})


def room_connect(message):
    Group("room").add(message.reply_channel)
    message.reply_channel.send({"accept": True})


def room_receive(message):
    Group("room").send({"text": message["text"]})


def room_disconnect(message):
    Group("room").discard(message.reply_channel)


def hold(message):
    """Report that we are busy, wait for a release message, then report done."""
    layer = message.channel_layer
    Channel("test.started", channel_layer=layer).send({"n": message["n"]}, immediately=True)
    for _ in range(60):  # bounded: each blocking receive waits at most a few seconds
        channel, _content = layer.receive(["test.release"], block=True)
        if channel is not None:
            break
    Channel("test.done", channel_layer=layer).send({"n": message["n"]}, immediately=True)


def crash(message):
    raise RuntimeError("consumer crashed on purpose")


channel_routing = [
    route("websocket.connect", auth_connect, path=r"^/auth/$"),
    route("websocket.receive", auth_receive, path=r"^/auth/$"),
    route("websocket.connect", room_connect, path=r"^/room/$"),
    route("websocket.receive", room_receive, path=r"^/room/$"),
    route("websocket.disconnect", room_disconnect, path=r"^/room/$"),
    route("test.hold", hold),
    route("test.crash", crash),
]
