"""Settings of the gunicorn control (W1, issue 20): plain Django, no Channels app loaded.

The same view, URLs and defaults as ``benchapp.settings``; only the Channels app and its
layer are gone, so the control is Django's WSGI handler and nothing of this project.
"""

from benchapp.settings import *  # noqa: F403

INSTALLED_APPS: list[str] = []
CHANNEL_LAYERS: dict = {}
