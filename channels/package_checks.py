"""Refuse to run with layer packages older than Channels needs (C-5)."""

from __future__ import annotations

import importlib
import re

__all__ = ["check_all"]

MINIMUM_VERSIONS = {
    "asgi_rabbitmq": "0.4.0",
    "asgi_redis": "1.2.0",
    "asgi_ipc": "1.3.0",
}


def check_all() -> None:
    for package, minimum in MINIMUM_VERSIONS.items():
        try:
            module = importlib.import_module(package)
        except ImportError:
            continue
        version = getattr(module, "__version__", None)
        if version is None:
            # A package being written (or a namespace stub) has nothing to compare.
            continue
        if _numeric(version) < _numeric(minimum):
            raise RuntimeError(
                f"Your version of {package} is too old - it must be at least {minimum}"
            )


def _numeric(version: str) -> tuple[int, ...]:
    parts = []
    for piece in str(version).split("."):
        # Leading digits only: "0rc1" counts as 0.
        digits = re.match(r"[0-9]*", piece)
        parts.append(int(digits.group() or 0) if digits else 0)
    # Pad so that "1.2" and "1.2.0" compare equal.
    return tuple(parts + [0] * (4 - len(parts)))
