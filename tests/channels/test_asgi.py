"""Channel layers from CHANNEL_LAYERS: manager, wrapper, errors (C-2, C-9..C-13, C-88)."""

from __future__ import annotations

import pytest
from django.core.exceptions import ImproperlyConfigured
from django.test import override_settings

import channels
from channels.asgi import (
    ChannelLayerManager,
    ChannelLayerWrapper,
    InvalidChannelLayerError,
    get_channel_layer,
)
from channels.layers.inmemory import ChannelLayer

INMEMORY = "channels.layers.inmemory.ChannelLayer"
ROUTING = "tests.testproject.routing.channel_routing"


def layers(**aliases):
    return override_settings(CHANNEL_LAYERS=aliases)


def test_package_constants():
    """C-3: version, default alias and re-exports."""
    assert channels.__version__ == "1.1.8"
    assert channels.DEFAULT_CHANNEL_LAYER == "default"
    for name in ("channel_layers", "Channel", "Group", "route", "route_class", "include"):
        assert hasattr(channels, name)


def test_invalid_channel_layer_error_is_value_error():
    """C-9."""
    assert issubclass(InvalidChannelLayerError, ValueError)


def test_builds_and_caches_wrapper():
    """C-10/C-12: CONFIG passed to the backend; wrapper cached and delegating."""
    manager = ChannelLayerManager()
    with layers(default={"BACKEND": INMEMORY, "ROUTING": ROUTING, "CONFIG": {"capacity": 7}}):
        wrapper = manager["default"]
        assert manager["default"] is wrapper
        assert isinstance(wrapper.channel_layer, ChannelLayer)
        assert wrapper.capacity == 7  # delegated attribute
        assert wrapper.alias == "default" and wrapper.routing == ROUTING
        assert wrapper.router.channels == set()
        assert str(wrapper) == "default (channels.layers.inmemory.ChannelLayer)"
        assert wrapper.local_only()
        assert wrapper.ChannelFull is ChannelLayer.ChannelFull
        assert "default" in manager and "other" not in manager
        with pytest.raises(KeyError):
            manager["other"]


def test_asgiref_inmemory_name_is_accepted():
    """C-2: the 1.x asgiref.inmemory path maps to channels.layers.inmemory."""
    manager = ChannelLayerManager()
    with layers(default={"BACKEND": "asgiref.inmemory.ChannelLayer", "ROUTING": ROUTING}):
        assert isinstance(manager["default"].channel_layer, ChannelLayer)


def test_set_swaps_wrapper():
    """C-10: set() installs a wrapper and returns the previous one."""
    manager = ChannelLayerManager()
    first = ChannelLayerWrapper(ChannelLayer(), "default", [])
    second = ChannelLayerWrapper(ChannelLayer(), "default", [])
    assert manager.set("default", first) is None
    assert manager.set("default", second) is first
    assert manager["default"] is second


def test_test_backend():
    """C-10: make_test_backend uses TEST_CONFIG; missing → error."""
    manager = ChannelLayerManager()
    with layers(default={"BACKEND": INMEMORY, "ROUTING": ROUTING, "TEST_CONFIG": {"expiry": 5}}):
        assert manager.make_test_backend("default").channel_layer.expiry == 5
    with (
        layers(default={"BACKEND": INMEMORY, "ROUTING": ROUTING}),
        pytest.raises(InvalidChannelLayerError, match="No TEST_CONFIG specified for default"),
    ):
        manager.make_test_backend("default")


@pytest.mark.parametrize(
    ("config", "message"),
    [
        ({"ROUTING": ROUTING}, "No BACKEND specified for default"),
        ({"BACKEND": "nowhere.Layer", "ROUTING": ROUTING}, "Cannot import BACKEND 'nowhere.Layer'"),
        ({"BACKEND": INMEMORY}, "No ROUTING specified for default"),
        (
            {"BACKEND": INMEMORY, "ROUTING": ROUTING, "CONFIG": []},
            "CONFIG for default must be a dict",
        ),
        (
            {"BACKEND": INMEMORY, "ROUTING": ROUTING, "CONFIG": {"bogus": 1}},
            "Cannot build BACKEND 'channels.layers.inmemory.ChannelLayer' for default: ",
        ),
        (
            {"BACKEND": INMEMORY, "ROUTING": ROUTING, "CONFIG": {"capacity": -1}},
            "Cannot build BACKEND .* for default: capacity must be a positive int",
        ),
        ("not a dict", "for default must be a dict"),
    ],
)
def test_bad_settings_fail_early_with_alias(config, message):
    """C-10/C-88: each malformed setting names the alias and the problem."""
    manager = ChannelLayerManager()
    with layers(default=config), pytest.raises(InvalidChannelLayerError, match=message) as info:
        manager["default"]
    if "Cannot build" in message:
        assert isinstance(info.value.__cause__, (TypeError, ValueError))


