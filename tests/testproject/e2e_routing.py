"""Consumers for the real-process tests, written in the Channels 1.x style.

- ``/auth/``: a WebSocket that authenticates from the HTTP session cookie (C-51).
- ``/room/``: every socket joins the ``room`` group; each frame is broadcast to it.
- ``test.hold``: a consumer that stays busy until released, for shutdown tests;
  ``test.hold_main`` / ``test.hold_thread`` hold only in the main thread / a sub-thread
  of a ``--threads`` group (elsewhere they put the message back), so a test can choose
  which thread is busy.
- ``alo.hold`` / ``alo.crash``: at-least-once consumers reporting their deliveries on
  ``alo_report.*`` (issue 17).
- ``/echo/``: sends every text frame back (the chaos tests of issue 17).
"""

import os
import threading

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


def _hold_in(main: bool):
    def consumer(message):
        if (threading.current_thread() is threading.main_thread()) != main:
            message.channel.send(dict(message.content), immediately=True)
            return
        hold(message)

    return consumer


def crash(message):
    raise RuntimeError("consumer crashed on purpose")


def _delivery(message):
    return {
        "n": message["n"],
        "count": message.delivery_count,
        "redelivered": message.redelivered,
        "pid": os.getpid(),
    }


def alo_hold(message):
    """At-least-once (issue 17): report the delivery, then hold until released."""
    layer = message.channel_layer
    Channel("alo_report.started", channel_layer=layer).send(_delivery(message), immediately=True)
    for _ in range(60):  # bounded: each blocking receive waits at most a few seconds
        channel, _content = layer.receive(["test.release"], block=True)
        if channel is not None:
            break
    Channel("alo_report.done", channel_layer=layer).send(_delivery(message), immediately=True)


def alo_crash(message):
    """At-least-once (issue 17): report the attempt, then fail."""
    Channel("alo_report.attempt", channel_layer=message.channel_layer).send(
        _delivery(message), immediately=True
    )
    raise RuntimeError("at-least-once consumer crashed on purpose")


def echo_connect(message):
    message.reply_channel.send({"accept": True})


def echo_receive(message):
    message.reply_channel.send({"text": message["text"]})


channel_routing = [
    route("websocket.connect", echo_connect, path=r"^/echo/$"),
    route("websocket.receive", echo_receive, path=r"^/echo/$"),
    route("websocket.connect", auth_connect, path=r"^/auth/$"),
    route("websocket.receive", auth_receive, path=r"^/auth/$"),
    route("websocket.connect", room_connect, path=r"^/room/$"),
    route("websocket.receive", room_receive, path=r"^/room/$"),
    route("websocket.disconnect", room_disconnect, path=r"^/room/$"),
    route("test.hold", hold),
    route("test.hold_main", _hold_in(main=True)),
    route("test.hold_thread", _hold_in(main=False)),
    route("test.crash", crash),
    route("alo.hold", alo_hold),
    route("alo.crash", alo_crash),
]
