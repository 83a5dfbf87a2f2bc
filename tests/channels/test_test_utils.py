"""Test utilities: ChannelTestCase, Client, WSClient, apply_routes, aliases (C-8, C-67..C-70)."""

from __future__ import annotations

import importlib
import inspect
import json
import sys
import unittest

import pytest
from django.conf import settings
from django.contrib.auth.models import User
from django.contrib.sessions.models import Session
from django.db import close_old_connections
from django.test import override_settings

from channels import Channel, Group, route
from channels.asgi import ChannelLayerWrapper, channel_layers
from channels.exceptions import WebsocketCloseException
from channels.layers.inmemory import ChannelLayer
from channels.routing import Include
from channels.signals import consumer_finished
from channels.test import (
    ChannelTestCase,
    Client,
    HttpClient,
    TransactionChannelTestCase,
    WSClient,
    apply_routes,
)


def echo(message, **kwargs):
    message.reply_channel.send({"echo": message.content.get("value"), "kwargs": kwargs})


def returns_value(message, **kwargs):
    return ("result", message["value"])


def socket_closer(message, **kwargs):
    raise WebsocketCloseException(4001)


def reject(message, **kwargs):
    message.reply_channel.send({"close": True})


def record_content(message, **kwargs):
    message.reply_channel.send({"content": dict(message.content)})


class ChannelTestCaseTests(ChannelTestCase):
    def test_layer_is_a_fresh_in_memory_layer(self):
        """C-67: each test gets a new in-memory layer wrapper keeping the alias routing."""
        wrapper = channel_layers["default"]
        assert isinstance(wrapper.channel_layer, ChannelLayer)
        assert wrapper.alias == "default"
        assert wrapper.routing == settings.CHANNEL_LAYERS["default"]["ROUTING"]
        assert wrapper.router.channels == set()

    def test_get_next_message(self):
        """C-67: get_next_message returns a Message or None; `require` fails the test."""
        assert self.get_next_message("test.channel") is None
        Channel("test.channel").send({"value": 42})
        message = self.get_next_message("test.channel", require=True)
        assert message.content == {"value": 42}
        assert message.channel.name == "test.channel"
        with pytest.raises(AssertionError, match="Expected a message on channel test.channel"):
            self.get_next_message("test.channel", require=True)


def run_inner(base):
    """Run two inner tests of `base`; return what layers they saw and the outer one."""
    seen = {}
    outer = channel_layers["default"]

    class Inner(base):
        def test_one(self):
            seen["one"] = channel_layers["default"]
            Channel("leak.check").send({"n": 1})

        def test_two(self):
            seen["two"] = channel_layers["default"]
            seen["leaked"] = self.get_next_message("leak.check")

    result = unittest.TextTestRunner(stream=_NullStream(), verbosity=0).run(
        unittest.defaultTestLoader.loadTestsFromTestCase(Inner)
    )
    assert result.wasSuccessful(), result.errors + result.failures
    assert channel_layers["default"] is outer
    return seen, outer


@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize("base", [ChannelTestCase, TransactionChannelTestCase])
def test_test_cases_swap_layers_per_test_and_restore(base):
    """C-67: a fresh layer per test, nothing leaks between tests, restored afterwards.

    TransactionChannelTestCase covers Django 5.2's eager classmethod `_pre_setup`.
    """
    seen, outer = run_inner(base)
    assert seen["one"] is not outer and seen["two"] is not outer
    assert seen["one"] is not seen["two"]
    assert seen["leaked"] is None


class _NullStream:
    def write(self, text):
        pass

    def flush(self):
        pass


