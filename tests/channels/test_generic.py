"""Generic consumers: BaseConsumer, WebSocket consumers, (de)multiplexing (C-53..C-57).

Each test drives a consumer class through `WSClient` on a fresh in-memory layer,
with real sessions and users on the SQLite test database.
"""

from __future__ import annotations

import json

import pytest
from django.contrib.auth.models import User

from channels import Group
from channels.exceptions import SendNotAvailableOnDemultiplexer
from channels.generic import BaseConsumer
from channels.generic.websockets import (
    JsonWebsocketConsumer,
    WebsocketConsumer,
    WebsocketDemultiplexer,
    WebsocketMultiplexer,
)
from channels.message import Message
from channels.routing import RouteClass
from channels.test import ChannelTestCase, Client, WSClient, apply_routes


class Counter(BaseConsumer):
    method_mapping = {"test.count": "count", "test.peek": "peek"}
    channel_session = True

    def count(self, message, **kwargs):
        session = message.channel_session
        session["n"] = session.get("n", 0) + 1
        message.reply_channel.send({"n": session["n"], "kwargs": kwargs})

    def peek(self, message, **kwargs):
        message.reply_channel.send({"has_session": hasattr(message, "channel_session")})


class Plain(BaseConsumer):
    method_mapping = {"test.plain": "handle"}

    def handle(self, message, **kwargs):
        message.reply_channel.send(
            {
                "has_session": hasattr(message, "channel_session"),
                "same_message": self.message is message,
                "kwargs": self.kwargs,
            }
        )


class WhoAmI(BaseConsumer):
    method_mapping = {"test.whoami": "handle"}
    channel_session_user = True

    def handle(self, message, **kwargs):
        message.reply_channel.send({"user": message.user.get_username()})


class BaseConsumerTests(ChannelTestCase):
    def test_channel_names(self):
        """C-53: channel_names is the set of method_mapping keys."""
        assert Counter.channel_names() == {"test.count", "test.peek"}

    def test_dispatch_by_channel(self):
        """C-53: instantiation dispatches to the mapped method with the route kwargs."""
        with apply_routes([Plain.as_route(value=r"^(?P<word>\w+)$")]):
            client = Client()
            client.send_and_consume("test.plain", {"value": "hello"})
        assert client.receive() == {
            "has_session": False,
            "same_message": True,
            "kwargs": {"word": "hello"},
        }

    def test_channel_session_flag(self):
        """C-53: channel_session = True wraps handlers in channel_session."""
        with apply_routes([Counter.as_route()]):
            client = Client()
            client.send_and_consume("test.count")
            client.send_and_consume("test.count")
            assert [client.receive()["n"], client.receive()["n"]] == [1, 2]
            client.send_and_consume("test.peek")
            assert client.receive() == {"has_session": True}

    def test_channel_session_user_flag(self):
        """C-53: channel_session_user = True gives message.user."""
        with apply_routes([WhoAmI.as_route()]):
            client = Client()
            client.send_and_consume("test.whoami")
        assert client.receive() == {"user": ""}

    def test_as_route_filters_and_attrs(self):
        """C-53: as_route builds a route_class; attrs make a same-named subclass."""
        plain_route = Counter.as_route(path=r"^/a/")
        assert isinstance(plain_route, RouteClass)
        assert plain_route.consumer is Counter
        sub_route = Counter.as_route(attrs={"channel_session": False}, path=r"^/b/")
        subclass = sub_route.consumer
        assert subclass is not Counter and issubclass(subclass, Counter)
        assert subclass.__name__ == "Counter" and subclass.channel_session is False
        assert Counter.channel_session is True
        message = Message({"path": "/b/x"}, "test.count", None)
        assert sub_route.match(message) == (subclass, {})
        assert sub_route.match(Message({"path": "/a/"}, "test.count", None)) is None

    def test_as_route_attrs_must_be_a_dict(self):
        """C-53: non-dict attrs -> AssertionError."""
        with pytest.raises(AssertionError, match="dict"):
            Counter.as_route(attrs=[("channel_session", False)])


