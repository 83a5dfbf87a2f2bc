"""Django views served from ``http.request`` messages (C-34..C-40).

`AsgiRequest` turns a message into an `HttpRequest`, `AsgiHandler` runs Django's
middleware and view and turns the response into ``http.response`` messages, and
`ViewConsumer` sends those to the request's reply channel. The path runs once per
request, so everything that can be is resolved at construction.
"""

from __future__ import annotations

import logging
import os
import sys
import tempfile
import time
import traceback
from collections.abc import Iterator
from io import BytesIO
from typing import IO, Any

import django
from django import http
from django.conf import settings
from django.core import signals
from django.core.exceptions import RequestDataTooBig
from django.core.handlers import base
from django.http import FileResponse, HttpResponse, HttpResponseBadRequest, QueryDict
from django.http.response import HttpResponseBase, ResponseHeaders
from django.urls import set_script_prefix
from django.utils.encoding import repercent_broken_unicode
from django.utils.functional import cached_property

from .exceptions import RequestAborted, RequestTimeout, ResponseLater
from .pending import pending_message_store
from .retry import FIRST_RETRY_DELAY, REPLY_RETRY_CAP, layer_out_of_memory, send_retrying
from .signals import send_per_message

__all__ = ["AsgiHandler", "AsgiRequest", "ViewConsumer"]

logger = logging.getLogger("django.request")
channels_logger = logging.getLogger("django.channels")

# Header names that WSGI (and so Django) keeps without the HTTP_ prefix.
_UNPREFIXED_HEADERS = {"content-length": "CONTENT_LENGTH", "content-type": "CONTENT_TYPE"}
# META key per raw header name: clients send the same few names on every request.
_META_KEYS: dict[bytes, str] = {}
# Names come from clients: bound the cache, starting over when it is full.
_META_KEYS_MAX = 1024


def _meta_key(name: bytes) -> str:
    text = name.decode("latin1")
    key = _UNPREFIXED_HEADERS.get(text)
    if key is None:
        key = "HTTP_" + text.upper().replace("-", "_")
    if len(_META_KEYS) >= _META_KEYS_MAX:
        _META_KEYS.clear()
    _META_KEYS[name] = key
    return key


