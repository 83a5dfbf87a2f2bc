"""Consumers with the bench app's semantics (benchmarks/app/benchapp/consumers.py).

Async consumers, the way Channels 4 is written for speed: the echo never leaves daphne's
process, the broadcast goes through channels-redis groups.
"""

from channels.generic.websocket import AsyncWebsocketConsumer

BROADCAST_GROUP = "bench-broadcast"


class EchoConsumer(AsyncWebsocketConsumer):
    """Sends every frame straight back (W2, W4)."""

    async def receive(self, text_data=None, bytes_data=None):
        await self.send(text_data=text_data, bytes_data=bytes_data)


class BroadcastConsumer(AsyncWebsocketConsumer):
    """Joins the group before accepting; every frame received goes to the whole group (W3)."""

    async def connect(self):
        await self.channel_layer.group_add(BROADCAST_GROUP, self.channel_name)
        await self.accept()

    async def receive(self, text_data=None, bytes_data=None):
        await self.channel_layer.group_send(
            BROADCAST_GROUP, {"type": "broadcast.message", "text": text_data}
        )

    async def broadcast_message(self, event):
        await self.send(text_data=event["text"])

    async def disconnect(self, code):
        await self.channel_layer.group_discard(BROADCAST_GROUP, self.channel_name)