class Room(WebsocketConsumer):
    """Echoes frames, joins a group named after the route's `room` kwarg."""

    def connection_groups(self, room=None, **kwargs):
        return [f"room-{room}"]

    def connect(self, message, room=None, **kwargs):
        if room == "closed":
            self.close(status=4003)
            return
        super().connect(message, **kwargs)

    def receive(self, text=None, bytes=None, **kwargs):
        if text == "bye":
            self.send(text="bye", close=True)
        elif text is not None:
            self.send(text=f"{self.path}:{text}")
        else:
            self.send(bytes=bytes[::-1])


class StaticGroups(WebsocketConsumer):
    groups = ["everyone"]


ROOM_ROUTES = [Room.as_route(path=r"^/rooms/(?P<room>[a-z]+)/$"), StaticGroups.as_route()]


@apply_routes(ROOM_ROUTES)
class WebsocketConsumerTests(ChannelTestCase):
    def test_connect_accepts_and_joins_groups(self):
        """C-54: raw_connect adds the reply channel to the connection groups, then accepts."""
        client = WSClient()
        client.send_and_consume("websocket.connect", path="/rooms/blue/")
        Group("room-blue").send({"text": "broadcast"})
        assert client.receive(json=False) == "broadcast"

    def test_disconnect_leaves_groups(self):
        """C-54: raw_disconnect discards the reply channel from the groups."""
        client = WSClient()
        client.send_and_consume("websocket.connect", path="/rooms/blue/")
        client.send_and_consume("websocket.disconnect", {"code": 1000}, path="/rooms/blue/")
        Group("room-blue").send({"text": "broadcast"})
        assert client.receive() is None

    def test_static_groups_attribute(self):
        """C-54: `groups` is the default connection_groups."""
        client = WSClient()
        client.send_and_consume("websocket.connect", path="/anything")
        WebsocketConsumer.group_send("everyone", text="hi all")
        assert client.receive(json=False) == "hi all"

    def test_receive_text_and_bytes(self):
        """C-54: raw_receive passes text, else bytes; send sends text or bytes; path is set."""
        client = WSClient()
        client.send_and_consume("websocket.connect", path="/rooms/red/")
        client.send_and_consume("websocket.receive", text="hello", path="/rooms/red/")
        assert client.receive(json=False) == "/rooms/red/:hello"
        client.send_and_consume(
            "websocket.receive", {"bytes": b"abc", "text": None}, path="/rooms/red/"
        )
        assert client.receive() == {"bytes": b"cba"}

    def test_send_with_close(self):
        """C-54: send(close=True) adds close to the frame."""
        client = WSClient()
        client.send_and_consume("websocket.receive", text="bye", path="/rooms/red/")
        reply = self.get_next_message(client.reply_channel, require=True)
        assert reply.content == {"text": "bye", "close": True}

    def test_close_with_status(self):
        """C-54: close(status) sends {"close": status}."""
        client = WSClient()
        client.send_and_consume("websocket.connect", path="/rooms/closed/", check_accept=False)
        assert client.receive() == {"close": 4003}

    def test_send_needs_text_or_bytes(self):
        """C-54: send() with neither -> ValueError."""
        client = WSClient()
        client.send("websocket.receive", text="x", path="/rooms/red/")
        consumer = Room.__new__(Room)
        consumer.message = client.get_next_message("websocket.receive")
        with pytest.raises(ValueError, match="You must pass text or bytes"):
            consumer.send()
        with pytest.raises(ValueError, match="You must pass text or bytes"):
            WebsocketConsumer.group_send("everyone")

    def test_group_send_with_close(self):
        """C-54: group_send sends text or bytes to the group, plus close if asked."""
        client = WSClient()
        client.send_and_consume("websocket.connect", path="/x")
        WebsocketConsumer.group_send("everyone", bytes=b"\x01", close=True)
        assert client.receive() == {"bytes": b"\x01", "close": True}


class HttpUserConsumer(WebsocketConsumer):
    http_user = True

    def connect(self, message, **kwargs):
        self.message.reply_channel.send({"accept": True})

    def receive(self, text=None, bytes=None, **kwargs):
        self.send(text=self.message.user.get_username())


class HttpUserAndSessionConsumer(HttpUserConsumer):
    http_user = False
    http_user_and_session = True

    def receive(self, text=None, bytes=None, **kwargs):
        http = self.message.http_session
        self.send(text=json.dumps([self.message.user.get_username(), http is not None]))


