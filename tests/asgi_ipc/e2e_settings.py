"""Settings for daphne + runworker on the IPC layer (issue 7), extending the e2e settings.

``CHANNELS_E2E_IPC_PREFIX`` gives the layer a prefix of the test's own (L-57). With
``CHANNELS_E2E_REDIS`` set as well, the layer is `asgi_redis.RedisLocalChannelLayer`
with that prefix plus a colon, so normal channels go through IPC and replies through
Redis (L-47).
"""

import os

from tests.testproject.e2e_settings import *  # noqa: F403 - extends the e2e settings

_PREFIX = os.environ["CHANNELS_E2E_IPC_PREFIX"]

if os.environ.get("CHANNELS_E2E_REDIS"):
    _LAYER = {
        "BACKEND": "asgi_redis.RedisLocalChannelLayer",
        "CONFIG": {"hosts": [os.environ["CHANNELS_E2E_REDIS"]], "prefix": f"{_PREFIX}:"},
    }
else:
    _LAYER = {"BACKEND": "asgi_ipc.IPCChannelLayer", "CONFIG": {"prefix": _PREFIX}}

CHANNEL_LAYERS = {
    "default": {**_LAYER, "ROUTING": "tests.testproject.e2e_routing.channel_routing"},
}
