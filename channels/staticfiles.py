"""Serving static files through the handler in development (C-41, C-42)."""

from __future__ import annotations

from typing import Any
from urllib.parse import urlparse
from urllib.request import url2pathname

from django.conf import settings
from django.contrib.staticfiles import utils
from django.contrib.staticfiles.views import serve
from django.http import Http404, HttpResponse
from django.views import debug

from .handler import AsgiHandler, ViewConsumer

__all__ = ["StaticFilesConsumer", "StaticFilesHandler"]


class StaticFilesHandler(AsgiHandler):
    """An `AsgiHandler` that answers requests under ``STATIC_URL`` from static files."""

    def __init__(self) -> None:
        # Fails early with Django's own message if the staticfiles settings are wrong.
        utils.check_settings()
        self.base_url = urlparse(self.get_base_url())
        super().__init__()

    def get_base_url(self) -> str:
        return settings.STATIC_URL

    def _should_handle(self, path: str) -> bool:
        # Only a local STATIC_URL (no host part) can be served from here.
        return path.startswith(self.base_url.path) and not self.base_url.netloc

    def file_path(self, url: str) -> str:
        """The file path for `url`, relative to the static files root."""
        relative_url = url[len(self.base_url.path) :]
        return url2pathname(relative_url)

    def serve(self, request: Any) -> HttpResponse:
        return serve(request, self.file_path(request.path), insecure=True)

    def get_response(self, request: Any) -> HttpResponse:
        if self._should_handle(request.path):
            try:
                return self.serve(request)
            except Http404 as error:
                if settings.DEBUG:
                    return debug.technical_404_response(request, error)
        return super().get_response(request)


class StaticFilesConsumer(ViewConsumer):
    """A `ViewConsumer` that also serves static files (C-42)."""

    handler_class = StaticFilesHandler
