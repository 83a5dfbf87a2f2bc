"""Deprecated alias of `channels.test` (C-8)."""

import warnings

from .test import *  # noqa: F403
from .test import __all__  # noqa: F401

warnings.warn(
    "channels.tests is deprecated; import from channels.test instead",
    DeprecationWarning,
    stacklevel=2,
)
