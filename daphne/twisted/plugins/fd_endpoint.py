"""Twisted plugin: the ``fd:fileno=N[:domain=...]`` server endpoint (D-52).

This file lives in a ``twisted/plugins/`` directory without ``__init__.py`` so
that, once installed, Twisted's plugin discovery finds it as
``twisted.plugins.fd_endpoint`` without shadowing Twisted's own package.
"""

import socket
from typing import Any

from twisted.internet.endpoints import AdoptedStreamServerEndpoint
from twisted.internet.interfaces import IStreamServerEndpointStringParser
from twisted.plugin import IPlugin
from zope.interface import implementer


@implementer(IPlugin, IStreamServerEndpointStringParser)
class _FDParser:
    prefix = "fd"

    def _parseServer(
        self, reactor: Any, fileno: str | int, domain: str | int = socket.AF_INET
    ) -> AdoptedStreamServerEndpoint:
        descriptor = int(fileno)
        if isinstance(domain, str):
            domain = int(domain) if domain.isdigit() else getattr(socket, domain)
        # Twisted's endpoint constructor is untyped.
        return AdoptedStreamServerEndpoint(reactor, descriptor, domain)  # type: ignore[no-untyped-call, unused-ignore]

    def parseStreamServer(
        self, reactor: Any, *args: Any, **kwargs: Any
    ) -> AdoptedStreamServerEndpoint:
        # Delegate to another function with a sane signature (Twisted's convention).
        return self._parseServer(reactor, *args, **kwargs)


parser = _FDParser()
