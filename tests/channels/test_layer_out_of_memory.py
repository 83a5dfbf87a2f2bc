"""A channel layer out of memory gives 503, not 500 (issue 15 item 9; C-37, C-40).

A real redis-server started with ``--maxmemory 2mb --maxmemory-policy noeviction`` and
filled until it refuses writes (``OOM command not allowed``); the worker side runs in
process (AsgiHandler, ViewConsumer) and, for the batched reply path, as a real
``runworker`` process.
"""

from __future__ import annotations

import logging
import threading

import pytest
import redis
from django.test import override_settings

from asgi_redis import RedisChannelLayer
from channels.asgi import ChannelLayerWrapper, channel_layers
from channels.handler import AsgiHandler, ViewConsumer
from channels.message import Message, layer_out_of_memory
from support.redis_harness import RedisServer, redis_server_path
from tests.channels import e2e
from tests.channels.helpers import fresh_layer
from tests.channels.oom import (
    MAXMEMORY_ARGS,
    fill_until_out_of_memory,
    free_memory,
    out_of_memory_refusals,
)

REPLY_PREFIX = "http.response.test!"
WAIT = 15  # seconds, bound of every wait on another thread or process


@pytest.fixture
def small_redis():
    if redis_server_path() is None:
        pytest.skip("redis-server is not installed")
    with RedisServer(extra_args=MAXMEMORY_ARGS) as server:
        client = redis.Redis.from_url(server.url)
        try:
            yield server, client
        finally:
            client.close()


@pytest.fixture
def redis_layer(small_redis):
    server, _ = small_redis
    layer = RedisChannelLayer(hosts=[server.url])
    try:
        yield layer
    finally:
        layer.close()


def request_content(path: str, query: bytes = b"", host: bytes = b"testserver") -> dict:
    return {
        "reply_channel": REPLY_PREFIX + "oom",
        "http_version": "1.1",
        "method": "GET",
        "path": path,
        "query_string": query,
        "headers": [[b"host", host]],
    }


def receive_one(layer, channel: str, attempts: int = 6) -> dict:
    """A message from `channel`; each blocking receive waits at most ~5 s (A-32)."""
    for _ in range(attempts):
        got, content = layer.receive([channel], block=True)
        if got is not None:
            return content
    raise AssertionError(f"nothing arrived on {channel}")


def test_redis_oom_is_recognised(small_redis, redis_layer):
    """Issue 15 item 9: the layer's OOM refusal is told apart from other errors."""
    _, client = small_redis
    fill_until_out_of_memory(client)
    with pytest.raises(redis.exceptions.ResponseError) as info:
        redis_layer.send("test.x", {"n": 1})
    assert layer_out_of_memory(info.value)
    assert not layer_out_of_memory(redis.exceptions.ResponseError("WRONGTYPE Operation"))
    assert not layer_out_of_memory(RuntimeError("OOM command not allowed"))


@override_settings(ROOT_URLCONF="tests.channels.oom_urls")
def test_view_meeting_a_layer_out_of_memory_answers_503(small_redis, redis_layer, records):
    """Issue 15 item 9: a view whose layer send is refused for memory → 503 + Retry-After,
    one WARNING, no traceback; the same view answers 200 while Redis has room."""
    _, client = small_redis
    handler = AsgiHandler()
    wrapper = ChannelLayerWrapper(redis_layer, "oom", [])
    old = channel_layers.set("oom", wrapper)
    try:
        with fresh_layer() as default:
            query = b"alias=oom"
            ok = list(handler(Message(request_content("/layer-send/", query), "x", default)))
            assert ok[0]["status"] == 200
            fill_until_out_of_memory(client)
            replies = list(handler(Message(request_content("/layer-send/", query), "x", default)))
    finally:
        if old is None:
            channel_layers.backends.pop("oom", None)
        else:
            channel_layers.set("oom", old)
    assert replies[0]["status"] == 503
    assert (b"Retry-After", b"5") in [tuple(header) for header in replies[0]["headers"]]
    warnings = records.messages(logging.WARNING)
    assert any("out of memory" in text and "answered 503" in text for text in warnings)
    assert not any(record.exc_info for record in records.records)


class QuickViewConsumer(ViewConsumer):
    reply_timeout = 30  # bounded; the tests free memory long before


def test_reply_waits_until_the_layer_has_memory_again(small_redis, redis_layer):
    """Issue 15 item 9: a reply refused for memory is retried like a full channel and
    delivered once memory is freed, instead of failing the consumer."""
    _, client = small_redis
    consumer = QuickViewConsumer()
    message = Message(request_content("/hello/"), "http.request", redis_layer)
    fill_until_out_of_memory(client)
    refused_before = out_of_memory_refusals(client)
    errors: list[BaseException] = []

    def run() -> None:
        try:
            consumer(message)
        except BaseException as error:  # reported to the test below
            errors.append(error)

    thread = threading.Thread(target=run)
    thread.start()
    try:
        watcher = redis.Redis(port=client.connection_pool.connection_kwargs["port"])
        # Bounded poll of the server's own counter: the reply was refused at least once.
        for _ in range(WAIT * 100):
            if out_of_memory_refusals(watcher) > refused_before:
                break
            threading.Event().wait(0.01)
        else:
            raise AssertionError("the reply was never refused for memory")
        watcher.close()
        free_memory(client)
        reply = receive_one(redis_layer, REPLY_PREFIX)
    finally:
        thread.join(WAIT)
    assert not thread.is_alive() and errors == []
    assert reply["status"] == 200 and reply["content"] == b"Hello World!"


def test_reply_gives_up_with_a_warning_when_memory_never_returns(small_redis, redis_layer, records):
    """Issue 15 item 9: still out of memory after reply_timeout → one WARNING naming the
    cause, and the consumer returns (the worker goes on)."""
    _, client = small_redis

    class Impatient(ViewConsumer):
        reply_timeout = 0.2

    fill_until_out_of_memory(client)
    Impatient()(Message(request_content("/hello/"), "http.request", redis_layer))
    warnings = records.messages(logging.WARNING)
    assert any("stayed out of memory" in text for text in warnings)


@pytest.mark.slow
def test_runworker_delivers_a_reply_refused_for_memory(small_redis, redis_layer, tmp_path):
    """Issue 15 item 9, real worker: the batched last reply (issue 9) refused with OOM is
    retried with C-40's policy and delivered after memory is freed."""
    server, client = small_redis
    env = e2e.e2e_env(tmp_path / "db.sqlite3", server.url)
    env["DJANGO_SETTINGS_MODULE"] = "tests.channels.hardening_settings"
    e2e.prepare_database(env)
    worker = e2e.start_worker(env)
    try:
        worker.output.wait_for("Listening on channels", timeout=60)
        # e2e settings: ALLOWED_HOSTS has the loopback names.
        redis_layer.send("http.request", request_content("/fill-redis/", host=b"127.0.0.1"))
        refused = 4  # the view's own refused SETs, one per size
        for _ in range(WAIT * 100):
            if out_of_memory_refusals(client) > refused:
                break
            threading.Event().wait(0.01)
        else:
            raise AssertionError(
                f"the reply was never refused for memory: {out_of_memory_refusals(client)}"
                + worker.output.text()
            )
        free_memory(client)
        reply = receive_one(redis_layer, REPLY_PREFIX)
        assert reply["status"] == 200 and reply["content"] == b"filled"
    finally:
        worker.stop()
    assert "Traceback" not in worker.output.text()
