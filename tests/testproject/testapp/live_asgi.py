"""The channel layer daphne serves, for the live tests (C-13)."""

import os

from channels.asgi import get_channel_layer

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "tests.testproject.testapp.live_settings")
channel_layer = get_channel_layer()
