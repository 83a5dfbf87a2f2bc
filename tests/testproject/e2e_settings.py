"""Settings for the core runtime's real-process tests (daphne, runworker, runserver).

``CHANNELS_E2E_DB`` (SQLite path, migrated by the test) and, for the Redis layer,
``CHANNELS_E2E_REDIS`` (a redis:// URL of a private server), ``CHANNELS_E2E_REDIS_CLUSTER``
(a Redis Cluster's startup nodes) or ``CHANNELS_E2E_IPC_PREFIX`` (a shared-memory layer
prefix) come from the environment. Without either the default layer
is the in-memory one (runserver).
"""

import os

from tests.testproject.settings import *  # noqa: F403 - extends the test settings

DEBUG = os.environ.get("CHANNELS_E2E_DEBUG") == "1"
ALLOWED_HOSTS = ["127.0.0.1", "localhost", "[::1]"]

DATABASES = {
    "default": {
        "ENGINE": "django.db.backends.sqlite3",
        "NAME": os.environ["CHANNELS_E2E_DB"],
    }
}

STATICFILES_DIRS = [BASE_DIR / "static"]  # noqa: F405

if os.environ.get("CHANNELS_E2E_IPC_PREFIX"):
    _LAYER = {
        "BACKEND": "asgi_ipc.IPCChannelLayer",
        "CONFIG": {"prefix": os.environ["CHANNELS_E2E_IPC_PREFIX"]},
    }
elif os.environ.get("CHANNELS_E2E_REDIS"):
    _LAYER = {
        "BACKEND": "asgi_redis.RedisChannelLayer",
        "CONFIG": {"hosts": [os.environ["CHANNELS_E2E_REDIS"]]},
    }
elif os.environ.get("CHANNELS_E2E_REDIS_CLUSTER"):
    # Issue 17 on a Redis Cluster: comma-separated redis:// startup nodes.
    _LAYER = {
        "BACKEND": "asgi_redis.RedisClusterChannelLayer",
        "CONFIG": {"hosts": os.environ["CHANNELS_E2E_REDIS_CLUSTER"].split(",")},
    }
else:
    _LAYER = {"BACKEND": "channels.layers.inmemory.ChannelLayer"}

if os.environ.get("CHANNELS_E2E_AT_LEAST_ONCE"):
    # Issue 17: at-least-once channels (comma-separated patterns) and their timings.
    _LAYER["CONFIG"] = {
        **_LAYER.get("CONFIG", {}),
        "at_least_once": os.environ["CHANNELS_E2E_AT_LEAST_ONCE"].split(","),
        "ack_timeout": float(os.environ.get("CHANNELS_E2E_ACK_TIMEOUT", "30")),
        "max_deliveries": int(os.environ.get("CHANNELS_E2E_MAX_DELIVERIES", "5")),
    }

if os.environ.get("CHANNELS_E2E_CHANNEL_CAPACITY") and "CONFIG" in _LAYER:
    # "name=N,name=N": per-channel capacities (the metrics test fills http.request).
    _LAYER["CONFIG"]["channel_capacity"] = {
        name: int(value)
        for name, _, value in (
            item.partition("=") for item in os.environ["CHANNELS_E2E_CHANNEL_CAPACITY"].split(",")
        )
    }

if os.environ.get("CHANNELS_E2E_BACKEND"):
    # Lets a test start a process with a broken BACKEND setting.
    _LAYER["BACKEND"] = os.environ["CHANNELS_E2E_BACKEND"]

CHANNEL_LAYERS = {
    "default": {
        **_LAYER,
        "ROUTING": os.environ.get(
            "CHANNELS_E2E_ROUTING", "tests.testproject.e2e_routing.channel_routing"
        ),
    },
}

if os.environ.get("CHANNELS_E2E_NO_LAYERS"):
    # A project without a "default" layer: runserver behaves like Django's (C-82).
    CHANNEL_LAYERS = {}

if os.environ.get("CHANNELS_E2E_MARKER_DIR"):
    # runserver's reload test rewrites this module and expects the new value served.
    import sys

    sys.path.insert(0, os.environ["CHANNELS_E2E_MARKER_DIR"])
    from reload_marker import VALUE as RELOAD_MARKER  # noqa: F401 - read by a view
