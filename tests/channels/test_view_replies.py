"""A view's last response message rides the worker's next receive (C-40, C-19, L-62; issue 9).

`Worker.run` on a real `RedisChannelLayer` against a private redis-server, serving
``http.request`` with `ViewConsumer` and the test project's views: one Redis round trip per
request, and everything C-40 promises as users can observe it.
"""

from __future__ import annotations

import logging
import threading

import pytest
from django.core.signals import request_finished, request_started

from channels import Channel, route
from channels.handler import ViewConsumer
from channels.message import Message, pending_message_store
from channels.worker import Worker
from tests.channels.helpers import fresh_layer
from tests.channels.test_worker_replies import commandstats, llen, redis_layer, running_worker

pytestmark = pytest.mark.redis

REPLY_PREFIX = "daphne.r!"


@pytest.fixture
def finished():
    """Counts request_finished (fired by response.close())."""
    seen: list[bool] = []

    def receiver(**kwargs):
        seen.append(True)

    request_finished.connect(receiver)
    yield seen
    request_finished.disconnect(receiver)


def request(n: int, path: str = "/hello/", query: bytes = b"") -> dict:
    return {
        "reply_channel": f"{REPLY_PREFIX}c{n}",
        "http_version": "1.1",
        "method": "GET",
        "path": path,
        "query_string": query,
        "headers": [[b"host", b"testserver"]],
        "n": n,
    }


def replies(layer, count: int) -> list[tuple[str, dict]]:
    got = [layer.receive([REPLY_PREFIX], block=True) for _ in range(count)]
    assert all(channel is not None for channel, _ in got)
    return got


def test_response_is_stored_before_the_next_request_is_handled(redis_server, finished):
    """C-40: when request n is handled, the responses to 1..n-1 are on the layer; each
    went out with the worker's next pop (one SEND_MANY + LPOP pipeline), not in a
    send of its own followed by a blocking receive. Django's request signals still run."""
    stored_before = []
    started = []
    done = threading.Event()
    view = ViewConsumer()

    at_last = {}

    def consumer(message, **kwargs):
        stored_before.append(llen(redis_server, REPLY_PREFIX))
        if message["n"] == 9:
            # Before the last request's reply: nine replies went out, each with the
            # next pop, and the worker did not wait between requests (at most the one
            # BLMPOP of its start; the idle wait after the last request repeats every
            # blpop_timeout, so the total grows with how long the test idles).
            at_last.update(commandstats(redis_server))
        view(message)
        if message["n"] == 9:
            done.set()

    def on_started(**kwargs):
        started.append(True)

    layer = redis_layer(redis_server, [route("http.request", consumer)])
    layer.send_many([("http.request", request(n)) for n in range(10)])
    request_started.connect(on_started)
    try:
        with running_worker(layer):
            assert done.wait(15)
    finally:
        request_started.disconnect(on_started)
    assert stored_before == list(range(10))
    got = replies(layer, 10)
    assert [channel for channel, _ in got] == [f"{REPLY_PREFIX}c{n}" for n in range(10)]
    for _, reply in got:
        assert reply["status"] == 200 and reply["content"] == b"Hello World!"
        assert reply["more_content"] is False
    assert len(started) == len(finished) == 10
    stats = commandstats(redis_server)
    # The test's send_many, the first receive's Lua pop (it measures the clock) and one
    # SEND_MANY per response; the next pop went with it as a plain LPOP, or LMPOP when
    # the worker took two (issue 20, `asgi_redis.lookahead`).
    assert stats["cmdstat_evalsha"]["calls"] == 1 + 1 + 10
    assert plain_pops(stats) >= 9
    assert at_last["cmdstat_evalsha"]["calls"] == 1 + 1 + 9
    assert plain_pops(at_last) >= 8
    assert at_last.get("cmdstat_blmpop", {"calls": 0})["calls"] <= 1


def plain_pops(stats):
    return sum(stats.get(f"cmdstat_{name}", {"calls": 0})["calls"] for name in ("lpop", "lmpop"))


