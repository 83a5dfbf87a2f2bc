"""Routing of the live test server: a page with the JavaScript bridge and its streams.

Imported only inside the server processes (the binding below registers model signals).
"""

from __future__ import annotations

import json
from typing import Any

from channels.binding.websockets import WebsocketBinding
from channels.generic.websockets import WebsocketDemultiplexer, WebsocketMultiplexer
from channels.message import Message
from channels.routing import route, route_class
from channels.security.websockets import allowed_origins

from .models import Note

NOTES_GROUP = "live-notes"

BRIDGE_PAGE = b"""<!DOCTYPE html>
<html><head><meta charset="utf-8"><title>bridge</title>
<script src="/static/channels/js/websocketbridge.js"></script>
</head><body>bridge test page</body></html>
"""


def bridge_page(message: Message, **kwargs: Any) -> None:
    """The page the browser test loads, so the bridge connects to its own origin."""
    message.reply_channel.send(
        {
            "status": 200,
            "headers": [[b"content-type", b"text/html; charset=utf-8"]],
            "content": BRIDGE_PAGE,
        }
    )


class Echo:
    """Stream "echo": greets on connect and echoes each payload back on its stream."""

    @classmethod
    def consumer(cls, message: Message, multiplexer: WebsocketMultiplexer, **kwargs: Any):
        channel = message.channel.name
        if channel == "websocket.connect":
            multiplexer.send({"hello": True})
        elif channel == "websocket.receive":
            multiplexer.send({"echo": json.loads(message["text"])})


class Control:
    """Stream "control": ``{"drop": true}`` closes the socket from the server side;
    ``{"plain": x}`` answers with a frame that has no stream (for the default callback).
    """

    @classmethod
    def consumer(cls, message: Message, multiplexer: WebsocketMultiplexer, **kwargs: Any):
        if message.channel.name != "websocket.receive":
            return
        payload = json.loads(message["text"])
        if payload.get("drop"):
            message.reply_channel.send({"close": True})
        elif "plain" in payload:
            message.reply_channel.send({"text": json.dumps({"plain": payload["plain"]})})


class NoteBinding(WebsocketBinding):
    """Stream "notes": Note changes to every connected client, and back."""

    model = Note
    stream = "notes"
    fields = ["title", "room"]

    @classmethod
    def group_names(cls, instance: Note) -> list[str]:
        return [NOTES_GROUP]

    def has_permission(self, user: Any, action: str, pk: Any) -> bool:
        return action == "create"


class BridgeDemultiplexer(WebsocketDemultiplexer):
    groups = [NOTES_GROUP]
    consumers = {
        "echo": Echo.consumer,
        "control": Control.consumer,
        "notes": NoteBinding.consumer,
    }


@allowed_origins("127.0.0.1", "localhost")
def local_origin_only(message: Message, **kwargs: Any) -> None:
    """A connect consumer refusing every origin but this machine's (C-89)."""
    message.reply_channel.send({"accept": True})


channel_routing = [
    route("http.request", bridge_page, path=r"^/bridge/$"),
    route_class(BridgeDemultiplexer, path=r"^/ws/$"),
    route("websocket.connect", local_origin_only, path=r"^/local-only/$"),
]
