"""Settings of the Channels 4.3 control: defaults everywhere, no database, no middleware.

As in benchmarks/app/benchapp/settings.py, Redis comes from ``BENCH_REDIS_URL`` (the
workload's private redis-server) with no fallback.
"""

import os

from django.core.exceptions import ImproperlyConfigured

try:
    REDIS_URL = os.environ["BENCH_REDIS_URL"]
except KeyError:
    raise ImproperlyConfigured(
        "BENCH_REDIS_URL is not set: the control is started by `python benchmarks/run.py`"
    ) from None

SECRET_KEY = "benchmark-only-not-a-secret"
DEBUG = False
ALLOWED_HOSTS = ["127.0.0.1", "localhost"]
INSTALLED_APPS = ["daphne", "channels"]
MIDDLEWARE: list[str] = []
ROOT_URLCONF = "c4app.urls"
DATABASES: dict = {}
USE_TZ = True
ASGI_APPLICATION = "c4app.asgi.application"

# channels-redis's default layer with its defaults (capacity 100, expiry 60), like the
# project's layer in the bench app.
CHANNEL_LAYERS = {
    "default": {
        "BACKEND": "channels_redis.core.RedisChannelLayer",
        "CONFIG": {"hosts": [REDIS_URL]},
    }
}
