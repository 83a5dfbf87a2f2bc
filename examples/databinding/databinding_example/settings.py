"""Settings of the data-binding example.

``TODO_CHANNEL_LAYER`` (``inmemory``, the default, for runserver; or ``redis`` for daphne +
runworker, with ``CHANNELS_REDIS_URL`` naming the Redis database, required, no default)
and ``TODO_DATABASE`` (SQLite path) work like the chat example's variables.
"""

import os
from pathlib import Path

from django.core.exceptions import ImproperlyConfigured

BASE_DIR = Path(__file__).resolve().parent.parent

SECRET_KEY = os.environ.get("TODO_SECRET_KEY", "databinding-example-insecure-key")
DEBUG = os.environ.get("TODO_DEBUG", "1") == "1"
ALLOWED_HOSTS = ["localhost", "127.0.0.1", "[::1]"]

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "channels",
    "todo",
]

MIDDLEWARE = [
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
]

ROOT_URLCONF = "databinding_example.urls"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
            ]
        },
    }
]

DATABASES = {
    "default": {
        "ENGINE": "django.db.backends.sqlite3",
        "NAME": os.environ.get("TODO_DATABASE", str(BASE_DIR / "db.sqlite3")),
        # Several workers write at once: see the chat example's settings.
        "OPTIONS": {
            "init_command": "PRAGMA journal_mode=WAL;",
            "transaction_mode": "IMMEDIATE",
            "timeout": 20,
        },
    }
}

USE_TZ = True
STATIC_URL = "/static/"
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

ROUTING = "databinding_example.routing.channel_routing"


def _redis_hosts() -> list[str]:
    """``CHANNELS_REDIS_URL``, comma-separated; no default, so no shared database 0 is used."""
    urls = os.environ.get("CHANNELS_REDIS_URL", "").split(",")
    hosts = [url.strip() for url in urls if url.strip()]
    if not hosts:
        raise ImproperlyConfigured(
            "TODO_CHANNEL_LAYER=redis needs CHANNELS_REDIS_URL, the Redis database this "
            "example may use, "
            "e.g. CHANNELS_REDIS_URL=redis://127.0.0.1:6379/5 (comma-separate several URLs "
            "to shard). There is no default, so the example never writes into a database "
            "another program uses."
        )
    return hosts


def _channel_layer(kind: str) -> dict:
    if kind == "inmemory":
        return {"BACKEND": "channels.layers.inmemory.ChannelLayer", "ROUTING": ROUTING}
    if kind == "redis":
        return {
            "BACKEND": "asgi_redis.RedisChannelLayer",
            "ROUTING": ROUTING,
            "CONFIG": {"hosts": _redis_hosts()},
        }
    raise ImproperlyConfigured(
        f"TODO_CHANNEL_LAYER={kind!r} is not supported: use 'inmemory' or 'redis'."
    )


CHANNEL_LAYERS = {"default": _channel_layer(os.environ.get("TODO_CHANNEL_LAYER", "inmemory"))}
