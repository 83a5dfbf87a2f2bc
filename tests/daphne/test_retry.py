"""`daphne.retry.ReactorBackoff` on a fake clock (A-89, L-62.5; issue 16 item 1)."""

from __future__ import annotations

from twisted.internet import task

from daphne.retry import RETRY_FIRST_DELAY, RETRY_MAX_DELAY, ReactorBackoff


def test_delays_double_up_to_the_cap_and_reset_after_progress():
    backoff = ReactorBackoff(task.Clock())
    delays = [backoff.next_delay() for _ in range(8)]
    assert delays == [0.001, 0.002, 0.004, 0.008, 0.016, 0.032, 0.05, 0.05]
    assert (RETRY_FIRST_DELAY, RETRY_MAX_DELAY) == (0.001, 0.05)
    backoff.reset()
    assert backoff.next_delay() == 0.001


def test_a_lower_cap_applies_at_once():
    backoff = ReactorBackoff(task.Clock(), first=0.1, cap=1.0)
    assert [backoff.next_delay() for _ in range(4)] == [0.1, 0.2, 0.4, 0.8]
    backoff.cap = 0.05
    assert backoff.next_delay() == 0.05


def test_later_calls_on_the_clock():
    clock = task.Clock()
    backoff = ReactorBackoff(clock)
    calls = []
    backoff.later(calls.append, "first")
    clock.advance(0.0009)
    assert calls == []
    clock.advance(0.0001)
    assert calls == ["first"]
    backoff.later(calls.append, "second")  # 2 ms now
    clock.advance(0.0015)
    assert calls == ["first"]
    clock.advance(0.0005)
    assert calls == ["first", "second"]


def test_later_shortened_and_cancelled():
    clock = task.Clock()
    backoff = ReactorBackoff(clock, first=1.0, cap=8.0)
    calls = []
    backoff.later(calls.append, 1, at_most=0.25)
    clock.advance(0.25)
    assert calls == [1]
    backoff.later(calls.append, 2)
    backoff.cancel()
    clock.advance(10)
    assert calls == [1]
    assert backoff.call is None


def test_gives_up_after_the_time_without_progress():
    clock = task.Clock()
    backoff = ReactorBackoff(clock, give_up_after=5.0)
    clock.advance(4.9)
    assert not backoff.expired()
    backoff.reset()  # progress: five more seconds
    clock.advance(4.9)
    assert not backoff.expired()
    clock.advance(0.1)
    assert backoff.expired()
    assert not ReactorBackoff(clock).expired()  # no limit given
