"""Class-based consumers (C-53..C-57)."""

from .base import BaseConsumer

__all__ = ["BaseConsumer"]
