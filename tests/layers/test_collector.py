"""`LayerCollector`: the layer snapshot as ``channels_layer_*`` families at scrape time."""

from __future__ import annotations

import logging

import pytest
from prometheus_client import CollectorRegistry, generate_latest

from channels.layers import collector as collector_module
from channels.layers.collector import LayerCollector
from channels.layers.inmemory import ChannelLayer


def registry_with(layer, alias: str = "default", **options) -> CollectorRegistry:
    registry = CollectorRegistry()
    registry.register(LayerCollector(layer, alias=alias, **options))
    return registry


def test_registering_reads_nothing_and_figures_come_at_collect_time() -> None:
    layer = ChannelLayer(capacity=2)
    registry = registry_with(layer, min_interval=0)
    value = registry.get_sample_value
    assert value("channels_layer_up", {"layer": "default"}) == 1
    assert (
        value("channels_layer_queue_depth", {"layer": "default", "channel": "http.request"}) is None
    )
    layer.send("http.request", {})
    layer.send("http.request", {})
    with pytest.raises(layer.ChannelFull):
        layer.send("http.request", {})
    layer.group_add("room", "websocket.send!a")
    layer.group_add("room", "websocket.send!b")
    labels = {"layer": "default", "channel": "http.request"}
    assert value("channels_layer_queue_depth", labels) == 2
    assert 0 <= value("channels_layer_oldest_message_age_seconds", labels) < 5
    assert value("channels_layer_groups", {"layer": "default"}) == 1
    assert value("channels_layer_group_size_max", {"layer": "default"}) == 2
    assert (
        value("channels_layer_dropped_total", {"layer": "default", "reason": "channel_full"}) == 1
    )
    assert value("channels_layer_read_truncated", {"layer": "default"}) == 0
    assert value("channels_layer_read_seconds", {"layer": "default"}) >= 0


def test_a_duplicate_registration_is_refused() -> None:
    registry = registry_with(ChannelLayer())
    with pytest.raises(ValueError, match="Duplicated timeseries"):
        registry.register(LayerCollector(ChannelLayer()))


def test_reads_are_reused_within_min_interval() -> None:
    layer = ChannelLayer()
    registry = registry_with(layer, min_interval=3600)
    generate_latest(registry)
    layer.send("http.request", {})
    depth = {"layer": "default", "channel": "http.request"}
    assert registry.get_sample_value("channels_layer_queue_depth", depth) is None
    fresh = registry_with(layer, min_interval=0)
    assert fresh.get_sample_value("channels_layer_queue_depth", depth) == 1


def test_families_past_the_cap_are_summed_as_other(monkeypatch) -> None:
    monkeypatch.setattr(collector_module, "MAX_FAMILIES", 2)
    layer = ChannelLayer()
    for name, count in (("a.deep", 3), ("b.mid", 2), ("c.low", 1), ("d.low", 1)):
        for _ in range(count):
            layer.send(name, {})
    registry = registry_with(layer, min_interval=0)

    def depth(channel: str) -> float | None:
        return registry.get_sample_value(
            "channels_layer_queue_depth", {"layer": "default", "channel": channel}
        )

    assert (depth("a.deep"), depth("b.mid"), depth("c.low"), depth("other")) == (3, 2, None, 2)


def test_a_layer_that_does_not_answer_is_up_0_and_logged_once(redis_server, caplog) -> None:
    from asgi_redis import RedisChannelLayer

    layer = RedisChannelLayer(hosts=[redis_server.url], prefix="t-collector:")
    layer.send("http.request", {})
    registry = registry_with(layer, alias="redis", min_interval=0)
    up = {"layer": "redis"}
    assert registry.get_sample_value("channels_layer_up", up) == 1
    redis_server.stop()
    with caplog.at_level(logging.INFO, logger="channels.layers"):
        assert registry.get_sample_value("channels_layer_up", up) == 0
        assert registry.get_sample_value("channels_layer_up", up) == 0
        depth = {"layer": "redis", "channel": "http.request"}
        assert registry.get_sample_value("channels_layer_queue_depth", depth) is None
        redis_server.restart()
        assert registry.get_sample_value("channels_layer_up", up) == 1
    messages = [record.getMessage() for record in caplog.records]
    assert sum("Cannot read channel layer 'redis'" in text for text in messages) == 1
    assert sum("works again" in text for text in messages) == 1