@apply_routes([route("test.echo", echo), route("test.value", returns_value)])
class ClientTests(ChannelTestCase):
    def test_reply_channel_name(self):
        """C-68: reply_channel is the alias plus five random letters."""
        client = Client()
        assert client.reply_channel.startswith("default")
        assert len(client.reply_channel) == len("default") + 5
        assert client.reply_channel[len("default") :].isalpha()
        assert client.reply_channel != Client().reply_channel

    def test_send_and_consume_and_receive(self):
        """C-68: send defaults reply_channel, consume runs the routed consumer, receive reads."""
        client = Client()
        client.send_and_consume("test.echo", {"value": "hi"})
        assert client.receive() == {"echo": "hi", "kwargs": {}}
        assert client.receive() is None

    def test_send_copies_content(self):
        """C-68: the caller's dict is not modified by send."""
        content = {"value": 1}
        client = Client()
        client.send("test.echo", content)
        assert content == {"value": 1}
        assert client.get_next_message("test.echo").content == {
            "value": 1,
            "reply_channel": client.reply_channel,
        }

    def test_consume_returns_the_consumer_result(self):
        """C-68: consume returns what the consumer returned."""
        assert Client().send_and_consume("test.value", {"value": 7}) == ("result", 7)

    def test_consume_without_message_or_route(self):
        """C-68: nothing to consume / no route fail with AssertionError unless told not to."""
        client = Client()
        with pytest.raises(AssertionError, match="No message to consume"):
            client.consume("test.echo")
        assert client.consume("test.echo", fail_on_none=False) is None
        client.send("test.unrouted", {})
        with pytest.raises(AssertionError, match="Can't find consumer"):
            client.consume("test.unrouted")
        client.send("test.unrouted", {})
        assert client.consume("test.unrouted", fail_on_none=False) is None

    def test_get_consumer_by_channel(self):
        """C-68: the routed consumer for a channel, or None."""
        client = Client()
        assert client.get_consumer_by_channel("test.echo") is echo
        assert client.get_consumer_by_channel("test.nothing") is None

    def test_sends_are_deferred_until_the_consumer_finishes(self):
        """C-68 with C-19: a consumer's sends reach the layer only after it returns."""
        seen_during = []

        def consumer(message, **kwargs):
            message.reply_channel.send({"n": 1})
            seen_during.append(Client().get_next_message(message.reply_channel.name))

        with apply_routes([route("test.deferred", consumer)]):
            client = Client()
            client.send_and_consume("test.deferred")
        assert seen_during == [None]
        assert client.receive() == {"n": 1}

    def test_close_old_connections_stays_connected(self):
        """C-68: consume disconnects close_old_connections only while it sends the signal."""
        Client().send_and_consume("test.echo", {"value": 1})
        # disconnect() reports whether the receiver was connected; put it back after.
        assert consumer_finished.disconnect(close_old_connections) is True
        consumer_finished.connect(close_old_connections)

    def test_channel_socket_exception_is_run(self):
        """C-68: a raised ChannelSocketException is run, like the worker does."""
        with apply_routes([route("websocket.receive", socket_closer)]):
            client = Client()
            client.send_and_consume("websocket.receive", {"text": "x"})
        assert client.receive() == {"close": 4001}

    def test_join_group(self):
        """C-68: join_group adds the reply channel to a group."""
        client = Client()
        client.join_group("watchers")
        Group("watchers").send({"news": 1})
        assert client.receive() == {"news": 1}


