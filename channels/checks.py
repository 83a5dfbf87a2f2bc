"""Django system checks for the Channels settings (issue 14; IDs in docs/deploying.rst).

A misspelt or incomplete ``CHANNEL_LAYERS`` used to surface late, or not at all:
runserver quietly ran Django's plain WSGI server (WebSockets got 404), and a bad
``BACKEND`` or ``ROUTING`` failed only when a layer was first built. These checks run
with ``manage.py check``, runserver and runworker, and say what to change.

What Channels 1.x accepted stays accepted, so those findings are warnings (an unknown
key, a missing ``default`` alias, an empty ``"ROUTING": []`` is not even one, C-10);
what 1.x refused when it built the layer is an error.
"""

from __future__ import annotations

import difflib
import inspect
from typing import Any

from django.conf import global_settings, settings
from django.core.checks import CheckMessage, Error, Warning
from django.utils.module_loading import import_string

from . import DEFAULT_CHANNEL_LAYER

__all__ = ["check_settings", "misspelt_settings"]

CHANNELS_SETTINGS = ("CHANNEL_LAYERS", "CHANNEL_SESSION_ENGINE", "CHANNELS_WS_PROTOCOLS")
LAYER_KEYS = ("BACKEND", "ROUTING", "CONFIG", "TEST_CONFIG")
# C-2: the 1.x name of the in-memory layer.
_NAMED = (inspect.Parameter.POSITIONAL_OR_KEYWORD, inspect.Parameter.KEYWORD_ONLY)
_BACKEND_ALIASES = {"asgiref.inmemory.ChannelLayer": "channels.layers.inmemory.ChannelLayer"}


def _routing_path() -> str:
    """Where a routing list would go in this project: ``mysite.routing.channel_routing``
    for settings ``mysite.settings`` (``myproject`` when that cannot be told)."""
    module = getattr(settings, "SETTINGS_MODULE", None) or ""
    package = module.rpartition(".")[0] if "." in module else ""
    return f"{package or 'myproject'}.routing.channel_routing"


def _example() -> str:
    """W001/E001's hint: a layer that works with runserver at once, and the Redis one
    for daphne and runworker (on a database other than a shared Redis's 0)."""
    return (
        "For runserver: CHANNEL_LAYERS = {'default': {'BACKEND': "
        f"'channels.layers.inmemory.ChannelLayer', 'ROUTING': '{_routing_path()}'}}}}; for "
        "daphne and runworker, 'BACKEND': 'asgi_redis.RedisChannelLayer' with 'CONFIG': "
        "{'hosts': ['redis://127.0.0.1:6379/5']} (a Redis database nothing else uses)."
    )


def misspelt_settings() -> list[tuple[str, str]]:
    """``(name, meant)`` for each setting that looks like a misspelt Channels setting."""
    found = []
    for name in dir(settings):
        if not name.isupper() or name in CHANNELS_SETTINGS or hasattr(global_settings, name):
            continue
        close = difflib.get_close_matches(name, CHANNELS_SETTINGS, n=1, cutoff=0.85)
        if close:
            found.append((name, close[0]))
    return found


def check_settings(app_configs: Any = None, **kwargs: Any) -> list[CheckMessage]:
    """The ``channels.*`` checks of the settings (registered by `ChannelsConfig.ready`)."""
    messages: list[CheckMessage] = []
    misspelt = misspelt_settings()
    for name, meant in misspelt:
        messages.append(
            Warning(
                f"The setting {name} is not a Channels setting and is ignored.",
                hint=f"Did you mean {meant}?",
                id="channels.W002",
            )
        )
    configs = getattr(settings, "CHANNEL_LAYERS", None)
    if not configs:  # as channel_layers reads it: None, {} (or another empty value)
        if not any(meant == "CHANNEL_LAYERS" for _, meant in misspelt):
            what = "not set" if configs is None else "empty"
            messages.append(
                Warning(
                    f"CHANNEL_LAYERS is {what}: runserver runs Django's plain WSGI server "
                    "(WebSocket requests get 404) and runworker cannot start.",
                    hint=_example(),
                    id="channels.W001",
                )
            )
        return messages
    if not isinstance(configs, dict):
        messages.append(
            Error(
                f"CHANNEL_LAYERS must be a dict of layer aliases, not {type(configs).__name__}.",
                hint=_example(),
                id="channels.E001",
            )
        )
        return messages
    if DEFAULT_CHANNEL_LAYER not in configs:
        messages.append(
            Warning(
                f"CHANNEL_LAYERS has no {DEFAULT_CHANNEL_LAYER!r} layer "
                f"(only {', '.join(repr(alias) for alias in configs)}): runserver runs "
                "Django's plain WSGI server and runworker needs --layer.",
                hint=_default_hint(configs),
                id="channels.W003",
            )
        )
    for alias, config in configs.items():
        found = _check_layer(alias, config)
        if alias != DEFAULT_CHANNEL_LAYER:
            found = [_as_warning(message) for message in found]
        messages.extend(found)
    return messages