class AsgiRequest(http.HttpRequest):
    """An `HttpRequest` built from an ``http.request`` message (C-34, C-35).

    Django's `HttpRequest.__init__` is not called: every attribute it would set is
    set here from the message, as `WSGIRequest` does from its environ.
    """

    ResponseLater = ResponseLater

    # Seconds to wait for the rest of the body on `body_channel`.
    body_receive_timeout = 60

    def __init__(self, message: Any) -> None:
        self.message = message
        self.reply_channel = message.content.get("reply_channel")
        self._content_length = 0
        self._post_parse_error = False
        self._read_started = False
        self.resolver_match = None
        content = message.content
        path = content["path"]
        if isinstance(path, bytes):
            # As Django's WSGIRequest (get_path_info): bytes that are not UTF-8 are
            # percent-encoded, never a UnicodeDecodeError (issue 15 item 8).
            path = repercent_broken_unicode(path).decode()
        self.path = path
        self.script_name = content.get("root_path", "") or ""
        if self.script_name and self.path.startswith(self.script_name):
            self.path_info = self.path[len(self.script_name) :]
        else:
            self.path_info = self.path
        self.method = content["method"].upper()
        self.META = self._build_meta(content)
        self._set_content_type_params(self.META)
        self._read_body(content)

    def _build_meta(self, content: dict) -> dict[str, Any]:
        query_string = content.get("query_string", b"")
        if isinstance(query_string, bytes):
            # As in a WSGI environ: the raw bytes as latin-1, which never fails; `GET`
            # turns them back into bytes for QueryDict (issue 15 item 8).
            query_string = query_string.decode("latin-1")
        meta: dict[str, Any] = {
            "REQUEST_METHOD": self.method,
            "QUERY_STRING": query_string,
            "SCRIPT_NAME": self.script_name,
            "PATH_INFO": self.path_info,
            "wsgi.multithread": True,
            "wsgi.multiprocess": True,
        }
        client = content.get("client")
        if client:
            meta["REMOTE_ADDR"] = meta["REMOTE_HOST"] = client[0]
            meta["REMOTE_PORT"] = int(client[1])
        server = content.get("server")
        if server:
            meta["SERVER_NAME"] = server[0]
            meta["SERVER_PORT"] = str(server[1])
        else:
            meta["SERVER_NAME"] = "unknown"
            meta["SERVER_PORT"] = "0"
        headers = content.get("headers") or []
        if isinstance(headers, dict):
            # Legacy dict form: convert once and keep the list form on the message.
            headers = [
                [name.encode("latin1") if isinstance(name, str) else name, value]
                for name, value in headers.items()
            ]
            content["headers"] = headers
        keys = _META_KEYS
        for name, value in headers:
            key = keys.get(name)
            if key is None:
                key = _meta_key(name)
            value = value.decode("latin1")
            if key in meta:
                value = meta[key] + "," + value
            meta[key] = value
        return meta

    def _read_body(self, content: dict) -> None:
        """Set `_stream` (and `_body` when it is at hand) per C-35 and Django's limits.

        A body that came whole in the message is kept as is when it is within
        ``DATA_UPLOAD_MAX_MEMORY_SIZE``; over it, ``request.body`` raises
        `RequestDataTooBig` (400) as in Django, while uploads still parse from the
        stream. A body on `body_channel` is spooled as it arrives (in memory up to
        ``FILE_UPLOAD_MAX_MEMORY_SIZE``, then to ``FILE_UPLOAD_TEMP_DIR``), never
        held twice; one that Django would refuse anyway (not ``multipart/form-data``
        and over the limit) is not read at all (issue 15 item 5).
        """
        body = self._check_body(content.get("body", b""))
        limit = settings.DATA_UPLOAD_MAX_MEMORY_SIZE
        if not content.get("body_channel"):
            if limit is None or len(body) <= limit:
                self._body = body
            self._stream: IO[bytes] | _RefusedBody = BytesIO(body)  # shares `body`'s buffer
            return
        if limit is not None and self.content_type != "multipart/form-data":
            try:
                declared = int(self.META.get("CONTENT_LENGTH") or 0)
            except ValueError:
                declared = 0
            if declared > limit:
                self._stream = _RefusedBody(declared)
                return
        else:
            limit = None  # uploads: Django's parser applies its own limits
        self._stream = self._spool_body(content["body_channel"], body, limit)

    def _spool_body(
        self, body_channel: str, body: bytes, limit: int | None
    ) -> IO[bytes] | _RefusedBody:
        """Receive the rest of the body into a spooled file (C-35); stop past `limit`."""
        spool = tempfile.SpooledTemporaryFile(  # noqa: SIM115 (closed by request.close)
            max_size=settings.FILE_UPLOAD_MAX_MEMORY_SIZE,
            mode="w+b",
            dir=settings.FILE_UPLOAD_TEMP_DIR,
        )
        try:
            size = len(body)
            spool.write(body)
            layer = self.message.channel_layer
            deadline = time.monotonic() + self.body_receive_timeout
            while True:
                if limit is not None and size > limit:
                    # A body without (or with a low) Content-Length that outgrew the
                    # limit: Django would refuse it, so the rest is not read.
                    spool.close()
                    return _RefusedBody(size)
                # A blocking receive returns within the layer's bounded wait.
                _, chunk = layer.receive([body_channel], block=True)
                if chunk is None:
                    if time.monotonic() >= deadline:
                        raise RequestTimeout()
                    continue
                if chunk.get("closed", False):
                    raise RequestAborted()
                more = chunk.get("more_content", False)
                part = self._check_body(chunk.get("content", b""))
                spool.write(part)
                size += len(part)
                del part, chunk  # the spool holds the only copy
                if not more:
                    break
                if time.monotonic() >= deadline:
                    raise RequestTimeout()
        except BaseException:
            spool.close()
            raise
        spool.seek(0)
        return spool

    @staticmethod
    def _check_body(body: Any) -> bytes:
        if not isinstance(body, bytes):
            raise ValueError(f"Request body must be bytes, not {type(body).__name__} (A-75, A-78)")
        return body

    def _get_scheme(self) -> str:
        return self.message.content.get("scheme", "http")

    @cached_property
    def GET(self) -> QueryDict:
        # As Django's WSGIRequest: QueryDict decodes the bytes as UTF-8, falling back
        # to latin-1 for clients that send neither (issue 15 item 8).
        query_string = self.META["QUERY_STRING"]
        if query_string.isascii():  # the usual, percent-encoded query: nothing to redo
            return QueryDict(query_string, encoding=self._encoding)
        try:
            raw = query_string.encode("latin-1")
        except UnicodeEncodeError:  # a str query_string (legacy) beyond latin-1
            raw = query_string.encode("utf-8")
        return QueryDict(raw, encoding=self._encoding)

    def _get_post(self) -> QueryDict:
        if not hasattr(self, "_post"):
            self._load_post_and_files()
        return self._post

    def _set_post(self, post: QueryDict) -> None:
        self._post = post

    POST = property(_get_post, _set_post)

    @property
    def FILES(self):
        if not hasattr(self, "_files"):
            self._load_post_and_files()
        return self._files

    @cached_property
    def COOKIES(self) -> dict[str, str]:
        return http.parse_cookie(self.META.get("HTTP_COOKIE", ""))

    def close(self) -> None:
        """Also close the body's stream: a spooled body may be a temporary file."""
        super().close()
        self._stream.close()


