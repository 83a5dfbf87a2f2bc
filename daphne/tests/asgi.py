"""A stand-in "channel layer" for CLI tests that patch out `Server.run` (D-58)."""

from typing import Any

channel_layer: dict[str, Any] = {}
