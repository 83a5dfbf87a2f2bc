"""The channel layer daphne serves in the real-process tests (C-13)."""

import os

from channels.asgi import get_channel_layer

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "tests.testproject.e2e_settings")
channel_layer = get_channel_layer()
