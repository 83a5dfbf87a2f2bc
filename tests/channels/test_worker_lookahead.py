"""The worker handles a held message while the last one's replies travel (issue 20; C-19,
C-31, L-62): `channels.worker_replies` with `asgi_redis.lookahead`.

Real redis-servers, real `Worker.run` loops in threads; no mocks.
"""

from __future__ import annotations

import contextlib
import logging
import threading
import time
from collections.abc import Iterator

import pytest
import redis

from asgi_redis import RedisChannelLayer
from channels import Channel, route
from channels.asgi import ChannelLayerWrapper
from channels.worker import QUICK_MESSAGE, Worker

pytestmark = pytest.mark.redis


def wrapped(server, routes, **options):
    layer = RedisChannelLayer(hosts=[server.url], **options)
    layer.blpop_timeout = 1  # an idle worker's receive ends soon after stop()
    return ChannelLayerWrapper(layer, "default", routes)


@contextlib.contextmanager
def running(worker: Worker) -> Iterator[Worker]:
    thread = threading.Thread(target=worker.run, daemon=True)
    thread.start()
    try:
        yield worker
    finally:
        worker.stop()
        thread.join(15)
        assert not thread.is_alive()


def llen(server, channel):
    with redis.Redis.from_url(server.url) as client:
        return client.llen(f"asgi:{{{channel}}}")


def drain(layer, channel, count):
    return [layer.receive([channel], block=True)[1] for _ in range(count)]


def test_a_worker_with_a_backlog_answers_everything_in_order(redis_server):
    """C-19: replies land in order, each message handled once, the held message too."""
    handled = []
    done = threading.Event()

    def consumer(message, **kwargs):
        handled.append(message["n"])
        Channel("test.out", channel_layer=message.channel_layer).send({"n": message["n"]})
        if message["n"] == 49:
            done.set()

    layer = wrapped(redis_server, [route("test.in", consumer)], capacity=1000)
    layer.send_many([("test.in", {"n": n}) for n in range(50)])
    with running(Worker(layer, signal_handlers=False)):
        assert done.wait(15)
    assert handled == list(range(50))
    assert drain(layer, "test.out", 50) == [{"n": n} for n in range(50)]
    assert layer.receive(["test.out"]) == (None, None)


def test_a_stopping_worker_puts_its_held_message_back(redis_server):
    """C-31: stopped while handling, the worker sends the replies and returns the
    message it held to the head of the list, so the next worker gets it first."""
    worker = None
    handled = []

    def consumer(message, **kwargs):
        handled.append(message["n"])
        Channel("test.out", channel_layer=message.channel_layer).send({"n": message["n"]})
        if message["n"] == 2:
            worker.stop()

    layer = wrapped(redis_server, [route("test.in", consumer)])
    layer.send_many([("test.in", {"n": n}) for n in range(8)])
    worker = Worker(layer, signal_handlers=False)
    thread = threading.Thread(target=worker.run, daemon=True)
    thread.start()
    thread.join(15)
    assert not thread.is_alive()
    left = len(handled)
    assert handled == list(range(left)) and left >= 3
    assert drain(layer, "test.out", left) == [{"n": n} for n in range(left)]
    assert drain(layer, "test.in", 8 - left) == [{"n": n} for n in range(left, 8)]


def test_quick_is_what_the_worker_calls_quick():
    assert 0 < QUICK_MESSAGE <= 0.01


def test_replies_to_a_full_channel_under_a_backlog_keep_their_order(redis_server):
    """C-19: replies refused as full are retried in order while a slow reader drains
    the channel; nothing is lost or reordered by the lookahead."""
    done = threading.Event()

    def consumer(message, **kwargs):
        Channel("test.out", channel_layer=message.channel_layer).send({"n": message["n"]})
        if message["n"] == 5:
            done.set()

    layer = wrapped(redis_server, [route("test.in", consumer)], channel_capacity={"test.out": 2})
    layer.send_many([("test.out", {"n": "a"}), ("test.out", {"n": "b"})])  # full
    layer.send_many([("test.in", {"n": n}) for n in range(6)])
    reader_done = threading.Event()
    got = []

    def reader():
        deadline = time.monotonic() + 15
        while len(got) < 8 and time.monotonic() < deadline:
            channel, message = layer.receive(["test.out"], block=True)
            if channel is not None:
                got.append(message["n"])
                time.sleep(0.02)  # a slow reader: the channel stays near full
        reader_done.set()

    with running(Worker(layer, signal_handlers=False)):
        threading.Thread(target=reader, daemon=True).start()
        assert done.wait(20)
        assert reader_done.wait(20)
    assert got == ["a", "b", 0, 1, 2, 3, 4, 5]


def test_redis_lost_behind_a_held_message_is_survived_and_logged(redis_server, records):
    """L-62: Redis killed while replies travel behind a held message: the failed replies
    are logged as their consumer's errors, the outage once, and after a restart the
    worker handles new messages."""
    handled = []
    killed = threading.Event()
    after = threading.Event()

    def consumer(message, **kwargs):
        handled.append(message["n"])
        Channel("test.out", channel_layer=message.channel_layer).send({"n": message["n"]})
        if message["n"] == 2:
            redis_server.kill()
            killed.set()
        elif message["n"] == 10:
            after.set()

    layer = wrapped(redis_server, [route("test.in", consumer)])
    layer.send_many([("test.in", {"n": n}) for n in range(4)])
    with running(Worker(layer, signal_handlers=False)):
        assert killed.wait(15)
        assert records.wait_for("Cannot receive from channel layer")
        redis_server.start()
        layer.send("test.in", {"n": 10})
        assert after.wait(20)
        assert layer.receive(["test.out"], block=True) == ("test.out", {"n": 10})
    assert handled[:3] == [0, 1, 2] and handled[-1] == 10
    errors = [r.getMessage() for r in records.records if r.levelno == logging.ERROR]
    assert any(m.startswith("Error processing message with consumer") for m in errors)
    assert sum("Cannot receive from channel layer" in m for m in errors) == 1
