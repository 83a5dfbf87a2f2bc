"""The worker sends a consumer's replies with its next receive on Redis (C-19, C-31, L-62;
issue 9): one round trip, and C-19 as users see it.

Every test runs `Worker.run` on a real `RedisChannelLayer` against a private redis-server.
"""

from __future__ import annotations

import contextlib
import logging
import threading
from collections.abc import Iterator

import pytest
import redis

from channels import Channel, Group, route
from channels.asgi import ChannelLayerWrapper
from channels.exceptions import DenyConnection
from channels.message import pending_message_store
from channels.worker import Worker

pytestmark = pytest.mark.redis


def redis_layer(server, routes, **options):
    from asgi_redis import RedisChannelLayer

    layer = RedisChannelLayer(hosts=[server.url], **options)
    layer.blpop_timeout = 1  # an idle worker's receive ends soon after stop()
    return ChannelLayerWrapper(layer, "default", routes)


def run(worker):
    thread = threading.Thread(target=worker.run, daemon=True)
    thread.start()
    return thread


@contextlib.contextmanager
def running_worker(layer) -> Iterator[Worker]:
    """A worker running in a thread; stopped and joined (bounded) on leaving."""
    worker = Worker(layer, signal_handlers=False)
    thread = run(worker)
    try:
        yield worker
    finally:
        worker.stop()
        thread.join(15)
        assert not thread.is_alive()


def commandstats(server) -> dict:
    with redis.Redis.from_url(server.url) as client:
        return client.info("commandstats")


def llen(server, channel):
    with redis.Redis.from_url(server.url) as client:
        return client.llen(f"asgi:{{{channel}}}")


def test_replies_land_before_the_next_message_is_handled(redis_server):
    """C-19: when message n is handled, the replies of messages 1..n-1 are stored, in
    order; the worker carries them with its next receive (one SEND_MANY + pop)."""
    stored_before = []
    done = threading.Event()

    def consumer(message, **kwargs):
        stored_before.append(llen(redis_server, "test.out"))
        Channel("test.out", channel_layer=message.channel_layer).send({"n": message["n"]})
        Channel("test.out", channel_layer=message.channel_layer).send({"n2": message["n"]})
        if message["n"] == 9:
            done.set()

    layer = redis_layer(redis_server, [route("test.in", consumer)], capacity=1000)
    layer.send_many([("test.in", {"n": n}) for n in range(10)])
    with running_worker(layer):
        assert done.wait(15)
    assert stored_before == [2 * n for n in range(10)]
    got = [layer.receive(["test.out"])[1] for _ in range(20)]
    assert got == [item for n in range(10) for item in ({"n": n}, {"n2": n})]
    stats = commandstats(redis_server)
    # One SEND_MANY per message for its two replies (plus the test's send_many and the
    # first receive's Lua pop, which measures the clock), and the next pop went with
    # them (LPOP in the same pipeline) instead of a blocking receive of its own.
    assert stats["cmdstat_evalsha"]["calls"] == 1 + 1 + 10
    assert stats["cmdstat_lpop"]["calls"] >= 9
    assert stats.get("cmdstat_blmpop", {"calls": 0})["calls"] <= 2


def test_a_full_reply_is_retried_before_the_next_message(redis_server):
    """C-19: a reply refused as full is retried (bounded backoff) until a reader makes
    room, before the worker handles the next message."""
    handled = []
    second = threading.Event()

    def consumer(message, **kwargs):
        handled.append(message["n"])
        Channel("test.out", channel_layer=message.channel_layer).send({"n": message["n"]})
        if message["n"] == 2:
            second.set()

    routes = [route("test.in", consumer)]
    layer = redis_layer(redis_server, routes, channel_capacity={"test.out": 1})
    layer.send("test.out", {"n": 0})  # full before the worker starts
    layer.send_many([("test.in", {"n": 1}), ("test.in", {"n": 2})])
    with running_worker(layer):
        # Message 1's reply is refused and retried; message 2 waits for it.
        assert layer.receive(["test.out"], block=True) == ("test.out", {"n": 0})
        assert layer.receive(["test.out"], block=True) == ("test.out", {"n": 1})
        assert second.wait(15)
        assert layer.receive(["test.out"], block=True) == ("test.out", {"n": 2})
    assert handled == [1, 2]