ordered_texts: list[str] = []


class StrictConsumer(WebsocketConsumer):
    strict_ordering = True

    def receive(self, text=None, bytes=None, **kwargs):
        ordered_texts.append(text)


class SlightConsumer(WebsocketConsumer):
    slight_ordering = True


class WebsocketConsumerOptionTests(ChannelTestCase):
    def setUp(self):
        User.objects.create_user("dana", password="pw")
        ordered_texts.clear()

    def test_http_user(self):
        """C-54: http_user takes the user from the HTTP session at connect, for all frames."""
        with apply_routes([HttpUserConsumer.as_route()]):
            client = WSClient()
            assert client.login(username="dana", password="pw")
            client.send_and_consume("websocket.connect")
            client.send_and_consume("websocket.receive", text="who")
            assert client.receive(json=False) == "dana"

    def test_http_user_and_session(self):
        """C-54: http_user_and_session also keeps message.http_session on later frames."""
        with apply_routes([HttpUserAndSessionConsumer.as_route()]):
            client = WSClient()
            assert client.login(username="dana", password="pw")
            client.send_and_consume("websocket.connect")
            client.send_and_consume("websocket.receive", text="who")
            assert client.receive() == ["dana", True]

    def test_strict_ordering(self):
        """C-54 with C-45: strict_ordering runs frames in `order`."""
        with apply_routes([StrictConsumer.as_route()]):
            client = WSClient()
            for order, text in ((2, "second"), (1, "first")):
                client.send("websocket.receive", {"order": order}, text=text)
            client.send_and_consume("websocket.connect", {"order": 0})
            for _ in range(4):
                client.consume("websocket.receive", fail_on_none=False)
        assert ordered_texts == ["first", "second"]

    def test_slight_ordering_refused(self):
        """C-54: a truthy slight_ordering attribute -> ValueError."""
        with apply_routes([SlightConsumer.as_route()]):
            client = WSClient()
            with pytest.raises(ValueError, match="Slight ordering is now always on"):
                client.send_and_consume("websocket.connect")


class JsonEcho(JsonWebsocketConsumer):
    def receive(self, content, **kwargs):
        self.send({"got": content, "kwargs": sorted(kwargs)})


class JsonWebsocketConsumerTests(ChannelTestCase):
    def test_receive_decodes_send_encodes(self):
        """C-55: frames are JSON-decoded for receive; send JSON-encodes."""
        with apply_routes([JsonEcho.as_route()]):
            client = WSClient()
            client.send_and_consume("websocket.receive", text={"a": [1, 2]})
        reply = client.receive(json=False)
        assert json.loads(reply) == {"got": {"a": [1, 2]}, "kwargs": []}

    def test_binary_frame_refused(self):
        """C-55: a frame without text -> ValueError."""
        with apply_routes([JsonEcho.as_route()]):
            client = WSClient()
            client.send("websocket.receive", {"bytes": b"{}"})
            with pytest.raises(ValueError, match="No text section"):
                client.consume("websocket.receive")

    def test_group_send(self):
        """C-55: group_send JSON-encodes for the whole group, with close if asked."""
        client = WSClient()
        client.join_group("json-group")
        JsonWebsocketConsumer.group_send("json-group", {"k": "v"}, close=True)
        reply = self.get_next_message(client.reply_channel, require=True)
        assert reply.content == {"text": '{"k": "v"}', "close": True}

    def test_encoding_is_overridable(self):
        """C-55: decode_json/encode_json are classmethods subclasses replace."""

        class Sorted(JsonEcho):
            @classmethod
            def encode_json(cls, content):
                return json.dumps(content, sort_keys=True, separators=(",", ":"))

        with apply_routes([Sorted.as_route()]):
            client = WSClient()
            client.send_and_consume("websocket.receive", text={"b": 1})
        assert client.receive(json=False) == '{"got":{"b":1},"kwargs":[]}'


stream_calls: list[tuple[str, str, object]] = []


class EchoStream(JsonWebsocketConsumer):
    def connect(self, message, multiplexer=None, **kwargs):
        stream_calls.append(("connect", multiplexer.stream, None))

    def receive(self, content, multiplexer=None, **kwargs):
        stream_calls.append(("receive", multiplexer.stream, content))
        multiplexer.send({"echo": content})

    def disconnect(self, message, multiplexer=None, **kwargs):
        stream_calls.append(("disconnect", multiplexer.stream, None))


