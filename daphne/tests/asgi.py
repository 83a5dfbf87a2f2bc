"""A stand-in "channel layer" for CLI tests that patch out `Server.run` (D-58)."""

channel_layer = {}
