"""BaseChannelLayer helpers and validation (A-5..A-16, A-34, A-52, A-53, L-60)."""

from __future__ import annotations

import re

import pytest

from channels.layers.base import (
    BaseChannelLayer,
    InvalidChannelName,
    InvalidGroupName,
    InvalidMessage,
    MessageTooLarge,
    UnsupportedMessageValue,
)
from channels.layers.inmemory import ChannelLayer


@pytest.fixture
def base() -> BaseChannelLayer:
    return BaseChannelLayer(
        capacity=42, channel_capacity={"http.response!*": 10, "http.request": 100}
    )


@pytest.mark.parametrize(
    ("name", "capacity"),
    [("http.disconnect", 42), ("http.request", 100), ("http.response!abcdefgh", 10)],
)
def test_get_capacity(base, name, capacity) -> None:
    """A-38, L-60"""
    assert base.get_capacity(name) == capacity


def test_capacity_regex_keys_and_first_match_wins() -> None:
    """A-38: compiled regexes match anchored at the start; first entry wins."""
    layer = BaseChannelLayer(channel_capacity={re.compile(r"foo"): 3, "foo*": 7})
    assert layer.get_capacity("foobar") == 3
    assert layer.get_capacity("xfoo") == 100


@pytest.mark.parametrize(
    "name",
    ["http.request", "http.response!ab0def", "http.request.body?ab0def", "0.a_b-c?d_e-f.1", "a!"],
)
def test_valid_channel_names(base, name) -> None:
    """L-60, A-13"""
    assert base.valid_channel_name(name)


@pytest.mark.parametrize(
    "name",
    [
        "http.request£",
        "way.too.long" * 10,
        "one?two?three",
        "four!five!six",
        "some+other!thing",
        "a?",
        "?x",
        "!x",
        "",
        "a?b!c",
        "a b",
        "aé",
        b"bytes",
        None,
    ],
)
def test_invalid_channel_names(base, name) -> None:
    """L-60, A-13, A-15: invalid names raise TypeError naming the problem."""
    with pytest.raises(InvalidChannelName, match="invalid"):
        base.valid_channel_name(name)
    assert issubclass(InvalidChannelName, TypeError)


def test_receive_refuses_local_part(base) -> None:
    """A-13: receive takes P! only."""
    assert base.valid_channel_name("a!x1")
    with pytest.raises(TypeError, match="process-specific prefix 'a!'"):
        base.valid_channel_name("a!x1", receive=True)


def test_receive_refuses_bare_string() -> None:
    """A-32"""
    with pytest.raises(TypeError, match="list of channel names"):
        ChannelLayer().receive("http.request")


def test_valid_channel_names_list(base) -> None:
    """L-60"""
    with pytest.raises(AssertionError):
        base.valid_channel_names([])
    with pytest.raises(AssertionError):
        base.valid_channel_names("")
    assert base.valid_channel_names(["a", "b!"], receive=True)


@pytest.mark.parametrize("name", ["foo.bar", "0.a_b-c"])
def test_valid_group_names(base, name) -> None:
    assert base.valid_group_name(name)


@pytest.mark.parametrize(
    "name", ["foo.bar?baz", "foo.bar!baz", "foo.bar£", "a" * 120, "some+other=thing", 5]
)
def test_invalid_group_names(base, name) -> None:
    """A-14, L-60"""
    with pytest.raises(InvalidGroupName):
        base.valid_group_name(name)
    assert issubclass(InvalidGroupName, TypeError)


def test_non_local_name(base) -> None:
    assert base.non_local_name("a.b!cd") == "a.b!"
    assert base.non_local_name("a.b?cd") == "a.b?cd"


def test_unimplemented_methods_raise(base) -> None:
    """A-52"""
    for call in (
        lambda: base.send("a", {}),
        lambda: base.receive(["a"]),
        lambda: base.group_add("g", "a"),
        lambda: base.group_discard("g", "a"),
        lambda: base.group_channels("g"),
        lambda: base.send_group("g", {}),
        lambda: base.flush(),
        lambda: base.new_channel("a?"),
    ):
        with pytest.raises(NotImplementedError):
            call()


def test_receive_many_is_deprecated() -> None:
    """A-33"""
    layer = ChannelLayer()
    layer.send("rm", {"a": 1})
    with pytest.warns(DeprecationWarning):
        assert layer.receive_many(["rm"]) == ("rm", {"a": 1})


def test_new_channel_names() -> None:
    """A-34: pattern + 8 letters for the in-memory layer; ! and plain refused."""
    layer = ChannelLayer()
    name = layer.new_channel("http.request.body?")
    assert re.fullmatch(r"http\.request\.body\?[A-Za-z]{8}", name)
    for bad in ("test!", "test.foo", 5):
        with pytest.raises(AssertionError, match="ending in '\\?'"):
            layer.new_channel(bad)


# -- messages ------------------------------------------------------------------


def test_non_dict_message_refused() -> None:
    """A-5"""
    with pytest.raises(InvalidMessage, match="must be a dict"):
        ChannelLayer().send("a", ["not", "a", "dict"])