class WSClientTests(ChannelTestCase):
    def test_http_client_is_ws_client(self):
        """C-8: HttpClient is the same class as WSClient."""
        assert HttpClient is WSClient

    def test_headers_carry_session_cookie_until_first_send(self):
        """C-69: headers is a dict with an ASCII cookie; the session cookie goes once."""
        client = WSClient()
        client.set_cookie("flavour", "mint")
        headers = client.headers
        assert isinstance(headers, dict)
        assert isinstance(headers["cookie"], bytes)
        cookie = headers["cookie"].decode("ascii")
        assert "flavour=mint" in cookie
        assert f"sessionid={client.session.session_key}" in cookie
        with apply_routes([route("websocket.receive", record_content)]):
            client.send_and_consume("websocket.receive", text="a")
            first = client.receive(json=False)["content"]
            client.send_and_consume("websocket.receive", text="b")
            second = client.receive(json=False)["content"]
        assert b"sessionid=" in first["headers"]["cookie"]
        assert b"sessionid=" not in second["headers"]["cookie"]
        assert b"flavour=mint" in second["headers"]["cookie"]

    def test_cookie_header_parses_back_with_django(self):
        """C-69: the cookie header, read back by Django's own parser (as 1.x tests do),
        gives `get_cookies()`, special characters included."""
        from django.http.cookie import parse_cookie

        client = WSClient()
        client.set_cookie("foo", "not-bar")
        client.set_cookie("foo", "bar")
        client.set_cookie("qux", "qu;x")
        cookie_dict = parse_cookie(client.headers["cookie"].decode("ascii"))
        assert client.get_cookies() == cookie_dict
        assert cookie_dict == {
            "foo": "bar",
            "qux": "qu;x",
            "sessionid": client.get_cookies()["sessionid"],
        }

    def test_set_header(self):
        """C-69: set_header adds headers; the cookie header is refused."""
        client = WSClient()
        client.set_header("origin", b"http://example.com")
        assert client.headers["origin"] == b"http://example.com"
        with pytest.raises(ValueError, match="set_cookie"):
            client.set_header("cookie", b"a=b")

    def test_session_is_the_reply_channel_session(self):
        """C-69: session is the channel session of the client's reply channel."""
        client = WSClient()
        assert client.session.session_key.startswith("chn")
        assert client.session is client.session

    @override_settings(
        INSTALLED_APPS=[
            "django.contrib.auth",
            "django.contrib.contenttypes",
            "channels",
        ]
    )
    def test_session_needs_sessions_app(self):
        """C-69: without django.contrib.sessions, session raises EnvironmentError."""
        client = WSClient()
        with pytest.raises(EnvironmentError, match="django.contrib.sessions"):
            client.session  # noqa: B018
        assert "cookie" in client.headers  # no session cookie, but no error either

    def test_path_and_query_string(self):
        """C-69: connect splits the query string off the path; other channels drop it."""
        client = WSClient()
        with apply_routes(
            [
                route("websocket.connect", record_content),
                route("websocket.receive", record_content),
            ]
        ):
            client.send_and_consume("websocket.connect", path="/room/?x=1", check_accept=False)
            connect = client.receive()["content"]
            client.send_and_consume("websocket.receive", path="/room/?x=1", text="hi")
            receive = client.receive()["content"]
        assert connect["path"] == "/room/" and connect["query_string"] == "x=1"
        assert receive["path"] == "/room/" and "query_string" not in receive
        assert connect["reply_channel"] == client.reply_channel

    def test_ordered_numbering(self):
        """C-69: ordered clients number messages 0, 1, 2...; manual order is refused."""
        client = WSClient(ordered=True)
        for _ in range(3):
            client.send("websocket.receive", text="x")
        orders = [client.get_next_message("websocket.receive")["order"] for _ in range(3)]
        assert orders == [0, 1, 2]
        with pytest.raises(ValueError, match="order"):
            client.send("websocket.receive", {"order": 5})
        plain = WSClient()
        plain.send("websocket.receive", {"order": 5})
        assert plain.get_next_message("websocket.receive")["order"] == 5

    def test_text_is_json_encoded(self):
        """C-69: non-str text is JSON-encoded; str text is sent as-is."""
        client = WSClient()
        client.send("websocket.receive", text={"a": [1, 2]})
        assert json.loads(client.get_next_message("websocket.receive")["text"]) == {"a": [1, 2]}
        client.send("websocket.receive", text="raw")
        assert client.get_next_message("websocket.receive")["text"] == "raw"
        client.send("websocket.receive", {"text": ["in", "content"]})
        assert client.get_next_message("websocket.receive")["text"] == '["in", "content"]'

    def test_receive_forms(self):
        """C-69: receive decodes JSON text, returns raw text, whole content, or None."""
        client = WSClient()
        assert client.receive() is None
        Channel(client.reply_channel).send({"text": '{"k": 1}'})
        assert client.receive() == {"k": 1}
        Channel(client.reply_channel).send({"text": '{"k": 1}'})
        assert client.receive(json=False) == '{"k": 1}'
        Channel(client.reply_channel).send({"bytes": b"\x00"})
        assert client.receive() == {"bytes": b"\x00"}

    def test_receive_returns_the_text_value_of_any_type(self):
        """C-69 (issue 13): as 1.x, a reply with `text` gives that value whatever its
        type, JSON-decoded only when it is a str; without `text`, the whole content."""
        client = WSClient()
        Channel(client.reply_channel).send({"text": {"key1": ["val1"]}, "other": 1})
        assert client.receive() == {"key1": ["val1"]}
        Channel(client.reply_channel).send({"text": ["a", 1]})
        assert client.receive(json=False) == ["a", 1]
        Channel(client.reply_channel).send({"text": "2"})
        assert client.receive() == 2
        Channel(client.reply_channel).send({"text": "not json", "close": True})
        assert client.receive(json=False) == "not json"
        Channel(client.reply_channel).send({"accept": True})
        assert client.receive(json=False) == {"accept": True}

    def test_get_content_keeps_the_1x_signature(self):
        """C-69 (issue 13): 1.x tests call `_get_content(content={}, text=None, path="/")`
        directly; defaults are filled in without naming a channel."""
        parameters = inspect.signature(WSClient._get_content).parameters
        assert list(parameters) == ["self", "content", "text", "path"]
        assert [parameters[name].default for name in ("content", "text", "path")] == [
            {},
            None,
            "/",
        ]
        client = WSClient()
        content = client._get_content()
        assert content["path"] == "/"
        assert content["reply_channel"] == client.reply_channel
        assert "query_string" not in content and "text" not in content
        assert b"sessionid" in content["headers"]["cookie"]
        content = client._get_content(text={"key": "value"}, path="/my/path")
        assert content["text"] == '{"key": "value"}'
        assert content["path"] == "/my/path"
        content = client._get_content(content={"path": "/my_path"}, text={"path": "hi"})
        assert (content["path"], content["text"]) == ("/my_path", '{"path": "hi"}')

    def test_get_content_splits_any_query_string(self):
        """C-69 (issue 13): `_get_content` sets `query_string` whenever `path` holds a ?."""
        content = WSClient()._get_content(path="/my/path?test=1&token=2")
        assert content["path"] == "/my/path"
        assert content["query_string"] == "test=1&token=2"

    def test_get_content_text_fallback_and_order(self):
        """C-69: an empty `text` argument falls back to the content's (as 1.x); ordered
        clients number from `order`, which tests may set."""
        client = WSClient(ordered=True)
        assert client._get_content({"text": "kept"}, text="")["text"] == "kept"
        assert "text" not in client._get_content(text="")
        client.order = 5
        assert client._get_content()["order"] == 5
        assert client._get_content()["order"] == 6

    def test_get_params_reach_the_consumer_on_connect_only(self):
        """C-69, A-83 (issue 13): the 1.x test's flow: a consumer builds an AsgiRequest
        from the socket message and replies with its GET as (non-str) `text`."""
        from channels.handler import AsgiRequest

        def consumer(message):
            message.content["method"] = "FAKE"
            message.reply_channel.send({"text": dict(AsgiRequest(message).GET)})

        client = WSClient(ordered=True)
        with apply_routes(
            [
                route("websocket.receive", consumer, path=r"^/test"),
                route("websocket.connect", consumer, path=r"^/test"),
            ]
        ):
            path = "/test?key1=val1&key2=val2&key1=val3"
            client.send_and_consume("websocket.connect", path=path, check_accept=False)
            assert client.receive() == {"key2": ["val2"], "key1": ["val1", "val3"]}
            client.send_and_consume("websocket.receive", path=path)
            assert client.receive() == {}

    def test_check_accept(self):
        """C-69: consuming websocket.connect requires exactly {"accept": True}."""
        client = WSClient()
        with apply_routes([route("websocket.connect", reject)]):
            with pytest.raises(AssertionError, match="Connection rejected"):
                client.send_and_consume("websocket.connect")
            client.send_and_consume("websocket.connect", check_accept=False)
            assert client.receive() == {"close": True}

    def test_login(self):
        """C-69: login authenticates against the real auth backend and saves the session."""
        User.objects.create_user("alice", password="secret")
        client = WSClient()
        assert client.login(username="alice", password="wrong") is False
        assert client.login(username="alice", password="secret") is True
        stored = Session.objects.get(session_key=client.session.session_key).get_decoded()
        assert stored["_auth_user_id"] == str(User.objects.get(username="alice").pk)

    def test_login_refuses_inactive_user(self):
        """C-69: an inactive user cannot log in."""
        User.objects.create_user("bob", password="secret", is_active=False)
        assert WSClient().login(username="bob", password="secret") is False

    def test_force_login(self):
        """C-69: force_login logs any user in with the first backend by default."""
        user = User.objects.create_user("carol")
        client = WSClient()
        client.force_login(user)
        stored = Session.objects.get(session_key=client.session.session_key).get_decoded()
        assert stored["_auth_user_id"] == str(user.pk)
        assert stored["_auth_user_backend"] == "django.contrib.auth.backends.ModelBackend"


