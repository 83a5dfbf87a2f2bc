"""Channel sessions, HTTP sessions and strict ordering (C-43..C-47).

Real session backends (database, cache) on the SQLite test database; messages go
through the test clients and an in-memory layer.
"""

from __future__ import annotations

import hashlib
import random
import threading

import pytest
from django.conf import settings
from django.contrib.sessions.backends.cache import SessionStore as CacheSessionStore
from django.contrib.sessions.backends.db import SessionStore as DbSessionStore
from django.contrib.sessions.models import Session
from django.test import override_settings

from channels import route
from channels.asgi import ChannelLayerWrapper, channel_layers
from channels.exceptions import ConsumeLater
from channels.layers.inmemory import ChannelLayer
from channels.message import Message
from channels.sessions import (
    channel_and_http_session,
    channel_session,
    enforce_ordering,
    http_session,
    session_for_reply_channel,
)
from channels.test import (
    ChannelTestCase,
    Client,
    TransactionChannelTestCase,
    WSClient,
    apply_routes,
)
from channels.worker import Worker


class SessionStore(DbSessionStore):
    """A database session engine where another worker always creates the row first.

    Used as ``CHANNEL_SESSION_ENGINE = "tests.channels.test_sessions"``: `exists`
    answers no, so the create that follows collides with the existing row, as
    when two workers open a connection's session at the same moment.
    """

    def exists(self, session_key):
        return False


@channel_session
def count_visits(message, **kwargs):
    message.channel_session["visits"] = message.channel_session.get("visits", 0) + 1
    message.reply_channel.send({"visits": message.channel_session["visits"]})


@channel_session
def read_only(message, **kwargs):
    message.reply_channel.send({"keys": sorted(message.channel_session.keys())})


@channel_session
def write_then_fail(message, **kwargs):
    message.channel_session["written"] = True
    raise RuntimeError("consumer failed after writing")


class MethodConsumer:
    @channel_session
    def handle(self, message, **kwargs):
        message.channel_session["via_method"] = True


class SessionForReplyChannelTests(ChannelTestCase):
    def test_key_is_derived_from_the_name(self):
        """C-43: key = "chn" + first 29 hex digits of SHA-1 of the reply channel name."""
        session = session_for_reply_channel("daphne.response.abc!xyz")
        expected = "chn" + hashlib.sha1(b"daphne.response.abc!xyz").hexdigest()[:29]
        assert session.session_key == expected
        assert len(session.session_key) == 32
        assert session_for_reply_channel("other").session_key != expected

    def test_key_survives_loading_a_missing_session(self):
        """C-43: Django resets unknown keys on load; the computed key is put back."""
        session = session_for_reply_channel("fresh.channel")
        assert not Session.objects.filter(session_key=session.session_key).exists()
        session["x"] = 1
        session.save(must_create=True)
        stored = Session.objects.get(session_key=session.session_key)
        assert stored.get_decoded() == {"x": 1}

    def test_engine_setting(self):
        """C-43: CHANNEL_SESSION_ENGINE wins over SESSION_ENGINE."""
        assert isinstance(session_for_reply_channel("a.b"), DbSessionStore)
        with override_settings(CHANNEL_SESSION_ENGINE="django.contrib.sessions.backends.cache"):
            assert isinstance(session_for_reply_channel("a.b"), CacheSessionStore)

    def test_signed_cookies_refused(self):
        """C-43: the signed-cookie engine cannot hold channel sessions."""
        with (
            override_settings(SESSION_ENGINE="django.contrib.sessions.backends.signed_cookies"),
            pytest.raises(ValueError, match="signed cookie"),
        ):
            session_for_reply_channel("a.b")


