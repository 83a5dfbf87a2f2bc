"""Signals around consumers and workers (C-27)."""

from __future__ import annotations

import asyncio
import contextvars
import threading
import weakref
from collections.abc import Callable
from typing import Any

from django import db
from django.core import cache as django_cache
from django.core.cache import close_caches
from django.core.cache.backends.base import BaseCache
from django.db import close_old_connections, reset_queries
from django.dispatch import Signal
from django.dispatch.dispatcher import NONE_ID, _make_id

__all__ = [
    "consumer_finished",
    "consumer_started",
    "send_per_message",
    "worker_process_ready",
    "worker_ready",
]


# Key of `send_per_message`'s entry for a sender in ``sender_receivers_cache``: a tuple,
# so it never meets Django's own entries (keyed by the sender itself).
_SYNC = "channels.sync"


def send_per_message(signal: Signal, sender: Any, **named: Any) -> list[tuple[Any, Any]]:
    """``signal.send(sender=sender, **named)``, without re-filtering the receivers on every
    message (issue 20): for a class `sender` (or None) of a signal without Django's
    caching, the filtered (still weak) receivers, when all synchronous, are kept in
    ``sender_receivers_cache``, which `Signal.connect` and `disconnect` clear under the
    lock. Receivers run in order with the same arguments and their errors propagate,
    as in `Signal.send`. Any other case (async receivers, dead weak references to clean
    up, other senders) takes `Signal.send` itself.

    Django's `close_old_connections` and `reset_queries` (``request_started``,
    ``request_finished`` and, C-27, ``consumer_finished``) only loop over this thread's
    database connections, and `close_caches` (``request_finished``) over its caches.
    When `_no_connections` / `_no_caches` show at a glance that there are none, the call
    would do nothing and return None: its response is None without the call (issue 20:
    each costs ~20-30k instructions through asgiref's `Local` raising per alias).
    """
    if (
        signal.use_caching
        or signal._dead_receivers
        or not (sender is None or isinstance(sender, type))
    ):
        return Signal.send(signal, sender=sender, **named)
    cache = signal.sender_receivers_cache
    receivers = cache.get((_SYNC, sender))
    if receivers is None:
        with signal.lock:
            found = _receivers_of(signal, sender)
            synchronous = not any(is_async for _, is_async in found)
            if synchronous:
                receivers = cache[(_SYNC, sender)] = [
                    (receiver, _shortcut(receiver)) for receiver, _ in found
                ]
        if not synchronous:
            return Signal.send(signal, sender=sender, **named)
    responses = []
    # The last shortcut check and its answer, until a receiver runs (it may connect).
    checked = answer = None
    for receiver, check in receivers:
        if isinstance(receiver, weakref.ReferenceType):
            receiver = receiver()
            if receiver is None:  # collected; connect/disconnect prune it
                continue
        if check is not None:
            if check is not checked:
                checked, answer = check, check()
            if answer:
                responses.append((receiver, None))
                continue
        responses.append((receiver, receiver(signal=signal, sender=sender, **named)))
        checked = None
    return responses


def _no_connections() -> bool:
    """True when ``django.db.connections.all(initialized_only=True)`` is surely empty in
    this thread, read without asgiref's `Local` raising for each missing alias: the
    handler's settings are resolved (else `all()` would resolve them), no event loop
    runs here (else the `Local` keeps its values per context), and the `Local`'s
    thread-local storage holds nothing. Anything else (another asgiref layout, a
    replaced handler) answers False, and the receiver is called.
    """
    handler = db.connections
    try:
        if "settings" not in vars(handler):
            return False
        storage = vars(handler._connections).get("_storage")
    except (AttributeError, TypeError):  # not Django's handler or asgiref's Local
        return False
    if type(storage) is not threading.local or asyncio._get_running_loop() is not None:
        return False
    return not vars(storage)


