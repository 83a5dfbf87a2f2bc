"""Channel and Group (C-14..C-16) and deferred sends through the pending store (C-19)."""

from __future__ import annotations

import pytest

from channels import Channel, Group
from channels.message import pending_message_store
from channels.signals import consumer_finished, consumer_started
from tests.channels.helpers import fresh_layer


@pytest.fixture
def layer():
    with fresh_layer() as wrapper:
        yield wrapper


def test_channel_uses_default_alias_and_decodes_bytes(layer):
    """C-14: name str or ASCII bytes; layer from channel_layers[alias]."""
    channel = Channel(b"test.channel")
    assert channel.name == "test.channel" and str(channel) == "test.channel"
    assert channel.channel_layer is layer


def test_channel_send_outside_consumer_is_immediate(layer):
    """C-15: no consumer running → the layer's send is called now."""
    Channel("test.channel").send({"value": 1})
    assert layer.receive(["test.channel"]) == ("test.channel", {"value": 1})


def test_channel_send_requires_dict(layer):
    """C-15: non-dict content → TypeError."""
    with pytest.raises(TypeError, match="only send dicts"):
        Channel("test.channel").send(["not", "a", "dict"])


def test_channel_full_propagates_when_immediate():
    """C-15: ChannelFull from the layer propagates."""
    with fresh_layer(capacity=1) as layer:
        Channel("test.channel").send({"n": 1})
        with pytest.raises(layer.ChannelFull):
            Channel("test.channel").send({"n": 2})


def test_sends_inside_consumer_are_deferred_until_it_finishes(layer):
    """C-15/C-19: inside a consumer sends queue and go out in order at consumer_finished."""
    consumer_started.send(sender=None, environ={})
    try:
        Channel("test.channel").send({"n": 1})
        Group("g").add("test.member")
        Group("g").send({"n": 2})
        Channel("test.channel").send({"n": 3}, immediately=True)
        assert layer.receive(["test.channel"]) == ("test.channel", {"n": 3})
        assert layer.receive(["test.channel", "test.member"]) == (None, None)
    finally:
        consumer_finished.send(sender=None)
    assert not pending_message_store.active
    assert layer.receive(["test.channel"]) == ("test.channel", {"n": 1})
    assert layer.receive(["test.member"]) == ("test.member", {"n": 2})


def test_group_add_discard_send(layer):
    """C-16: add/discard accept a Channel or a name; send goes to members."""
    group = Group(b"room")
    group.add(Channel("a.one"))
    group.add("a.two")
    group.discard(Channel("a.two"))
    group.send({"text": "hi"})
    assert layer.receive(["a.one"]) == ("a.one", {"text": "hi"})
    assert layer.receive(["a.two"]) == (None, None)
    assert layer.group_channels("room") == ["a.one"]


def test_group_send_non_dict_is_value_error(layer):
    """C-16: Group.send with a non-dict raises ValueError, as in 1.1."""
    with pytest.raises(ValueError, match="only send dicts"):
        Group("room").send("text")


def test_explicit_channel_layer_wins(layer):
    """C-14/C-16: a truthy channel_layer argument is used instead of the alias."""
    with fresh_layer(alias="other") as other:
        channel = Channel("x.y", alias="other")
        assert channel.channel_layer is other
        assert Group("g", channel_layer=layer).channel_layer is layer


def test_unknown_alias_is_key_error():
    """C-10: an unknown alias → KeyError."""
    with pytest.raises(KeyError):
        Channel("x.y", alias="no-such-alias")
