"""Settings of the benchmark project: defaults everywhere, no database, no middleware.

The Redis address comes from ``BENCH_REDIS_URL`` (set by benchmarks/run.py for its private
redis-server); there is deliberately no fallback to a Redis on the default port.
"""

import os

from django.core.exceptions import ImproperlyConfigured

try:
    REDIS_URL = os.environ["BENCH_REDIS_URL"]
except KeyError:
    raise ImproperlyConfigured(
        "BENCH_REDIS_URL is not set: start the stack with `python benchmarks/run.py`, "
        "which runs a private redis-server and passes its URL"
    ) from None

SECRET_KEY = "benchmark-only-not-a-secret"
DEBUG = False
ALLOWED_HOSTS = ["127.0.0.1", "localhost"]
INSTALLED_APPS = ["channels"]
MIDDLEWARE: list[str] = []
ROOT_URLCONF = "benchapp.urls"
DATABASES: dict = {}
USE_TZ = True

CHANNEL_LAYERS = {
    "default": {
        "BACKEND": "asgi_redis.RedisChannelLayer",
        "ROUTING": "benchapp.routing.channel_routing",
        "CONFIG": {"hosts": [REDIS_URL]},
    }
}

if os.environ.get("BENCH_REDIS_HOSTS"):
    # W10 (issue 19): the layer over several Redis (comma-separated URLs): the sharded
    # RedisChannelLayer, or RedisClusterChannelLayer with BENCH_REDIS_CLUSTER=1.
    CHANNEL_LAYERS["default"]["CONFIG"] = {"hosts": os.environ["BENCH_REDIS_HOSTS"].split(",")}
    if os.environ.get("BENCH_REDIS_CLUSTER"):
        CHANNEL_LAYERS["default"]["BACKEND"] = "asgi_redis.RedisClusterChannelLayer"
# Issue 17: BENCH_AT_LEAST_ONCE="websocket.receive,..." turns at-least-once delivery on for
# those channels (W2-alo, W8, W9); its other options keep their defaults unless
# BENCH_ACK_TIMEOUT is set.
if os.environ.get("BENCH_AT_LEAST_ONCE"):
    CHANNEL_LAYERS["default"]["CONFIG"]["at_least_once"] = os.environ["BENCH_AT_LEAST_ONCE"].split(
        ","
    )
    if os.environ.get("BENCH_ACK_TIMEOUT"):
        CHANNEL_LAYERS["default"]["CONFIG"]["ack_timeout"] = float(os.environ["BENCH_ACK_TIMEOUT"])
