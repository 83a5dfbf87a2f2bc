"""Channel layers built from the ``CHANNEL_LAYERS`` setting (C-9..C-13, C-88)."""

from __future__ import annotations

import threading
from typing import Any

import django
from django.conf import settings
from django.utils.module_loading import import_string

from .routing import Router
from .utils import name_that_thing

__all__ = [
    "ChannelLayerManager",
    "ChannelLayerWrapper",
    "InvalidChannelLayerError",
    "channel_layers",
    "get_channel_layer",
]

# C-2: 1.x settings files name the in-memory layer by its old asgiref path.
_BACKEND_ALIASES = {"asgiref.inmemory.ChannelLayer": "channels.layers.inmemory.ChannelLayer"}


class InvalidChannelLayerError(ValueError):
    """``CHANNEL_LAYERS`` is missing, malformed or names something unusable (C-9)."""


class ChannelLayerManager:
    """Builds layer wrappers from ``CHANNEL_LAYERS`` on first use and caches them (C-10)."""

    def __init__(self) -> None:
        self.backends: dict[str, ChannelLayerWrapper] = {}
        self._lock = threading.Lock()

    @property
    def configs(self) -> dict[str, Any]:
        # Re-read every time so override_settings in tests takes effect.
        configs = getattr(settings, "CHANNEL_LAYERS", {}) or {}
        if not isinstance(configs, dict):
            raise InvalidChannelLayerError(
                f"The CHANNEL_LAYERS setting must be a dict, not {type(configs).__name__}"
            )
        return configs

    def _alias_config(self, name: str) -> dict[str, Any]:
        config = self.configs[name]
        if not isinstance(config, dict):
            raise InvalidChannelLayerError(
                f"CHANNEL_LAYERS[{name!r}] for {name} must be a dict, not {type(config).__name__}"
            )
        return config

    def make_backend(self, name: str) -> ChannelLayerWrapper:
        config = self._alias_config(name).get("CONFIG", {})
        return self._make_backend(name, config, "CONFIG")

    def make_test_backend(self, name: str) -> ChannelLayerWrapper:
        alias_config = self._alias_config(name)
        if "TEST_CONFIG" not in alias_config:
            raise InvalidChannelLayerError(f"No TEST_CONFIG specified for {name}")
        return self._make_backend(name, alias_config["TEST_CONFIG"], "TEST_CONFIG")

    def _make_backend(self, name: str, config: Any, what: str = "CONFIG") -> ChannelLayerWrapper:
        alias_config = self._alias_config(name)
        if config is None:
            config = {}
        if not isinstance(config, dict):
            raise InvalidChannelLayerError(
                f"{what} for {name} must be a dict, not {type(config).__name__}"
            )
        backend_class = self._import_backend(name, alias_config)
        # C-10: only a missing key is refused; any value, an empty list included, is a
        # routing (test settings commonly use "ROUTING": []).
        if "ROUTING" not in alias_config:
            raise InvalidChannelLayerError(f"No ROUTING specified for {name}")
        path = alias_config["BACKEND"]
        try:
            layer = backend_class(**config)
        except (TypeError, ValueError) as error:
            # C-88: a layer refusing its options (L-2) names the alias and the problem.
            raise InvalidChannelLayerError(
                f"Cannot build BACKEND {path!r} for {name}: {error}"
            ) from error
        if not hasattr(layer, "alias"):
            # The raw layer (what daphne gets from get_channel_layer) knows its alias
            # too, so daphne's log lines and metrics can name it (issue 14).
            try:
                layer.alias = name
            except AttributeError:  # __slots__: left unnamed
                pass
        return ChannelLayerWrapper(channel_layer=layer, alias=name, routing=alias_config["ROUTING"])

    @staticmethod
    def _import_backend(name: str, alias_config: dict[str, Any]) -> type:
        path = alias_config.get("BACKEND")
        if not path:
            raise InvalidChannelLayerError(f"No BACKEND specified for {name}")
        if not isinstance(path, str):
            raise InvalidChannelLayerError(
                f"BACKEND for {name} must be a dotted path string, not {path!r}"
            )
        try:
            return import_string(_BACKEND_ALIASES.get(path, path))
        except ImportError as error:
            raise InvalidChannelLayerError(
                f"Cannot import BACKEND {path!r} specified for {name}"
            ) from error

    def __getitem__(self, key: str) -> ChannelLayerWrapper:
        try:
            return self.backends[key]
        except KeyError:
            pass
        with self._lock:
            if key not in self.backends:
                self.backends[key] = self.make_backend(key)
            return self.backends[key]

    def __contains__(self, key: str) -> bool:
        return key in self.configs

    def set(self, key: str, layer: ChannelLayerWrapper) -> ChannelLayerWrapper | None:
        """Install `layer` under `key`; return the wrapper it replaces, if any."""
        old = self.backends.get(key)
        self.backends[key] = layer
        return old


class ChannelLayerWrapper:
    """A raw layer plus its alias and router; other attributes go to the layer (C-12).

    The methods every message goes through (`_BOUND`) are bound on the wrapper when
    its layer is set, so they skip `__getattr__`; a method the layer lacks stays
    missing (``hasattr(wrapper, "send_many")`` is False for the in-memory layer).
    """

    # Hot methods, looked up once per layer instead of once per call (issue 16 item 4).
    _BOUND = ("send", "send_many", "send_many_then_receive", "receive")

    def __init__(self, channel_layer: Any, alias: str, routing: Any) -> None:
        self.channel_layer = channel_layer
        self.alias = alias
        self.routing = routing
        self.router = Router(self.routing)

    @property
    def channel_layer(self) -> Any:
        return self._channel_layer

    @channel_layer.setter
    def channel_layer(self, layer: Any) -> None:
        self._channel_layer = layer
        for name in self._BOUND:
            method = getattr(layer, name, None)
            if method is not None:
                self.__dict__[name] = method
            else:
                self.__dict__.pop(name, None)

    def __getattr__(self, name: str) -> Any:
        # Only called for names not set on the wrapper itself.
        if name == "_channel_layer":  # not yet set: avoid infinite recursion
            raise AttributeError(name)
        return getattr(self._channel_layer, name)

    def __str__(self) -> str:
        return f"{self.alias} ({name_that_thing(self.channel_layer)})"

    def local_only(self) -> bool:
        """True for process-local layers, which cannot span processes."""
        return "inmemory" in type(self._channel_layer).__module__


def get_channel_layer(alias: str = "default") -> Any:
    """Set Django up and return the raw layer for `alias`, for Daphne (C-13)."""
    django.setup(set_prefix=False)
    return channel_layers[alias].channel_layer


channel_layers = ChannelLayerManager()
