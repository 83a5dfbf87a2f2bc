"""What daphne does with each kind of error a layer send ends in (issue 16 item 5, L-62, A-89).

The layer contract (`daphne.layer_api`) splits a send's errors into a full channel, the
backend being away (`is_unavailable`) and anything else, which is a bug. Here, on real
in-memory layers made to fail:

- the outbox: a ``send_many`` that raises an outage gives that error to every message
  of the call, without one blocking ``send`` per message; any other error still falls
  back to sending one at a time;
- `send_best_effort`: an outage goes to the reporter (merged), a bug is logged at ERROR
  with its traceback, and neither raises;
- `send_reliably`: full channels and outages are retried, a bug is reported at once.
"""

from __future__ import annotations

import logging
from typing import Any

import pytest
from twisted.internet import task

from channels.layers.base import LayerUnavailable
from channels.layers.inmemory import ChannelLayer
from daphne.full_channels import FullChannelReporter, send_best_effort, send_reliably
from daphne.outbox import Outbox


class Outcomes:
    """An outbox callback recording ``(channel, message, error)`` in call order."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, dict[str, Any], BaseException | None]] = []

    def __call__(self, channel: str, message: dict[str, Any], error: BaseException | None) -> None:
        self.calls.append((channel, message, error))


class FailingLayer(ChannelLayer):
    """The in-memory layer whose next `failures` sends raise `error` (then it works)."""

    def __init__(self, error: BaseException, failures: int = 1_000_000, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.error = error
        self.failures = failures
        self.sends = 0

    def send(self, channel: str, message: dict[str, Any]) -> None:
        self.sends += 1
        if self.failures > 0:
            self.failures -= 1
            raise self.error
        super().send(channel, message)


class BatchingLayer(FailingLayer):
    """A `FailingLayer` with ``send_many`` (batched by the outbox) that raises `batch_error`."""

    def __init__(self, batch_error: BaseException, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.batch_error = batch_error
        self.batches: list[int] = []

    def send_many(self, messages: Any) -> list[BaseException | None]:
        pairs = list(messages)
        self.batches.append(len(pairs))
        raise self.batch_error


class ForeignBatchingLayer:
    """A layer written for 1.x plus ``send_many``: no ``Unavailable``, so its socket
    errors are its outages (`daphne.layer_api.FOREIGN_UNAVAILABLE`)."""

    class ChannelFull(Exception):
        pass

    class MessageTooLarge(Exception):
        pass

    def __init__(self) -> None:
        self.sends = 0
        self.batches = 0

    def send(self, channel: str, message: dict[str, Any]) -> None:
        self.sends += 1
        raise ConnectionRefusedError("refused")

    def send_many(self, messages: Any) -> list[BaseException | None]:
        self.batches += 1
        raise ConnectionRefusedError("refused")

    def receive(self, channels: Any, block: bool = False) -> tuple[None, None]:
        return None, None

    def new_channel(self, pattern: str) -> str:
        return pattern + "x"


# -- the outbox ---------------------------------------------------------------------


def test_an_outage_in_send_many_reaches_every_message_without_single_sends():
    """L-62: one failed call per tick while the backend is away, not one blocking
    ``send`` per message on the reactor thread; each sender hears the outage."""
    outage = LayerUnavailable("the store is away")
    layer = BatchingLayer(batch_error=outage, error=LayerUnavailable("send"))
    clock = task.Clock()
    outbox = Outbox(layer, lambda: clock)
    outcomes = Outcomes()
    for n in range(5):
        outbox.send("test.a", {"n": n}, outcomes, key=n % 2)
    outbox.send("test.b", {"n": 0}, outcomes)
    clock.advance(0)
    assert layer.batches == [6]
    assert layer.sends == 0
    assert [error for _, _, error in outcomes.calls] == [outage] * 6
    assert [m["n"] for _, m, _ in outcomes.calls] == [0, 1, 2, 3, 4, 0]  # queue order


def test_a_foreign_layers_socket_error_in_send_many_is_an_outage_too():
    layer = ForeignBatchingLayer()
    clock = task.Clock()
    outbox = Outbox(layer, lambda: clock)
    outcomes = Outcomes()
    for n in range(3):
        outbox.send("test.a", {"n": n}, outcomes)
    clock.advance(0)
    assert (layer.batches, layer.sends) == (1, 0)
    errors = [error for _, _, error in outcomes.calls]
    assert len(errors) == 3 and all(isinstance(e, ConnectionRefusedError) for e in errors)


def test_any_other_send_many_error_still_sends_one_at_a_time():
    """A refused call that is not an outage (one bad message refused the lot): every
    message is sent alone, so only the bad one's sender hears about it."""
    layer = BatchingLayer(batch_error=ValueError("one bad message"), error=KeyError("x"))
    layer.failures = 1  # the first single send fails: the "bad" message
    clock = task.Clock()
    outbox = Outbox(layer, lambda: clock)
    outcomes = Outcomes()
    for n in range(3):
        outbox.send("test.a", {"n": n}, outcomes)
    clock.advance(0)
    assert layer.batches == [3] and layer.sends == 3
    errors = [error for _, _, error in outcomes.calls]
    assert isinstance(errors[0], KeyError) and errors[1:] == [None, None]
    assert layer.receive(["test.a"])[1] == {"n": 1}


