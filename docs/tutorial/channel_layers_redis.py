# Channels on Redis: daphne and any number of runworker processes share this layer.
import os

CHANNEL_LAYERS = {
    "default": {
        "BACKEND": "asgi_redis.RedisChannelLayer",
        "ROUTING": "mysite.routing.channel_routing",
        "CONFIG": {"hosts": os.environ["CHANNELS_REDIS_URL"].split(",")},
    },
}
