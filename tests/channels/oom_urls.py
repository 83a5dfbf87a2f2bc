"""Views that meet a channel layer out of memory (issue 15 item 9)."""

import redis
from django.conf import settings
from django.http import HttpResponse
from django.urls import path

from channels import Channel
from tests.channels.oom import fill_until_out_of_memory


def layer_send_view(request):
    """Sends to the layer ``?alias=`` at once: a layer out of memory fails the view."""
    Channel("test.sink", alias=request.GET.get("alias", "default")).send({"n": 1}, immediately=True)
    return HttpResponse("sent")


# Kept open: closing it would free its buffers, and with them room for a reply.
_clients: list[redis.Redis] = []


def fill_redis_view(request):
    """Fills the default layer's Redis until it refuses writes (OOM), then answers:
    the worker's reply then meets a layer out of memory (issue 15 item 9)."""
    if not _clients:
        _clients.append(
            redis.Redis.from_url(settings.CHANNEL_LAYERS["default"]["CONFIG"]["hosts"][0])
        )
    fill_until_out_of_memory(_clients[0])
    return HttpResponse("filled")


urlpatterns = [
    path("layer-send/", layer_send_view),
    path("fill-redis/", fill_redis_view),
]
