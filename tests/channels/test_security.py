"""Origin validation for WebSocket connects (C-64, C-65, C-89).

Decorated consumers run inside the real worker (`Worker.handle`) on a real in-memory layer,
so a refused origin is checked the way a browser sees it: the reply channel gets
``{"close": True}`` instead of ``{"accept": True}``.
"""

from __future__ import annotations

import pytest

from channels.exceptions import DenyConnection
from channels.message import Message
from channels.routing import route
from channels.security.websockets import (
    AllowedHostsOnlyOriginValidator,
    BaseOriginValidator,
    allowed_hosts_only,
    allowed_origins,
)
from channels.test import WSClient, apply_routes
from channels.worker import Worker
from tests.channels.helpers import fresh_layer

# The worker closes stale DB connections after each consumer (C-27), so it needs the DB.
pytestmark = pytest.mark.django_db

REPLY = "test.reply"


def accept(message, **kwargs):
    """A connect consumer that accepts; the decorators under test wrap it."""
    message.reply_channel.send({"accept": True}, immediately=True)


def connect_reply(consumer, headers):
    """Run ``consumer`` for a websocket.connect with ``headers`` in the real worker."""
    with fresh_layer([route("websocket.connect", consumer)]) as layer:
        content = {"reply_channel": REPLY, "path": "/", "headers": headers, "order": 0}
        Worker(layer, signal_handlers=False).handle("websocket.connect", content)
        channel, reply = layer.receive([REPLY], block=False)
        assert layer.receive([REPLY], block=False) == (None, None), "only one reply expected"
        return reply


def origin(value: bytes) -> list[list[bytes]]:
    return [[b"host", b"example.com"], [b"origin", value]]


@pytest.fixture
def hosts(settings):
    settings.DEBUG = False
    settings.ALLOWED_HOSTS = ["example.com", ".example.org"]
    return settings


class TestAllowedHostsOnly:
    """C-65: the origin's host must pass ALLOWED_HOSTS."""

    @pytest.mark.parametrize(
        "value",
        [b"http://example.com", b"https://example.com:8443", b"https://sub.example.org"],
    )
    def test_allowed_origin_connects(self, hosts, value):
        assert connect_reply(allowed_hosts_only(accept), origin(value)) == {"accept": True}

    @pytest.mark.parametrize(
        "value",
        [
            b"http://evil.com",
            b"http://example.com.evil.com",
            b"http://sub.example.com",  # no leading dot in ALLOWED_HOSTS: exact host only
            b"null",  # sandboxed iframes and file:// pages
            b"",
            b"example.com",  # no scheme: not an origin
            b"http://example.com:notaport",
        ],
    )
    def test_foreign_or_malformed_origin_is_denied(self, hosts, value):
        assert connect_reply(allowed_hosts_only(accept), origin(value)) == {"close": True}

    def test_missing_origin_is_denied(self, hosts):
        assert connect_reply(allowed_hosts_only(accept), [[b"host", b"example.com"]]) == {
            "close": True
        }

    def test_non_ascii_origin_is_denied(self, hosts):
        headers = origin("http://exämple.com".encode())
        assert connect_reply(allowed_hosts_only(accept), headers) == {"close": True}

    def test_header_without_value_is_skipped(self, hosts):
        """C-64: a too-short entry is skipped, the real origin header after it is used."""
        headers = [[b"origin"], [b"origin", b"http://example.com"]]
        assert connect_reply(allowed_hosts_only(accept), headers) == {"accept": True}
        assert connect_reply(allowed_hosts_only(accept), [[b"origin"]]) == {"close": True}

    def test_debug_with_empty_allowed_hosts_allows_only_local(self, settings):
        settings.DEBUG = True
        settings.ALLOWED_HOSTS = []
        validator = allowed_hosts_only(accept)
        for local in (b"http://localhost:8000", b"http://127.0.0.1", b"http://[::1]:8000"):
            assert connect_reply(validator, origin(local)) == {"accept": True}, local
        assert connect_reply(validator, origin(b"http://example.com")) == {"close": True}

    def test_empty_allowed_hosts_without_debug_denies_everything(self, settings):
        settings.DEBUG = False
        settings.ALLOWED_HOSTS = []
        assert connect_reply(allowed_hosts_only(accept), origin(b"http://localhost")) == {
            "close": True
        }

    def test_wildcard_allowed_hosts(self, settings):
        settings.ALLOWED_HOSTS = ["*"]
        assert connect_reply(allowed_hosts_only(accept), origin(b"http://any.where")) == {
            "accept": True
        }

    def test_alias_and_metadata(self):
        """C-64/C-65: a class-based decorator that copies the wrapped function's metadata."""
        assert allowed_hosts_only is AllowedHostsOnlyOriginValidator
        wrapped = allowed_hosts_only(accept)
        assert wrapped.__name__ == "accept"
        assert wrapped.__doc__ == accept.__doc__
        assert wrapped.__wrapped__ is accept


