"""Django's request limits and decoding in `AsgiRequest` (issue 15 items 5 and 8; C-34, C-35).

Real Django views and middleware (tests/testproject), a real in-memory layer carrying
the body chunks: the worker honours ``DATA_UPLOAD_MAX_MEMORY_SIZE`` and
``FILE_UPLOAD_MAX_MEMORY_SIZE`` as Django's WSGI handler does, leaves a body Django would
refuse unread on its channel, and decodes raw query strings and paths as WSGIRequest does.
"""

from __future__ import annotations

import json
import logging
import tracemalloc

import pytest
from django.core.exceptions import RequestDataTooBig
from django.core.files.uploadedfile import InMemoryUploadedFile, TemporaryUploadedFile
from django.core.signals import request_finished, request_started
from django.db import close_old_connections
from django.test import override_settings

from channels.handler import AsgiHandler, AsgiRequest
from channels.message import Message
from tests.channels.helpers import fresh_layer

REPLY = "daphne.response.test!limits"
BODY = "http.request.body?limits"
CHUNK = 512 * 1024


@pytest.fixture
def layer():
    with fresh_layer(capacity=200) as wrapper:
        yield wrapper


@pytest.fixture(scope="module")
def handler():
    return AsgiHandler()


@pytest.fixture(autouse=True)
def no_connection_hygiene():
    """No database here: keep close_old_connections off the request signals."""
    request_started.disconnect(close_old_connections)
    request_finished.disconnect(close_old_connections)
    try:
        yield
    finally:
        request_started.connect(close_old_connections)
        request_finished.connect(close_old_connections)


def request_message(layer, path="/echo/", method="POST", headers=(), **extra):
    content = {
        "reply_channel": REPLY,
        "http_version": "1.1",
        "method": method,
        "path": path,
        "query_string": b"",
        "headers": [[b"host", b"testserver"], *headers],
    }
    content.update(extra)
    return Message(content, "http.request", layer)


def send_chunks(layer, data: bytes, size: int = CHUNK) -> int:
    """Put `data` on the body channel in `size` pieces; return how many."""
    pieces = [data[i : i + size] for i in range(0, len(data), size)]
    for index, piece in enumerate(pieces):
        layer.send(BODY, {"content": piece, "more_content": index < len(pieces) - 1})
    return len(pieces)


def left_on_channel(layer) -> int:
    count = 0
    while layer.receive([BODY], block=False)[0] is not None:
        count += 1
    return count


def status_and_body(handler, message) -> tuple[int, bytes]:
    replies = list(handler(message))
    return replies[0]["status"], b"".join(reply.get("content", b"") for reply in replies)


def octet(length: int) -> list[list[bytes]]:
    return [
        [b"content-type", b"application/octet-stream"],
        [b"content-length", str(length).encode()],
    ]


# -- item 8: raw query strings and paths ---------------------------------------------


def test_invalid_utf8_query_string_gives_the_view_a_querydict(handler, layer, caplog):
    """Issue 15 item 8: raw non-UTF-8 bytes decode as in WSGIRequest, no traceback."""
    message = request_message(layer, method="GET", query_string=b"a=\xff\xfe&c=%FF&d=caf%C3%A9")
    with caplog.at_level(logging.WARNING):
        status, body = status_and_body(handler, message)
    assert status == 200
    # QueryDict falls back to latin-1 for the raw bytes; %FF decodes with replacement.
    assert json.loads(body)["GET"] == {"a": ["ÿþ"], "c": ["\ufffd"], "d": ["café"]}
    assert caplog.records == []


def test_raw_utf8_query_string_is_decoded_as_utf8(layer):
    """Issue 15 item 8: META keeps WSGI's latin-1 str; GET decodes the bytes as UTF-8."""
    request = AsgiRequest(request_message(layer, method="GET", query_string=b"b=caf\xc3\xa9"))
    assert request.META["QUERY_STRING"] == "b=caf\xc3\xa9"
    assert request.GET["b"] == "café"


def test_undecodable_bytes_path_is_repercented_as_django_does(handler, layer, caplog):
    """Issue 15 item 8: a bytes path that is not UTF-8 becomes %XX (get_path_info)."""
    with caplog.at_level(logging.WARNING, logger="django.request"):
        message = request_message(layer, method="GET", path=b"/echo/\xff/")
        request = AsgiRequest(message)
        status, _ = status_and_body(handler, message)
    assert request.path == "/echo/%FF/"
    assert status == 404  # an ordinary unknown URL, not a crash
    assert not any(record.exc_info for record in caplog.records)


# -- item 5: DATA_UPLOAD_MAX_MEMORY_SIZE and FILE_UPLOAD_MAX_MEMORY_SIZE --------------


@override_settings(DATA_UPLOAD_MAX_MEMORY_SIZE=100)
def test_body_in_the_message_over_the_limit_is_400(handler, layer):
    """Issue 15 item 5: request.body over the limit → RequestDataTooBig → 400, as Django."""
    status, _ = status_and_body(
        handler, request_message(layer, body=b"x" * 101, headers=octet(101))
    )
    assert status == 400
    status, body = status_and_body(
        handler, request_message(layer, body=b"x" * 100, headers=octet(100))
    )
    assert status == 200 and json.loads(body)["body_length"] == 100