@apply_routes(
    [
        route("test.visit", count_visits),
        route("test.read", read_only),
        route("test.fail", write_then_fail),
    ]
)
class ChannelSessionTests(ChannelTestCase):
    def test_session_persists_per_reply_channel(self):
        """C-44: the same reply channel sees its session again; another one does not."""
        client, other = Client(), Client()
        for expected in (1, 2, 3):
            client.send_and_consume("test.visit")
            assert client.receive() == {"visits": expected}
        other.send_and_consume("test.visit")
        assert other.receive() == {"visits": 1}
        stored = session_for_reply_channel(client.reply_channel)
        assert stored["visits"] == 3

    def test_session_row_created_up_front(self):
        """C-44: a new session is created at once so its key stays valid."""
        client = Client()
        client.send_and_consume("test.read")
        assert client.receive() == {"keys": []}
        key = session_for_reply_channel(client.reply_channel).session_key
        assert Session.objects.filter(session_key=key).exists()

    def test_saved_even_when_the_consumer_raises(self):
        """C-44: changes are saved afterwards, also on exception."""
        client = Client()
        with pytest.raises(RuntimeError, match="consumer failed"):
            client.send_and_consume("test.fail")
        assert session_for_reply_channel(client.reply_channel)["written"] is True

    def test_method_consumers(self):
        """C-44: the message may be the second positional argument (methods)."""
        client = Client()
        client.send("test.method")
        message = client.get_next_message("test.method")
        MethodConsumer().handle(message)
        assert session_for_reply_channel(client.reply_channel)["via_method"] is True

    def test_needs_a_message(self):
        """C-44: no Message among the first two arguments -> ValueError."""
        with pytest.raises(ValueError, match="channel_session called without Message instance"):
            count_visits({"reply_channel": "x"})

    def test_needs_a_reply_channel(self):
        """C-44: a message without reply channel -> ValueError."""
        message = Message({}, "test.visit", channel_layers["default"])
        with pytest.raises(ValueError, match="reply_channel"):
            count_visits(message)

    def test_nested_decorators_share_one_session(self):
        """C-44: an existing channel_session is reused and saved if modified."""

        @channel_session
        @channel_session
        def twice(message, **kwargs):
            message.channel_session["depth"] = "inner"

        client = Client()
        client.send("test.nested")
        twice(client.get_next_message("test.nested"))
        assert session_for_reply_channel(client.reply_channel)["depth"] == "inner"

    @override_settings(CHANNEL_SESSION_ENGINE="tests.channels.test_sessions")
    def test_create_race_becomes_consume_later(self):
        """C-44: when another worker created the session first, ConsumeLater retries."""
        client = Client()
        session_for_reply_channel(client.reply_channel).save(must_create=True)
        client.send("test.visit")
        with pytest.raises(ConsumeLater):
            count_visits(client.get_next_message("test.visit"))


ordered_log: list[int] = []


@enforce_ordering
def ordered_consumer(message, **kwargs):
    ordered_log.append(message["order"])


@enforce_ordering()
def ordered_consumer_called(message, **kwargs):
    ordered_log.append(message["order"])


class ParkHookLayer(ChannelLayer):
    """An in-memory layer that runs a hook right after a message is parked.

    It reproduces a race deterministically: the awaited message finishes (in
    another worker) between parking this one and re-reading the session.
    """

    on_park = None

    def send(self, channel, message):
        super().send(channel, message)
        if channel.startswith("__wait__.") and self.on_park is not None:
            hook, self.on_park = self.on_park, None
            hook()