def _no_caches() -> bool:
    """True when ``django.core.cache.caches.close_all()`` surely does nothing here: the
    handler's settings are resolved, and the context-local storage of asgiref's `Local`
    (3.13: a `_Storage` tagged with its thread; earlier: a dict) holds nothing this
    thread would see, or only caches whose close() is `BaseCache.close`, which does
    nothing (the local-memory cache: `runworker`'s system checks leave
    ``caches["default"]`` in the main thread). Anything else answers False, and
    `close_caches` is called."""
    handler = django_cache.caches
    try:
        if "settings" not in vars(handler):
            return False
        variable = vars(vars(handler._connections)["_storage"])["_data"]
    except (AttributeError, TypeError, KeyError):  # another layout
        return False
    if type(variable) is not contextvars.ContextVar:
        return False
    storage = variable.get(None)
    if storage is None:
        return True
    if type(storage) is dict:
        data = storage
    else:
        try:
            if storage.thread_id != threading.get_ident():
                return True
            data = storage.data
        except AttributeError:
            return False
        if type(data) is not dict:
            return False
    for cache in data.values():
        own = "close" in getattr(cache, "__dict__", ())
        if own or getattr(type(cache), "close", None) is not BaseCache.close:
            return False
    return True


# Django's receivers whose whole work is a loop over this thread's connections or
# caches, each with the check that shows the loop would be empty.
_SHORTCUTS: tuple[tuple[Callable[..., None], Callable[[], bool]], ...] = (
    (close_old_connections, _no_connections),
    (reset_queries, _no_connections),
    (close_caches, _no_caches),
)


def _shortcut(receiver: Any) -> Callable[[], bool] | None:
    if isinstance(receiver, weakref.ReferenceType):
        receiver = receiver()
    for function, check in _SHORTCUTS:
        if receiver is function:
            return check
    return None


def _receivers_of(signal: Signal, sender: Any) -> list[tuple[Any, bool]]:
    """The receivers of `signal` for `sender` (weak references left as they are), each
    with whether it is async, in connection order. Call with ``signal.lock`` held."""
    sender_key = _make_id(sender)
    return [
        (receiver, is_async)
        for (_, r_sender_key), receiver, is_async in signal.receivers
        if r_sender_key in (NONE_ID, sender_key)
    ]


class PerMessageSignal(Signal):
    """A `Signal` sent around every message, remembering its receivers per sender class.

    Django's own caching (``use_caching=True``) keys a `WeakKeyDictionary` by sender, so
    ``send(sender=None)`` would raise; and without it every send re-filters the receiver
    list under a lock. Here the filtered (still weak) list is kept only for senders that
    are classes (the worker sends ``sender=Worker``), in the dict `Signal.connect` and
    `disconnect` already clear under the lock; any other sender takes Django's path.
    """

    def _live_receivers(
        self, sender: Any
    ) -> tuple[list[Callable[..., Any]], list[Callable[..., Any]]]:
        if not isinstance(sender, type) or self._dead_receivers:
            return super()._live_receivers(sender)
        receivers = self.sender_receivers_cache.get(sender)
        if receivers is None:
            with self.lock:
                receivers = self.sender_receivers_cache[sender] = _receivers_of(self, sender)
        sync_receivers: list[Callable[..., Any]] = []
        async_receivers: list[Callable[..., Any]] = []
        for receiver, is_async in receivers:
            if isinstance(receiver, weakref.ReferenceType):
                receiver = receiver()
                if receiver is None:  # collected; connect/disconnect prune it
                    continue
            (async_receivers if is_async else sync_receivers).append(receiver)
        return sync_receivers, async_receivers

    # `send_per_message` itself, bound: ``signal.send(sender=..., **named)`` without a
    # frame and a keyword dict more per message (issue 20).
    send = send_per_message


# Sent with ``environ={}`` before each consumer runs.
consumer_started = PerMessageSignal()
# Sent after each consumer, also when it raised.
consumer_finished = PerMessageSignal()
# Sent by a Worker when its setup is done (sender = the worker).
worker_ready = Signal()
# Sent once per runworker process before `worker.ready()` (sender = the worker).
worker_process_ready = Signal()

# Consumers use the database like views do; give them the same connection hygiene.
consumer_finished.connect(close_old_connections)
