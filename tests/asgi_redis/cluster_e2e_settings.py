"""Settings for daphne + runworker on a Redis Cluster (issue 19 item 1).

``CHANNELS_E2E_REDIS_CLUSTER``: the startup nodes, comma-separated ``redis://`` URLs;
``CHANNELS_E2E_DB``: an SQLite path (the echo and room consumers never touch it).
"""

import os

from tests.testproject.e2e_settings import *  # noqa: F403 - extends the e2e settings

CHANNEL_LAYERS = {
    "default": {
        "BACKEND": "asgi_redis.RedisClusterChannelLayer",
        "CONFIG": {
            "hosts": os.environ["CHANNELS_E2E_REDIS_CLUSTER"].split(","),
            # Above what piles up while a master fails over (~250 messages/s for some
            # seconds): the catch-up burst afterwards must not fill daphne's P! list,
            # where a group send skips a full member silently and would count as
            # a loss that is not the cluster's.
            "capacity": 10000,
        },
        "ROUTING": "tests.asgi_redis.cluster_e2e_routing.channel_routing",
    },
}