def test_streaming_response_sends_early_chunks_at_once_and_carries_the_end(redis_server):
    """C-38, C-40: the chunks of a streaming response go out as produced; its closing
    message goes with the next receive, after them, before the next request."""
    done = threading.Event()
    view = ViewConsumer()
    seen_at_second = []

    def consumer(message, **kwargs):
        if message["n"] == 1:
            seen_at_second.append(llen(redis_server, REPLY_PREFIX))
        view(message)
        if message["n"] == 1:
            done.set()

    layer = redis_layer(redis_server, [route("http.request", consumer)])
    layer.send_many(
        [
            ("http.request", request(0, "/stream/", b"count=3")),
            ("http.request", request(1)),
        ]
    )
    with running_worker(layer):
        assert done.wait(15)
    assert seen_at_second == [4]
    got = [reply for _, reply in replies(layer, 5)]
    assert [reply.get("content") for reply in got[:4]] == [
        b"part 0\n",
        b"part 1\n",
        b"part 2\n",
        None,
    ]
    assert [reply["more_content"] for reply in got[:4]] == [True, True, True, False]
    assert got[4]["content"] == b"Hello World!"


def test_what_the_request_finished_receivers_queue_follows_the_response(redis_server):
    """C-19, C-40: the last response message goes out ahead of sends queued during
    the view (here by a request_finished receiver), as when it was sent at once."""
    done = threading.Event()

    def after(**kwargs):
        if pending_message_store.active:
            Channel(f"{REPLY_PREFIX}c0", channel_layer=layer).send({"after": True})

    view = ViewConsumer()

    def consumer(message, **kwargs):
        view(message)
        done.set()

    layer = redis_layer(redis_server, [route("http.request", consumer)])
    layer.send("http.request", request(0))
    request_finished.connect(after)
    try:
        with running_worker(layer):
            assert done.wait(15)
    finally:
        request_finished.disconnect(after)
    got = [reply for _, reply in replies(layer, 2)]
    assert got[0]["content"] == b"Hello World!" and got[1] == {"after": True}


def test_a_raising_request_finished_receiver_still_lets_the_response_out(redis_server, records):
    """C-40: the response was complete before response.close() ran its receivers; one
    of them raising is the consumer's error, logged, and the response is still sent."""

    def broken(**kwargs):
        raise RuntimeError("receiver broke")

    layer = redis_layer(redis_server, [route("http.request", ViewConsumer())])
    layer.send("http.request", request(0))
    request_finished.connect(broken)
    try:
        with running_worker(layer):
            assert records.wait_for("Error processing message with consumer")
            ((_, reply),) = replies(layer, 1)
    finally:
        request_finished.disconnect(broken)
    assert reply["content"] == b"Hello World!"


class CountingChannel:
    """Stands in for a reply channel in `_send` and counts the sends refused as full."""

    def __init__(self, channel, refusals):
        self.channel = channel
        self.name = channel.name
        self.channel_layer = channel.channel_layer
        self.refusals = refusals

    def send(self, content, immediately=False):
        try:
            self.channel.send(content, immediately=immediately)
        except self.channel_layer.ChannelFull:
            with self.refusals["changed"]:
                self.refusals["count"] += 1
                self.refusals["changed"].notify_all()
            raise


def test_a_full_reply_channel_is_retried_with_the_views_policy(redis_server, records, monkeypatch):
    """C-40: the carried last message, refused as full, is retried with the view's
    policy (up to the layer's expiry, 60 s here), not the store's C-19 bound (made
    0.01 s here): it is stored once the reader makes room, before the next request."""
    monkeypatch.setattr(pending_message_store, "retry_time", 0.01)
    refusals = {"count": 0, "changed": threading.Condition()}
    handled = []

    class Counting(ViewConsumer):
        def _send(self, channel, reply, refused=None):
            return super()._send(CountingChannel(channel, refusals), reply, refused)

    view = Counting()

    def consumer(message, **kwargs):
        handled.append(message["n"])
        view(message)

    routes = [route("http.request", consumer)]
    layer = redis_layer(redis_server, routes, channel_capacity={f"{REPLY_PREFIX}*": 1})
    layer.send(f"{REPLY_PREFIX}c9", {"blocker": True})
    layer.send_many([("http.request", request(0)), ("http.request", request(1))])
    with running_worker(layer):
        # Ten refusals take over 0.1 s of the view's backoff: far past the store's bound.
        with refusals["changed"]:
            assert refusals["changed"].wait_for(lambda: refusals["count"] >= 10, 15)
        assert handled == [0]
        assert replies(layer, 1)[0][1] == {"blocker": True}
        channel, reply = replies(layer, 1)[0]
        assert channel == f"{REPLY_PREFIX}c0" and reply["content"] == b"Hello World!"
        channel, reply = replies(layer, 1)[0]
        assert channel == f"{REPLY_PREFIX}c1"
    assert handled == [0, 1]
    assert not records.messages(logging.ERROR) and not records.messages(logging.WARNING)


