"""`ReplyBatch`: one consumer run's deferred sends, and the worker's hand-over of it
(C-19, C-40; issue 9, issue 16 item 4). On a real in-memory layer, no mocks."""

from __future__ import annotations

import threading

import pytest

from channels import Channel, Group, route
from channels.handler import ViewConsumer
from channels.pending import PendingMessageStore, ReplyBatch, pending_message_store
from channels.worker import Worker
from tests.channels.helpers import fresh_layer


@pytest.fixture
def layer():
    with fresh_layer() as wrapper:
        yield wrapper


def drain(layer, channel):
    got = []
    while True:
        name, content = layer.receive([channel])
        if name is None:
            return got
        got.append(content)


class Replier:
    """A consumer's `Retry`: records what it was called with, then sends."""

    def __init__(self):
        self.calls = []

    def __call__(self, sender, message, refused):
        self.calls.append((message, refused))
        sender.send(message, immediately=True)


def test_replies_go_out_first_in_order_then_the_deferred_messages(layer):
    """C-40, C-19: final replies went out at once in 1.x, so ahead of the deferred
    sends; each kind keeps its own order."""
    store = PendingMessageStore()
    store.prepare()
    out = Channel("p.out", channel_layer=layer)
    retry = Replier()
    store.append(out, {"deferred": 1})
    store.reply(out, {"reply": 1}, retry)
    store.append(out, {"deferred": 2})
    store.reply(out, {"reply": 2}, retry)
    assert layer.receive(["p.out"]) == (None, None)
    store.send_and_flush()
    assert not store.active
    assert drain(layer, "p.out") == [{"reply": 1}, {"reply": 2}, {"deferred": 1}, {"deferred": 2}]
    assert retry.calls == [({"reply": 1}, None), ({"reply": 2}, None)]


def test_a_reply_outside_a_consumer_is_sent_at_once_with_its_retry(layer):
    store = PendingMessageStore()
    retry = Replier()
    store.reply(Channel("p.out", channel_layer=layer), {"reply": 1}, retry)
    assert retry.calls == [({"reply": 1}, None)]
    assert drain(layer, "p.out") == [{"reply": 1}]


def test_an_opened_batch_outlives_consumer_finished_until_closed(layer):
    """Issue 9: the worker's loop opens the batch; consumer_finished leaves it, and what
    later receivers queue joins it in order; close_batch hands it all over."""
    store = PendingMessageStore()
    assert store.open_batch() is None  # no consumer running
    store.prepare()
    batch = store.open_batch()
    assert isinstance(batch, ReplyBatch) and batch.carried
    out = Channel("p.out", channel_layer=layer)
    store.append(out, {"n": 1})
    store.send_and_flush()  # consumer_finished
    assert store.active and layer.receive(["p.out"]) == (None, None)
    store.append(out, {"n": 2})  # a later consumer_finished receiver
    entries = store.close_batch(batch)
    assert [message for _, message, _ in entries] == [{"n": 1}, {"n": 2}]
    assert not store.active and not batch.carried
    store.send_all(entries)
    assert drain(layer, "p.out") == [{"n": 1}, {"n": 2}]


def test_a_handed_back_batch_is_flushed_at_consumer_finished(layer):
    """C-19: the consumer raised: its sends go out at consumer_finished, before the
    exception's handling; the worker then has nothing to carry."""
    store = PendingMessageStore()
    store.prepare()
    batch = store.open_batch()
    store.append(Channel("p.out", channel_layer=layer), {"n": 1})
    batch.hand_back()
    store.send_and_flush()
    assert drain(layer, "p.out") == [{"n": 1}]
    assert store.close_batch(batch) == []
    assert not store.active


def test_a_batch_reset_under_the_worker_still_hands_over_what_it_held(layer):
    """A nested consumer run (consumer_started inside a consumer) starts its own batch
    and flushes it; the outer batch's sends are not lost."""
    store = PendingMessageStore()
    store.prepare()
    outer = store.open_batch()
    out = Channel("p.out", channel_layer=layer)
    store.append(out, {"outer": 1})
    store.prepare()  # nested consumer_started
    store.append(out, {"inner": 1})
    store.send_and_flush()  # nested consumer_finished
    assert drain(layer, "p.out") == [{"inner": 1}]
    assert [message for _, message, _ in store.close_batch(outer)] == [{"outer": 1}]


def test_batchable_is_a_plain_channel_on_a_layer_with_send_many(layer):
    """Subclasses may override send, groups are not channels, and the in-memory layer
    has no send_many; given the layer, a plain Channel on it is batchable."""

    class Custom(Channel):
        pass

    plain = Channel("p.out", channel_layer=layer)
    assert not PendingMessageStore.batchable(plain)  # in-memory: no send_many
    assert PendingMessageStore.batchable(plain, layer)
    assert not PendingMessageStore.batchable(plain, object())
    assert not PendingMessageStore.batchable(Custom("p.out", channel_layer=layer), layer)
    assert not PendingMessageStore.batchable(Group("g", channel_layer=layer), layer)


def test_a_view_queues_its_responses_end_and_the_worker_flushes_it():
    """C-40: Worker.handle (no send_many here): the view's response is queued during the
    consumer, ahead of what the consumer defers after it, and on the layer once
    handle returns."""
    seen = []
    view = ViewConsumer()

    def consumer(message, **kwargs):
        view(message)
        message.reply_channel.send({"after": True})
        seen.append(len(pending_message_store.threadlocal.batch))

    request = {
        "reply_channel": "http.response.p!c0",
        "http_version": "1.1",
        "method": "GET",
        "path": "/hello/",
        "query_string": b"",
        "headers": [[b"host", b"testserver"]],
    }
    with fresh_layer([route("http.request", consumer)]) as layer:
        Worker(layer, signal_handlers=False).handle("http.request", request)
        got = drain(layer, "http.response.p!")
    assert seen == [2]
    assert got[0]["content"] == b"Hello World!" and got[1] == {"after": True}
    assert not pending_message_store.active


def test_batches_are_per_thread():
    store = PendingMessageStore()
    store.prepare()
    seen = []
    thread = threading.Thread(target=lambda: seen.append((store.active, store.open_batch())))
    thread.start()
    thread.join(5)
    assert seen == [(False, None)] and store.active
