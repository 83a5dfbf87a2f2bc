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
