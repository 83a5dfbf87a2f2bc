"""``manage.py channelstatus`` against the in-memory, Redis and IPC layers (issue 18)."""

from __future__ import annotations

import io
import re
from collections.abc import Iterator
from contextlib import contextmanager

import pytest
from django.core.management import CommandError, call_command
from django.test import override_settings

from channels.asgi import channel_layers
from tests.asgi_ipc.helpers import remove_store, unique_prefix

INMEMORY = "channels.layers.inmemory.ChannelLayer"
REDIS = "asgi_redis.RedisChannelLayer"
IPC = "asgi_ipc.IPCChannelLayer"


@contextmanager
def configured(backend: str, alias: str = "default", **config) -> Iterator:
    """CHANNEL_LAYERS with `alias` on `backend`; the manager builds it afresh."""
    layers = {alias: {"BACKEND": backend, "ROUTING": [], "CONFIG": config}}
    saved = channel_layers.backends.pop(alias, None)
    try:
        with override_settings(CHANNEL_LAYERS=layers):
            yield channel_layers[alias]
    finally:
        channel_layers.backends.pop(alias, None)
        if saved is not None:
            channel_layers.set(alias, saved)


def status(*args: str) -> str:
    out = io.StringIO()
    call_command("channelstatus", *args, stdout=out)
    return out.getvalue()


def row(text: str, family: str) -> list[str]:
    for line in text.splitlines():
        if line.split()[:1] == [family]:
            return line.split()
    raise AssertionError(f"no row for {family} in:\n{text}")


def test_in_memory_layer() -> None:
    with configured(INMEMORY, capacity=2) as layer:
        assert "No messages waiting." in status()
        layer.send("http.request", {})
        layer.send("http.request", {})
        layer.send("websocket.send!abc", {})
        with pytest.raises(layer.ChannelFull):
            layer.send("http.request", {})
        layer.group_add("room", "websocket.send!abc")
        text = status()
    assert "Channel layer 'default': ChannelLayer()" in text
    assert row(text, "http.request")[1:3] == ["2", "1"]
    assert re.fullmatch(r"\d+\.\ds", row(text, "http.request")[3])
    assert row(text, "websocket.send!")[1] == "1"
    assert row(text, "(total)")[1] == "3"
    assert "Drops:         channel_full 1" in text
    assert "Groups:        1" in text
    assert re.search(r"room\s+1 member$", text, re.MULTILINE)
    assert "Dead letters:  n/a" in text


def test_layer_option_and_unknown_alias() -> None:
    with configured(INMEMORY, alias="other") as layer:
        layer.send("chat.message", {})
        assert row(status("--layer", "other"), "chat.message")[1] == "1"
        with pytest.raises(CommandError, match="No channel layer 'missing'"):
            status("--layer", "missing")


def test_watch_refreshes_count_times() -> None:
    with configured(INMEMORY) as layer:
        layer.send("http.request", {})
        text = status("--watch", "--interval", "0.01", "--count", "3")
    assert text.count("Channel layer 'default'") == 3
    assert "\033[H" not in text  # not a terminal: no screen clearing


def test_bad_watch_options() -> None:
    with configured(INMEMORY):
        with pytest.raises(CommandError, match="--interval must be positive"):
            status("--watch", "--interval", "0")
        with pytest.raises(CommandError, match="--count must be at least 1"):
            status("--watch", "--count", "0")


def test_redis_layer(redis_server) -> None:
    with configured(REDIS, hosts=[redis_server.url], prefix="t-status:", capacity=1) as layer:
        layer.send("http.request", {})
        with pytest.raises(layer.ChannelFull):
            layer.send("http.request", {})
        layer.send("daphne.response.QwErTyUiOp!c1", {})
        for n in range(12):
            layer.group_add(f"room{n}", "websocket.send!a")
        text = status("--groups", "3")
        assert "RedisChannelLayer" in text
        assert row(text, "http.request")[1] == "1"
        assert row(text, "daphne.response!")[1] == "1"
        assert "Drops:         channel_full 1  expired 0" in text
        assert "Groups:        12" in text
        assert "… and 9 more" in text


def test_redis_layer_away_is_one_line_and_watch_keeps_going(redis_server) -> None:
    with configured(REDIS, hosts=[redis_server.url], prefix="t-status:"):
        redis_server.stop()
        with pytest.raises(CommandError, match="Cannot read channel layer 'default'"):
            status()
        text = status("--watch", "--interval", "0.01", "--count", "2")
    assert text.count("Cannot read channel layer 'default'") == 2


def test_ipc_layer() -> None:
    prefix = unique_prefix("status")
    try:
        with configured(IPC, prefix=prefix) as layer:
            layer.send("http.request", {})
            layer.group_add("room", "websocket.send!a")
            text = status()
            layer.flush()
    finally:
        remove_store(prefix)
    assert row(text, "http.request")[1] == "1"
    assert "Drops:         n/a (this layer keeps no statistics)" in text
    assert "Groups:        1" in text