class _RefusedBody:
    """The stream of a body the worker did not read: Django would refuse it anyway.

    Its size shows through ``seek(0, SEEK_END)``, so ``request.body`` raises
    `RequestDataTooBig` (a 400, as in Django) before reading; a direct ``read()``
    raises it too (issue 15 item 5).
    """

    def __init__(self, size: int) -> None:
        self.size = size

    def seekable(self) -> bool:
        return True

    def seek(self, offset: int, whence: int = os.SEEK_SET) -> int:
        return self.size if whence == os.SEEK_END else 0

    def read(self, *args: Any) -> bytes:
        raise RequestDataTooBig(
            f"Request body of {self.size} bytes exceeded settings.DATA_UPLOAD_MAX_MEMORY_SIZE "
            f"({settings.DATA_UPLOAD_MAX_MEMORY_SIZE}); the worker did not read it. Raise the "
            "setting (or set it to None) to accept larger bodies."
        )

    readline = read

    def close(self) -> None:
        pass


class _ResponseLaterMarker(HttpResponse):
    """Stands in for the response a view deferred with `ResponseLater` (C-37)."""


def _header_items(response: HttpResponseBase) -> Any:
    """``response.items()``: the (name as set, value) pairs in order (C-38), read from
    Django's `ResponseHeaders` store when neither the response class nor the headers
    class changes them (issue 20: the generic mapping view costs ~7k instructions for
    one header)."""
    headers = response.headers
    if type(headers) is ResponseHeaders and type(response).items is HttpResponseBase.items:
        store = vars(headers).get("_store")
        if type(store) is dict:
            return store.values()
    return response.items()


