"""Django views from messages: AsgiRequest, AsgiHandler, ViewConsumer, static files (C-34..C-42).

Real Django views (tests/testproject/views.py), real middleware from settings, a real
in-memory layer carrying body chunks and replies.
"""

from __future__ import annotations

import json
import logging
import threading
from pathlib import Path

import pytest
from django.core.signals import got_request_exception, request_finished, request_started
from django.db import close_old_connections
from django.http import FileResponse, HttpResponse, StreamingHttpResponse
from django.test import override_settings

from channels.exceptions import RequestAborted, RequestTimeout
from channels.handler import AsgiHandler, AsgiRequest, ViewConsumer, close_response
from channels.message import Message
from channels.staticfiles import StaticFilesConsumer, StaticFilesHandler
from tests.channels.helpers import fresh_layer
from tests.testproject import views

REPLY = "daphne.response.test!conn"
STATIC_DIR = Path(views.__file__).resolve().parent / "static"


@pytest.fixture
def layer():
    with fresh_layer() as wrapper:
        yield wrapper


@pytest.fixture(scope="module")
def handler():
    return AsgiHandler()


@pytest.fixture(autouse=True)
def no_connection_hygiene(request):
    """Keep close_old_connections off request signals, as Django's test client does.

    Tests that need the database use a transactional db, where it stays connected.
    """
    if request.node.get_closest_marker("django_db"):
        yield
        return
    request_started.disconnect(close_old_connections)
    request_finished.disconnect(close_old_connections)
    try:
        yield
    finally:
        request_started.connect(close_old_connections)
        request_finished.connect(close_old_connections)


def request_message(layer, path="/hello/", method="GET", **extra):
    content = {
        "reply_channel": REPLY,
        "http_version": "1.1",
        "method": method,
        "path": path,
        "query_string": b"",
        "headers": [[b"host", b"testserver"]],
    }
    content.update(extra)
    return Message(content, "http.request", layer)


def respond(handler, message):
    """All reply messages for `message`, plus the joined body and the headers."""
    replies = list(handler(message))
    body = b"".join(reply.get("content", b"") for reply in replies)
    headers = {}
    for name, value in replies[0].get("headers", []):
        headers.setdefault(name.decode().lower(), []).append(value.decode("latin1"))
    return replies, body, headers


# -- AsgiRequest (C-34, C-35) ------------------------------------------------


def test_minimal_message_is_a_valid_request(layer):
    """C-34: only reply_channel, http_version, method, path → empty body/GET/POST/COOKIES."""
    message = Message(
        {"reply_channel": REPLY, "http_version": "1.1", "method": "get", "path": "/x"},
        "http.request",
        layer,
    )
    request = AsgiRequest(message)
    assert request.method == "GET" and request.path == "/x" and request.path_info == "/x"
    assert request.body == b"" and not request.GET and not request.POST and request.COOKIES == {}
    assert "HTTP_HOST" not in request.META and "REMOTE_ADDR" not in request.META
    assert request.META["SERVER_NAME"] == "unknown" and request.META["SERVER_PORT"] == "0"
    assert request.META["QUERY_STRING"] == ""
    assert request.reply_channel == REPLY and request.message is message


