"""The worker's per-message path after the issue 9 work (C-17, C-19, C-27, C-31, C-50, C-54).

What made the path cheaper must not change what it does: a project without
django.contrib.auth can still use the generic consumers, and the signals, deferred
sends and routing behave as the spec says.
"""

from __future__ import annotations

import os
import subprocess
import sys

import channels

# A project with only `channels` installed: no auth, no contenttypes, no sessions app.
NO_AUTH_PROJECT = """
import django
from django.conf import settings

settings.configure(
    INSTALLED_APPS=["channels"],
    DATABASES={},
    CHANNEL_LAYERS={
        "default": {
            "BACKEND": "channels.layers.inmemory.ChannelLayer",
            "ROUTING": "__main__.channel_routing",
        }
    },
)
django.setup()

from channels import DEFAULT_CHANNEL_LAYER, channel_layers
from channels.generic.websockets import JsonWebsocketConsumer, WebsocketConsumer
from channels.worker import Worker


class Echo(WebsocketConsumer):
    def receive(self, text=None, bytes=None, **kwargs):
        self.send(text=text.upper())


channel_routing = [Echo.as_route(path=r"^/echo/$")]
layer = channel_layers[DEFAULT_CHANNEL_LAYER]
worker = Worker(channel_layer=layer, signal_handlers=False)
worker.handle("websocket.connect", {"reply_channel": "r.x!1", "path": "/echo/", "order": 0})
worker.handle(
    "websocket.receive", {"reply_channel": "r.x!1", "path": "/echo/", "order": 1, "text": "hi"}
)
replies = [layer.receive(["r.x!"])[1] for _ in range(2)]
assert layer.receive(["r.x!"]) == (None, None)
import sys

print(replies, "django.contrib.auth.models" in sys.modules)
"""


def test_generic_consumers_work_without_the_auth_app():
    """C-54, C-50: importing and running a WebsocketConsumer needs no django.contrib.auth.

    `channels.generic` imports `channels.auth`, which used to import the auth models at
    import time; they now load only when a user is looked up.
    """
    env = {key: value for key, value in os.environ.items() if key != "DJANGO_SETTINGS_MODULE"}
    done = subprocess.run(
        [sys.executable, "-c", NO_AUTH_PROJECT],
        cwd=os.path.dirname(os.path.dirname(channels.__file__)),
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "[{'accept': True}, {'text': 'HI'}] False"


class _Sender:
    pass


class _OtherSender:
    pass


def test_consumer_signals_see_receivers_connected_and_disconnected_between_sends():
    """C-27: the per-class receiver cache of consumer_started never hides a (dis)connect."""
    from channels.signals import consumer_started

    calls = []

    def receiver(sender, **kwargs):
        calls.append(sender)

    consumer_started.send(sender=_Sender, environ={})  # fills the cache for _Sender
    consumer_started.connect(receiver)
    try:
        consumer_started.send(sender=_Sender, environ={})
        consumer_started.send(sender=None, environ={})  # not a class: Django's own path
    finally:
        assert consumer_started.disconnect(receiver) is True
    consumer_started.send(sender=_Sender, environ={})
    assert calls == [_Sender, None]


def test_consumer_signals_respect_the_sender_filter_and_dead_receivers():
    """C-27: a receiver bound to one sender class is not called for another; a collected
    weakly connected receiver is not called."""
    import gc

    from channels.signals import consumer_finished

    calls = []

    class Holder:
        def receiver(self, sender, **kwargs):
            calls.append(("held", sender))

    def only_sender(sender, **kwargs):
        calls.append(("only", sender))

    holder = Holder()
    consumer_finished.connect(holder.receiver)
    consumer_finished.connect(only_sender, sender=_Sender)
    try:
        consumer_finished.send(sender=_Sender)
        consumer_finished.send(sender=_OtherSender)
        del holder
        gc.collect()
        consumer_finished.send(sender=_Sender)
        consumer_finished.send(sender=_OtherSender)
    finally:
        consumer_finished.disconnect(only_sender, sender=_Sender)
    assert calls == [
        ("held", _Sender),
        ("only", _Sender),
        ("held", _OtherSender),
        ("only", _Sender),
    ]
