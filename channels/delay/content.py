"""Message content as JSON text that keeps every ASGI value type (A-6, A-91).

JSON has no bytes, so a bytes value is written as ``{"__bytes__": "<base64>"}``. To keep
that unambiguous, a real dict that happens to use one of the two marker keys is wrapped as
``{"__dict__": {...}}``, whose keys are taken literally on the way back. Tuples come back
as lists, as they do through any serializing layer (A-6).
"""

from __future__ import annotations

import base64
import json
from typing import Any

__all__ = ["decode_content", "encode_content"]

_BYTES = "__bytes__"
_DICT = "__dict__"


def encode_content(content: dict[str, Any]) -> str:
    """JSON text for an ASGI message dict; ``TypeError`` names an unsupported value."""
    if not isinstance(content, dict):
        raise TypeError(f"Delayed message content must be a dict, not {type(content).__name__}")
    return json.dumps(_encode(content, "content"), ensure_ascii=False, allow_nan=True)


def decode_content(text: str) -> dict[str, Any]:
    """The message dict ``encode_content`` wrote."""
    return _decode(json.loads(text))


def _encode(value: Any, path: str) -> Any:
    if isinstance(value, bytes):
        return {_BYTES: base64.b64encode(value).decode("ascii")}
    if isinstance(value, dict):
        encoded = {}
        for key, item in value.items():
            if not isinstance(key, str):
                raise TypeError(f"Dict keys must be str (A-6); {path} has key {key!r}")
            encoded[key] = _encode(item, f"{path}[{key!r}]")
        return {_DICT: encoded} if _BYTES in value or _DICT in value else encoded
    if isinstance(value, (list, tuple)):
        return [_encode(item, f"{path}[{index}]") for index, item in enumerate(value)]
    if value is None or isinstance(value, (str, int, float)):  # bool is an int
        return value
    raise TypeError(
        f"{path} is a {type(value).__name__}; messages may hold only bytes, str, int, "
        f"float, bool, None, list and dict (A-6)"
    )


def _decode(value: Any) -> Any:
    if isinstance(value, dict):
        if len(value) == 1 and _BYTES in value:
            return base64.b64decode(value[_BYTES])
        if len(value) == 1 and _DICT in value:
            return {key: _decode(item) for key, item in value[_DICT].items()}
        return {key: _decode(item) for key, item in value.items()}
    if isinstance(value, list):
        return [_decode(item) for item in value]
    return value