@override_settings(DATA_UPLOAD_MAX_MEMORY_SIZE=100)
def test_body_without_content_length_over_the_limit_is_400(handler, layer):
    """Issue 15 item 5: the limit holds when no Content-Length announces the size."""
    status, _ = status_and_body(handler, request_message(layer, body=b"x" * 101))
    assert status == 400


@override_settings(DATA_UPLOAD_MAX_MEMORY_SIZE=1024 * 1024)
def test_announced_body_over_the_limit_is_not_read_from_its_channel(handler, layer):
    """Issue 15 item 5: Content-Length over the limit → 400, no chunk is received."""
    size = 4 * 1024 * 1024
    sent = send_chunks(layer, b"y" * size)
    message = request_message(layer, headers=octet(size), body_channel=BODY)
    status, _ = status_and_body(handler, message)
    assert status == 400
    assert left_on_channel(layer) == sent


@override_settings(DATA_UPLOAD_MAX_MEMORY_SIZE=1024 * 1024)
def test_unannounced_body_stops_being_read_past_the_limit(handler, layer):
    """Issue 15 item 5: a chunked body is read only until it outgrows the limit."""
    sent = send_chunks(layer, b"z" * (4 * 1024 * 1024))
    request = AsgiRequest(request_message(layer, body_channel=BODY))
    # 1 MiB plus one byte needs three 512 KiB chunks; the rest stays on the channel.
    assert left_on_channel(layer) == sent - 3
    with pytest.raises(RequestDataTooBig):
        _ = request.body
    with pytest.raises(RequestDataTooBig, match="DATA_UPLOAD_MAX_MEMORY_SIZE"):
        request.read()


@override_settings(DATA_UPLOAD_MAX_MEMORY_SIZE=4 * 1024 * 1024)
def test_body_within_the_limit_is_read_whole(handler, layer):
    """C-35: under the limit the body is received in order and reaches the view."""
    data = bytes(range(256)) * (3 * 4096 + 1)
    send_chunks(layer, data[100:])
    request = AsgiRequest(
        request_message(layer, headers=octet(len(data)), body=data[:100], body_channel=BODY)
    )
    assert request.body == data


def multipart(name: str, payload: bytes) -> tuple[bytes, list[list[bytes]]]:
    boundary = b"limitsboundary"
    body = (
        b"--" + boundary + b"\r\n"
        b'Content-Disposition: form-data; name="note"\r\n\r\nhi\r\n'
        b"--" + boundary + b"\r\n"
        b'Content-Disposition: form-data; name="' + name.encode() + b'"; filename="f.bin"\r\n'
        b"Content-Type: application/octet-stream\r\n\r\n" + payload + b"\r\n"
        b"--" + boundary + b"--\r\n"
    )
    headers = [
        [b"content-type", b"multipart/form-data; boundary=" + boundary],
        [b"content-length", str(len(body)).encode()],
    ]
    return body, headers


@override_settings(DATA_UPLOAD_MAX_MEMORY_SIZE=1024, FILE_UPLOAD_MAX_MEMORY_SIZE=1024 * 1024)
def test_upload_over_the_data_limit_is_read_and_spooled_by_file_limit(layer, tmp_path):
    """Issue 15 item 5: uploads are not refused; FILE_UPLOAD_MAX_MEMORY_SIZE decides disk."""
    payload = bytes(range(256)) * 8192  # 2 MiB
    body, headers = multipart("upload", payload)
    send_chunks(layer, body)
    with override_settings(FILE_UPLOAD_TEMP_DIR=str(tmp_path)):
        request = AsgiRequest(request_message(layer, headers=headers, body_channel=BODY))
        assert request._stream._rolled  # the raw body went to disk past 1 MiB
        upload = request.FILES["upload"]
    try:
        assert isinstance(upload, TemporaryUploadedFile)
        assert upload.read() == payload and request.POST["note"] == "hi"
    finally:
        request.close()
    assert request._stream.closed and upload.closed


@override_settings(DATA_UPLOAD_MAX_MEMORY_SIZE=1024, FILE_UPLOAD_MAX_MEMORY_SIZE=1024 * 1024)
def test_small_upload_stays_in_memory(layer):
    """Issue 15 item 5: an upload under FILE_UPLOAD_MAX_MEMORY_SIZE is kept in memory."""
    body, headers = multipart("upload", b"small file")
    request = AsgiRequest(request_message(layer, headers=headers, body=body))
    assert isinstance(request.FILES["upload"], InMemoryUploadedFile)
    assert request.FILES["upload"].read() == b"small file"


@override_settings(DATA_UPLOAD_MAX_MEMORY_SIZE=None, FILE_UPLOAD_MAX_MEMORY_SIZE=256 * 1024)
def test_reading_chunks_does_not_hold_the_body_twice(layer, tmp_path):
    """Issue 15 item 5: chunks go to the spool one by one, never chunks plus a join."""
    size = 8 * 1024 * 1024
    send_chunks(layer, b"m" * size)
    message = request_message(layer, headers=octet(size), body_channel=BODY)
    with override_settings(FILE_UPLOAD_TEMP_DIR=str(tmp_path)):
        tracemalloc.start()
        try:
            request = AsgiRequest(message)
            _, peak = tracemalloc.get_traced_memory()
        finally:
            tracemalloc.stop()
    assert peak < size // 4  # about one chunk plus the in-memory part of the spool
    assert request._stream.seek(0, 2) == size
    request.close()