@apply_routes([route("websocket.receive", ordered_consumer)])
class EnforceOrderingTests(ChannelTestCase):
    def setUp(self):
        ordered_log.clear()

    def test_out_of_order_messages_wait_their_turn(self):
        """C-45: early messages are parked and requeued; consumers run in order."""
        client = WSClient()
        for order in (2, 1, 0):
            client.send("websocket.receive", {"order": order, "text": str(order)})
        # 2 and 1 park; 0 runs and requeues them (2 first, as they were parked).
        for _ in range(3):
            client.consume("websocket.receive")
        assert ordered_log == [0]
        client.consume("websocket.receive")  # 2 parks again: 1 is next
        assert ordered_log == [0]
        client.consume("websocket.receive")  # 1 runs and requeues 2
        client.consume("websocket.receive")  # 2 runs
        assert ordered_log == [0, 1, 2]
        assert client.consume("websocket.receive", fail_on_none=False) is None
        assert session_for_reply_channel(client.reply_channel)["__channels_next_order"] == 3

    def test_parked_message_content(self):
        """C-45: a parked message keeps its content plus original_channel, on the wait channel."""
        client = WSClient()
        client.send("websocket.receive", {"order": 1, "text": "later"})
        client.consume("websocket.receive")
        assert ordered_log == []
        parked = self.get_next_message("__wait__." + client.reply_channel, require=True)
        assert parked["original_channel"] == "websocket.receive"
        assert parked["text"] == "later"

    def test_requeued_message_loses_original_channel(self):
        """C-45: requeued content goes back to its channel without original_channel."""
        client = WSClient()
        client.send("websocket.receive", {"order": 1, "text": "b"})
        client.consume("websocket.receive")
        client.send("websocket.receive", {"order": 0, "text": "a"})
        client.consume("websocket.receive")
        requeued = self.get_next_message("websocket.receive", require=True)
        assert "original_channel" not in requeued.content
        assert requeued["order"] == 1

    def test_process_specific_reply_channel_wait_name(self):
        """C-45: the wait channel of "P!L" is "__wait__.P?L" (a single-reader name)."""
        reply = "daphne.response.server!conn"
        Client().send("websocket.receive", {"order": 1, "reply_channel": reply, "text": "x"})
        Client().consume("websocket.receive")
        parked = self.get_next_message("__wait__.daphne.response.server?conn", require=True)
        assert parked["reply_channel"] == reply

    def test_called_form(self):
        """C-45: enforce_ordering() with parentheses works like the bare form."""
        with apply_routes([route("websocket.receive", ordered_consumer_called)]):
            client = WSClient(ordered=True)
            client.send_and_consume("websocket.receive", text="a")
            client.send_and_consume("websocket.receive", text="b")
        assert ordered_log == [0, 1]

    def test_slight_ordering_refused(self):
        """C-45: slight=True fails at decoration time."""
        with pytest.raises(ValueError, match="Slight ordering is now always on"):
            enforce_ordering(slight=True)
        with pytest.raises(ValueError, match="Slight ordering is now always on"):
            enforce_ordering(ordered_consumer, slight=True)

    def test_order_required(self):
        """C-45: a message without `order` -> ValueError."""
        client = WSClient()
        client.send("websocket.receive", {"text": "x"})
        with pytest.raises(ValueError, match="No `order` value"):
            client.consume("websocket.receive")

    def test_full_wait_channel(self):
        """C-45: a full wait channel raises ChannelFull naming the socket."""
        layer = ChannelLayer(capacity=1)
        channel_layers.set("default", ChannelLayerWrapper(layer, "default", []))
        with apply_routes([route("websocket.receive", ordered_consumer)]):
            client = WSClient()
            client.send("websocket.receive", {"order": 1})
            client.consume("websocket.receive")
            client.send("websocket.receive", {"order": 2})
            with pytest.raises(layer.ChannelFull, match="full __wait__ channel for socket"):
                client.consume("websocket.receive")

    def test_requeue_when_awaited_message_finished_meanwhile(self):
        """C-45: after parking, the session is reloaded; if the turn came, requeue at once."""
        layer = ParkHookLayer()
        channel_layers.set("default", ChannelLayerWrapper(layer, "default", []))
        with apply_routes([route("websocket.receive", ordered_consumer)]):
            client = WSClient()

            def awaited_message_finished():
                session = session_for_reply_channel(client.reply_channel)
                session["__channels_next_order"] = 1
                session.save()

            layer.on_park = awaited_message_finished
            client.send_and_consume("websocket.receive", {"order": 1, "text": "x"})
            assert ordered_log == []
            assert self.get_next_message("__wait__." + client.reply_channel) is None
            client.consume("websocket.receive")
        assert ordered_log == [1]


@http_session
def http_session_consumer(message, **kwargs):
    session = message.http_session
    message.reply_channel.send({"key": session.session_key if session else None})
    if session is not None and "write" in message.content:
        session["written"] = message["write"]
    if message.get("fail"):
        raise RuntimeError("consumer failed")


def make_http_session(**data):
    session = DbSessionStore()
    session.update(data)
    session.create()
    return session


