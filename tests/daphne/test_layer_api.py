"""daphne's declared view of a channel layer (`daphne.layer_api`, issue 16 item 5, D-4).

The protocols describe what daphne calls; `unavailable_errors` says which
exceptions mean "the backend is away" for any layer, ours or one written for 1.x.
Real layers: the in-memory one, IPC, and Redis (built, never connected).
"""

from __future__ import annotations

import redis

from asgi_ipc import IPCChannelLayer
from asgi_redis import RedisChannelLayer
from asgi_redis.errors import unavailable
from channels.layers.base import LayerUnavailable
from channels.layers.inmemory import ChannelLayer
from daphne.layer_api import (
    FOREIGN_UNAVAILABLE,
    Announcing,
    BatchSending,
    BufferedReceiving,
    SocketReceiving,
    SocketSending,
    is_unavailable,
    unavailable_errors,
)
from daphne.layer_api import ChannelLayer as LayerProtocol
from tests.asgi_ipc.helpers import remove_store, unique_prefix


class OneXLayer:
    """A layer written for 1.x: the ASGI-1 calls and nothing of this project's."""

    class ChannelFull(Exception):
        pass

    class MessageTooLarge(Exception):
        pass

    def send(self, channel, message):
        pass

    def receive(self, channels, block=False):
        return None, None

    def new_channel(self, pattern):
        return pattern + "x"


class OwnOutageLayer(OneXLayer):
    class Unavailable(Exception):
        """A foreign layer's own notion of an outage, without the project's marker."""


def test_capabilities_of_the_project_layers():
    redis_layer = RedisChannelLayer(hosts=["redis://127.0.0.1:1/0"])
    memory = ChannelLayer()
    for layer in (redis_layer, memory):
        assert isinstance(layer, LayerProtocol)
    for capability in (BatchSending, BufferedReceiving, SocketReceiving, SocketSending, Announcing):
        assert isinstance(redis_layer, capability), capability
    assert not isinstance(memory, BatchSending)
    assert not isinstance(memory, SocketReceiving)
    assert isinstance(OneXLayer(), LayerProtocol)


def test_unavailable_errors_of_the_project_layers():
    prefix = unique_prefix("layer-api")
    try:
        layers = [
            ChannelLayer(),
            IPCChannelLayer(prefix=prefix),
            RedisChannelLayer(hosts=["redis://127.0.0.1:1/0"]),
        ]
        for layer in layers:
            assert unavailable_errors(layer) == (LayerUnavailable,)
    finally:
        remove_store(prefix)
    layer = RedisChannelLayer(hosts=["redis://127.0.0.1:1/0"])
    outage = unavailable(redis.ConnectionError("refused"), "Redis shard 0 at 127.0.0.1:1: refused")
    assert is_unavailable(layer, outage)
    assert not is_unavailable(layer, layer.ChannelFull("full"))
    assert not is_unavailable(layer, TypeError("bad name"))
    assert not is_unavailable(layer, redis.ResponseError("WRONGTYPE"))  # a bug, not an outage


def test_unavailable_errors_of_foreign_layers():
    assert unavailable_errors(OneXLayer()) == FOREIGN_UNAVAILABLE
    assert is_unavailable(OneXLayer(), ConnectionRefusedError())
    assert is_unavailable(OneXLayer(), TimeoutError())
    assert not is_unavailable(OneXLayer(), KeyError("x"))
    own = OwnOutageLayer()
    assert unavailable_errors(own) == (OwnOutageLayer.Unavailable, *FOREIGN_UNAVAILABLE)
    assert is_unavailable(own, OwnOutageLayer.Unavailable())


def test_an_error_that_says_so_itself_is_an_outage():
    class Marked(Exception):
        layer_unavailable = True

    assert is_unavailable(OneXLayer(), Marked())