def test_meta_headers_client_server_and_root_path(layer):
    """C-34: META keys, repeated headers joined with ",", root_path → script_name."""
    request = AsgiRequest(
        request_message(
            layer,
            path="/app/page/",
            root_path="/app",
            query_string=b"a=1&a=2&b=%C3%A9",
            headers=[
                [b"host", b"localhost"],
                [b"content-type", b"text/plain; charset=utf-8"],
                [b"content-length", b"0"],
                [b"x-custom-thing", b"one"],
                [b"x-custom-thing", b"two"],
                [b"cookie", b"a=b; c=d"],
                [b"user-agent", "caf\xe9".encode("latin1")],
            ],
            client=["10.0.0.1", 5555],
            server=["10.0.0.2", 80],
            scheme="https",
        )
    )
    meta = request.META
    assert request.script_name == "/app" and request.path_info == "/page/"
    assert meta["SCRIPT_NAME"] == "/app" and meta["PATH_INFO"] == "/page/"
    assert meta["HTTP_X_CUSTOM_THING"] == "one,two"
    assert meta["CONTENT_TYPE"] == "text/plain; charset=utf-8"
    assert meta["CONTENT_LENGTH"] == "0" and "HTTP_CONTENT_TYPE" not in meta
    assert meta["HTTP_USER_AGENT"] == "caf\xe9"
    assert meta["REMOTE_ADDR"] == meta["REMOTE_HOST"] == "10.0.0.1"
    assert meta["REMOTE_PORT"] == 5555
    assert meta["SERVER_NAME"] == "10.0.0.2" and meta["SERVER_PORT"] == "80"
    assert meta["wsgi.multithread"] and meta["wsgi.multiprocess"]
    assert request.GET.getlist("a") == ["1", "2"] and request.GET["b"] == "é"
    assert request.COOKIES == {"a": "b", "c": "d"}
    assert request.content_type == "text/plain" and request.encoding == "utf-8"
    assert request.is_secure() and request.get_host() == "localhost"


def test_meta_keys_stay_right_when_names_repeat_and_the_key_cache_fills(layer, monkeypatch):
    """C-34: header names are converted once and remembered (issue 9); case variants,
    the unprefixed names and a cache that filled up and started over give the same META."""
    from channels import handler as handler_module

    monkeypatch.setattr(handler_module, "_META_KEYS_MAX", 4)
    monkeypatch.setattr(handler_module, "_META_KEYS", {})
    headers = [
        [b"X-Thing", b"a"],
        [b"x-thing", b"b"],
        [b"content-type", b"text/plain"],
        [b"content-length", b"0"],
    ] + [[f"x-h{n}".encode(), str(n).encode()] for n in range(6)]
    for _ in range(2):
        meta = AsgiRequest(request_message(layer, headers=headers)).META
        assert meta["HTTP_X_THING"] == "a,b"
        assert meta["CONTENT_TYPE"] == "text/plain" and meta["CONTENT_LENGTH"] == "0"
        assert [meta[f"HTTP_X_H{n}"] for n in range(6)] == [str(n) for n in range(6)]
    assert len(handler_module._META_KEYS) <= 4


def test_unknown_charset_is_ignored(layer):
    """C-34: an unknown charset leaves the default encoding."""
    request = AsgiRequest(
        request_message(layer, headers=[[b"content-type", b"text/plain; charset=nonsense"]])
    )
    assert request.encoding is None


def test_legacy_dict_headers_are_converted_and_written_back(layer):
    """C-34: {"host": b"x"} headers become list form on the message."""
    message = request_message(layer, headers={"host": b"legacy.example", "x-a": b"1"})
    request = AsgiRequest(message)
    assert request.META["HTTP_HOST"] == "legacy.example" and request.META["HTTP_X_A"] == "1"
    assert message["headers"] == [[b"host", b"legacy.example"], [b"x-a", b"1"]]


def test_form_post_is_parsed(layer):
    """C-34: POST parsed lazily by Django's parser from the body."""
    request = AsgiRequest(
        request_message(
            layer,
            method="POST",
            body=b"name=caf%C3%A9&n=1&n=2",
            headers=[[b"content-type", b"application/x-www-form-urlencoded"]],
        )
    )
    assert request.POST["name"] == "café" and request.POST.getlist("n") == ["1", "2"]
    assert request.read() == b"name=caf%C3%A9&n=1&n=2"


def test_body_channel_chunks_are_joined(layer):
    """C-35: the body continues on body_channel until more_content is false."""
    layer.send("http.request.body?abc", {"content": b" world", "more_content": True})
    layer.send("http.request.body?abc", {"content": b"!", "more_content": False})
    layer.send("http.request.body?abc", {"content": b"ignored", "more_content": False})
    request = AsgiRequest(
        request_message(layer, method="POST", body=b"hello", body_channel="http.request.body?abc")
    )
    assert request.body == b"hello world!"


