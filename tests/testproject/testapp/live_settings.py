"""Settings for test project processes run for real (daphne, runworker, rundelay).

The Redis layer and the database come from the environment, so each test gets a private
redis-server and its own SQLite file: ``CHANNELS_TEST_REDIS`` (a redis:// URL) and
``CHANNELS_TEST_DB`` (a path, migrated by the test before it starts the processes).
"""

import os

from tests.testproject.settings import *  # noqa: F403 - this extends the test settings

# runworker serves static files (the JavaScript bridge) only with DEBUG on (C-77).
DEBUG = True
ALLOWED_HOSTS = ["127.0.0.1", "localhost"]

DATABASES = {
    "default": {
        "ENGINE": "django.db.backends.sqlite3",
        "NAME": os.environ["CHANNELS_TEST_DB"],
    }
}

CHANNEL_LAYERS = {
    "default": {
        "BACKEND": "asgi_redis.RedisChannelLayer",
        "ROUTING": "tests.testproject.testapp.live_routing.channel_routing",
        "CONFIG": {"hosts": [os.environ["CHANNELS_TEST_REDIS"]]},
    },
}