@apply_routes([route("http.request", http_session_consumer)])
class HttpSessionTests(ChannelTestCase):
    def send(self, client, **content):
        content.setdefault("path", "/")
        content.setdefault("method", "GET")
        content.setdefault("headers", [])
        client.send_and_consume("http.request", content)
        return client.receive()

    def test_session_from_cookie(self):
        """C-46: the SESSION_COOKIE_NAME cookie selects a SESSION_ENGINE store."""
        session = make_http_session(colour="blue")
        cookie = f"{settings.SESSION_COOKIE_NAME}={session.session_key}".encode()
        reply = self.send(Client(), headers=[[b"cookie", cookie]])
        assert reply == {"key": session.session_key}

    def test_session_from_query_parameter(self):
        """C-46: a session_key query parameter wins over the cookie."""
        session = make_http_session()
        reply = self.send(
            Client(),
            query_string=f"session_key={session.session_key}".encode(),
            headers=[[b"cookie", b"sessionid=other"]],
        )
        assert reply == {"key": session.session_key}

    def test_no_key_no_session_created(self):
        """C-46: without a key http_session is None and nothing is created."""
        assert self.send(Client()) == {"key": None}
        assert Session.objects.count() == 0

    def test_modified_session_saved_after_normal_return(self):
        """C-46: a modified session is saved when the consumer returns."""
        session = make_http_session()
        cookie = f"sessionid={session.session_key}".encode()
        self.send(Client(), headers=[[b"cookie", cookie]], write="yes")
        assert DbSessionStore(session.session_key)["written"] == "yes"

    def test_not_saved_when_consumer_raises(self):
        """C-46: a consumer that raises does not persist its session changes."""
        session = make_http_session()
        cookie = f"sessionid={session.session_key}".encode()
        with pytest.raises(RuntimeError):
            self.send(Client(), headers=[[b"cookie", cookie]], write="no", fail=True)
        assert "written" not in DbSessionStore(session.session_key)

    def test_nested_http_session_saved_even_on_exception(self):
        """C-46: with an http_session already open, changes are saved also on exception."""

        @http_session
        @http_session
        def nested(message, **kwargs):
            message.http_session["inner"] = "saved"
            raise RuntimeError("inner consumer failed")

        session = make_http_session()
        client = Client()
        cookie = f"sessionid={session.session_key}".encode()
        client.send(
            "http.request", {"path": "/", "method": "GET", "headers": [[b"cookie", cookie]]}
        )
        with pytest.raises(RuntimeError, match="inner consumer failed"):
            nested(client.get_next_message("http.request"))
        assert DbSessionStore(session.session_key)["inner"] == "saved"

    def test_websocket_message_gets_fake_method(self):
        """C-46: a message without method (WebSocket) is parsed as method FAKE."""
        session = make_http_session()
        client = Client()
        cookie = f"{settings.SESSION_COOKIE_NAME}={session.session_key}".encode()
        with apply_routes([route("websocket.connect", http_session_consumer)]):
            client.send_and_consume(
                "websocket.connect", {"path": "/", "headers": [[b"cookie", cookie]], "order": 0}
            )
        assert client.receive() == {"key": session.session_key}

    def test_non_http_message_refused(self):
        """C-46: a message that is not HTTP-like -> ValueError saying so."""
        client = Client()
        client.send("test.plain", {"value": 1})
        with pytest.raises(ValueError, match="Cannot parse HTTP message"):
            http_session_consumer(client.get_next_message("test.plain"))


@channel_and_http_session
def both_sessions(message, **kwargs):
    http = message.http_session
    message.reply_channel.send(
        {
            "http_key": http.session_key if http is not None else None,
            "stored_key": message.channel_session.get(settings.SESSION_COOKIE_NAME),
        }
    )


@apply_routes(
    [route("websocket.connect", both_sessions), route("websocket.receive", both_sessions)]
)
class ChannelAndHttpSessionTests(ChannelTestCase):
    def test_http_session_remembered_for_later_messages(self):
        """C-47: connect stores the HTTP session key; later messages get the session back."""
        session = make_http_session()
        client = Client()
        cookie = f"{settings.SESSION_COOKIE_NAME}={session.session_key}".encode()
        client.send_and_consume(
            "websocket.connect", {"path": "/", "headers": [[b"cookie", cookie]], "order": 0}
        )
        assert client.receive() == {
            "http_key": session.session_key,
            "stored_key": session.session_key,
        }
        # Later frames carry no cookies.
        client.send_and_consume("websocket.receive", {"path": "/", "order": 1, "text": "x"})
        assert client.receive() == {
            "http_key": session.session_key,
            "stored_key": session.session_key,
        }

    def test_no_http_session_anywhere(self):
        """C-47: without cookie or stored key, http_session stays None."""
        client = Client()
        client.send_and_consume("websocket.connect", {"path": "/", "headers": [], "order": 0})
        assert client.receive() == {"http_key": None, "stored_key": None}


class ConcurrentOrderingTests(TransactionChannelTestCase):
    """C-45 across real worker threads: a connection's frames run in `order`."""

    frames = 30

    def test_worker_threads_run_frames_in_order(self):
        """C-45: shuffled frames handled by three Worker threads still run 0, 1, 2, ..."""
        ran: list[int] = []
        all_ran = threading.Event()

        @enforce_ordering
        def record(message, **kwargs):
            ran.append(message["order"])
            if len(ran) == self.frames:
                all_ran.set()

        layer = ChannelLayerWrapper(
            ChannelLayer(capacity=self.frames * 2), "default", [route("websocket.receive", record)]
        )
        channel_layers.set("default", layer)
        client = WSClient()
        orders = list(range(self.frames))
        random.Random(4).shuffle(orders)
        for order in orders:
            client.send("websocket.receive", {"order": order}, text=str(order))
        workers = [Worker(channel_layer=layer, signal_handlers=False) for _ in range(3)]
        threads = [threading.Thread(target=worker.run, daemon=True) for worker in workers]
        for thread in threads:
            thread.start()
        try:
            assert all_ran.wait(timeout=60), f"only {len(ran)} of {self.frames} frames ran"
        finally:
            for worker in workers:
                worker.termed = True
            for thread in threads:
                thread.join(timeout=10)
        assert ran == list(range(self.frames))
        assert not any(thread.is_alive() for thread in threads)
