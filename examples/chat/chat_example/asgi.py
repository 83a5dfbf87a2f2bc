"""The channel layer that daphne serves: ``daphne chat_example.asgi:channel_layer``."""

import os

from channels.asgi import get_channel_layer

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "chat_example.settings")
channel_layer = get_channel_layer()
