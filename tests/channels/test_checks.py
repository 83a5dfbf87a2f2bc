"""The channels.* system checks of the settings (issue 14, C-10, C-82, C-88).

Each test makes one settings mistake a new user makes and checks what ``manage.py check``
(``run_checks``) tells them: the check ID, and a message or hint naming the fix.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from django.conf import settings
from django.core.checks import registry, run_checks
from django.core.management import call_command
from django.core.management.base import SystemCheckError
from django.test import override_settings

from channels import checks

GOOD = {"BACKEND": "channels.layers.inmemory.ChannelLayer", "ROUTING": []}
ROUTING = "tests.testproject.routing.channel_routing"


def channels_messages():
    return [m for m in run_checks(tags=["channels"]) if m.id.startswith("channels.")]


def only(messages):
    assert len(messages) == 1, messages
    return messages[0]


def test_checks_are_registered_and_the_test_settings_pass():
    """Registered by ChannelsConfig.ready under the "channels" tag; a good project is clean."""
    assert checks.check_settings in registry.registry.get_checks()
    assert "channels" in checks.check_settings.tags
    assert channels_messages() == []


@pytest.mark.parametrize("routing", [[], ROUTING, {}])
def test_empty_routing_is_valid(routing):
    """C-10: ``"ROUTING": []`` (test settings do this) is no mistake at all."""
    with override_settings(CHANNEL_LAYERS={"default": dict(GOOD, ROUTING=routing)}):
        assert channels_messages() == []


def test_missing_setting_warns_that_runserver_falls_back():
    """W001: no CHANNEL_LAYERS → runserver is Django's WSGI server; say so."""
    with override_settings():
        del settings.CHANNEL_LAYERS
        message = only(channels_messages())
    assert message.id == "channels.W001" and not message.is_serious()
    assert "CHANNEL_LAYERS is not set" in message.msg and "404" in message.msg
    assert "'default'" in message.hint


def test_missing_layers_hint_works_with_runserver_and_names_this_projects_routing():
    """W001's example is the in-memory layer (runserver works with it at once), with a
    ROUTING path in the project's own package, and its Redis example is not database 0
    (someone else's on a shared host; issue 14 point 9)."""
    with override_settings(SETTINGS_MODULE="mysite.settings"):
        del settings.CHANNEL_LAYERS
        message = only(channels_messages())
    assert "'BACKEND': 'channels.layers.inmemory.ChannelLayer'" in message.hint
    assert "'ROUTING': 'mysite.routing.channel_routing'" in message.hint
    assert "6379/0" not in message.hint and "asgi_redis.RedisChannelLayer" in message.hint


@pytest.mark.parametrize("wrong", ["CHANNELS_LAYERS", "CHANNEL_LAYER", "CHANEL_LAYERS"])
def test_misspelt_setting_name_gets_a_hint(wrong):
    """W002: a misspelt CHANNEL_LAYERS is named with "Did you mean CHANNEL_LAYERS?"."""
    with override_settings(**{wrong: {"default": GOOD}}):
        del settings.CHANNEL_LAYERS
        message = only(channels_messages())  # W002 only: W001 would repeat it
    assert message.id == "channels.W002"
    assert wrong in message.msg and message.hint == "Did you mean CHANNEL_LAYERS?"


def test_misspelt_other_settings():
    """W002 also covers the other Channels settings (C-83)."""
    with override_settings(CHANNEL_WS_PROTOCOLS=["graphql-ws"]):
        message = only(channels_messages())
    assert message.hint == "Did you mean CHANNELS_WS_PROTOCOLS?"


def test_not_a_dict():
    """E001 / E002: CHANNEL_LAYERS and each alias must be dicts (C-88)."""
    with override_settings(CHANNEL_LAYERS=[GOOD]):
        message = only(channels_messages())
    assert message.id == "channels.E001" and message.is_serious()
    assert "not list" in message.msg
    with override_settings(CHANNEL_LAYERS={"default": "channels.layers.inmemory.ChannelLayer"}):
        message = only(channels_messages())
    assert message.id == "channels.E002" and "CHANNEL_LAYERS['default']" in message.msg


def test_no_default_alias():
    """W003: layers, but none called "default" → runserver falls back; hint the spelling."""
    with override_settings(CHANNEL_LAYERS={"redis": GOOD, "defualt": GOOD}):
        message = only(channels_messages())
    assert message.id == "channels.W003" and "(only 'redis', 'defualt')" in message.msg
    assert message.hint == "Did you mean 'default' instead of 'defualt'?"
    with override_settings(CHANNEL_LAYERS={"redis": GOOD}):
        assert (
            only(channels_messages()).hint
            == "Name the layer runserver and runworker use 'default'."
        )


