"""Message (C-17, C-18) and the pending-message store's retries (C-19)."""

from __future__ import annotations

import threading

import pytest

from channels import Channel
from channels.message import Message, PendingMessageStore
from tests.channels.helpers import fresh_layer


@pytest.fixture
def layer():
    with fresh_layer() as wrapper:
        yield wrapper


def test_message_attributes_and_dict_access(layer):
    """C-17: content, channel, channel_layer, reply_channel and dict-like access."""
    message = Message({"reply_channel": "r.x!y", "text": "hi"}, "websocket.receive", layer)
    assert message.channel.name == "websocket.receive"
    assert message.channel_layer is layer
    assert message.reply_channel.name == "r.x!y"
    assert message["text"] == "hi" and "text" in message and "nope" not in message
    message["extra"] = 1
    assert message.content["extra"] == 1
    assert set(message.keys()) == {"reply_channel", "text", "extra"}
    assert sorted(map(str, message.values())) == ["1", "hi", "r.x!y"]
    assert ("text", "hi") in message.items()
    assert message.get("missing") is None and message.get("missing", 5) == 5


def test_message_without_reply_channel(layer):
    """C-17: reply_channel is None when the key is absent or falsy."""
    assert Message({}, "a.b", layer).reply_channel is None
    assert Message({"reply_channel": None}, "a.b", layer).reply_channel is None


def test_copy_is_deep_and_same_class(layer):
    """C-18: a new Message of the same class with a deep copy of content."""

    class MyMessage(Message):
        pass

    original = MyMessage({"headers": [[b"a", b"b"]]}, "http.request", layer)
    duplicate = original.copy()
    assert type(duplicate) is MyMessage
    assert duplicate.content == original.content
    duplicate["headers"].append([b"c", b"d"])
    assert original["headers"] == [[b"a", b"b"]]
    assert duplicate.channel.name == "http.request" and duplicate.channel_layer is layer


def test_store_retries_full_channel_until_space():
    """C-19: a ChannelFull is retried with backoff until the reader frees a slot."""
    store = PendingMessageStore()
    with fresh_layer(capacity=1) as layer:
        channel = Channel("test.full")
        channel.send({"n": 1})
        store.prepare()
        store.append(channel, {"n": 2})
        reader_done = threading.Event()
        got = []

        def reader():
            # Block until the first message is there, take it, freeing capacity.
            got.append(layer.receive(["test.full"], block=True))
            reader_done.set()

        thread = threading.Thread(target=reader)
        thread.start()
        store.send_and_flush()
        thread.join(5)
        assert reader_done.is_set()
        assert got[0][1] == {"n": 1}
        assert layer.receive(["test.full"]) == ("test.full", {"n": 2})
        assert not store.active


def test_store_gives_up_with_runtime_error():
    """C-19: after retry_time the store raises RuntimeError with advice."""

    class Impatient(PendingMessageStore):
        retry_time = 0

    store = Impatient()
    with fresh_layer(capacity=1):
        channel = Channel("test.full")
        channel.send({"n": 1})
        store.prepare()
        store.append(channel, {"n": 2})
        with pytest.raises(RuntimeError, match="immediately=True"):
            store.send_and_flush()
        assert not store.active


def test_store_is_per_thread():
    """C-19: state is kept per thread."""
    store = PendingMessageStore()
    store.prepare()
    seen = []
    thread = threading.Thread(target=lambda: seen.append(store.active))
    thread.start()
    thread.join(5)
    assert seen == [False] and store.active


# -- layers with send_many: one call per run of Channel sends (C-19, issue 9) ----------


@pytest.fixture
def redis_wrapper(redis_server):
    from asgi_redis import RedisChannelLayer
    from channels.asgi import ChannelLayerWrapper

    layer = RedisChannelLayer(hosts=[redis_server.url], capacity=1)
    calls = []
    real = layer.send_many

    def counting(pairs):
        pairs = list(pairs)
        calls.append([channel for channel, _ in pairs])
        return real(pairs)

    layer.send_many = counting
    wrapper = ChannelLayerWrapper(layer, "default", [])
    wrapper.send_many_calls = calls
    return wrapper