class AsgiHandler(base.BaseHandler):
    """Runs Django's middleware and views for ``http.request`` messages (C-36..C-39)."""

    request_class = AsgiRequest
    # Well under the layer's 1 MiB message limit.
    chunk_size = 512 * 1024

    def __init__(self) -> None:
        super().__init__()
        self.load_middleware(is_async=False)

    def __call__(self, message: Any) -> Iterator[dict]:
        """Yield the ``http.response`` messages answering `message`; lazy (C-36)."""
        set_script_prefix(message.content.get("root_path", "") or "")
        send_per_message(signals.request_started, sender=self.__class__, message=message)
        try:
            request = self.request_class(message)
        except UnicodeDecodeError:
            logger.warning(
                "Bad Request (UnicodeDecodeError)",
                exc_info=sys.exc_info(),
                extra={"status_code": 400},
            )
            response = HttpResponseBadRequest()
        except RequestTimeout:
            # the body did not arrive in time.
            response = HttpResponse("408 Request Timeout (upload too slow)", status=408)
        except RequestAborted:
            # The client is gone: nobody to answer.
            return
        else:
            response = self._get_response_safely(request)
            if isinstance(response, _ResponseLaterMarker):
                response.close()
                return
            if isinstance(response, FileResponse):
                response.block_size = self.chunk_size
        try:
            yield from self.encode_response(response)
        finally:
            # Also when the consumer stops iterating early; fires request_finished.
            close_response(response)

    def _get_response_safely(self, request: AsgiRequest) -> HttpResponse:
        try:
            return self.get_response(request)
        except Exception:  # Django's own error handling failed (C-37)
            logger.exception("Error while handling an error for %s", request.path)
            body = traceback.format_exc() if settings.DEBUG else "Internal Server Error"
            return HttpResponse(body, status=500, content_type="text/plain")

    def _get_response(self, request: AsgiRequest) -> HttpResponse:
        # C-37: catch ResponseLater where the view runs, before Django's
        # per-middleware conversion can turn it into a 500.
        try:
            return super()._get_response(request)
        except ResponseLater:
            return _ResponseLaterMarker()
        except Exception as error:
            if not layer_out_of_memory(error):
                raise
            return self.out_of_memory_response(request, error)

    # Seconds a client is asked to wait before retrying after a 503 (issue 15).
    out_of_memory_retry_after = 5

    def out_of_memory_response(self, request: AsgiRequest, error: Exception) -> HttpResponse:
        """503 for a view that failed because a channel layer (Redis) is out of
        memory: the service is unavailable for now, not broken (issue 15 item 9)."""
        channels_logger.warning(
            "Channel layer out of memory while handling %s %s (%s); answered 503. "
            "Raise Redis's maxmemory, run more consumers or lower the layer's capacity.",
            request.method,
            request.path,
            error,
        )
        response = HttpResponse(
            "503 Service Unavailable: the channel layer is out of memory; try again shortly.",
            status=503,
            content_type="text/plain",
        )
        response["Retry-After"] = str(self.out_of_memory_retry_after)
        return response

    @classmethod
    def encode_response(cls, response: HttpResponse) -> Iterator[dict]:
        """Turn a response into ``http.response`` messages (C-38)."""
        headers = [
            (str(name).encode("ascii"), str(value).encode("latin1"))
            for name, value in _header_items(response)
        ]
        for morsel in response.cookies.values():
            headers.append((b"Set-Cookie", morsel.output(header="").encode("ascii")))
        if not response.streaming:
            # A FileResponse forced non-streaming raises AttributeError here (C-38).
            content = response.content
            if len(content) <= cls.chunk_size:
                # The usual response: one message, without chunk_bytes' generator.
                yield {
                    "status": response.status_code,
                    "headers": headers,
                    "content": content,
                    "more_content": False,
                }
                return
            first = True
            for chunk, last in cls.chunk_bytes(content):
                message = {"content": chunk, "more_content": not last}
                if first:
                    message["status"] = response.status_code
                    message["headers"] = headers
                    first = False
                yield message
            return
        started = False
        for part in response:
            if not part:
                continue
            for chunk, _ in cls.chunk_bytes(part):
                message = {"content": chunk, "more_content": True}
                if not started:
                    message["status"] = response.status_code
                    message["headers"] = headers
                    started = True
                yield message
        closing: dict[str, Any] = {"more_content": False}
        if not started:
            closing["status"] = response.status_code
            closing["headers"] = headers
        yield closing

    @classmethod
    def chunk_bytes(cls, data: bytes) -> Iterator[tuple[bytes, bool]]:
        """Yield ``(piece, is_last)`` pieces of at most `chunk_size` bytes (C-39)."""
        size = len(data)
        if size <= cls.chunk_size:
            yield data, True
            return
        position = 0
        while position < size:
            end = position + cls.chunk_size
            yield data[position:end], end >= size
            position = end


# Django 5.2's `HttpResponseBase.close`, which `close_response` does itself; None on
# other versions, where the response's own close() runs.
_DJANGO_CLOSE = HttpResponseBase.close if django.VERSION[:2] == (5, 2) else None


