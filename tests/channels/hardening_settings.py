"""Settings for the issue 15 real-process tests: the e2e settings plus per-user socket
groups and a URLconf with a logout view (tests/channels/test_hardening_e2e.py)."""

from tests.testproject.e2e_settings import *  # noqa: F403 - extends the e2e settings

CHANNELS_USER_GROUPS = True
ROOT_URLCONF = "tests.channels.hardening_urls"
