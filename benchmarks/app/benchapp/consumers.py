"""Consumers for W2..W6: an echo class consumer and a group broadcast made of functions."""

from channels import Group
from channels.generic.websockets import WebsocketConsumer

BROADCAST_GROUP = "bench-broadcast"


class EchoConsumer(WebsocketConsumer):
    """Sends every frame straight back (W2, W4, W5, W6)."""

    def receive(self, text=None, bytes=None, **kwargs):
        self.send(text=text, bytes=bytes)


def broadcast_connect(message):
    # Join before accepting, so an open socket is already a member (W3 starts sending then).
    Group(BROADCAST_GROUP).add(message.reply_channel)
    message.reply_channel.send({"accept": True})


def broadcast_receive(message):
    Group(BROADCAST_GROUP).send({"text": message["text"]})


def broadcast_disconnect(message):
    Group(BROADCAST_GROUP).discard(message.reply_channel)