def close_response(response: HttpResponseBase) -> None:
    """``response.close()`` (C-36 step 4), with ``request_finished`` sent through
    `send_per_message` (issue 20: receivers kept per sender, and Django's
    `close_old_connections` / `close_caches` answered without the call when this thread
    has no connection or cache). Same steps as Django 5.2's `HttpResponseBase.close`:
    the resource closers (their errors ignored), ``closed``, then the signal with the
    same sender. A response class or instance with its own close(), another Django, or
    a replaced ``request_finished.send`` gets ``response.close()`` itself.
    """
    if (
        _DJANGO_CLOSE is None
        or type(response).close is not _DJANGO_CLOSE
        or "close" in vars(response)
        or "send" in vars(signals.request_finished)
    ):
        response.close()
        return
    for closer in response._resource_closers:
        try:
            closer()
        except Exception:  # ignored, as in Django's close()
            pass
    response._resource_closers.clear()
    response.closed = True
    send_per_message(signals.request_finished, sender=response._handler_class)


class ViewConsumer:
    """Consumer that serves ``http.request`` with Django's views (C-40).

    Each reply is sent at once (a streaming response reaches the client as it is
    produced), except the response's end: that one is queued as this consumer's final
    reply (`PendingMessageStore.reply`), ahead of anything the view deferred, with this
    consumer's retry policy. It goes out when the consumer returns, before the worker
    handles another message: with the worker's next receive on a layer with
    ``send_many`` (one Redis round trip per request instead of two; issue 9), else at
    ``consumer_finished``. Called outside a consumer run, it is sent at once.
    """

    handler_class = AsgiHandler
    # Backoff bounds while the reply channel is full (A-89 note).
    first_retry_delay = FIRST_RETRY_DELAY
    max_retry_delay = REPLY_RETRY_CAP
    # Seconds a reply may stay refused before the response is abandoned; None means
    # the layer's `expiry`, after which a live reader would have drained the channel.
    reply_timeout: float | None = None

    def __init__(self) -> None:
        # One handler: middleware is loaded once, not per request.
        self.handler = self.handler_class()

    def __call__(self, message: Any) -> None:
        reply_channel = message.reply_channel
        if reply_channel is None:
            raise ValueError(
                f"Message on {message.channel.name} has no reply_channel; "
                "an http.request must carry one (A-75)"
            )
        replies = self.handler(message)
        ended = False
        try:
            for reply in replies:
                if ended or not reply.get("more_content", False):
                    # The response's end (and, in order, whatever a handler yields
                    # after it), queued before the generator finishes: ahead of what
                    # the request_finished receivers send, also when they raise.
                    ended = True
                    if not pending_message_store.reply(reply_channel, reply, self._send):
                        return  # sent at once (no consumer running) and abandoned
                elif not self._send(reply_channel, reply):
                    return
        finally:
            # Runs response.close() also when we gave up part-way.
            replies.close()  # type: ignore[attr-defined]  # a generator, typed as Iterator

    def _send(self, channel: Any, reply: dict, refused: BaseException | None = None) -> bool:
        """Send `reply` with C-40's policy; False when it was abandoned (logged). Also
        the `Retry` of the response's end, queued in the pending store.

        `refused`: a first try (the worker's batched send) already met this error. A
        layer out of memory (issue 15) is waited out like a full channel: memory comes
        back as messages are consumed or expire.
        """
        layer = channel.channel_layer
        if not refused:
            try:  # the usual case, without the retry loop's set-up
                channel.send(reply, immediately=True)
                return True
            except layer.ChannelFull as error:
                refused = error
            except Exception as error:
                if not layer_out_of_memory(error):
                    raise
                refused = error
        timeout = self.reply_timeout
        if timeout is None:
            timeout = getattr(layer, "expiry", 60)
        refused = send_retrying(
            channel,
            reply,
            time.monotonic() + timeout,
            first=self.first_retry_delay,
            cap=self.max_retry_delay,
            refused=refused,
            out_of_memory=True,
        )
        if refused is None:
            return True
        if isinstance(refused, layer.ChannelFull):
            channels_logger.warning(
                "Reply channel %s stayed full for %ss; abandoning the response "
                "(its reader is gone or stuck)",
                channel.name,
                timeout,
            )
        else:
            channels_logger.warning(
                "Channel layer stayed out of memory for %ss; abandoning the "
                "response on %s. Raise Redis's maxmemory or run more consumers.",
                timeout,
                channel.name,
            )
        return False