def _as_warning(message: CheckMessage) -> CheckMessage:
    """A problem with a layer other than ``default`` is a warning (``channels.E004`` →
    ``channels.W104``): 1.x only failed when that alias was used, so a 1.x project whose
    test settings carry an alias it never uses must still run its tests (issue 13)."""
    if not message.is_serious():
        return message
    number = (message.id or "channels.E000").rsplit(".E", 1)[-1]
    return Warning(
        f"{message.msg} (It fails when this layer is used.)",
        hint=message.hint,
        obj=message.obj,
        id=f"channels.W1{number[-2:]}",
    )


def _check_layer(alias: str, config: Any) -> list[CheckMessage]:
    where = f"CHANNEL_LAYERS[{alias!r}]"
    if not isinstance(config, dict):
        return [
            Error(
                f"{where} must be a dict with BACKEND and ROUTING, not {type(config).__name__}.",
                id="channels.E002",
            )
        ]
    messages: list[CheckMessage] = []
    for key in config:
        if key not in LAYER_KEYS:
            messages.append(
                Warning(
                    f"{where} has an unknown key {key!r}, which is ignored.",
                    hint=_did_you_mean(str(key), LAYER_KEYS)
                    or "The keys are BACKEND, ROUTING, CONFIG and TEST_CONFIG.",
                    id="channels.W004",
                )
            )
    backend = _check_backend(alias, where, config, messages)
    for key in ("CONFIG", "TEST_CONFIG"):
        options = config.get(key)
        if options is None:
            continue
        if not isinstance(options, dict):
            messages.append(
                Error(
                    f"{key} for {alias} must be a dict, not {type(options).__name__}.",
                    id="channels.E007",
                )
            )
        elif backend is not None:
            messages.extend(_check_options(alias, key, config["BACKEND"], backend, options))
    if "ROUTING" not in config:
        messages.append(
            Error(
                f"No ROUTING specified for {alias}.",
                hint="Add 'ROUTING': a dotted path to a routing list, such as "
                f"'{_routing_path()}'.",
                id="channels.E005",
            )
        )
    else:
        messages.extend(_check_routing(alias, config["ROUTING"]))
    return messages


def _check_backend(
    alias: str, where: str, config: dict, messages: list[CheckMessage]
) -> type | None:
    path = config.get("BACKEND")
    if not path:
        messages.append(
            Error(
                f"No BACKEND specified for {alias}.",
                hint="Set 'BACKEND' in "
                f"{where} to a layer class, such as 'asgi_redis.RedisChannelLayer' or "
                "'channels.layers.inmemory.ChannelLayer'.",
                id="channels.E003",
            )
        )
        return None
    if not isinstance(path, str):
        reason = f"it must be a dotted path string, not {type(path).__name__}"
    else:
        try:
            return import_string(_BACKEND_ALIASES.get(path, path))
        except Exception as error:  # reported: the module may fail in any way on import
            reason = f"{type(error).__name__}: {error}"
    messages.append(
        Error(
            f"Cannot import BACKEND {path!r} specified for {alias}: {reason}",
            hint="Check the spelling of the dotted path and that its package is installed.",
            id="channels.E004",
        )
    )
    return None


def _check_options(
    alias: str, key: str, path: str, backend: type, options: dict
) -> list[CheckMessage]:
    """Options `backend`'s constructor does not take: building the layer would fail."""
    try:
        parameters = inspect.signature(backend).parameters.values()
    except (TypeError, ValueError):  # no signature to compare against
        return []
    if any(parameter.kind is inspect.Parameter.VAR_KEYWORD for parameter in parameters):
        return []
    names = [
        parameter.name
        for parameter in parameters
        if parameter.kind
        in (inspect.Parameter.POSITIONAL_OR_KEYWORD, inspect.Parameter.KEYWORD_ONLY)
    ]
    return [
        Error(
            f"{key} for {alias} has an option {option!r} that BACKEND {path!r} does not take.",
            hint=_did_you_mean(str(option), names)
            or f"It takes: {', '.join(names) or 'no options'}.",
            id="channels.E008",
        )
        for option in options
        if option not in names
    ]


def _check_routing(alias: str, routing: Any) -> list[CheckMessage]:
    # Imported here: routing pulls in the consumers machinery, needed only when checking.
    from .routing import Router

    try:
        Router(routing)
    except Exception as error:  # reported: a routing module may fail in any way
        return [
            Error(
                f"ROUTING for {alias} cannot be loaded: {type(error).__name__}: {error}",
                hint="Fix the routing module or the dotted path in ROUTING.",
                id="channels.E006",
            )
        ]
    return []


def _default_hint(configs: dict) -> str:
    aliases = [str(alias) for alias in configs]
    close = difflib.get_close_matches(DEFAULT_CHANNEL_LAYER, aliases, n=1, cutoff=0.6)
    if close:
        return f"Did you mean {DEFAULT_CHANNEL_LAYER!r} instead of {close[0]!r}?"
    return f"Name the layer runserver and runworker use {DEFAULT_CHANNEL_LAYER!r}."


def _did_you_mean(word: str, choices: Any) -> str | None:
    choices = list(choices)
    by_upper = {choice.upper(): choice for choice in choices}
    close = difflib.get_close_matches(word.upper(), list(by_upper), n=1, cutoff=0.6)
    return f"Did you mean {by_upper[close[0]]!r}?" if close else None
