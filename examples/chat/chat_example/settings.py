"""Settings of the chat example.

Environment variables (all optional):

``CHAT_CHANNEL_LAYER``
    ``inmemory`` (default): one process, for ``manage.py runserver``.
    ``redis``: ``asgi_redis.RedisChannelLayer``, for ``daphne`` + ``manage.py runworker``.
    ``ipc``: ``asgi_ipc.IPCChannelLayer`` (shared memory), the same on one machine without
    Redis; ``CHAT_IPC_PREFIX`` (default ``chat``) names the shared store.
``CHANNELS_REDIS_URL``
    Required with ``redis``: the Redis database to use, e.g. ``redis://127.0.0.1:6379/5``;
    comma-separate several URLs to shard the layer. No default (a guess would write into
    another program's database 0).
``CHAT_DATABASE``
    Path of the SQLite database (default ``db.sqlite3`` next to ``manage.py``).
``CHAT_DEBUG``
    ``1`` (default) or ``0``. With ``0``, static files are not served by Django.
``CHAT_SECRET_KEY``, ``CHAT_ALLOWED_HOSTS``
    Set both for anything but a local demo (``CHAT_ALLOWED_HOSTS`` is comma-separated).
"""

import os
from pathlib import Path

from django.core.exceptions import ImproperlyConfigured

BASE_DIR = Path(__file__).resolve().parent.parent

SECRET_KEY = os.environ.get("CHAT_SECRET_KEY", "chat-example-insecure-key-change-me")
DEBUG = os.environ.get("CHAT_DEBUG", "1") == "1"
ALLOWED_HOSTS = os.environ.get("CHAT_ALLOWED_HOSTS", "localhost,127.0.0.1,[::1]").split(",")

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "channels",
    "chat",
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
]

ROOT_URLCONF = "chat_example.urls"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [],
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
        "NAME": os.environ.get("CHAT_DATABASE", str(BASE_DIR / "db.sqlite3")),
        "OPTIONS": {
            # Workers in several threads and processes write sessions and messages at
            # once: WAL lets readers run during a write, IMMEDIATE transactions queue
            # writers instead of failing them with "database is locked".
            "init_command": "PRAGMA journal_mode=WAL;",
            "transaction_mode": "IMMEDIATE",
            "timeout": 20,
        },
    }
}

# Sessions live in the database so that daphne, runworker and every worker thread see
# the same session; channel sessions use the same engine by default.
SESSION_ENGINE = "django.contrib.sessions.backends.db"

LOGIN_URL = "login"
LOGIN_REDIRECT_URL = "index"
LOGOUT_REDIRECT_URL = "login"

AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
]

USE_TZ = True
TIME_ZONE = "UTC"
STATIC_URL = "/static/"
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

ROUTING = "chat_example.routing.channel_routing"


def _redis_hosts() -> list[str]:
    """``CHANNELS_REDIS_URL``, comma-separated; no default, so no shared database 0 is used."""
    urls = os.environ.get("CHANNELS_REDIS_URL", "").split(",")
    hosts = [url.strip() for url in urls if url.strip()]
    if not hosts:
        raise ImproperlyConfigured(
            "CHAT_CHANNEL_LAYER=redis needs CHANNELS_REDIS_URL, the Redis database this "
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
    if kind == "ipc":
        return {
            "BACKEND": "asgi_ipc.IPCChannelLayer",
            "ROUTING": ROUTING,
            "CONFIG": {"prefix": os.environ.get("CHAT_IPC_PREFIX", "chat")},
        }
    raise ImproperlyConfigured(
        f"CHAT_CHANNEL_LAYER={kind!r} is not supported: use 'inmemory', 'redis' or 'ipc'."
    )


CHANNEL_LAYERS = {"default": _channel_layer(os.environ.get("CHAT_CHANNEL_LAYER", "inmemory"))}

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "handlers": {"console": {"class": "logging.StreamHandler"}},
    "loggers": {"chat": {"handlers": ["console"], "level": "INFO"}},
}