@pytest.mark.redis
def test_store_sends_runs_of_channel_sends_with_one_send_many(redis_wrapper):
    """C-19: queue order kept across a group send between two runs of channel sends."""
    from channels import Group

    layer = redis_wrapper
    layer.channel_layer.capacity = 10
    Group("g", channel_layer=layer).add("a")
    store = PendingMessageStore()
    store.prepare()
    store.append(Channel("a", channel_layer=layer), {"n": 1})
    store.append(Channel("b", channel_layer=layer), {"n": 2})
    store.append(Group("g", channel_layer=layer), {"n": 3})
    store.append(Channel("a", channel_layer=layer), {"n": 4})
    store.send_and_flush()
    assert not store.active
    assert layer.send_many_calls == [["a", "b"], ["a"]]
    assert [layer.receive(["a"])[1]["n"] for _ in range(3)] == [1, 3, 4]
    assert layer.receive(["b"]) == ("b", {"n": 2})


@pytest.mark.redis
def test_store_retries_the_full_ones_of_a_batch_in_order(redis_wrapper):
    """C-19: a reply refused as full inside send_many is retried until the reader frees a
    slot; the other channel's message went out at once; per-channel order holds."""
    layer = redis_wrapper
    Channel("full", channel_layer=layer).send({"n": 1})
    store = PendingMessageStore()
    store.prepare()
    store.append(Channel("full", channel_layer=layer), {"n": 2})
    store.append(Channel("other", channel_layer=layer), {"n": 3})
    got = []

    def reader():
        got.append(layer.receive(["other"], block=True))
        got.append(layer.receive(["full"], block=True))

    thread = threading.Thread(target=reader)
    thread.start()
    store.send_and_flush()
    thread.join(10)
    assert not thread.is_alive()
    assert got == [("other", {"n": 3}), ("full", {"n": 1})]
    assert layer.receive(["full"]) == ("full", {"n": 2})
    assert layer.send_many_calls == [["full", "other"]]


@pytest.mark.redis
def test_store_gives_up_on_a_full_batch_member_with_runtime_error(redis_wrapper):
    class Impatient(PendingMessageStore):
        retry_time = 0

    layer = redis_wrapper
    Channel("full", channel_layer=layer).send({"n": 1})
    store = Impatient()
    store.prepare()
    store.append(Channel("other", channel_layer=layer), {"n": 2})
    store.append(Channel("full", channel_layer=layer), {"n": 3})
    with pytest.raises(RuntimeError, match="Failed to send queued message to full"):
        store.send_and_flush()
    assert not store.active
    assert layer.receive(["other"]) == ("other", {"n": 2})
    assert layer.receive(["full"]) == ("full", {"n": 1})
    assert layer.receive(["full"]) == (None, None)


@pytest.mark.redis
def test_store_with_a_bad_message_sends_the_ones_before_it(redis_wrapper):
    """C-19, A-6: as one send at a time did: the messages before a refused one go out."""
    from channels.layers.base import UnsupportedMessageValue

    layer = redis_wrapper
    store = PendingMessageStore()
    store.prepare()
    store.append(Channel("a", channel_layer=layer), {"n": 1})
    store.append(Channel("a", channel_layer=layer), {"n": object()})
    store.append(Channel("b", channel_layer=layer), {"n": 3})
    with pytest.raises(UnsupportedMessageValue):
        store.send_and_flush()
    assert layer.receive(["a"]) == ("a", {"n": 1})
    assert layer.receive(["a", "b"]) == (None, None)


@pytest.mark.redis
def test_store_raises_the_layers_connection_error(redis_server, redis_wrapper):
    """L-62: a Redis that went away fails the flush with its connection error."""
    import redis

    layer = redis_wrapper
    redis_server.kill()
    store = PendingMessageStore()
    store.prepare()
    store.append(Channel("a", channel_layer=layer), {"n": 1})
    with pytest.raises(redis.ConnectionError):
        store.send_and_flush()
    assert not store.active
