"""The layers' error contract (issue 16 item 5; A-13, A-16, A-36, A-92).

Three kinds of failure, the same classes on every layer: `ChannelFull` (no room
now), `LayerUnavailable` (``layer.Unavailable``: the backend cannot be used
now) and `LayerUsageError` (the caller's arguments are refused: a bug). The
usage errors keep the exception types ASGI-1 names, so 1.x ``except TypeError``
/ ``except AssertionError`` clauses still catch them.
"""

from __future__ import annotations

import pytest

import channels.layers
from channels.layers.base import (
    BaseChannelLayer,
    ChannelFull,
    InvalidChannelName,
    InvalidGroupName,
    InvalidMessage,
    LayerUnavailable,
    LayerUsageError,
    MessageTooLarge,
    UnsupportedMessageValue,
)
from support.redis_harness import free_port
from tests.asgi_ipc.helpers import remove_store, unique_prefix


def test_hierarchy_keeps_the_asgi_types() -> None:
    assert issubclass(LayerUnavailable, ConnectionError)  # so an OSError too
    assert LayerUnavailable.layer_unavailable is True
    usage = {
        InvalidChannelName: TypeError,
        InvalidGroupName: TypeError,
        UnsupportedMessageValue: TypeError,
        InvalidMessage: AssertionError,
        MessageTooLarge: Exception,
    }
    for error, asgi_type in usage.items():
        assert issubclass(error, LayerUsageError) and issubclass(error, asgi_type)
        assert not issubclass(error, (LayerUnavailable, ChannelFull))
    assert not issubclass(ChannelFull, (LayerUsageError, LayerUnavailable))
    assert not issubclass(LayerUnavailable, LayerUsageError)


def test_exported_from_channels_layers() -> None:
    assert channels.layers.LayerUnavailable is LayerUnavailable
    assert channels.layers.LayerUsageError is LayerUsageError
    assert BaseChannelLayer.Unavailable is LayerUnavailable


def _inmemory():
    from channels.layers.inmemory import ChannelLayer

    return ChannelLayer(), None


def _ipc():
    from asgi_ipc import IPCChannelLayer

    prefix = unique_prefix("errors")
    return IPCChannelLayer(prefix=prefix), lambda: remove_store(prefix)


def _redis():
    # Nothing listens there: every refusal below must come before any network I/O.
    from asgi_redis import RedisChannelLayer

    return RedisChannelLayer(hosts=[("127.0.0.1", free_port())]), None


@pytest.fixture(params=[_inmemory, _ipc, _redis], ids=["inmemory", "ipc", "redis"])
def layer(request):
    built, clean = request.param()
    yield built
    if clean is not None:
        clean()


def test_every_layer_exposes_the_shared_classes(layer) -> None:
    assert layer.Unavailable is LayerUnavailable
    assert layer.ChannelFull is ChannelFull
    assert layer.MessageTooLarge is MessageTooLarge


@pytest.mark.parametrize(
    ("call", "asgi_type"),
    [
        (lambda layer: layer.send("a b", {}), TypeError),
        (lambda layer: layer.send("a", ["not", "a", "dict"]), AssertionError),
        (lambda layer: layer.send("a", {"__asgi_channel__": 1}), AssertionError),
        (lambda layer: layer.send("a", {"v": {1, 2}}), TypeError),
        (lambda layer: layer.send("a", {"v": b"x" * 2_000_000}), Exception),
        (lambda layer: layer.receive("a"), TypeError),
        (lambda layer: layer.receive(["a!x"]), TypeError),
        (lambda layer: layer.new_channel("a!"), AssertionError),
        (lambda layer: layer.group_add("g?x", "a"), TypeError),
        (lambda layer: layer.send_group("g g", {}), TypeError),
    ],
)
def test_usage_errors(layer, call, asgi_type) -> None:
    with pytest.raises(LayerUsageError) as caught:
        call(layer)
    assert isinstance(caught.value, asgi_type)
    assert not isinstance(caught.value, LayerUnavailable)