def test_body_arriving_from_another_thread(layer):
    """C-35: the constructor blocks on the body channel until chunks arrive."""
    message = request_message(layer, method="POST", body=b"", body_channel="http.request.body?t")
    started = threading.Event()

    def sender():
        started.wait(5)
        for index in range(3):
            layer.send("http.request.body?t", {"content": b"%d" % index, "more_content": index < 2})

    thread = threading.Thread(target=sender)
    thread.start()
    started.set()
    request = AsgiRequest(message)
    thread.join(5)
    assert request.body == b"012"


def test_closed_chunk_aborts(layer):
    """C-35: a chunk with closed=True raises RequestAborted."""
    layer.send("http.request.body?abc", {"closed": True})
    with pytest.raises(RequestAborted):
        AsgiRequest(request_message(layer, body_channel="http.request.body?abc"))


def test_missing_body_times_out(layer):
    """C-35: no chunk within body_receive_timeout → RequestTimeout."""

    class Impatient(AsgiRequest):
        body_receive_timeout = 0

    with pytest.raises(RequestTimeout):
        Impatient(request_message(layer, body_channel="http.request.body?never"))


def test_body_must_be_bytes(layer):
    """C-35: the final body must be bytes."""
    with pytest.raises(ValueError, match="must be bytes"):
        AsgiRequest(request_message(layer, body="text"))


# -- AsgiHandler (C-36..C-39) -------------------------------------------------


def test_simple_view(handler, layer):
    """C-36/C-38: a plain view gives one message with status, headers and content."""
    replies, body, headers = respond(handler, request_message(layer))
    assert len(replies) == 1
    assert replies[0]["status"] == 200 and replies[0]["more_content"] is False
    assert body == b"Hello World!"
    assert headers["content-type"] == ["text/plain"]
    assert (b"Content-Type", b"text/plain") in replies[0]["headers"]


def test_handler_is_lazy(handler, layer):
    """C-36: calling returns a generator; nothing runs until it is iterated."""
    seen = []

    def receiver(**kwargs):
        seen.append(kwargs["message"])

    request_started.connect(receiver)
    try:
        replies = handler(request_message(layer))
        assert seen == []
        list(replies)
        assert len(seen) == 1
    finally:
        request_started.disconnect(receiver)


def test_request_finished_fires_after_response(handler, layer):
    """C-36 step 4: response.close() runs, firing request_finished."""
    fired = []

    def receiver(**kwargs):
        fired.append(True)

    request_finished.connect(receiver)
    try:
        respond(handler, request_message(layer))
    finally:
        request_finished.disconnect(receiver)
    assert fired == [True]


class _OwnClose(HttpResponse):
    def close(self):
        self.own_close = True
        super().close()


@pytest.mark.parametrize("response_class", [HttpResponse, _OwnClose])
def test_close_response_does_what_response_close_does(response_class):
    """C-36 step 4, issue 20: `close_response` runs the closers (their errors ignored),
    marks the response closed and sends request_finished with the response's sender,
    as Django's close(); a class with its own close() gets it called."""
    seen = []

    def receiver(**kwargs):
        seen.append(("finished", kwargs["sender"]))

    def broken():
        seen.append("broken")
        raise OSError("closer")

    response = response_class(b"body")
    response._resource_closers.extend([broken, lambda: seen.append("closer")])
    request_finished.connect(receiver)
    try:
        close_response(response)
    finally:
        request_finished.disconnect(receiver)
    assert seen == ["broken", "closer", ("finished", None)]
    assert response.closed
    assert response._resource_closers == []
    assert getattr(response, "own_close", False) is (response_class is _OwnClose)


def test_echo_through_middleware(handler, layer):
    """C-34/C-36: query, cookies, headers and POST reach the view through middleware."""
    message = request_message(
        layer,
        path="/echo/",
        method="POST",
        query_string=b"q=1",
        body=b"x=y",
        headers=[
            [b"host", b"testserver"],
            [b"cookie", b"k=v"],
            [b"content-type", b"application/x-www-form-urlencoded"],
        ],
        client=["127.0.0.1", 4000],
    )
    replies, body, headers = respond(handler, message)
    data = json.loads(body)
    assert replies[0]["status"] == 200
    assert data["GET"] == {"q": ["1"]} and data["POST"] == {"x": ["y"]}
    assert data["COOKIES"] == {"k": "v"} and data["remote_addr"] == "127.0.0.1"
    assert data["host"] == "testserver"


