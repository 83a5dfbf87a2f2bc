"""Django Channels in its channel-layer architecture (C-3).

Importing this package never reads Django settings: layers are built on first use.
"""

__version__ = "1.1.8"

DEFAULT_CHANNEL_LAYER = "default"

try:
    import django  # noqa: F401
except ImportError:  # channels.layers is usable without Django (C-3)
    pass
else:
    from .asgi import channel_layers  # noqa: F401
    from .channel import Channel, Group  # noqa: F401
    from .routing import include, route, route_class  # noqa: F401