class OtherStream(EchoStream):
    pass


class TalkativeStream(JsonWebsocketConsumer):
    def receive(self, content, **kwargs):
        self.send({"direct": True})


class Demux(WebsocketDemultiplexer):
    consumers = {"echo": EchoStream, "other": OtherStream}


class TalkativeDemux(WebsocketDemultiplexer):
    consumers = {"talk": TalkativeStream}


@apply_routes([Demux.as_route(path=r"^/demux/")])
class DemultiplexerTests(ChannelTestCase):
    def setUp(self):
        stream_calls.clear()
        self.client = WSClient()

    def frame(self, stream, payload):
        return {"stream": stream, "payload": payload}

    def test_connect_and_disconnect_reach_every_stream(self):
        """C-57: connect accepts, then every consumer sees connect/disconnect with a multiplexer."""
        self.client.send_and_consume("websocket.connect", path="/demux/")
        self.client.send_and_consume("websocket.disconnect", {"code": 1000}, path="/demux/")
        assert sorted(stream_calls) == [
            ("connect", "echo", None),
            ("connect", "other", None),
            ("disconnect", "echo", None),
            ("disconnect", "other", None),
        ]

    def test_receive_routes_by_stream_and_multiplexer_replies(self):
        """C-57, C-56: the payload goes to the stream's consumer; replies are framed."""
        self.client.send_and_consume(
            "websocket.receive", text=self.frame("other", {"x": 1}), path="/demux/"
        )
        assert stream_calls == [("receive", "other", {"x": 1})]
        assert self.client.receive() == {"stream": "other", "payload": {"echo": {"x": 1}}}

    def test_invalid_frames(self):
        """C-57: missing keys, unmapped streams and non-dict payloads -> ValueError."""
        for bad, match in (
            ({"payload": {}}, "'stream' and 'payload'"),
            (["echo", {}], "'stream' and 'payload'"),
            (self.frame("nope", {}), "not mapped"),
            (self.frame("echo", [1, 2]), "not a dict"),
        ):
            self.client.send("websocket.receive", text=bad, path="/demux/")
            with pytest.raises(ValueError, match=match):
                self.client.consume("websocket.receive")
        assert stream_calls == []

    def test_demultiplexer_cannot_send(self):
        """C-57: send and group_send raise SendNotAvailableOnDemultiplexer."""
        with pytest.raises(SendNotAvailableOnDemultiplexer):
            Demux.group_send("g", "echo", {})
        with apply_routes([TalkativeDemux.as_route()]):
            self.client.send("websocket.receive", text=self.frame("talk", {}))
            with pytest.raises(SendNotAvailableOnDemultiplexer, match="multiplexer"):
                self.client.consume("websocket.receive")

    def test_encode_alias(self):
        """C-57: encode is the multiplexer class's encode."""
        assert Demux.encode("echo", {"a": 1}) == WebsocketMultiplexer.encode("echo", {"a": 1})


class MultiplexerTests(ChannelTestCase):
    def test_encode_uses_django_json_encoder(self):
        """C-56: encode gives a text frame; DjangoJSONEncoder handles dates, decimals, UUIDs."""
        import datetime
        import decimal

        frame = WebsocketMultiplexer.encode(
            "s", {"when": datetime.date(2020, 1, 2), "amount": decimal.Decimal("1.50")}
        )
        assert json.loads(frame["text"]) == {
            "stream": "s",
            "payload": {"when": "2020-01-02", "amount": "1.50"},
        }

    def test_group_send(self):
        """C-56: group_send frames the payload for a group, adding close when asked."""
        client = WSClient()
        client.join_group("mux")
        WebsocketMultiplexer.group_send("mux", "s", {"n": 1})
        assert client.receive() == {"stream": "s", "payload": {"n": 1}}
        WebsocketMultiplexer.group_send("mux", "s", {"n": 2}, close=True)
        reply = self.get_next_message(client.reply_channel, require=True)
        assert reply["close"] is True and json.loads(reply["text"])["payload"] == {"n": 2}
