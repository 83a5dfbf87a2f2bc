"""Shared helpers for the IPC layer tests: unique prefixes and clean-up (L-57)."""

from __future__ import annotations

import contextlib
import os
import uuid

from asgi_ipc.store import store_directory


def unique_prefix(name: str) -> str:
    """A prefix no other test, run or parallel session uses (L-57)."""
    return f"t-{name}-{os.getpid()}-{uuid.uuid4().hex[:8]}"


def remove_store(prefix: str) -> None:
    """Delete every file of `prefix` so repeated runs leave nothing in /dev/shm."""
    directory = store_directory()
    for entry in os.listdir(directory):
        if entry.startswith(f"{prefix}-"):
            with contextlib.suppress(FileNotFoundError):
                os.unlink(os.path.join(directory, entry))
