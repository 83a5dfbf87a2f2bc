"""`send_per_message`: the signals sent around every message dispatch as `Signal.send`
does (C-27, C-36; issue 20), from receivers kept per sender class."""

from __future__ import annotations

import asyncio
import gc

from asgiref.local import Local
from django import db
from django.core.cache import caches, close_caches
from django.core.cache.backends.base import BaseCache
from django.db import close_old_connections, reset_queries
from django.dispatch import Signal

from channels.signals import PerMessageSignal, send_per_message


class Sender:
    pass


class Other:
    pass


def test_receivers_run_in_order_with_the_arguments_and_their_responses() -> None:
    signal = Signal()
    calls = []

    def first(**kwargs):
        calls.append(("first", kwargs))
        return 1

    def second(**kwargs):
        calls.append(("second", kwargs))
        return 2

    signal.connect(first)
    signal.connect(second, sender=Sender)
    assert send_per_message(signal, Sender, message="m") == [(first, 1), (second, 2)]
    assert calls == [
        ("first", {"signal": signal, "sender": Sender, "message": "m"}),
        ("second", {"signal": signal, "sender": Sender, "message": "m"}),
    ]
    # A receiver for another sender is not called; the per-sender entries stay apart.
    assert send_per_message(signal, Other, message="m") == [(first, 1)]
    assert send_per_message(signal, Sender, message="m") == [(first, 1), (second, 2)]


def test_connect_and_disconnect_take_effect_on_the_next_send() -> None:
    signal = PerMessageSignal()
    seen = []

    def one(**kwargs):
        seen.append("one")

    def two(**kwargs):
        seen.append("two")

    signal.connect(one)
    signal.send(sender=Sender)
    signal.connect(two)
    signal.send(sender=Sender)
    signal.disconnect(one)
    signal.send(sender=Sender)
    assert seen == ["one", "one", "two", "two"]


def test_a_collected_receiver_is_no_longer_called() -> None:
    signal = Signal()
    seen = []

    class Holder:
        def receive(self, **kwargs):
            seen.append("held")

    holder = Holder()
    signal.connect(holder.receive)
    send_per_message(signal, Sender)
    del holder
    gc.collect()
    assert send_per_message(signal, Sender) == []
    assert seen == ["held"]


def test_async_receivers_and_other_senders_take_django_s_send() -> None:
    signal = Signal()
    seen = []

    async def receiver(**kwargs):
        seen.append(kwargs["sender"])

    signal.connect(receiver)
    assert [response for _, response in send_per_message(signal, Sender)] == [None]
    assert send_per_message(signal, None)[0][0] is receiver
    assert seen == [Sender, None]


def test_an_error_propagates_and_stops_the_dispatch() -> None:
    signal = PerMessageSignal()
    seen = []

    def broken(**kwargs):
        raise ValueError("receiver")

    def later(**kwargs):
        seen.append("later")

    signal.connect(broken)
    signal.connect(later)
    try:
        signal.send(sender=Sender)
    except ValueError as error:
        assert str(error) == "receiver"
    else:
        raise AssertionError("the receiver's error did not propagate")
    assert seen == []


class _CountAll:
    """Counts ``all`` calls of a connection handler (the work of close_old_connections,
    reset_queries, close_caches)."""

    def __init__(self, monkeypatch, handler=db.connections) -> None:
        self.calls = 0
        original = handler.all

        def counted(*args, **kwargs):
            self.calls += 1
            return original(*args, **kwargs)

        monkeypatch.setattr(handler, "all", counted)


def _signal_with_connection_loops() -> Signal:
    signal = Signal()
    signal.connect(reset_queries)
    signal.connect(close_old_connections)
    return signal


def test_connection_loops_are_answered_without_a_call_when_nothing_is_connected(
    monkeypatch,
) -> None:
    """Issue 20: no connection in this thread, so each loop would do nothing: same
    responses as `Signal.send`, without the ``connections.all()``."""
    signal = _signal_with_connection_loops()
    db.connections.settings  # noqa: B018 (resolved, as after the first request)
    monkeypatch.setattr(db.connections, "_connections", Local(True))
    expected = Signal.send(signal, sender=Sender)
    counter = _CountAll(monkeypatch)
    responses = send_per_message(signal, Sender)
    assert responses == expected == [(reset_queries, None), (close_old_connections, None)]
    assert counter.calls == 0


def test_connection_loops_run_when_this_thread_has_a_connection(monkeypatch) -> None:
    signal = _signal_with_connection_loops()
    checked = []
    monkeypatch.setattr(db.connections, "_connections", Local(True))
    connection = db.connections["default"]  # an object only: nothing is opened
    monkeypatch.setattr(
        connection, "close_if_unusable_or_obsolete", lambda: checked.append("checked")
    )
    counter = _CountAll(monkeypatch)
    send_per_message(signal, Sender)
    assert counter.calls == 2
    assert checked == ["checked"]


def test_a_receiver_that_connects_makes_the_next_loop_run(monkeypatch) -> None:
    signal = Signal()
    checked = []
    monkeypatch.setattr(db.connections, "_connections", Local(True))

    def connects(**kwargs):
        connection = db.connections["default"]
        monkeypatch.setattr(
            connection, "close_if_unusable_or_obsolete", lambda: checked.append("checked")
        )

    signal.connect(close_old_connections)
    signal.connect(connects)
    signal.connect(close_old_connections, dispatch_uid="again")
    send_per_message(signal, Sender)
    assert checked == ["checked"]


def test_connection_loops_run_inside_an_event_loop(monkeypatch) -> None:
    """asgiref keeps connections per context under a running loop: no shortcut there."""
    signal = _signal_with_connection_loops()
    db.connections.settings  # noqa: B018
    monkeypatch.setattr(db.connections, "_connections", Local(True))
    counter = _CountAll(monkeypatch)

    async def send() -> list:
        return send_per_message(signal, Sender)

    assert asyncio.run(send()) == [(reset_queries, None), (close_old_connections, None)]
    assert counter.calls == 2


def test_close_caches_is_answered_without_a_call_when_it_would_close_nothing(
    monkeypatch,
) -> None:
    """No cache in use here, or only caches whose close() is BaseCache's (a no-op, the
    local-memory cache): no call. A cache with a close() of its own: called."""
    signal = Signal()
    signal.connect(close_caches)
    closed = []
    monkeypatch.setattr(caches, "_connections", Local(False))
    caches.settings  # noqa: B018
    counter = _CountAll(monkeypatch, caches)
    assert send_per_message(signal, None) == [(close_caches, None)]
    cache = caches["default"]  # now in use in this context: a LocMemCache
    assert type(cache).close is BaseCache.close
    assert send_per_message(signal, None) == [(close_caches, None)]
    assert counter.calls == 0
    monkeypatch.setattr(cache, "close", lambda **kwargs: closed.append("closed"))
    assert send_per_message(signal, None) == [(close_caches, None)]
    assert counter.calls == 1
    assert closed == ["closed"]
