"""Channel layer in shared memory for processes on one machine (L-1, L-55, L-56)."""

from .core import IPCChannelLayer

__version__ = "1.4.2"

__all__ = ["IPCChannelLayer", "__version__"]
