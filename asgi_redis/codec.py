"""Message payloads: msgpack, optionally sealed with Fernet (L-6, L-37, L-38).

Only the payload is encrypted; channel names, group members and statistics
stay in clear text (L-38).
"""

from __future__ import annotations

import base64
import hashlib
import threading
from collections.abc import Sequence
from typing import Any

import msgpack

__all__ = ["Codec", "build_fernet"]


def build_fernet(keys: Sequence[str | bytes]) -> Any:
    """Return a `MultiFernet` that encrypts with the first key and decrypts with any (L-37)."""
    if isinstance(keys, (str, bytes)) or not isinstance(keys, Sequence):
        raise ValueError(
            "symmetric_encryption_keys must be a list of keys, not a bare "
            f"{type(keys).__name__}; write [{keys!r}]"
        )
    if not keys:
        raise ValueError("symmetric_encryption_keys must hold at least one key (or be None)")
    try:
        from cryptography.fernet import Fernet, MultiFernet
    except ImportError:
        raise ValueError(
            "symmetric_encryption_keys needs the 'cryptography' package: "
            "pip install 'channels[encryption]'"
        )
    fernets = []
    for key in keys:
        if isinstance(key, str):
            key = key.encode("utf-8")
        if not isinstance(key, bytes):
            raise ValueError(f"Encryption keys must be str or bytes, not {type(key).__name__}")
        digest = hashlib.sha256(key).digest()
        fernets.append(Fernet(base64.urlsafe_b64encode(digest)))
    return MultiFernet(fernets)


class Codec:
    """Turns a validated message dict into stored bytes and back."""

    def __init__(self, fernet: Any | None, expiry: int) -> None:
        self._fernet = fernet
        # Whether `seal` encrypts (else it returns its argument).
        self.sealing = fernet is not None
        # One msgpack packer per thread (`pack`): a packer is not thread-safe.
        self._packers = threading.local()
        # L-37: a token older than the message lifetime plus clock slack is refused.
        self._ttl = expiry + 10

    def pack(self, message: dict[str, Any]) -> bytes:
        """``msgpack.packb(message, use_bin_type=True)``, through a packer kept per
        thread (issue 20: a third less than making one per call; a packer that
        raised starts empty again)."""
        try:
            packer = self._packers.packer
        except AttributeError:
            packer = self._packers.packer = msgpack.Packer(use_bin_type=True)
        packed: bytes = packer.pack(message)
        return packed

    def seal(self, packed: bytes) -> bytes:
        if self._fernet is None:
            return packed
        sealed: bytes = self._fernet.encrypt(packed)
        return sealed

    def decode(self, payload: bytes) -> dict[str, Any]:
        """Return the message; raises `cryptography.fernet.InvalidToken` on a bad token."""
        if self._fernet is not None:
            payload = self._fernet.decrypt(payload, ttl=self._ttl)
        message: dict[str, Any] = msgpack.unpackb(payload, raw=False)
        return message
