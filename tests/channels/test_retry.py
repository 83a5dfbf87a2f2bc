"""`channels.retry`: the A-89 backoff and `send_retrying`, on a real in-memory layer
(C-19, C-32, C-40; issue 16).

The senders below are real `Channel`s, or `Channel` subclasses that count their tries
or play a reader taking a message off the layer between two tries: no mocks.
"""

from __future__ import annotations

import itertools
import time

import pytest

from channels import Channel
from channels.retry import (
    FIRST_RETRY_DELAY,
    REPLY_RETRY_CAP,
    STORE_RETRY_INTERVAL,
    STORE_RETRY_TIME,
    Backoff,
    layer_out_of_memory,
    send_retrying,
)
from tests.channels.helpers import fresh_layer


@pytest.fixture
def layer():
    with fresh_layer(capacity=1) as wrapper:
        yield wrapper


class Counting(Channel):
    """Counts its tries; after `free_after` refused tries, a reader takes one message."""

    def __init__(self, name, channel_layer, free_after=None):
        super().__init__(name, channel_layer=channel_layer)
        self.tries = []
        self.free_after = free_after

    def send(self, content, immediately=False):
        self.tries.append(time.monotonic())
        try:
            super().send(content, immediately=immediately)
        except self.channel_layer.ChannelFull:
            if self.free_after is not None and len(self.tries) >= self.free_after:
                self.channel_layer.receive([self.name])  # the reader makes room
            raise


class OutOfMemory(Exception):
    """A layer's own error that says it is out of memory (issue 15)."""

    layer_out_of_memory = True


class RefusingForMemory(Channel):
    """Refused for lack of memory `times` times, then sent as usual."""

    def __init__(self, name, channel_layer, times, error=OutOfMemory):
        super().__init__(name, channel_layer=channel_layer)
        self.times = times
        self.error = error

    def send(self, content, immediately=False):
        if self.times:
            self.times -= 1
            raise self.error("OOM command not allowed when used memory > 'maxmemory'.")
        super().send(content, immediately=immediately)


def test_the_a89_constants_are_the_spec_bounds():
    """A-89 note, C-19, C-32, C-40: start near 1 ms; caps 0.05 s (replies, requeues) and
    0.2 s (the store), which gives up after 2 s."""
    assert FIRST_RETRY_DELAY == 0.001
    assert REPLY_RETRY_CAP == 0.05
    assert (STORE_RETRY_INTERVAL, STORE_RETRY_TIME) == (0.2, 2)


def test_backoff_doubles_up_to_its_cap_and_resets():
    backoff = Backoff(0.001, 0.005)
    assert [backoff.next() for _ in range(5)] == [0.001, 0.002, 0.004, 0.005, 0.005]
    backoff.reset()
    assert backoff.next() == 0.001


def test_a_free_channel_is_sent_at_once(layer):
    sender = Counting("retry.out", layer)
    assert send_retrying(sender, {"n": 1}, time.monotonic() + 5) is None
    assert len(sender.tries) == 1
    assert layer.receive(["retry.out"]) == ("retry.out", {"n": 1})


def test_a_full_channel_is_retried_until_a_reader_makes_room(layer):
    """A-89: wait and retry; stored once there is room, after the message before it."""
    layer.send("retry.out", {"n": 0})
    sender = Counting("retry.out", layer, free_after=3)
    assert send_retrying(sender, {"n": 1}, time.monotonic() + 5) is None
    assert len(sender.tries) == 4
    # A wait of at least 1 ms before each retry (time.sleep never returns early).
    gaps = [later - earlier for earlier, later in itertools.pairwise(sender.tries)]
    assert all(gap >= FIRST_RETRY_DELAY for gap in gaps)
    assert layer.receive(["retry.out"]) == ("retry.out", {"n": 1})


def test_a_channel_full_past_the_deadline_returns_the_refusal(layer):
    """C-19, C-40: the caller decides what giving up means (RuntimeError, a WARNING)."""
    layer.send("retry.out", {"n": 0})
    sender = Counting("retry.out", layer)
    started = time.monotonic()
    refused = send_retrying(sender, {"n": 1}, started + 0.05)
    assert isinstance(refused, layer.ChannelFull)
    assert time.monotonic() - started < 2
    assert len(sender.tries) >= 2
    assert layer.receive(["retry.out"]) == ("retry.out", {"n": 0})
    assert layer.receive(["retry.out"]) == (None, None)


def test_tries_bounds_the_number_of_tries(layer):
    """C-32: a ConsumeLater requeue gives up after a number of tries, not a time."""
    layer.send("retry.out", {"n": 0})
    sender = Counting("retry.out", layer)
    refused = send_retrying(sender, {"n": 1}, tries=3, cap=0.002)
    assert isinstance(refused, layer.ChannelFull)
    assert len(sender.tries) == 3


def test_refused_waits_before_the_first_try(layer):
    """A first try made elsewhere (a batched send) counts: the next one waits first."""
    sender = Counting("retry.out", layer)
    started = time.monotonic()
    assert send_retrying(sender, {"n": 1}, tries=2, refused=layer.ChannelFull()) is None
    assert len(sender.tries) == 1 and sender.tries[0] - started >= FIRST_RETRY_DELAY
    refused = layer.ChannelFull()
    assert send_retrying(sender, {"n": 2}, time.monotonic() - 1, refused=refused) is refused
    assert len(sender.tries) == 1  # past the deadline: no try at all


def test_out_of_memory_is_waited_out_only_when_asked(layer):
    """Issue 15: a view's reply waits out a layer out of memory; other senders raise."""
    sender = RefusingForMemory("retry.out", layer, times=2)
    assert send_retrying(sender, {"n": 1}, time.monotonic() + 5, out_of_memory=True) is None
    assert layer.receive(["retry.out"]) == ("retry.out", {"n": 1})
    sender = RefusingForMemory("retry.out", layer, times=1)
    with pytest.raises(OutOfMemory):
        send_retrying(sender, {"n": 2}, time.monotonic() + 5)
    sender = RefusingForMemory("retry.out", layer, times=50)
    refused = send_retrying(sender, {"n": 3}, time.monotonic() + 0.02, out_of_memory=True)
    assert isinstance(refused, OutOfMemory) and layer_out_of_memory(refused)


def test_other_layer_errors_are_raised_at_once(layer):
    """A-6: a message the layer refuses is the sender's bug, never retried."""
    sender = RefusingForMemory("retry.out", layer, times=1, error=ValueError)
    with pytest.raises(ValueError):
        send_retrying(sender, {"n": 1}, time.monotonic() + 5, out_of_memory=True)
