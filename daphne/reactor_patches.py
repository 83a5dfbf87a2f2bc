"""The epoll reactor's log context per I/O event, in two Python calls instead of eight
(issue 20).

Twisted's `EPollReactor.doPoll` runs every readable or writable descriptor's handler
inside ``log.callWithLogger(selectable, ...)``: the descriptor's ``logPrefix()`` becomes
the ``system`` of Twisted's legacy log events for the duration of the call, and an
exception escaping the handler is logged with it. It gets there through
``log.callWithContext``, ``context.get`` (``ThreadedContextTracker.getContext`` →
``currentContext`` → ``ContextTracker.getContext``) and ``context.call``
(``ThreadedContextTracker.callWithContext`` → ``currentContext`` →
``ContextTracker.callWithContext``): eight Python calls per event, three to four
events per request of a single client (benchmarks/PROFILE.md, sessions 7 and 8).

`call_with_logger` does the same in one function: the same context dictionary pushed
on the same tracker's stack (``{ILogContext: outer copy with system = prefix}``),
popped afterwards, the same errors logged the same way. It only takes this path for
Twisted's default ``ThreadedContextTracker`` with plain dictionaries on its stack;
anything else goes to Twisted's ``log.callWithLogger``.

`install()` (called by `daphne.server.Server.start`) replaces the ``log`` name in
``twisted.internet.epollreactor`` alone (the module's only use of it is this call)
with a namespace whose ``callWithLogger`` is `call_with_logger`; no other module and
no other reactor changes, and importing daphne patches nothing.
"""

from __future__ import annotations

from typing import Any

from twisted.internet import epollreactor
from twisted.python import context, log

__all__ = ["call_with_logger", "install"]

_ILogContext = log.ILogContext
_ThreadedContextTracker = context.ThreadedContextTracker
_twisted_call_with_logger = log.callWithLogger


def call_with_logger(logger: Any, func: Any, *args: Any, **kw: Any) -> Any:
    """`twisted.python.log.callWithLogger`, without its chain of calls (see the module)."""
    tracker = context.theContextTracker
    if type(tracker) is not _ThreadedContextTracker:
        return _twisted_call_with_logger(logger, func, *args, **kw)
    try:
        prefix = logger.logPrefix()
    except KeyboardInterrupt:
        raise
    except BaseException:
        prefix = "(buggy logPrefix method)"
        log.err(system=prefix)
    try:
        try:
            contexts = tracker.storage.ct.contexts
        except AttributeError:  # this thread's first context: Twisted makes it
            contexts = tracker.currentContext().contexts
        top = contexts[-1]
        if type(top) is dict and _ILogContext in top:
            outer = top[_ILogContext]
        else:
            outer = tracker.getContext(_ILogContext)  # Twisted's search of the stack
        inner = outer.copy()
        inner["system"] = prefix
        contexts.append({_ILogContext: inner})
        try:
            return func(*args, **kw)
        finally:
            contexts.pop()
    except KeyboardInterrupt:
        raise
    except BaseException:
        log.err(system=prefix)
        return None


class _EpollLog:
    """What `twisted.internet.epollreactor` reads from its ``log``."""

    callWithLogger = staticmethod(call_with_logger)


def install() -> None:
    """Give the epoll reactor `call_with_logger` (idempotent; leaves a ``log`` that
    someone else replaced alone)."""
    if epollreactor.log is log:
        epollreactor.log = _EpollLog()  # type: ignore[assignment]