def test_multipart_upload(handler, layer):
    """C-34: FILES parsed by Django's multipart parser."""
    boundary = b"XyZ"
    body = (
        b'--XyZ\r\nContent-Disposition: form-data; name="title"\r\n\r\nhi\r\n'
        b'--XyZ\r\nContent-Disposition: form-data; name="doc"; filename="a.txt"\r\n'
        b"Content-Type: text/plain\r\n\r\nfile body\r\n--XyZ--\r\n"
    )
    message = request_message(
        layer,
        path="/echo/",
        method="POST",
        body=body,
        headers=[
            [b"host", b"testserver"],
            [b"content-type", b"multipart/form-data; boundary=" + boundary],
            [b"content-length", str(len(body)).encode()],
        ],
    )
    data = json.loads(respond(handler, message)[1])
    assert data["POST"] == {"title": ["hi"]} and data["FILES"] == {"doc": "file body"}


def test_not_found_and_server_error(handler, layer, caplog):
    """C-37: uncaught exceptions follow Django's handling (500 handler), 404 as usual."""
    assert respond(handler, request_message(layer, path="/nope/"))[0][0]["status"] == 404
    with caplog.at_level(logging.ERROR, logger="django.request"):
        replies, body, _ = respond(handler, request_message(layer, path="/boom/"))
    assert replies[0]["status"] == 500
    assert b"view exploded" not in body  # DEBUG is off: the project's 500 page
    assert any("view exploded on purpose" in str(r.exc_info) for r in caplog.records)


def broken_error_reporting(**kwargs):
    raise RuntimeError("the error reporting broke too")


@pytest.mark.parametrize("debug", [False, True])
def test_failing_error_handling_gives_plain_500(handler, layer, debug, caplog):
    """C-37: if Django's error handling itself fails → text/plain 500."""
    got_request_exception.connect(broken_error_reporting)
    try:
        with override_settings(DEBUG=debug), caplog.at_level(logging.ERROR):
            replies, body, headers = respond(handler, request_message(layer, path="/boom/"))
    finally:
        got_request_exception.disconnect(broken_error_reporting)
    assert replies[0]["status"] == 500
    assert headers["content-type"] == ["text/plain"]
    if debug:
        assert b"the error reporting broke too" in body and b"Traceback" in body
    else:
        assert body == b"Internal Server Error"


def test_response_later_sends_nothing(handler, layer):
    """C-37: ResponseLater survives middleware conversion; no response is sent."""
    assert list(handler(request_message(layer, path="/later/"))) == []


def test_bad_unicode_path_is_repercented(handler, layer, caplog):
    """C-36, issue 15 item 8: a non-UTF-8 bytes path becomes %XX as in Django's
    WSGIRequest (no UnicodeDecodeError, no 400): here an unknown URL, 404."""
    with caplog.at_level(logging.WARNING, logger="django.request"):
        replies, _, _ = respond(handler, request_message(layer, path=b"/\xff/"))
    assert replies[0]["status"] == 404
    assert not any("UnicodeDecodeError" in r.getMessage() for r in caplog.records)


def test_body_timeout_is_408(layer):
    """C-36: RequestTimeout → 408 with the upload-too-slow body."""

    class Impatient(AsgiRequest):
        body_receive_timeout = 0

    class Handler(AsgiHandler):
        request_class = Impatient

    replies, body, _ = respond(
        Handler(), request_message(layer, body_channel="http.request.body?never")
    )
    assert replies[0]["status"] == 408 and body == b"408 Request Timeout (upload too slow)"


def test_aborted_body_yields_nothing(handler, layer):
    """C-36: RequestAborted → nothing is sent."""
    layer.send("http.request.body?gone", {"closed": True})
    assert list(handler(request_message(layer, body_channel="http.request.body?gone"))) == []


