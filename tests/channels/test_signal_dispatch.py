"""`send_per_message`: the signals sent around every message dispatch as `Signal.send`
does (C-27, C-36; issue 20), from receivers kept per sender class."""

from __future__ import annotations

import gc

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
