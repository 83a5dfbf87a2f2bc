"""Message values as A-6 allows them: copied (`copy_value`) or only checked (`check_value`).

`BaseChannelLayer.snapshot` copies a message with `copy_value` (A-8: the layer keeps
nothing the sender can still change) and bounds its encoded size on the way (A-92);
`BaseChannelLayer.validated` checks it with `check_value`, for layers that serialize
it before `send` returns. Both accept the same values and raise the same `BadValue`,
which the layer turns into its `UnsupportedMessageValue`. Two walks, not one with a
flag: the copy is the in-memory layer's hot path.
"""

from __future__ import annotations

from typing import Any

__all__ = ["BadValue", "check_value", "copy_value"]

_INT_MIN = -(2**63)
_INT_MAX = 2**64 - 1  # msgpack's unsigned range; signed 64-bit fits inside it


class BadValue(Exception):
    """Raised inside `copy_value`; each container on the way out adds its key (A-6).

    The path is built only on this rare error: formatting it for every value on
    the way in was a tenth of the copy's cost on an HTTP request's headers.
    """

    def __init__(self, problem: str) -> None:
        self.problem = problem
        self.keys: list[str] = []

    def describe(self) -> str:
        """What is wrong, and where: ``message['headers'][0] is a set; ...``."""
        return "message" + "".join(reversed(self.keys)) + self.problem


# The types of A-6 a subclass of which is carried as the type itself.
_VALUE_BASES: tuple[type[Any], ...] = (str, bytes, int, float, dict, list, tuple)


def copy_value(value: Any) -> tuple[Any, int]:
    """Copy one message value per A-6, returning it with its size bound."""
    # Exact-type checks first: they are the hot path and cost one dict lookup.
    kind = type(value)
    if kind is str:
        return value, 5 + 4 * len(value)
    if kind is bytes:
        return value, 5 + len(value)
    if kind is bool or value is None:
        return value, 1
    if kind is int:
        if not _INT_MIN <= value <= _INT_MAX:
            raise _out_of_range(value)
        return value, 9
    if kind is float:
        return value, 9
    if kind is dict:
        copy: dict[str, Any] = {}
        size = 5
        for key, item in value.items():
            if type(key) is not str and not isinstance(key, str):
                raise _bad_key(key)
            # Leaves inline (issue 20): a call per value was most of a message's copy.
            item_kind = type(item)
            if item_kind is bytes:
                copy[key] = item
                size += 10 + len(item) + 4 * len(key)
                continue
            if item_kind is str:
                copy[key] = item
                size += 10 + 4 * (len(item) + len(key))
                continue
            if item_kind is bool or item is None:
                copy[key] = item
                size += 6 + 4 * len(key)
                continue
            try:
                copy[key], item_size = copy_value(item)
            except BadValue as bad:
                bad.keys.append(f"[{key!r}]")
                raise
            size += item_size + 5 + 4 * len(key)
        return copy, size
    if kind is list or kind is tuple:
        items: list[Any] = []
        size = 5
        shared = True
        for index, item in enumerate(value):
            item_kind = type(item)
            if item_kind is bytes:
                items.append(item)
                size += 5 + len(item)
                continue
            if (
                item_kind is tuple
                and len(item) == 2
                and type(item[0]) is bytes
                and type(item[1]) is bytes
            ):
                # A header pair: immutable, kept (as the general path would).
                items.append(item)
                size += 15 + len(item[0]) + len(item[1])
                continue
            try:
                item_copy, item_size = copy_value(item)
            except BadValue as bad:
                bad.keys.append(f"[{index}]")
                raise
            items.append(item_copy)
            shared = shared and item_copy is item
            size += item_size
        if kind is list:
            return items, size
        # L-6: deepcopy semantics; a tuple of immutable values (a header pair) is itself
        # immutable, so it is kept rather than rebuilt.
        return (value if shared else tuple(items)), size
    # Subclasses (e.g. Django's SafeString) are accepted as their base type.
    for base in _VALUE_BASES:
        if isinstance(value, base):
            return copy_value(base(value))
    raise _unsupported(kind)


def check_value(value: Any) -> None:
    """`copy_value`'s checks alone (A-6): the same values pass, the same errors."""
    kind = type(value)
    if kind is str or kind is bytes or kind is bool or kind is float or value is None:
        return
    if kind is int:
        if not _INT_MIN <= value <= _INT_MAX:
            raise _out_of_range(value)
        return
    if kind is dict:
        for key, item in value.items():
            if type(key) is not str and not isinstance(key, str):
                raise _bad_key(key)
            item_kind = type(item)
            if item_kind is bytes or item_kind is str or item_kind is bool or item is None:
                continue
            try:
                check_value(item)
            except BadValue as bad:
                bad.keys.append(f"[{key!r}]")
                raise
        return
    if kind is list or kind is tuple:
        for index, item in enumerate(value):
            item_kind = type(item)
            if item_kind is bytes:
                continue
            if (
                item_kind is tuple
                and len(item) == 2
                and type(item[0]) is bytes
                and type(item[1]) is bytes
            ):
                continue  # a header pair
            try:
                check_value(item)
            except BadValue as bad:
                bad.keys.append(f"[{index}]")
                raise
        return
    # Subclasses (e.g. Django's SafeString) are accepted as their base type.
    for base in _VALUE_BASES:
        if isinstance(value, base):
            check_value(base(value))
            return
    raise _unsupported(kind)


# The errors, shared by both walks (only built on the rare bad value). The walks
# themselves stay two: `copy_value` is the in-memory layer's hot path, with its leaves
# and header pairs inline.


def _bad_key(key: Any) -> BadValue:
    return BadValue(f" has a key of type {type(key).__name__} ({key!r}); keys must be str")


def _out_of_range(value: int) -> BadValue:
    return BadValue(f" = {value} is outside the 64-bit integer range")


def _unsupported(kind: type) -> BadValue:
    return BadValue(
        f" is a {kind.__name__}; messages may hold only bytes, str, int, float, bool, "
        "None, list, tuple and dict with str keys (A-6)"
    )