def test_large_response_is_chunked(handler, layer):
    """C-38/C-39: content is cut into chunk_size pieces, more_content false on the last."""
    size = 2 * AsgiHandler.chunk_size + 10
    replies, body, _ = respond(
        handler, request_message(layer, path="/big/", query_string=b"size=%d" % size)
    )
    assert [len(r["content"]) for r in replies] == [AsgiHandler.chunk_size] * 2 + [10]
    assert [r["more_content"] for r in replies] == [True, True, False]
    assert "status" in replies[0] and "status" not in replies[1]
    assert len(body) == size


def test_streaming_response(handler, layer):
    """C-38: each part with more_content=True, then a closing message without content."""
    replies, body, _ = respond(
        handler, request_message(layer, path="/stream/", query_string=b"count=3")
    )
    assert body == b"part 0\npart 1\npart 2\n"
    assert [r["more_content"] for r in replies] == [True, True, True, False]
    assert replies[0]["status"] == 200 and "content" not in replies[-1]


def test_empty_streaming_response_closes_with_status(layer):
    """C-38: a streaming response with no parts → one closing message carrying status."""
    replies = list(AsgiHandler.encode_response(StreamingHttpResponse(iter([]))))
    assert len(replies) == 1
    assert replies[0]["status"] == 200 and replies[0]["more_content"] is False


def test_empty_body_gives_one_message(layer):
    """C-38: empty body → one message content=b"" more_content=False."""
    replies = list(AsgiHandler.encode_response(HttpResponse(status=204)))
    assert replies == [
        {"content": b"", "more_content": False, "status": 204, "headers": replies[0]["headers"]}
    ]


def test_file_response(handler, layer):
    """C-36/C-38: FileResponse streamed in 512 KiB blocks; the whole file arrives."""
    replies, body, headers = respond(handler, request_message(layer, path="/file/"))
    assert body == views.DATA_FILE.read_bytes()
    assert all(len(r.get("content", b"")) <= AsgiHandler.chunk_size for r in replies)
    assert len(replies) == 3  # 512 KiB + the rest + closing message
    assert headers["content-length"] == [str(len(body))]


def test_file_response_forced_non_streaming_is_attribute_error():
    """C-38: a FileResponse with streaming=False raises AttributeError."""
    with views.DATA_FILE.open("rb") as handle:
        response = FileResponse(handle)
        response.streaming = False
        with pytest.raises(AttributeError):
            list(AsgiHandler.encode_response(response))


def test_cookies_become_set_cookie_headers():
    """C-38: one Set-Cookie header per cookie, after the response's own headers."""
    response = HttpResponse("x")
    response.set_cookie("a", "1")
    response.set_cookie("b", "2", httponly=True)
    headers = next(AsgiHandler.encode_response(response))["headers"]
    cookies = [value for name, value in headers if name == b"Set-Cookie"]
    assert len(cookies) == 2
    assert b"a=1" in cookies[0] and b"HttpOnly" in cookies[1]
    assert headers[0][0] == b"Content-Type"


class _ItemsOwn(HttpResponse):
    def items(self):
        return [("X-Own", "1")]


def test_headers_are_the_response_items_in_order():
    """C-38: names as set (case kept, the last case written), values, in order; a class
    with its own items() is asked."""
    response = HttpResponse("x", content_type="text/plain")
    response["x-first"] = "1"
    response["X-Second"] = "é"
    response["X-FIRST"] = "3"  # replaces the value and the name's case, keeps the place
    del response["x-second"]
    response["Vary"] = "Accept"
    expected = [(name.encode("ascii"), value.encode("latin1")) for name, value in response.items()]
    assert expected == [(b"Content-Type", b"text/plain"), (b"X-FIRST", b"3"), (b"Vary", b"Accept")]
    assert next(AsgiHandler.encode_response(response))["headers"] == expected
    assert next(AsgiHandler.encode_response(_ItemsOwn("x")))["headers"] == [(b"X-Own", b"1")]


def test_chunk_bytes_boundaries():
    """C-39: exactly chunk_size → one piece; empty → (data, True)."""
    size = AsgiHandler.chunk_size
    assert list(AsgiHandler.chunk_bytes(b"")) == [(b"", True)]
    assert [(len(c), last) for c, last in AsgiHandler.chunk_bytes(b"x" * size)] == [(size, True)]
    assert [(len(c), last) for c, last in AsgiHandler.chunk_bytes(b"x" * (size + 1))] == [
        (size, False),
        (1, True),
    ]