def test_a_reply_channel_that_stays_full_is_abandoned_with_a_warning(
    redis_server, records, finished, monkeypatch
):
    """C-40: refused for `reply_timeout` (default the layer's expiry; 0.2 s here)
    seconds → a WARNING naming the reply channel, response.close() has run, and the
    worker goes on to the next request. Not the store's RuntimeError (its bound made
    30 s here, so only the view's policy can end the wait within the test)."""
    monkeypatch.setattr(pending_message_store, "retry_time", 30)
    second = threading.Event()

    class Impatient(ViewConsumer):
        reply_timeout = 0.2

    view = Impatient()

    def consumer(message, **kwargs):
        view(message)
        if message["n"] == 1:
            second.set()

    routes = [route("http.request", consumer)]
    layer = redis_layer(redis_server, routes, channel_capacity={f"{REPLY_PREFIX}*": 1})
    layer.send(f"{REPLY_PREFIX}c9", {"blocker": True})
    layer.send_many([("http.request", request(0)), ("http.request", request(1))])
    with running_worker(layer):
        assert records.wait_for(f"Reply channel {REPLY_PREFIX}c0 stayed full")
        assert second.wait(15)
        assert records.wait_for(f"Reply channel {REPLY_PREFIX}c1 stayed full")
    assert len(finished) == 2  # response.close() ran for both
    assert not records.messages(logging.ERROR)
    warnings = records.messages(logging.WARNING)
    assert len(warnings) == 2 and "abandoning the response" in warnings[0]
    assert replies(layer, 1)[0][1] == {"blocker": True}
    assert layer.receive([REPLY_PREFIX]) == (None, None)


def test_redis_killed_while_the_response_is_carried_is_survived(redis_server, records):
    """L-62: Redis killed after the view ran: its response fails (logged as the
    consumer's error), the receive's outage is logged once, and after a restart the
    worker serves the next request."""
    handled = []
    killed = threading.Event()
    view = ViewConsumer()

    def consumer(message, **kwargs):
        handled.append(message["n"])
        view(message)
        if message["n"] == 0:
            redis_server.kill()
            killed.set()

    layer = redis_layer(redis_server, [route("http.request", consumer)])
    layer.send("http.request", request(0))
    with running_worker(layer):
        assert killed.wait(15)
        assert records.wait_for("Cannot receive from channel layer")
        redis_server.start()
        layer.send("http.request", request(1))
        channel, reply = replies(layer, 1)[0]
        assert channel == f"{REPLY_PREFIX}c1" and reply["content"] == b"Hello World!"
    assert handled == [0, 1]
    errors = records.messages(logging.ERROR)
    assert any(m.startswith("Error processing message with consumer") for m in errors)
    assert sum("Cannot receive from channel layer" in m for m in errors) == 1


def test_outside_the_worker_loop_every_reply_is_sent_at_once(redis_server):
    """C-40 unchanged outside the receive loop: a direct call, and `Worker.handle` called
    alone, leave the whole response on the layer when they return."""
    layer = redis_layer(redis_server, [route("http.request", ViewConsumer())])
    ViewConsumer()(Message(request(0), "http.request", layer))
    assert llen(redis_server, REPLY_PREFIX) == 1
    Worker(layer, signal_handlers=False).handle("http.request", request(1))
    assert llen(redis_server, REPLY_PREFIX) == 2
    assert not pending_message_store.active
    got = [reply["content"] for _, reply in replies(layer, 2)]
    assert got == [b"Hello World!", b"Hello World!"]


def test_a_layer_without_send_many_flushes_the_response_at_consumer_finished():
    """The in-memory layer (runserver) has no send_many: the worker does not open the
    consumer's batch; the view queues its response's end as ever and consumer_finished
    sends it, before the worker handles another message (C-19, C-40)."""
    seen = []
    done = threading.Event()
    view = ViewConsumer()

    def consumer(message, **kwargs):
        view(message)
        # Queued, not yet on the layer: it goes out when the consumer returns.
        seen.append((pending_message_store.active, message.channel_layer.receive([REPLY_PREFIX])))
        done.set()

    with fresh_layer([route("http.request", consumer)]) as layer:
        layer.send("http.request", request(0))
        with running_worker(layer):
            assert done.wait(15)
            ((_, reply),) = replies(layer, 1)
    assert seen == [(True, (None, None))]
    assert reply["content"] == b"Hello World!"
