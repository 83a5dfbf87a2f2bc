"""Drops at daphne: merged WARNING lines, routine drops at DEBUG, full channels probed."""

from __future__ import annotations

import logging

from twisted.internet import task

from channels.layers.inmemory import ChannelLayer
from daphne.drops import FullChannelReporter


def test_full_channel_reporter_merges_lines(caplog):
    """A-89: drops are logged, but at most one line per channel per interval."""
    clock = task.Clock()
    reporter = FullChannelReporter(logging.getLogger("test.daphne.reporter"), clock.seconds)
    with caplog.at_level(logging.WARNING, logger="test.daphne.reporter"):
        for _ in range(50):
            reporter.full("websocket.receive", "closed a socket with 1013")
        clock.advance(10)
        reporter.full("websocket.receive", "closed a socket with 1013")
    lines = [r.getMessage() for r in caplog.records]
    assert lines == [
        "websocket.receive is full: closed a socket with 1013 (1 time since the last report)",
        "websocket.receive is full: closed a socket with 1013 (50 times since the last report)",
    ]


def test_routine_drops_are_counted_and_logged_at_debug_only(caplog):
    """Issue 14: a full http.disconnect (nothing may consume it) is counted, never a
    WARNING in normal operation."""
    clock = task.Clock()
    reporter = FullChannelReporter(logging.getLogger("test.daphne.reporter"), clock.seconds)
    with caplog.at_level(logging.DEBUG, logger="test.daphne.reporter"):
        for _ in range(20):
            reporter.full("http.disconnect", "dropped a disconnect")
        clock.advance(10)
        reporter.full("http.disconnect", "dropped a disconnect")
    assert reporter.totals == {("full", "http.disconnect"): 21}
    assert {r.levelno for r in caplog.records} == {logging.DEBUG}
    assert [r.getMessage() for r in caplog.records][-1] == (
        "http.disconnect is full: dropped a disconnect (20 times since the last report)"
    )


def test_full_disconnect_channel_is_probed_not_hammered(caplog):
    """A full http.disconnect is tried at most once per probe interval (A-89 drop)."""
    from daphne.drops import send_best_effort
    from daphne.outbox import Outbox

    class CountingLayer(ChannelLayer):
        sends = 0

        def send(self, channel, message):
            self.sends += 1
            super().send(channel, message)

    clock = task.Clock()
    layer = CountingLayer(channel_capacity={"http.disconnect": 1})
    outbox = Outbox(layer, lambda: clock)
    reporter = FullChannelReporter(logging.getLogger("test.daphne.probe"), clock.seconds)
    for n in range(10):
        send_best_effort(outbox, "http.disconnect", {"n": n}, "dropped", reporter)
    assert layer.sends == 2  # the stored one and one ChannelFull; the rest skipped
    assert layer.receive(["http.disconnect"]) == ("http.disconnect", {"n": 0})
    clock.advance(0.2)
    send_best_effort(outbox, "http.disconnect", {"n": 10}, "dropped", reporter)
    assert layer.sends == 3
    assert layer.receive(["http.disconnect"]) == ("http.disconnect", {"n": 10})
