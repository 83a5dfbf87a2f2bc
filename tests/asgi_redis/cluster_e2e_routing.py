"""Consumers for daphne + runworker on a Redis Cluster (issue 19 item 1), 1.x style.

- ``/echo/``: accepts, tells the client its reply channel (so a test can find the slot
  daphne's replies live in), then echoes every frame.
- ``/room/``: every socket joins the ``room`` group on connect and is told its reply
  channel; each frame is broadcast to the group (W3).
"""

from channels import Group, route


def echo_connect(message):
    message.reply_channel.send({"accept": True})
    message.reply_channel.send({"text": "reply-channel " + message.reply_channel.name})


def echo_receive(message):
    message.reply_channel.send({"text": message["text"]})


def room_connect(message):
    Group("room").add(message.reply_channel)
    message.reply_channel.send({"accept": True})
    message.reply_channel.send({"text": "reply-channel " + message.reply_channel.name})


def room_receive(message):
    Group("room").send({"text": message["text"]})


def room_disconnect(message):
    Group("room").discard(message.reply_channel)


channel_routing = [
    route("websocket.connect", echo_connect, path=r"^/echo/$"),
    route("websocket.receive", echo_receive, path=r"^/echo/$"),
    route("websocket.connect", room_connect, path=r"^/room/$"),
    route("websocket.receive", room_receive, path=r"^/room/$"),
    route("websocket.disconnect", room_disconnect, path=r"^/room/$"),
]