class TestAllowedOrigins:
    """C-89: an explicit list of origin patterns."""

    @pytest.mark.parametrize(
        ("patterns", "value", "accepted"),
        [
            (["example.com"], b"https://example.com", True),
            (["example.com"], b"http://example.com:9000", True),
            (["example.com"], b"https://other.com", False),
            (["example.com"], b"https://sub.example.com", False),
            ([".example.com"], b"https://sub.example.com", True),
            ([".example.com"], b"https://example.com", True),
            ([".example.com"], b"https://badexample.com", False),
            (["*"], b"http://anything.test", True),
            (["https://example.com"], b"https://example.com", True),
            (["https://example.com"], b"http://example.com", False),
            (["https://example.com:8443"], b"https://example.com:8443", True),
            (["https://example.com:8443"], b"https://example.com", False),
            (["https://example.com:443"], b"https://example.com", True),  # default port
            (["example.com:8000"], b"http://example.com:8000", True),
            (["example.com:8000"], b"http://example.com:8001", False),
            (["EXAMPLE.com"], b"http://Example.COM", True),
            (["[::1]"], b"http://[::1]:8000", True),
            (["a.test", "b.test"], b"http://b.test", True),
            (["a.test", "b.test"], b"http://c.test", False),
            (["example.com"], b"null", False),
        ],
    )
    def test_patterns(self, patterns, value, accepted):
        reply = connect_reply(allowed_origins(*patterns)(accept), origin(value))
        assert reply == ({"accept": True} if accepted else {"close": True})

    @pytest.mark.parametrize("pattern", ["", "https://", "example.com/path", "example.com:x"])
    def test_bad_pattern_fails_at_decoration(self, pattern):
        with pytest.raises(ValueError, match="origin"):
            allowed_origins(pattern)

    def test_no_patterns_fails_at_decoration(self):
        with pytest.raises(ValueError, match="at least one pattern"):
            allowed_origins()

    def test_dict_headers_from_wsclient(self):
        """C-64: the dict-form headers WSClient sends are read too."""
        consumer = allowed_origins("example.com")(accept)
        with fresh_layer(), apply_routes([route("websocket.connect", consumer)]):
            client = WSClient()
            client.set_header("origin", b"http://example.com")
            # check_accept: the reply must be exactly {"accept": True} (C-69).
            client.send_and_consume("websocket.connect")

            foreign = WSClient()
            foreign.set_header("origin", b"http://evil.test")
            with pytest.raises(DenyConnection):
                foreign.send_and_consume("websocket.connect", check_accept=False)


class TestBaseOriginValidator:
    def make_message(self, headers):
        with fresh_layer() as layer:
            return Message({"reply_channel": REPLY, "headers": headers}, "websocket.connect", layer)

    def test_validate_origin_must_be_overridden(self):
        validator = BaseOriginValidator(accept)
        message = self.make_message(origin(b"http://example.com"))
        with pytest.raises(NotImplementedError):
            validator(message)

    def test_get_header_returns_the_values_after_the_name(self):
        validator = BaseOriginValidator(accept)
        message = self.make_message([[b"x-multi", b"1", b"2"], [b"origin", b"http://a.test"]])
        assert validator.get_header(message, b"x-multi") == [b"1", b"2"]
        assert validator.get_origin(message) == "http://a.test"
        with pytest.raises(KeyError, match="x-absent"):
            validator.get_header(message, b"x-absent")

    def test_subclass_sees_message_and_origin(self):
        seen = []

        class OnlyPathOrigins(BaseOriginValidator):
            def validate_origin(self, message, origin):
                seen.append((message["path"], origin))
                return origin.endswith(".trusted")

        headers = origin(b"http://app.trusted")
        assert connect_reply(OnlyPathOrigins(accept), headers) == {"accept": True}
        assert seen == [("/", "http://app.trusted")]
        assert connect_reply(OnlyPathOrigins(accept), origin(b"http://x.test")) == {"close": True}


@pytest.mark.redis
@pytest.mark.slow
def test_foreign_origin_is_refused_by_the_live_server(redis_server, tmp_path):
    """C-89 end to end: daphne refuses the handshake a worker's validator denied."""
    import websocket

    from tests.testproject.testapp.live import LiveProject

    project = LiveProject(redis_server, tmp_path)
    project.migrate()
    try:
        project.start_daphne()
        project.start_worker()
        url = f"ws://127.0.0.1:{project.port}/local-only/"

        local = websocket.create_connection(
            url, origin=f"http://127.0.0.1:{project.port}", timeout=15
        )
        assert local.connected
        local.close()

        with pytest.raises(websocket.WebSocketBadStatusException) as refused:
            websocket.create_connection(url, origin="http://evil.test", timeout=15)
        assert refused.value.status_code == 403
    finally:
        project.close()
