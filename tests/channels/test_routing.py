"""Routing: Route, RouteClass, Include, Router (C-20..C-26)."""

from __future__ import annotations

import pytest
from django.core.exceptions import ImproperlyConfigured

from channels.message import Message
from channels.routing import (
    Include,
    Route,
    RouteClass,
    Router,
    connect_consumer,
    include,
    null_consumer,
    route,
    route_class,
)
from tests.channels.helpers import fresh_layer


@pytest.fixture
def layer():
    with fresh_layer() as wrapper:
        yield wrapper


def consumer_a(message, **kwargs):
    return "a"


def consumer_b(message, **kwargs):
    return "b"


class ClassConsumer:
    @classmethod
    def channel_names(cls):
        return {"websocket.connect", "websocket.receive"}


def msg(layer, channel, **content):
    return Message(content, channel, layer)


def test_aliases_are_the_classes():
    """C-23..C-25: route, route_class and include are aliases."""
    assert route is Route and route_class is RouteClass and include is Include


def test_route_matches_channel_and_filters_with_named_groups(layer):
    """C-23: channel must be listed; each filter key must exist and match; groups → kwargs."""
    r = route("http.request", consumer_a, path=r"^/chat/(?P<room>[a-z]+)/$", method=r"^GET$")
    assert r.match(msg(layer, "http.request", path="/chat/lobby/", method="GET")) == (
        consumer_a,
        {"room": "lobby"},
    )
    assert r.match(msg(layer, "http.request", path="/chat/lobby/", method="POST")) is None
    assert r.match(msg(layer, "http.request", method="GET")) is None  # key missing
    assert r.match(msg(layer, "websocket.connect", path="/chat/x/", method="GET")) is None
    assert r.channel_names() == {"http.request"}


def test_route_match_is_anchored_at_start_only(layer):
    """C-23: re.match semantics — anchored at the start; use $ for the end."""
    r = route("http.request", consumer_a, path=r"/a")
    assert r.match(msg(layer, "http.request", path="/abc")) == (consumer_a, {})
    assert r.match(msg(layer, "http.request", path="x/a")) is None


def test_route_accepts_bytes_names_patterns_and_values(layer):
    """C-22/C-23: bytes channel names and patterns decode as ASCII, bytes values too."""
    r = route([b"websocket.receive", "websocket.disconnect"], consumer_a, path=b"^/(?P<x>b)")
    assert r.channel_names() == {"websocket.receive", "websocket.disconnect"}
    assert r.match(msg(layer, "websocket.disconnect", path=b"/b")) == (consumer_a, {"x": "b"})


def test_route_rejects_unnamed_groups():
    """C-23: only named groups are allowed in filters."""
    with pytest.raises(ValueError, match="unnamed groups"):
        route("http.request", consumer_a, path=r"^/(\d+)/$")
    route("http.request", consumer_a, path=r"^/(?:\d+)/$")  # non-capturing is fine


def test_route_consumer_by_dotted_path():
    """C-23: a consumer may be a dotted path; a bad one → ImproperlyConfigured."""
    r = route("http.request", "tests.channels.test_routing.consumer_b")
    assert r.consumer is consumer_b
    with pytest.raises(ImproperlyConfigured, match="Cannot import consumer 'nowhere.nothing'"):
        route("http.request", "nowhere.nothing")


def test_route_class_takes_channels_from_consumer(layer):
    """C-24: channels come from consumer.channel_names(); filters as for Route."""
    r = route_class(ClassConsumer, path=r"^/live/")
    assert r.channel_names() == {"websocket.connect", "websocket.receive"}
    assert r.match(msg(layer, "websocket.receive", path="/live/1")) == (ClassConsumer, {})
    assert r.match(msg(layer, "websocket.disconnect", path="/live/1")) is None
    with pytest.raises(ValueError, match="no valid channel_names method"):
        route_class(consumer_a)


def test_include_strips_prefixes_and_merges_kwargs(layer):
    """C-25: prefix matched and cut off a copy; the consumer gets the original message."""
    chat = [route("websocket.connect", consumer_a, path=r"^/(?P<room>[a-z]+)/$")]
    inc = include(chat, path=r"^/chat/(?P<server>\d+)")
    message = msg(layer, "websocket.connect", path="/chat/7/lobby/")
    assert inc.match(message) == (consumer_a, {"server": "7", "room": "lobby"})
    assert message["path"] == "/chat/7/lobby/"  # original untouched
    assert inc.match(msg(layer, "websocket.connect", path="/other/lobby/")) is None
    assert inc.match(msg(layer, "websocket.connect")) is None  # prefix key missing


