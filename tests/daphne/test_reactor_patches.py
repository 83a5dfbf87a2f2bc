"""`reactor_patches.call_with_logger` does what Twisted's ``log.callWithLogger`` does
(issue 20): the same log context inside the call, the same errors logged."""

from __future__ import annotations

from typing import Any

import pytest
from twisted.internet import epollreactor
from twisted.python import context, log

from daphne import reactor_patches
from daphne.reactor_patches import call_with_logger


class _Selectable:
    def __init__(self, prefix: str = "selectable") -> None:
        self.prefix = prefix

    def logPrefix(self) -> str:
        return self.prefix


class _BuggyPrefix:
    def logPrefix(self) -> str:
        raise RuntimeError("no prefix")


def _seen(call: Any, logger: Any, func: Any, *args: Any) -> tuple[Any, Any, list]:
    """What `func` saw of the log context, what the call returned, and what was logged."""
    events: list[dict] = []
    log.addObserver(events.append)
    try:
        stack_before = list(context.theContextTracker.currentContext().contexts)
        result = call(logger, func, *args)
        assert context.theContextTracker.currentContext().contexts == stack_before
    finally:
        log.removeObserver(events.append)
    return result, [e.get("system") for e in events], [e.get("isError") for e in events]


@pytest.mark.parametrize("call", [log.callWithLogger, call_with_logger])
def test_the_handler_runs_with_its_prefix_as_system(call):
    seen = []

    def handler(a, b, c=None):
        seen.append((context.get(log.ILogContext), a, b, c))
        return "done"

    result, systems, _ = _seen(call, _Selectable("tcp-7"), handler, 1, 2)
    assert result == "done"
    assert seen == [({"system": "tcp-7"}, 1, 2, None)]
    assert systems == []


def test_nested_contexts_are_kept_as_twisted_keeps_them():
    def inner():
        return dict(context.get(log.ILogContext))

    def outer(call):
        return context.call({log.ILogContext: {"system": "x", "extra": 1}}, call, *args(call))

    def args(call):
        return (_Selectable("inner"), inner)

    expected = outer(log.callWithLogger)
    assert outer(call_with_logger) == expected == {"system": "inner", "extra": 1}


@pytest.mark.parametrize("call", [log.callWithLogger, call_with_logger])
def test_an_escaping_error_is_logged_with_the_prefix(call):
    def handler():
        raise ValueError("broken handler")

    result, systems, errors = _seen(call, _Selectable("tcp-9"), handler)
    assert result is None
    assert systems == ["tcp-9"] and errors == [1]


@pytest.mark.parametrize("call", [log.callWithLogger, call_with_logger])
def test_a_buggy_log_prefix_is_logged_and_the_handler_still_runs(call):
    result, systems, errors = _seen(call, _BuggyPrefix(), lambda: "ran")
    assert result == "ran"
    assert systems == ["(buggy logPrefix method)"] and errors == [1]


def test_another_context_tracker_gets_twisted_own(monkeypatch):
    calls = []

    def twisted_own(*args, **kw):
        calls.append(args)
        return "twisted"

    monkeypatch.setattr(reactor_patches, "_twisted_call_with_logger", twisted_own)
    monkeypatch.setattr(context, "theContextTracker", context.ContextTracker())
    assert call_with_logger(_Selectable(), lambda: "ours") == "twisted"
    assert len(calls) == 1


def test_install_replaces_the_epoll_reactors_log_only(monkeypatch):
    monkeypatch.setattr(epollreactor, "log", log)
    reactor_patches.install()
    assert epollreactor.log.callWithLogger is call_with_logger
    patched = epollreactor.log
    reactor_patches.install()
    assert epollreactor.log is patched  # idempotent
    assert log.callWithLogger is not call_with_logger  # Twisted's module is untouched