# -- send_best_effort ---------------------------------------------------------------


def reporter_for(clock: task.Clock, name: str) -> FullChannelReporter:
    return FullChannelReporter(logging.getLogger(name), clock.seconds, clock)


def test_best_effort_reports_an_outage_merged(caplog):
    clock = task.Clock()
    layer = FailingLayer(LayerUnavailable("the store is away"))
    outbox = Outbox(layer, lambda: clock)
    reporter = reporter_for(clock, "test.daphne.best_effort")
    with caplog.at_level(logging.ERROR):
        for n in range(3):
            send_best_effort(outbox, "http.disconnect", {"n": n}, "dropped", reporter)
    assert reporter.totals == {("error", "http.disconnect"): 3}
    lines = [r for r in caplog.records if r.name == "test.daphne.best_effort"]
    assert [r.getMessage() for r in lines] == [
        "Cannot send to http.disconnect: dropped: the store is away (1 time since the last report)"
    ]
    assert not [r for r in caplog.records if r.name == "daphne.server"]


def test_best_effort_logs_a_bug_with_its_traceback_and_does_not_raise(caplog):
    """An error that is neither a full channel nor an outage is a bug: ERROR with the
    traceback, not counted as a drop, and never raised into connection teardown."""
    clock = task.Clock()
    layer = FailingLayer(KeyError("a bug in the layer"))
    outbox = Outbox(layer, lambda: clock)
    reporter = reporter_for(clock, "test.daphne.best_effort_bug")
    with caplog.at_level(logging.ERROR, logger="daphne.server"):
        send_best_effort(outbox, "http.disconnect", {"n": 0}, "dropped", reporter)
    assert reporter.totals == {}
    (record,) = [r for r in caplog.records if r.name == "daphne.server"]
    assert record.levelno == logging.ERROR
    assert record.getMessage() == (
        "Cannot send to http.disconnect: dropped: unexpected error from the channel layer"
    )
    assert record.exc_info is not None and record.exc_info[1] is layer.error


def test_best_effort_still_counts_a_full_channel():
    clock = task.Clock()
    layer = ChannelLayer(channel_capacity={"http.disconnect": 1})
    outbox = Outbox(layer, lambda: clock)
    reporter = reporter_for(clock, "test.daphne.best_effort_full")
    send_best_effort(outbox, "http.disconnect", {"n": 0}, "dropped", reporter)
    send_best_effort(outbox, "http.disconnect", {"n": 1}, "dropped", reporter)
    assert reporter.totals == {("full", "http.disconnect"): 1}


# -- send_reliably ------------------------------------------------------------------


def test_reliably_retries_an_outage_until_the_layer_is_back():
    clock = task.Clock()
    layer = FailingLayer(LayerUnavailable("the store is away"), failures=4)
    outbox = Outbox(layer, lambda: clock)
    reporter = reporter_for(clock, "test.daphne.reliable_outage")
    send_reliably(outbox, clock, "websocket.disconnect", {"n": 1}, "dropped", reporter, 60)
    for _ in range(10):
        clock.advance(1)
    assert layer.sends == 5  # four refusals, then stored
    assert layer.receive(["websocket.disconnect"])[1] == {"n": 1}
    assert reporter.totals == {}


def test_reliably_drops_an_outage_at_the_deadline_as_a_failure():
    clock = task.Clock()
    layer = FailingLayer(LayerUnavailable("the store is away"))
    outbox = Outbox(layer, lambda: clock)
    reporter = reporter_for(clock, "test.daphne.reliable_deadline")
    send_reliably(outbox, clock, "websocket.disconnect", {"n": 1}, "dropped", reporter, 3)
    for _ in range(10):
        clock.advance(1)
    assert reporter.totals == {("error", "websocket.disconnect"): 1}
    sends = layer.sends
    clock.advance(10)
    assert layer.sends == sends  # given up: no more tries


@pytest.mark.parametrize("error", [KeyError("a bug"), TypeError("a bug")])
def test_reliably_reports_a_bug_at_once_without_retrying(caplog, error):
    clock = task.Clock()
    layer = FailingLayer(error)
    outbox = Outbox(layer, lambda: clock)
    reporter = reporter_for(clock, "test.daphne.reliable_bug")
    with caplog.at_level(logging.ERROR, logger="daphne.server"):
        send_reliably(outbox, clock, "websocket.disconnect", {"n": 1}, "dropped", reporter, 60)
        for _ in range(5):
            clock.advance(1)
    assert layer.sends == 1
    assert reporter.totals == {}
    (record,) = [r for r in caplog.records if r.name == "daphne.server"]
    assert record.exc_info is not None and record.exc_info[1] is error
    assert clock.getDelayedCalls() == []