def test_include_inner_kwargs_override_outer(layer):
    """C-25: the entry's kwargs override the include's."""
    inner = [route("http.request", consumer_a, path=r"^/(?P<id>\w+)$")]
    inc = include(inner, path=r"^/(?P<id>\d+)")
    assert inc.match(msg(layer, "http.request", path="/12/abc")) == (consumer_a, {"id": "abc"})


def test_include_first_match_wins_and_resolves_dotted_path(layer):
    """C-25: entries in order; routing may be a dotted path (C-22)."""
    inc = include("tests.channels.test_routing.ordered_routing")
    assert inc.match(msg(layer, "http.request", path="/x")) == (consumer_a, {})
    assert inc.channel_names() == {"http.request", "websocket.connect"}


ordered_routing = [
    route("http.request", consumer_a),
    route("http.request", consumer_b),
    route("websocket.connect", consumer_b),
]


def test_router_resolves_dict_and_list_and_path(layer):
    """C-20/C-22: a dict becomes routes; channels is the union of names."""
    router = Router({"http.request": consumer_a, "websocket.connect": consumer_b})
    assert router.channels == {"http.request", "websocket.connect"}
    assert router.match(msg(layer, "websocket.connect")) == (consumer_b, {})
    assert Router("tests.channels.test_routing.ordered_routing").channels == {
        "http.request",
        "websocket.connect",
    }


def test_router_bad_path_is_improperly_configured():
    """C-22: an unimportable routing path names the path and the error."""
    with pytest.raises(ImproperlyConfigured, match="Cannot import channel routing 'nowhere.x'"):
        Router("nowhere.x")
    with pytest.raises(ImproperlyConfigured, match="test_routing.missing"):
        Router("tests.channels.test_routing.missing")


def test_add_route_does_not_mutate_user_list(layer):
    """C-20/C-25: add_route appends to the router's own list and updates channels."""
    user_routes = [route("http.request", consumer_a)]
    router = Router(user_routes)
    router.add_route(route("websocket.receive", consumer_b))
    assert len(user_routes) == 1
    assert "websocket.receive" in router.channels


def test_check_default_appends_after_user_routes(layer):
    """C-21: defaults come last, so user routes win; connect_consumer accepts."""
    router = Router([route("websocket.connect", consumer_a)])
    router.check_default(http_consumer=consumer_b)
    assert router.channels == {
        "http.request",
        "websocket.connect",
        "websocket.receive",
        "websocket.disconnect",
    }
    assert router.match(msg(layer, "websocket.connect"))[0] is consumer_a
    assert router.match(msg(layer, "http.request"))[0] is consumer_b
    assert router.match(msg(layer, "websocket.receive"))[0] is null_consumer


def test_check_default_uses_view_consumer(layer):
    """C-21: without an http_consumer the default is a ViewConsumer."""
    from channels.handler import ViewConsumer

    router = Router([])
    router.check_default()
    assert isinstance(router.match(msg(layer, "http.request"))[0], ViewConsumer)


def test_connect_consumer_accepts(layer):
    """C-21/C-26: connect_consumer sends {"accept": True} on the reply channel."""
    connect_consumer(msg(layer, "websocket.connect", reply_channel="daphne.response.a!b"))
    assert layer.receive(["daphne.response.a!"]) == ("daphne.response.a!b", {"accept": True})
    assert null_consumer(1, 2, x=3) is None


def test_normalise_re_arg():
    """C-22: bytes decode as ASCII, others pass through."""
    assert Router.normalise_re_arg(b"abc") == "abc"
    assert Router.normalise_re_arg(5) == 5


def test_unmatchable_values_do_not_match(layer):
    """C-23/C-25: a non-text or non-ASCII value simply does not match (no exception)."""
    r = route("http.request", consumer_a, path=r"^/")
    inc = include([r], path=r"^/")
    for value in (5, None, b"/\xff", ["/"]):
        assert r.match(msg(layer, "http.request", path=value)) is None
        assert inc.match(msg(layer, "http.request", path=value)) is None