class ApplyRoutesTests(ChannelTestCase):
    def test_context_manager_sets_and_restores(self):
        """C-70: entering sets routing and router; exit restores both objects."""
        wrapper = channel_layers["default"]
        old_routing, old_router = wrapper.routing, wrapper.router
        with apply_routes([route("test.echo", echo)]):
            assert wrapper.router.channels == {"test.echo"}
            assert Client().get_consumer_by_channel("test.echo") is echo
        assert wrapper.routing is old_routing and wrapper.router is old_router

    def test_restores_after_an_exception(self):
        """C-70: routes are restored when the block raises."""
        wrapper = channel_layers["default"]
        old_router = wrapper.router
        with pytest.raises(RuntimeError), apply_routes(route("test.echo", echo)):
            raise RuntimeError("boom")
        assert wrapper.router is old_router

    def test_single_route_list_of_lists_and_empty(self):
        """C-70: one routing object, a list of lists (each an include), or no routes."""
        wrapper = channel_layers["default"]
        with apply_routes(route("test.echo", echo)):
            assert wrapper.router.channels == {"test.echo"}
        with apply_routes([[route("test.a", echo)], [route("test.b", echo)]]):
            assert all(isinstance(entry, Include) for entry in wrapper.routing)
            assert wrapper.router.channels == {"test.a", "test.b"}
        with apply_routes([]):
            assert wrapper.router.channels == set()
            assert Client().get_consumer_by_channel("test.echo") is None

    def test_function_decorator(self):
        """C-70: as a function decorator the routes apply only during the call."""

        @apply_routes([route("test.echo", echo)])
        def inside():
            return Client().get_consumer_by_channel("test.echo")

        assert inside() is echo
        assert Client().get_consumer_by_channel("test.echo") is None

    def test_each_alias_uses_its_own_layer(self):
        """C-70: routes go to every alias listed, each on its own layer."""
        other = ChannelLayerWrapper(ChannelLayer(), "other", [])
        previous = channel_layers.set("other", other)
        try:
            with apply_routes([route("test.echo", echo)], aliases=["default", "other"]):
                assert other.router.channels == {"test.echo"}
                assert channel_layers["default"].router.channels == {"test.echo"}
                client = Client(alias="other")
                client.send_and_consume("test.echo", {"value": "o"})
                assert client.receive() == {"echo": "o", "kwargs": {}}
            assert other.router.channels == set()
        finally:
            if previous is None:
                channel_layers.backends.pop("other")
            else:
                channel_layers.set("other", previous)


@apply_routes([route("test.echo", echo)])
class ApplyRoutesClassDecoratorTests(ChannelTestCase):
    def setUp(self):
        self.consumer_in_setup = Client().get_consumer_by_channel("test.echo")

    def test_routes_apply_from_setup_on(self):
        """C-70: on a class the routes are active in setUp and the test."""
        assert self.consumer_in_setup is echo
        assert Client().get_consumer_by_channel("test.echo") is echo


@pytest.mark.parametrize(
    ("module", "names"),
    [
        ("channels.tests", ["ChannelTestCase", "WSClient", "apply_routes"]),
        ("channels.test.http", ["HttpClient"]),
    ],
)
def test_deprecated_aliases_warn(module, names):
    """C-8: channels.tests and channels.test.http warn and re-export."""
    sys.modules.pop(module, None)
    with pytest.warns(DeprecationWarning, match="deprecated"):
        imported = importlib.import_module(module)
    import channels.test

    for name in names:
        assert getattr(imported, name) is getattr(channels.test, name)