@pytest.mark.parametrize(
    ("key", "hint"),
    [("ROUTE", "Did you mean 'ROUTING'?"), ("config", "Did you mean 'CONFIG'?")],
)
def test_unknown_key_did_you_mean(key, hint):
    """W004: an unknown key is ignored, as in 1.x, but named with the likely key."""
    with override_settings(CHANNEL_LAYERS={"default": dict(GOOD, **{key: {}})}):
        message = only(channels_messages())
    assert message.id == "channels.W004" and repr(key) in message.msg
    assert message.hint == hint


def test_missing_backend():
    """E003: no BACKEND (1.x refused it when building the layer)."""
    with override_settings(CHANNEL_LAYERS={"default": {"BACKNED": GOOD["BACKEND"], "ROUTING": []}}):
        ids = sorted(m.id for m in channels_messages())
    assert ids == ["channels.E003", "channels.W004"]


def test_unimportable_backend_shows_the_import_error():
    """E004: the BACKEND path cannot be imported; the message carries Python's error."""
    with override_settings(CHANNEL_LAYERS={"default": dict(GOOD, BACKEND="asgi_redis.RedisLayer")}):
        message = only(channels_messages())
    assert message.id == "channels.E004"
    assert message.msg.startswith(
        "Cannot import BACKEND 'asgi_redis.RedisLayer' specified for default"
    )
    assert "RedisLayer" in message.msg.split(": ", 1)[1]


def test_old_inmemory_path_is_accepted():
    """C-2: the 1.x name of the in-memory layer is no mistake."""
    with override_settings(
        CHANNEL_LAYERS={"default": dict(GOOD, BACKEND="asgiref.inmemory.ChannelLayer")}
    ):
        assert channels_messages() == []


def test_missing_routing():
    """E005: no ROUTING key (the one thing 1.x refused about ROUTING, C-10)."""
    with override_settings(CHANNEL_LAYERS={"default": {"BACKEND": GOOD["BACKEND"]}}):
        message = only(channels_messages())
    assert message.id == "channels.E005" and "No ROUTING specified for default" in message.msg


@pytest.mark.parametrize(
    ("routing", "text"),
    [
        ("tests.nowhere.routing", "Cannot import channel routing 'tests.nowhere.routing'"),
        ({"http.request": "tests.nowhere.consumer"}, "Cannot import consumer 'tests.nowhere."),
    ],
)
def test_broken_routing(routing, text):
    """E006: the routing cannot be loaded (C-22, C-23); the message carries the error."""
    with override_settings(CHANNEL_LAYERS={"default": dict(GOOD, ROUTING=routing)}):
        message = only(channels_messages())
    assert message.id == "channels.E006" and text in message.msg


def test_config_not_a_dict():
    """E007: CONFIG / TEST_CONFIG must be dicts (C-88)."""
    with override_settings(CHANNEL_LAYERS={"default": dict(GOOD, TEST_CONFIG=["x"])}):
        message = only(channels_messages())
    assert message.id == "channels.E007" and "TEST_CONFIG for default" in message.msg


def test_config_option_the_backend_does_not_take():
    """E008: an option the layer's constructor does not take (it would raise, L-2)."""
    config = {"host": ["redis://localhost:6379/0"]}
    layer = {"BACKEND": "asgi_redis.RedisChannelLayer", "ROUTING": [], "CONFIG": config}
    with override_settings(CHANNEL_LAYERS={"default": layer}):
        message = only(channels_messages())
    assert message.id == "channels.E008" and "'host'" in message.msg
    assert message.hint == "Did you mean 'hosts'?"


def test_manage_py_check_stops_on_an_error():
    """``manage.py check`` reports the channels errors and fails."""
    bad = {"default": dict(GOOD, BACKEND="nowhere.Layer")}
    with override_settings(CHANNEL_LAYERS=bad), pytest.raises(SystemCheckError, match="E004"):
        call_command("check")


def test_every_check_id_is_documented():
    """Docs stay true: each ID the code can emit is listed in the System checks section."""
    source = Path(checks.__file__).read_text()
    ids = set(re.findall(r'id="(channels\.[EW]\d{3})"', source))
    docs = (Path(__file__).resolve().parents[2] / "docs" / "deploying.rst").read_text()
    documented = set(re.findall(r"``(channels\.[EW]\d{3})``", docs))
    assert ids and ids == documented


def test_problems_of_an_unused_alias_are_warnings():
    """Issue 13: 1.x failed on a broken layer only when its alias was used, so a 1.x
    project's test settings may carry one; only ``default`` (which runserver, runworker
    and the test case use) gets errors. The same problem elsewhere is a warning."""
    broken = {"BACKEND": "nowhere.Layer", "ROUTING": []}
    with override_settings(CHANNEL_LAYERS={"default": GOOD, "spare": broken}):
        message = only(channels_messages())
    assert message.id == "channels.W104" and not message.is_serious()
    assert "Cannot import BACKEND 'nowhere.Layer' specified for spare" in message.msg
    assert message.msg.endswith("(It fails when this layer is used.)")
    with override_settings(CHANNEL_LAYERS={"default": broken, "spare": GOOD}):
        assert only(channels_messages()).id == "channels.E004"
