"""Redis channel layers for ASGI-1 (L-1): sharded, Sentinel-managed, Redis Cluster
and local-plus-Redis.

`RedisLocalChannelLayer` lives in `asgi_redis.local` (it needs the IPC layer)
and is imported on first access.
"""

from typing import Any

from .cluster import RedisClusterChannelLayer
from .core import RedisChannelLayer, UnsupportedRedis
from .errors import LayerOutOfMemory, LayerUnavailable
from .sentinel import RedisSentinelChannelLayer

__version__ = "1.4.3.dev0"

__all__ = [
    "LayerOutOfMemory",
    "LayerUnavailable",
    "RedisChannelLayer",
    "RedisClusterChannelLayer",
    "RedisLocalChannelLayer",
    "RedisSentinelChannelLayer",
    "UnsupportedRedis",
    "__version__",
]


def __getattr__(name: str) -> Any:
    if name == "RedisLocalChannelLayer":
        from .local import RedisLocalChannelLayer

        return RedisLocalChannelLayer
    raise AttributeError(f"module 'asgi_redis' has no attribute {name!r}")