@pytest.mark.django_db(transaction=True)
def test_session_middleware_sets_cookie(handler, layer):
    """C-36: middleware from settings.MIDDLEWARE runs (sessions set a cookie)."""
    replies, body, headers = respond(
        handler, request_message(layer, path="/session/set/", query_string=b"value=v1")
    )
    assert body == b"stored"
    assert any(value.strip().startswith("sessionid=") for value in headers["set-cookie"])


# -- ViewConsumer (C-40) --------------------------------------------------------


def test_view_consumer_sends_replies(layer):
    """C-40: replies go to the reply channel, immediately, in order."""
    consumer = ViewConsumer()
    consumer(request_message(layer, path="/stream/", query_string=b"count=2"))
    received = [layer.receive(["daphne.response.test!"])[1] for _ in range(3)]
    assert [r.get("content") for r in received] == [b"part 0\n", b"part 1\n", None]
    assert layer.receive(["daphne.response.test!"]) == (None, None)


def test_view_consumer_waits_for_space(layer):
    """C-40: ChannelFull is retried until the reader takes messages."""
    with fresh_layer(capacity=1) as small:
        consumer = ViewConsumer()
        got = []

        def reader():
            while len(got) < 4:
                channel, content = small.receive(["daphne.response.test!"], block=True)
                if content is not None:
                    got.append(content)

        thread = threading.Thread(target=reader)
        thread.start()
        consumer(request_message(small, path="/stream/", query_string=b"count=3"))
        thread.join(10)
        assert not thread.is_alive()
        assert b"".join(r.get("content", b"") for r in got) == b"part 0\npart 1\npart 2\n"


def test_view_consumer_gives_up_after_expiry(caplog):
    """C-40: a reply refused for `reply_timeout` (default: the layer's expiry) seconds →
    WARNING naming the reply channel, response closed, return."""
    finished = []

    def receiver(**kwargs):
        finished.append(True)

    class Impatient(ViewConsumer):
        reply_timeout = 0.2

    with fresh_layer(capacity=1) as small:
        small.send(REPLY, {"content": b"blocking", "more_content": True})
        request_finished.connect(receiver)
        try:
            with caplog.at_level(logging.WARNING, logger="django.channels"):
                Impatient()(request_message(small, path="/stream/", query_string=b"count=2"))
        finally:
            request_finished.disconnect(receiver)
    assert finished == [True]
    assert any(REPLY in r.getMessage() for r in caplog.records if r.levelno == logging.WARNING)


def test_view_consumer_needs_reply_channel(layer):
    """C-40: a message without reply_channel is a clear error."""
    message = Message({"http_version": "1.1", "method": "GET", "path": "/"}, "http.request", layer)
    with pytest.raises(ValueError, match="no reply_channel"):
        ViewConsumer()(message)


# -- static files (C-41, C-42) -----------------------------------------------------


@override_settings(STATICFILES_DIRS=[STATIC_DIR])
def test_static_files_served(layer):
    """C-41/C-42: paths under STATIC_URL are served from static files."""
    handler = StaticFilesHandler()
    replies, body, headers = respond(
        handler, request_message(layer, path="/static/testproject/style.css")
    )
    assert replies[0]["status"] == 200 and body == b"body { color: red; }\n"
    assert headers["content-type"][0].startswith("text/css")
    # Other paths use normal handling.
    assert respond(handler, request_message(layer))[1] == b"Hello World!"
    assert StaticFilesConsumer.handler_class is StaticFilesHandler


@override_settings(STATICFILES_DIRS=[STATIC_DIR])
@pytest.mark.parametrize("debug", [True, False])
def test_missing_static_file(layer, debug):
    """C-41: Http404 → technical 404 when DEBUG, else normal handling (also 404)."""
    with override_settings(DEBUG=debug):
        replies, body, _ = respond(
            StaticFilesHandler(), request_message(layer, path="/static/none.css")
        )
    assert replies[0]["status"] == 404
    assert (b"Page not found" in body) is debug