def test_a_reply_that_stays_full_is_reported_and_the_worker_goes_on(
    redis_server, records, monkeypatch
):
    """C-19: after retry_time the RuntimeError is logged as the consumer's error, as
    when consumer_finished flushed it; the next message is handled."""
    monkeypatch.setattr(pending_message_store, "retry_time", 0.05)
    second = threading.Event()

    def consumer(message, **kwargs):
        Channel("test.out", channel_layer=message.channel_layer).send({"n": message["n"]})
        if message["n"] == 2:
            second.set()

    routes = [route("test.in", consumer)]
    layer = redis_layer(redis_server, routes, channel_capacity={"test.out": 1})
    layer.send("test.out", {"n": 0})
    layer.send_many([("test.in", {"n": 1}), ("test.in", {"n": 2})])
    with running_worker(layer):
        assert second.wait(15)
        assert records.wait_for("Error processing message with consumer")
    errors = [r for r in records.records if r.levelno == logging.ERROR]
    assert errors[0].getMessage().startswith("Error processing message with consumer")
    assert "Failed to send queued message to test.out after retrying" in str(errors[0].exc_info[1])


def test_redis_failing_while_replies_are_sent_is_survived_and_logged(redis_server, records):
    """L-62: Redis killed while a consumer runs: its replies fail (logged as the
    consumer's error), the receive's outage is logged once, and after a restart the
    worker handles new messages and sends their replies."""
    handled = []
    killed = threading.Event()
    after = threading.Event()

    def consumer(message, **kwargs):
        handled.append(message["n"])
        Channel("test.out", channel_layer=message.channel_layer).send({"n": message["n"]})
        if message["n"] == 1:
            redis_server.kill()
            killed.set()
        else:
            after.set()

    layer = redis_layer(redis_server, [route("test.in", consumer)])
    layer.send("test.in", {"n": 1})
    with running_worker(layer):
        assert killed.wait(15)
        assert records.wait_for("Cannot receive from channel layer")
        redis_server.start()
        layer.send("test.in", {"n": 2})
        assert after.wait(20)
        assert layer.receive(["test.out"], block=True) == ("test.out", {"n": 2})
    assert handled == [1, 2]
    errors = [r.getMessage() for r in records.records if r.levelno == logging.ERROR]
    assert any(m.startswith("Error processing message with consumer") for m in errors)
    assert sum("Cannot receive from channel layer" in m for m in errors) == 1


def test_replies_of_the_last_message_go_out_when_the_worker_stops(redis_server):
    """C-31: a worker stopped while handling a message still sends its replies."""
    worker = None

    def consumer(message, **kwargs):
        Channel("test.out", channel_layer=message.channel_layer).send({"last": True})
        worker.stop()

    layer = redis_layer(redis_server, [route("test.in", consumer)])
    layer.send("test.in", {})
    worker = Worker(layer, signal_handlers=False)
    thread = run(worker)
    thread.join(15)
    assert not thread.is_alive()
    assert layer.receive(["test.out"]) == ("test.out", {"last": True})


def test_group_sends_among_replies_keep_their_order(redis_server):
    """C-16, C-19: a group send between channel sends goes out in queue order."""
    done = threading.Event()

    def consumer(message, **kwargs):
        layer = message.channel_layer
        Channel("member", channel_layer=layer).send({"n": 1})
        Group("g", channel_layer=layer).send({"n": 2})
        Channel("member", channel_layer=layer).send({"n": 3})
        done.set()

    layer = redis_layer(redis_server, [route("test.in", consumer)])
    layer.group_add("g", "member")
    layer.send("test.in", {})
    with running_worker(layer):
        assert done.wait(15)
        got = [layer.receive(["member"], block=True)[1]["n"] for _ in range(3)]
    assert got == [1, 2, 3]


def test_replies_before_a_deny_go_out_before_the_close(redis_server):
    """C-19, C-32: a consumer that raised flushes its replies at once, as before, so
    they precede what the exception's handling sends."""
    done = threading.Event()

    def consumer(message, **kwargs):
        message.reply_channel.send({"text": "bye"})
        done.set()
        raise DenyConnection

    layer = redis_layer(redis_server, [route("websocket.connect", consumer)])
    layer.send("websocket.connect", {"reply_channel": "daphne.w!c", "path": "/"})
    with running_worker(layer):
        assert done.wait(15)
        got = [layer.receive(["daphne.w!"], block=True) for _ in range(2)]
    assert got == [("daphne.w!c", {"text": "bye"}), ("daphne.w!c", {"close": True})]


def test_handle_alone_still_flushes_at_consumer_finished(redis_server):
    """Outside the receive loop (handle called directly) nothing is held back."""

    def consumer(message, **kwargs):
        Channel("test.out", channel_layer=message.channel_layer).send({"ok": 1})

    layer = redis_layer(redis_server, [route("test.in", consumer)])
    worker = Worker(layer, signal_handlers=False)
    worker.handle("test.in", {})
    assert layer.receive(["test.out"]) == ("test.out", {"ok": 1})
    assert not pending_message_store.active
