"""Helpers for the public-API audit (issue 13, point 2; docs/differences.rst).

An audit entry names a public object by dotted path and the parameters the spec gives it,
written as a Python parameter list without ``self``/``cls``: ``"(channel, message)"``.
The object must accept every call 1.x code could make with those parameters:

* the spec's parameters come first, in order, with the same kind and default;
* a spec name starting with ``_`` only fixes the position (the spec gives no name that
  1.x code could pass as a keyword);
* the names of ``*args`` / ``**kwargs`` are free;
* the project may add parameters after them only if they are optional.
"""

from __future__ import annotations

import importlib
import inspect
from typing import Any

_EMPTY = inspect.Parameter.empty


class Ref(str):
    """An expected value given as the dotted path of the object it must be (``is``)."""


def resolve(path: str) -> Any:
    """Import the longest importable module prefix of `path`, then follow attributes."""
    parts = path.split(".")
    for split in range(len(parts), 0, -1):
        try:
            obj = importlib.import_module(".".join(parts[:split]))
        except ModuleNotFoundError:
            continue
        for name in parts[split:]:
            obj = getattr(obj, name)
        return obj
    raise ModuleNotFoundError(path)


def static_kind(path: str) -> str:
    """``"classmethod"``, ``"staticmethod"``, ``"method"`` (plain function in a class body),
    ``"property"`` or ``"other"`` for the class attribute at `path`."""
    owner_path, _, name = path.rpartition(".")
    owner = resolve(owner_path)
    if not inspect.isclass(owner):
        return "other"
    raw = inspect.getattr_static(owner, name)
    if isinstance(raw, classmethod):
        return "classmethod"
    if isinstance(raw, staticmethod):
        return "staticmethod"
    if isinstance(raw, property):
        return "property"
    if inspect.isfunction(raw):
        return "method"
    return "other"


def actual_parameters(path: str) -> list[inspect.Parameter]:
    """The parameters a caller passes: ``self`` dropped from plain methods read off a class."""
    parameters = list(inspect.signature(resolve(path)).parameters.values())
    if static_kind(path) == "method":
        parameters = parameters[1:]
    return parameters


def expected_parameters(spec: str) -> list[inspect.Parameter]:
    """Parse ``"(a, b=1, *args, **kwargs)"`` into parameters (defaults are evaluated)."""
    namespace: dict[str, Any] = {}
    exec(f"def _spec{spec}: pass", namespace)  # literal strings from the audit tables only
    return list(inspect.signature(namespace["_spec"]).parameters.values())


def _describe(parameters: list[inspect.Parameter]) -> str:
    return str(inspect.Signature([p.replace(annotation=_EMPTY) for p in parameters]))


def signature_mismatches(path: str, spec: str) -> list[str]:
    """Everything in `path`'s signature that 1.x code written to `spec` could trip over."""
    actual = actual_parameters(path)
    expected = expected_parameters(spec)
    problems = []
    if len(actual) < len(expected):
        problems.append(f"has fewer parameters than the spec's {spec}")
    for want, have in zip(expected, actual, strict=False):
        varargs = want.kind in (want.VAR_POSITIONAL, want.VAR_KEYWORD)
        if want.kind != have.kind:
            problems.append(f"{have.name}: kind {have.kind.description}, spec {want.kind}")
        elif not varargs and not want.name.startswith("_") and want.name != have.name:
            problems.append(f"parameter {have.name!r} is called {want.name!r} in the spec")
        if want.default != have.default:
            problems.append(f"{have.name}: default {have.default!r}, spec {want.default!r}")
    for extra in actual[len(expected) :]:
        optional = extra.default is not _EMPTY or extra.kind in (
            extra.VAR_POSITIONAL,
            extra.VAR_KEYWORD,
        )
        if not optional:
            problems.append(f"extra required parameter {extra.name!r}")
    if problems:
        problems.insert(0, f"{path}{_describe(actual)} vs spec {spec}")
    return problems


def audit_ids(entries: list[tuple]) -> list[str]:
    """pytest ids ``<spec id>:<path>`` for a table of audit entries."""
    return [f"{entry[0]}:{entry[1]}" for entry in entries]


def check_value(path: str, value: Any) -> None:
    """`path` is `value` (a `Ref` to the same object) or equals it, of the same type."""
    actual = resolve(path)
    if isinstance(value, Ref):
        assert actual is resolve(value)
    else:
        assert actual == value
        assert type(actual) is type(value)


def check_bases(path: str, bases: list[str]) -> None:
    """The class at `path` subclasses each of `bases`."""
    cls = resolve(path)
    for base in bases:
        assert issubclass(cls, resolve(base)), f"{path} is not a {base}"
