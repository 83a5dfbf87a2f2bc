"""The one console log format of daphne, runworker and runserver (issue 14).

daphne's command line, and Channels' management commands (``channels.log``, C-76), all
format their log lines with `LOG_FORMAT`, so one terminal running them together shows
one shape of line: time, level, where it came from, message. This module imports only
the standard library: daphne runs without Django, and Channels imports it from here.
"""

from __future__ import annotations

import logging

__all__ = ["LOG_FORMAT", "formatter"]

# C-76's format (Channels 1.x runworker/runserver), now shared with daphne (D-7).
LOG_FORMAT = "%(asctime)s - %(levelname)s - %(module)s - %(message)s"


def formatter() -> logging.Formatter:
    """A `logging.Formatter` for `LOG_FORMAT`."""
    return logging.Formatter(LOG_FORMAT)
