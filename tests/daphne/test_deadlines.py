"""daphne.deadlines.DeadlineSweep: many sockets' deadlines on one reactor timer
(D-24, D-43; issue 9 W5), driven by a fake clock."""

from __future__ import annotations

from twisted.internet import task

from daphne.deadlines import DeadlineSweep, OrderedDeadlines


def test_many_deadlines_share_one_timer_and_fire_within_a_resolution():
    clock = task.Clock()
    sweep = DeadlineSweep(lambda: clock)
    fired: dict[int, float] = {}
    for index in range(1000):
        deadline = 5 + (index % 40) * 0.5
        sweep.schedule(index, deadline, lambda i=index: fired.setdefault(i, clock.seconds()))
    assert len(clock.getDelayedCalls()) == 1
    for _ in range(30):
        clock.advance(1)
        assert len(clock.getDelayedCalls()) <= 1
    assert len(fired) == 1000 and len(sweep) == 0
    for index, when in fired.items():
        deadline = 5 + (index % 40) * 0.5
        assert deadline <= when <= deadline + 1
    assert clock.getDelayedCalls() == []


def test_cancel_and_reschedule_from_the_callback():
    clock = task.Clock()
    sweep = DeadlineSweep(lambda: clock)
    calls: list[str] = []
    sweep.schedule("gone", 2, lambda: calls.append("gone"))
    sweep.cancel("gone")

    def again() -> None:
        calls.append("again")
        if calls.count("again") < 3:
            # A deadline already past: fires at the next tick, never loops in this one.
            sweep.schedule("again", clock.seconds() - 10, again)

    sweep.schedule("again", 1, again)
    clock.advance(2.5)
    assert calls == ["again"]
    clock.advance(1)
    clock.advance(1)
    assert calls == ["again"] * 3
    assert len(sweep) == 0


def test_a_failing_callback_does_not_stop_the_others(caplog):
    """D-16: one failing check is logged; the rest of the sweep still runs."""
    clock = task.Clock()
    sweep = DeadlineSweep(lambda: clock)
    calls: list[int] = []

    def broken() -> None:
        raise RuntimeError("broken check")

    sweep.schedule(0, 1, broken)
    sweep.schedule(1, 1, lambda: calls.append(1))
    sweep.schedule(2, 3, lambda: calls.append(2))
    clock.advance(2)
    clock.advance(2)
    assert calls == [1, 2]
    assert "Error checking timeouts" in caplog.messages


def test_ordered_deadlines_fire_in_time_even_out_of_order_and_from_callbacks():
    """Issue 20: requests' deadlines on an ordered dict; one lowered timeout's earlier
    deadline is not held up behind later ones; callbacks may cancel and schedule."""
    clock = task.Clock()
    deadlines = OrderedDeadlines(lambda: clock)
    fired: dict[object, float] = {}

    def mark(item: object) -> None:
        fired[item] = clock.seconds()

    for index in range(100):  # one every 0.1 s, each due 30 s later
        deadlines.schedule(index, clock.seconds() + 30, lambda i=index: mark(i))
        clock.advance(0.1)
    deadlines.cancel(5)
    deadlines.schedule("early", clock.seconds() + 2, lambda: mark("early"))  # out of order
    deadlines.schedule(7, clock.seconds() + 40, lambda: mark(7))  # moved later
    assert len(clock.getDelayedCalls()) <= 2

    def chain() -> None:  # a callback cancelling a later item and adding a new one
        mark("chain")
        deadlines.cancel(50)
        deadlines.schedule("after", clock.seconds() + 5, lambda: mark("after"))

    deadlines.schedule("chain", clock.seconds() + 25, chain)
    for _ in range(60):
        clock.advance(1)
    assert 5 not in fired and 50 not in fired
    # At most a resolution late, plus the 1 s steps the clock is advanced by.
    assert 10 + 2 <= fired["early"] <= 10 + 4
    for index in set(range(100)) - {5, 7, 50}:
        assert index * 0.1 + 30 <= fired[index] <= index * 0.1 + 32
    assert 10 + 40 <= fired[7] <= 10 + 42
    assert 10 + 25 <= fired["chain"] <= 10 + 27
    assert fired["chain"] + 5 <= fired["after"] <= fired["chain"] + 7
    assert len(deadlines) == 0
    assert clock.getDelayedCalls() == []