@pytest.mark.parametrize("routing", [[], (), {}])
def test_empty_routing_is_a_routing(routing):
    """C-10 (issue 13): only a missing ROUTING key is refused; an empty routing, common
    in test settings as ``"ROUTING": []``, builds a wrapper with no routes, as in 1.x."""
    manager = ChannelLayerManager()
    with layers(default={"BACKEND": INMEMORY, "ROUTING": routing, "TEST_CONFIG": {}}):
        wrapper = manager["default"]
        assert wrapper.routing is routing
        assert wrapper.router.channels == set()
        assert manager.make_test_backend("default").routing is routing


@pytest.mark.django_db
def test_channel_test_case_runs_with_empty_routing():
    """C-10, C-67 (issue 13): a project whose settings say ``"ROUTING": []`` can run its
    ChannelTestCase tests (the empty routing was refused before their first line)."""
    import unittest

    from channels import Channel, channel_layers
    from channels.test import ChannelTestCase

    class EmptyRoutingTests(ChannelTestCase):
        def test_send_and_get(self):
            Channel("st_test").send({"n": 1})
            self.assertEqual(self.get_next_message("st_test", require=True).content, {"n": 1})

    saved = channel_layers.backends.pop("default", None)
    try:
        with layers(default={"BACKEND": INMEMORY, "ROUTING": []}):
            result = unittest.TestResult()
            unittest.TestSuite([EmptyRoutingTests("test_send_and_get")]).run(result)
    finally:
        channel_layers.backends.pop("default", None)
        if saved is not None:
            channel_layers.set("default", saved)
    assert result.testsRun == 1
    assert result.wasSuccessful(), result.errors + result.failures


def test_channel_layers_not_a_dict():
    """C-88: CHANNEL_LAYERS itself must be a dict."""
    manager = ChannelLayerManager()
    with (
        override_settings(CHANNEL_LAYERS=["default"]),
        pytest.raises(InvalidChannelLayerError, match="CHANNEL_LAYERS setting must be a dict"),
    ):
        manager["default"]


def test_bad_routing_path_raises_when_built():
    """C-88/C-22: an unimportable ROUTING raises ImproperlyConfigured when built."""
    manager = ChannelLayerManager()
    with (
        layers(default={"BACKEND": INMEMORY, "ROUTING": "nowhere.routing"}),
        pytest.raises(ImproperlyConfigured, match="Cannot import channel routing"),
    ):
        manager["default"]


def test_get_channel_layer_returns_raw_layer():
    """C-13: get_channel_layer returns the raw layer that daphne uses."""
    layer = get_channel_layer()
    assert layer is channels.channel_layers["default"].channel_layer
    assert isinstance(layer, ChannelLayer)


def test_importing_reads_no_settings():
    """C-3: importing the package and its core modules works with no settings configured."""
    import os
    import subprocess
    import sys

    env = {key: value for key, value in os.environ.items() if key != "DJANGO_SETTINGS_MODULE"}
    code = (
        "import channels, channels.asgi, channels.channel, channels.message, "
        "channels.routing, channels.exceptions, channels.signals, channels.utils\n"
        "from django.conf import settings\n"
        "assert not settings.configured\n"
        "print(channels.DEFAULT_CHANNEL_LAYER, channels.Channel.__name__)"
    )
    done = subprocess.run(
        [sys.executable, "-c", code],
        cwd=os.path.dirname(os.path.dirname(channels.__file__)),
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == ["default", "Channel"]


def test_wrapper_binds_the_hot_methods_of_its_layer():
    """C-12, issue 16 item 4: send/receive (and send_many where the layer has it) are the
    layer's own bound methods, found without __getattr__; other names still go to the
    layer; a new layer rebinds them."""

    class Batching(ChannelLayer):
        def send_many(self, messages):
            return [self.send(channel, message) for channel, message in messages]

    plain = ChannelLayer()
    wrapper = ChannelLayerWrapper(plain, "default", [])
    assert wrapper.__dict__["send"] == plain.send
    assert wrapper.__dict__["receive"] == plain.receive
    assert not hasattr(wrapper, "send_many")  # the in-memory layer has none (C-12)
    assert wrapper.expiry == plain.expiry and wrapper.channel_layer is plain
    batching = Batching()
    wrapper.channel_layer = batching
    assert wrapper.send_many == batching.send_many and wrapper.send == batching.send
    assert wrapper.send_many([("wrap.out", {"n": 1})]) == [None]
    assert batching.receive(["wrap.out"]) == ("wrap.out", {"n": 1})
    wrapper.channel_layer = plain
    assert not hasattr(wrapper, "send_many") and wrapper.send == plain.send
