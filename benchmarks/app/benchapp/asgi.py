"""The channel layer daphne serves: `daphne benchapp.asgi:channel_layer` (C-13)."""

import os

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "benchapp.settings")

from channels.asgi import get_channel_layer

channel_layer = get_channel_layer()
