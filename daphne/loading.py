"""Loading the channel layer named on the command line, with errors that say what to
write (D-6, D-62, issue 14).

The usual first-hour mistakes: pointing daphne at Django's generated ``asgi.py``
(``myproject.asgi:application``, an ASGI 3 callable, or a module without
``channel_layer``), a misspelled attribute or layer alias, and the in-memory layer,
which cannot reach workers in other processes. Each gets one line naming what exists
and what to write instead. Nothing here imports Django or ``channels`` (D-4); Django's
settings are only read when the project's module already imported them.
"""

from __future__ import annotations

import difflib
import importlib
import os
import pkgutil
import sys
from typing import Any

__all__ = [
    "LayerLoadError",
    "asgi_snippet",
    "load_channel_layer",
    "not_a_layer_message",
    "process_local_message",
]


class LayerLoadError(Exception):
    """The channel layer argument cannot be turned into a layer; the message is the line
    shown to the user."""


def asgi_snippet(module_path: str) -> str:
    """The 1.x ``asgi.py`` on one line, for the project that `module_path` belongs to."""
    settings = os.environ.get("DJANGO_SETTINGS_MODULE")
    if not settings:
        package = module_path.rpartition(".")[0]
        settings = f"{package}.settings" if package else "myproject.settings"
    return (
        f'import os; os.environ.setdefault("DJANGO_SETTINGS_MODULE", "{settings}"); '
        "from channels.asgi import get_channel_layer; channel_layer = get_channel_layer()"
    )


def _looks_like_layer(value: Any) -> bool:
    return callable(getattr(value, "send", None)) and callable(getattr(value, "receive", None))


def _layer_aliases() -> list[str] | None:
    """The aliases of Django's ``CHANNEL_LAYERS``, if the project imported its settings."""
    conf = sys.modules.get("django.conf")
    if conf is None:
        return None
    try:
        layers = conf.settings.CHANNEL_LAYERS
    except Exception:  # settings not configured, or no such setting: nothing to tell
        return None
    return sorted(layers) if isinstance(layers, dict) else None


def _module_hint(module_path: str, error: ImportError) -> str:
    """``; did you mean x.y?`` when `module_path` itself is missing and a sibling module
    has a close name (found without importing anything)."""
    if not isinstance(error, ModuleNotFoundError) or error.name != module_path:
        return ""
    package, _, name = module_path.rpartition(".")
    try:
        search = importlib.import_module(package).__path__ if package else sys.path
    except Exception:  # the package itself is missing or broken: nothing to suggest
        return ""
    siblings = [info.name for info in pkgutil.iter_modules(search)]
    close = difflib.get_close_matches(name, siblings, n=1)
    if not close:
        return ""
    return f"; did you mean {package + '.' if package else ''}{close[0]}?"


def _import_error(path: str, module_path: str, error: Exception) -> LayerLoadError:
    text = f"cannot load channel layer {path!r}: {type(error).__name__}: {error}"
    if isinstance(error, ImportError):
        text = f"cannot load channel layer {path!r}: {error}{_module_hint(module_path, error)}"
    elif isinstance(error, KeyError):
        # channels' get_channel_layer("alias") with an alias CHANNEL_LAYERS lacks.
        aliases = _layer_aliases()
        key = error.args[0] if error.args else None
        if aliases is not None and key not in aliases:
            listed = ", ".join(repr(alias) for alias in aliases) or "none"
            text += (
                f" (importing {module_path} asked for channel layer alias {key!r}, but "
                f"CHANNEL_LAYERS defines {listed}; pass one of them to get_channel_layer() "
                "or add it to CHANNEL_LAYERS)"
            )
        else:
            text += (
                f" (raised while importing {module_path}: a misspelled channel layer "
                "alias in get_channel_layer() or a missing CHANNEL_LAYERS setting?)"
            )
    return LayerLoadError(text)


def _missing_attribute(path: str, module_path: str, module: Any, missing: str) -> LayerLoadError:
    text = f"cannot load channel layer {path!r}: {module_path} has no attribute {missing!r}"
    found = sorted(
        name
        for name, value in vars(module).items()
        if not name.startswith("_")
        if _looks_like_layer(value)
    )
    if found:
        options = " or ".join(f"{module_path}:{name}" for name in found)
        return LayerLoadError(f"{text}; it defines a channel layer: write {options}")
    return LayerLoadError(
        f"{text} and no channel layer; put this in {module_path.replace('.', '/')}.py: "
        f"{asgi_snippet(module_path)}"
    )


def load_channel_layer(path: str) -> Any:
    """Import ``module:object.path`` with the current directory first on sys.path (D-6)."""
    if ":" not in path:
        hint = f"; did you mean {path}:channel_layer?" if path and "/" not in path else ""
        raise LayerLoadError(
            f"channel layer {path!r} must look like path.to.module:object.path{hint}"
        )
    sys.path.insert(0, ".")
    module_path, object_path = path.split(":", 1)
    try:
        module = importlib.import_module(module_path)
    except Exception as error:  # anything the project's module raises while importing
        raise _import_error(path, module_path, error) from error
    layer = module
    for part in object_path.split("."):
        try:
            layer = getattr(layer, part)
        except AttributeError as error:
            if layer is module:
                raise _missing_attribute(path, module_path, module, part) from error
            raise LayerLoadError(f"cannot load channel layer {path!r}: {error}") from error
    return layer


def not_a_layer_message(path: str, value: Any) -> str:
    """Why `value` (loaded from `path`) is not a channel layer, and what to write."""
    module_path = path.split(":", 1)[0]
    if callable(value):
        # Django's generated asgi.py: `application = get_asgi_application()`.
        return (
            f"{path} is not a channel layer but an ASGI application (Django's "
            "get_asgi_application()?); this daphne serves a Channels 1.x channel layer. "
            f"Replace {module_path.replace('.', '/')}.py with: {asgi_snippet(module_path)} "
            f"and run: daphne {module_path}:channel_layer"
        )
    return (
        f"{path} is not a channel layer ({type(value).__name__}): it needs callable "
        f"send() and receive(); {module_path.replace('.', '/')}.py should hold: "
        f"{asgi_snippet(module_path)}"
    )


def is_process_local(layer: Any) -> bool:
    """The in-memory layer (or a `channels` wrapper around it): one process only."""
    for candidate in (layer, getattr(layer, "channel_layer", None)):
        if candidate is not None and "inmemory" in type(candidate).__module__:
            return True
    return False


def process_local_message(path: str) -> str:
    return (
        f"{path} is the in-memory channel layer, which only reaches consumers in this "
        "process: the workers (manage.py runworker) would never see a request and every "
        "HTTP request would time out. Use a cross-process layer in CHANNEL_LAYERS "
        "(asgi_redis.RedisChannelLayer, or asgi_ipc.IPCChannelLayer on one machine), "
        "or run everything in one process with: python manage.py runserver"
    )
