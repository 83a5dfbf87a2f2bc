"""Tuples through the layers (A-6, A-73, L-6, issue 13).

The in-memory layer copies like ``copy.deepcopy``: a tuple stays a tuple, so 1.x tests
comparing ``message["headers"]`` with a list of tuples, or hashing header pairs, pass.
The serializing layers (Redis, IPC) encode with msgpack and return lists.
"""

from __future__ import annotations

import copy

import pytest

from asgi_ipc import IPCChannelLayer
from channels.layers.inmemory import ChannelLayer
from tests.asgi_ipc.helpers import remove_store, unique_prefix

HEADERS = [(b"host", b"example.com"), (b"cookie", b"a=1")]


def test_in_memory_keeps_header_tuples() -> None:
    """L-6, A-73: a list of header tuples comes back equal to the list of tuples."""
    layer = ChannelLayer()
    layer.send("http.request", {"headers": HEADERS, "client": ("127.0.0.1", 80)})
    _, message = layer.receive(["http.request"])
    assert message["headers"] == [(b"host", b"example.com"), (b"cookie", b"a=1")]
    assert all(type(pair) is tuple for pair in message["headers"])
    assert set(message["headers"]) == set(HEADERS)  # hashable, as 1.x tests use them
    assert message["client"] == ("127.0.0.1", 80)
    assert message["headers"] is not HEADERS  # the list itself is copied


def test_in_memory_copies_like_deepcopy() -> None:
    """L-6, A-8: nested tuples keep their type; lists inside them are copied, so the
    sender mutating them afterwards changes nothing received."""
    inner = [1, 2]
    message = {"t": (b"a", (inner, {"k": ("x",)}), ()), "l": [(1,), [(2, 3)]]}
    expected = copy.deepcopy(message)
    layer = ChannelLayer()
    layer.send("c", message)
    inner.append(3)
    _, received = layer.receive(["c"])
    assert received == expected
    assert type(received["t"]) is tuple and type(received["t"][1]) is tuple
    assert type(received["t"][1][1]["k"]) is tuple
    assert type(received["l"][1][0]) is tuple
    assert received["t"][1][0] == [1, 2]


def test_in_memory_group_members_get_tuples_and_own_lists() -> None:
    """L-6, A-8, A-93: each member of a group send gets tuples, and its own copies of
    the lists inside them."""
    layer = ChannelLayer()
    for name in ("p!a", "p!b", "n"):
        layer.group_add("g", name)
    layer.send_group("g", {"pairs": [(b"k", [1])]})
    first = layer.receive(["p!"])[1]
    second = layer.receive(["p!"])[1]
    third = layer.receive(["n"])[1]
    for received in (first, second, third):
        assert received == {"pairs": [(b"k", [1])]}
        assert type(received["pairs"][0]) is tuple
    first["pairs"][0][1].append(2)
    assert second["pairs"][0][1] == [1] and third["pairs"][0][1] == [1]


def test_in_memory_send_leaves_the_callers_tuples_alone() -> None:
    """A-8: the caller's dict is never modified."""
    message = {"headers": list(HEADERS)}
    ChannelLayer().send("c", message)
    assert message == {"headers": HEADERS}
    assert all(type(pair) is tuple for pair in message["headers"])


@pytest.fixture
def ipc_layer(request):
    prefix = unique_prefix(request.node.name[:20])
    layer = IPCChannelLayer(prefix=prefix)
    yield layer
    layer.flush()
    remove_store(prefix)


def test_ipc_returns_lists(ipc_layer) -> None:
    """L-6: the IPC layer serializes with msgpack; tuples come back as lists."""
    ipc_layer.send("c", {"headers": HEADERS})
    _, message = ipc_layer.receive(["c"])
    assert message == {"headers": [[b"host", b"example.com"], [b"cookie", b"a=1"]]}


@pytest.mark.redis
def test_redis_returns_lists(redis_server) -> None:
    """L-6: the Redis layer serializes with msgpack; tuples come back as lists."""
    from asgi_redis import RedisChannelLayer

    layer = RedisChannelLayer(hosts=[redis_server.url])
    layer.send("c", {"headers": HEADERS})
    _, message = layer.receive(["c"])
    assert message == {"headers": [[b"host", b"example.com"], [b"cookie", b"a=1"]]}


def test_snapshot_size_bound_covers_the_encoding_on_every_path() -> None:
    """A-8, A-92, issue 20: leaves copied inline (bytes, str, bool, None values, header
    pairs) give the same copy and a bound never below msgpack's length, as the general
    path does; lists are still copied, header pairs kept."""
    import msgpack

    layer = ChannelLayer()
    inner = [b"x" * 70, "é" * 3]
    message = {
        "status": 200,
        "headers": [(b"content-type", b"text/plain"), [b"a", b"b"], (b"c", "d")],
        "content": b"Hello, world!\n",
        "text": "é" * 40,
        "more_content": False,
        "nothing": None,
        "nested": {"list": inner, "flag": True},
    }
    snapshot, bound = layer.snapshot(message)
    assert snapshot == message
    assert snapshot["headers"][0] is message["headers"][0]
    assert snapshot["headers"][1] is not message["headers"][1]
    assert snapshot["nested"]["list"] is not inner
    assert bound >= len(msgpack.packb(message, use_bin_type=True))