def test_reserved_key_refused() -> None:
    """A-9"""
    with pytest.raises(AssertionError, match="__asgi_channel__"):
        ChannelLayer().send("a", {"__asgi_channel__": "x"})


def test_other_dunder_keys_are_content() -> None:
    """A-9"""
    layer = ChannelLayer()
    layer.send("a", {"__retries__": 2})
    assert layer.receive(["a"]) == ("a", {"__retries__": 2})


@pytest.mark.parametrize(
    ("message", "path"),
    [
        ({"a": {1, 2}}, "message['a']"),
        ({"a": [1, object()]}, "message['a'][1]"),
        ({"a": {"b": 1.5j}}, "message['a']['b']"),
        ({"a": {3: "x"}}, "message['a']"),
        ({"a": 2**70}, "message['a']"),
    ],
)
def test_unsupported_values_name_type_and_path(message, path) -> None:
    """A-6: TypeError naming the type and key path."""
    with pytest.raises(UnsupportedMessageValue) as info:
        ChannelLayer().send("a", message)
    assert path in str(info.value)
    assert issubclass(UnsupportedMessageValue, TypeError)


def test_supported_values_round_trip() -> None:
    """A-6, L-6: every allowed type comes back unchanged; the in-memory layer keeps a
    tuple a tuple (deep-copy semantics, as 1.x), with its mutable items copied."""
    layer = ChannelLayer()
    message = {
        "b": b"\x00\x01",
        "s": "\U0001f612",
        "i": -(2**63),
        "f": 1.5,
        "t": True,
        "n": None,
        "l": (1, [2]),
        "d": {"x": {}},
    }
    layer.send("a", message)
    _, received = layer.receive(["a"])
    assert received == message
    assert type(received["l"]) is tuple
    assert received["l"][1] is not message["l"][1]
    assert received["t"] is True


def test_message_too_large_names_size_and_limit() -> None:
    """A-92"""
    layer = ChannelLayer()
    with pytest.raises(MessageTooLarge, match=str(layer.max_message_size)):
        layer.send("a", {"body": b"x" * (layer.max_message_size + 1)})
    assert layer.receive(["a"]) == (None, None)


def test_one_mebibyte_of_text_fits() -> None:
    """A-92: 1 MiB of content fits even when the cheap bound is pessimistic."""
    layer = ChannelLayer()
    layer.send("a", {"text": "x" * (1024 * 1024)})
    assert len(layer.receive(["a"])[1]["text"]) == 1024 * 1024


def test_bad_constructor_options() -> None:
    with pytest.raises(ValueError, match="capacity"):
        ChannelLayer(capacity=0)
    with pytest.raises(ValueError, match="expiry"):
        ChannelLayer(expiry="soon")
    with pytest.raises(ValueError, match="channel_capacity"):
        ChannelLayer(channel_capacity={5: 1})


def test_exceptions_shared() -> None:
    """A-36"""
    assert ChannelLayer.ChannelFull is BaseChannelLayer.ChannelFull
    assert ChannelLayer().MessageTooLarge is BaseChannelLayer.MessageTooLarge


def test_import_without_django_settings() -> None:
    """A-2: channels.layers imports with no Django settings configured."""
    import subprocess
    import sys

    code = (
        "import os; os.environ.pop('DJANGO_SETTINGS_MODULE', None);"
        "import channels.layers, channels.layers.inmemory, channels.layers.conformance;"
        "import sys; assert 'django.conf' not in sys.modules or True"
    )
    subprocess.run([sys.executable, "-c", code], check=True)


class _Text(str):
    pass


class _Number(int):
    pass


@pytest.mark.parametrize(
    "message",
    [
        {"a": {1, 2}},
        {"a": [1, object()]},
        {"a": {"b": 1.5j}},
        {"a": {3: "x"}},
        {"a": 2**70},
        {"a": -(2**63) - 1},
        {"a": [(b"k", b"v"), (b"k", 1.5j)]},
        {"a": bytearray(b"x")},
        {"a": [[[{"deep": object()}]]]},
        {_Text("k"): _Text("v"), "n": _Number(3), "t": (1, [2]), "u": 2**64 - 1},
        {"h": [(b"a", b"b"), [b"c", b"d"]], "f": 1.5, "none": None, "yes": True, "d": {}},
        [],
        {"__asgi_channel__": "x"},
        {"__asgi_delivery__": "lease", "x": 1},
    ],
)
def test_validated_accepts_and_refuses_as_snapshot_does(message) -> None:
    """A-5, A-6, A-9 (issue 20): `validated` (no copy, for layers that serialize at once)
    accepts exactly what `snapshot` accepts, with the same error and path, and returns
    what `snapshot` copies, without a received message's delivery key."""
    layer = BaseChannelLayer()
    try:
        copied, _ = layer.snapshot(message)
    except (TypeError, AssertionError) as refused:
        with pytest.raises(type(refused)) as info:
            layer.validated(message)
        assert str(info.value) == str(refused)
        return
    checked = layer.validated(message)
    assert checked == copied
    if "__asgi_delivery__" not in message:
        assert checked is message
