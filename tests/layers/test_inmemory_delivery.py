"""At-least-once delivery on the in-memory layer (issue 17): the conformance block, the
whole suite with the option on, and the layer's own rules."""

from __future__ import annotations

import pytest

from channels.layers import conformance
from channels.layers.base import DELIVERY_KEY
from channels.layers.inmemory import ChannelLayer


class InMemoryAtLeastOnceConformance(conformance.ConformanceTestCase):
    """The whole suite (L-58 settings) plus the at-least-once block."""

    channel_layer = ChannelLayer(
        expiry=1,
        group_expiry=2,
        capacity=5,
        at_least_once=["alo.*"],
        ack_timeout=1,
        max_deliveries=3,
    )
    expiry_delay = 1.1
    capacity_limit = 5


def test_default_is_at_most_once() -> None:
    """Issue 17: without the option nothing changes: no extension, no delivery key."""
    layer = ChannelLayer()
    assert "at_least_once" not in layer.extensions
    layer.send("alo.x", {"n": 1})
    assert layer.receive(["alo.x"]) == ("alo.x", {"n": 1})
    assert layer.global_statistics() == {"messages_count": 1, "channel_full_count": 0}


def test_process_specific_and_single_reader_names_are_never_leased() -> None:
    """Their one reader (daphne, a request body read inline) does not acknowledge."""
    layer = ChannelLayer(at_least_once=["*"])
    layer.send("reply!abc", {"n": 1})
    assert layer.receive(["reply!"]) == ("reply!abc", {"n": 1})
    layer.send("http.request.body?abc", {"n": 2})
    assert layer.receive(["http.request.body?abc"]) == ("http.request.body?abc", {"n": 2})


def test_delivery_key_is_not_sent_on() -> None:
    """A received content sent again does not carry its delivery (A-9 style)."""
    layer = ChannelLayer(at_least_once=["alo.*"])
    layer.send("alo.a", {"n": 1})
    _, message = layer.receive(["alo.a"])
    assert DELIVERY_KEY in message
    layer.send("other", message)
    assert layer.receive(["other"]) == ("other", {"n": 1})


@pytest.mark.parametrize(
    ("options", "text"),
    [
        ({"at_least_once": "alo.*"}, "bare string"),
        ({"at_least_once": [3]}, "glob string"),
        ({"ack_timeout": 0}, "ack_timeout"),
        ({"max_deliveries": 0}, "max_deliveries"),
    ],
)
def test_bad_options(options, text) -> None:
    with pytest.raises(ValueError, match=text):
        ChannelLayer(**options)


def test_snapshot_reports_dead_letters_per_family() -> None:
    """Issue 17 / 18: channelstatus and the metrics see dead letters per family."""
    from channels.layers.inspect import snapshot

    layer = ChannelLayer(at_least_once=["alo.*"], max_deliveries=1)
    assert snapshot(layer).dead_letters == 0
    assert snapshot(ChannelLayer()).dead_letters is None
    for name in ("alo.a", "alo.b", "alo.b"):
        layer.send(name, {})
        _, message = layer.receive([name])
        layer.nack(name, message[DELIVERY_KEY]["id"], 0)
    taken = snapshot(layer)
    assert taken.dead_letters == 3
    assert taken.dead_letter_families == {"alo.a": 1, "alo.b": 2}


def test_too_large_is_counted() -> None:
    """Issue 17 item 2: a refused too-large message is counted by reason."""
    layer = ChannelLayer()
    with pytest.raises(layer.MessageTooLarge):
        layer.send("big", {"b": b"x" * (layer.max_message_size + 1)})
    assert layer.global_statistics()["too_large_count"] == 1
    assert layer.channel_statistics("big")["too_large_count"] == 1


def test_once_dedupes_with_the_cache(settings) -> None:
    """channels.delivery.once: True the first time a key is seen, then False."""
    from django.core.cache import caches

    from channels.delivery import once

    caches["default"].clear()
    assert once("alo-key-1") is True
    assert once("alo-key-1") is False
    assert once("alo-key-2") is True
