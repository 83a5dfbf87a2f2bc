"""`Server`: listens on endpoints, reads replies, stops gracefully (D-11..D-17)."""

from __future__ import annotations

import dataclasses
import logging
import os
import random
import string
import warnings
from typing import Any, cast

import twisted.plugins
from twisted.internet import defer, reactor
from twisted.logger import ILogObserver, STDLibLogObserver, globalLogBeginner

from . import autobahn_patches, reactor_patches
from .config import (
    ConfigOption,
    ServerConfig,
    build_endpoint_description_strings,
    option_arguments,
    refuse_both,
)
from .edge_log import MergedLog, TwistedErrors
from .errors import ListenFailed
from .http_factory import HTTP2_AVAILABLE, HTTPFactory
from .listening import LISTEN_BACKLOG as LISTEN_BACKLOG
from .listening import listen, listen_failure
from .listening import with_listen_backlog as with_listen_backlog
from .metrics import DaphneMetrics
from .reply_reader import ReactorReader, ThreadReader
from .server_metrics import start_metrics
from .server_stop import GracefulStop

# Its own generator: the global one may be seeded or driven by tests (hypothesis).
_random = random.Random()

__all__ = ["Server", "build_endpoint_description_strings", "NotAChannelLayer", "ListenFailed"]

logger = logging.getLogger(__name__)

# D-52: make the `fd` endpoint plugin discoverable from a source checkout too
# (an installed copy lives in site-packages' twisted/plugins already).
_PLUGIN_DIR = os.path.join(os.path.dirname(__file__), "twisted", "plugins")
if _PLUGIN_DIR not in twisted.plugins.__path__:
    twisted.plugins.__path__.append(_PLUGIN_DIR)


class NotAChannelLayer(TypeError):
    """The object given as channel layer has no callable send() and receive() (D-62)."""


class Server:
    """The protocol server process (D-12, D-13).

    Its options are a `ServerConfig`: pass one as ``config``, or D-12's keyword
    arguments (1.4's way), from which it builds one. Either way each option is also a
    same-named attribute over ``self.config``; assigning one before `start()` (or, for
    those read per request, at any time) takes effect.
    """

    endpoints = ConfigOption("endpoints")
    signal_handlers = ConfigOption("signal_handlers")
    action_logger = ConfigOption("action_logger")
    http_timeout = ConfigOption("http_timeout")
    websocket_timeout = ConfigOption("websocket_timeout")
    websocket_connect_timeout = ConfigOption("websocket_connect_timeout")
    ping_interval = ConfigOption("ping_interval")
    ping_timeout = ConfigOption("ping_timeout")
    ws_protocols = ConfigOption("ws_protocols")
    root_path = ConfigOption("root_path")
    proxy_forwarded_address_header = ConfigOption("proxy_forwarded_address_header")
    proxy_forwarded_port_header = ConfigOption("proxy_forwarded_port_header")
    proxy_forwarded_proto_header = ConfigOption("proxy_forwarded_proto_header")
    force_sync = ConfigOption("force_sync")
    verbosity = ConfigOption("verbosity")
    websocket_handshake_timeout = ConfigOption("websocket_handshake_timeout")
    forwarded_allow_ips = ConfigOption("forwarded_allow_ips")
    websocket_max_message_size = ConfigOption("websocket_max_message_size")
    http_max_body_size = ConfigOption("http_max_body_size")
    graceful_timeout = ConfigOption("graceful_timeout")
    http_queue_timeout = ConfigOption("http_queue_timeout")
    websocket_drain_time = ConfigOption("websocket_drain_time")
    reuse_port = ConfigOption("reuse_port")
    metrics_port = ConfigOption("metrics_port")
    metrics_host = ConfigOption("metrics_host")
    max_outbound_buffer = ConfigOption("max_outbound_buffer")
    http_body_timeout = ConfigOption("http_body_timeout")
    max_connections = ConfigOption("max_connections")
    # Issue 21.
    ws_compression = ConfigOption("ws_compression")
    h2c = ConfigOption("h2c")

    def __init__(
        self,
        channel_layer: Any,
        host: str | None = None,
        port: int | None = None,
        endpoints: list[str] | None = None,
        unix_socket: str | None = None,
        file_descriptor: int | None = None,
        signal_handlers: bool = True,
        action_logger: Any = None,
        http_timeout: int | float = 120,
        websocket_timeout: int | float | None = None,
        websocket_connect_timeout: int | float = 20,
        ping_interval: int | float = 20,
        ping_timeout: int | float = 30,
        ws_protocols: list[str] | None = None,
        root_path: str = "",
        proxy_forwarded_address_header: str | None = None,
        proxy_forwarded_port_header: str | None = None,
        proxy_forwarded_proto_header: str | None = None,
        force_sync: bool = False,
        verbosity: int = 1,
        websocket_handshake_timeout: int | float = 5,
        forwarded_allow_ips: list[Any] | None = None,
        websocket_max_message_size: int = 1048576,
        http_max_body_size: int = 0,
        graceful_timeout: int | float = 10,
        http_queue_timeout: int | float = 5,
        websocket_drain_time: int | float = 5,
        max_outbound_buffer: int = 1048576,
        http_body_timeout: int | float = 120,
        max_connections: int = 0,
        ws_compression: bool = True,
        h2c: bool = False,
        reuse_port: bool = False,
        metrics_port: int | None = None,
        metrics_host: str = "127.0.0.1",
        config: ServerConfig | None = None,
    ) -> None:
        given = locals()  # the arguments by name: the signature is the one option list
        if config is None:
            options = {field: given[name] for name, (field, _) in _SERVER_OPTIONS.items()}
            options["endpoints"] = endpoints or []
            config = ServerConfig(**options)
        else:
            refuse_both(given, _SERVER_OPTIONS, "Server")
            # Its own copy: what the server fills in below stays out of the caller's.
            config = dataclasses.replace(config)
        self.config = config
        self.channel_layer = channel_layer
        if any([host, port, unix_socket, file_descriptor is not None]):
            warnings.warn(
                "The host/port/unix_socket/file_descriptor kwargs are deprecated; "
                "pass Twisted endpoint description strings as endpoints=[...]",
                DeprecationWarning,
                stacklevel=2,
            )
            config.endpoints = sorted(
                config.endpoints
                + build_endpoint_description_strings(
                    host=host, port=port, unix_socket=unix_socket, file_descriptor=file_descriptor
                )
            )
        if not config.endpoints:
            raise UserWarning("No endpoints. This server will not listen on anything.")
        self.host = host
        self.port = port
        self.unix_socket = unix_socket
        self.file_descriptor = file_descriptor
        # sockets close after the layer's group_expiry unless told otherwise.
        if not config.websocket_timeout:
            config.websocket_timeout = getattr(channel_layer, "group_expiry", 86400)
        self.listeners: list[defer.Deferred[Any]] = []
        # Twisted's global reactor (tests assign a `task.Clock` or a reactor of theirs);
        # several reactor interfaces at once, which zope interfaces cannot spell.
        self.reactor: Any = reactor
        self.factory: HTTPFactory | None = None
        self.reader: ThreadReader | ReactorReader | None = None
        self._graceful = GracefulStop(self)  # D-17's stop sequence
        # The first endpoint that could not listen; `run()` raises it (issue 14).
        self.listen_error: ListenFailed | None = None
        self._running = False
        # Issue 18: the ``--metrics-port`` listener and its registry, when metrics are on.
        self.metrics: DaphneMetrics | None = None
        # An IListeningPort (zope interfaces are not types to mypy).
        self.metrics_listener: Any = None

    # -- running -------------------------------------------------------------------

    def run(self) -> None:
        """Start everything and run the reactor until stopped (D-13).

        Raises `ListenFailed` when an endpoint cannot listen (port taken, no
        permission), before serving anything or, for an endpoint that fails later,
        once the reactor stopped: the server never runs without one of its endpoints.
        """
        self.check_channel_layer()
        # D-13: Twisted's log goes to stdlib logging at verbosity 2, nowhere below; its
        # errors and accept failures reach it at ERROR at every verbosity, merged (issue 15).
        fallback = STDLibLogObserver(name="daphne.server") if self.verbosity > 1 else None
        merged = MergedLog(logger, logging.ERROR, self.reactor)
        observer = TwistedErrors(merged, fallback, self.reactor)
        # An observer is any callable taking the event: zope interfaces are not types to mypy.
        globalLogBeginner.beginLoggingTo([cast(ILogObserver, observer)], redirectStandardIO=False)
        self._running = True
        self.start()
        if self.listen_error is not None:
            self._graceful.stop_listening()
            raise self.listen_error
        if self.signal_handlers:
            self.reactor.callWhenRunning(self._graceful.install_signal_handlers)
        self.reactor.run(installSignalHandlers=self.signal_handlers)
        if self.listen_error is not None:
            raise self.listen_error

    def check_channel_layer(self) -> None:
        """Refuse a layer without callable send/receive before listening (D-62)."""
        layer = self.channel_layer
        if not callable(getattr(layer, "send", None)) or not callable(
            getattr(layer, "receive", None)
        ):
            raise NotAChannelLayer(
                f"{layer!r} is not a channel layer: it needs callable send() and receive()"
            )

    def start(self) -> list[defer.Deferred[Any]]:
        """Build the factory, start the reply reader and listen; for use in a running reactor
        too (tests). Returns the listener Deferreds."""
        autobahn_patches.install()  # autobahn's per-frame costs daphne does not need
        reactor_patches.install()  # the epoll reactor's log context per event, cheaper
        self.send_channel = (
            "daphne.response." + "".join(_random.choices(string.ascii_letters, k=10)) + "!"
        )
        # The factory shares the config: options assigned on the server after this
        # still reach the connections that read them per request (D-18).
        factory = self.factory = HTTPFactory(
            self.channel_layer, send_channel=self.send_channel, config=self.config
        )
        if HTTP2_AVAILABLE:
            # Issue 21: and over cleartext with prior knowledge, with --h2c.
            logger.info("HTTP/2 support enabled%s", " (h2c too)" if self.config.h2c else "")
        else:
            logger.log(
                logging.WARNING if self.config.h2c else logging.INFO,
                "HTTP/2 support not enabled (install the http2 and tls Twisted extras)",
            )
        if self.config.metrics_port is not None:
            start_metrics(self, factory)
        if "twisted" in getattr(self.channel_layer, "extensions", []) and not self.force_sync:
            logger.info("Using native Twisted mode on channel layer")
            self.reactor.callWhenRunning(self.backend_reader_twisted)
        else:
            logger.info("Reading replies from the channel layer in a background thread")
            self.reactor.callWhenRunning(self.backend_reader_sync)
        self.reactor.callWhenRunning(factory.routed.start, self.reactor)
        self.reactor.addSystemEventTrigger("before", "shutdown", self._stop_readers)
        # Sends queued in the last tick (disconnects of dropped connections) still go out.
        self.reactor.addSystemEventTrigger("before", "shutdown", self._graceful.drain_outbox)
        for description in self.endpoints:
            logger.info("Listening on endpoint %s", description)
            listener = listen(self.reactor, description, factory, self.config.reuse_port)
            listener.addErrback(self.on_listener_error, description)
            self.listeners.append(listener)
        return self.listeners

    def on_listener_error(self, failure: Any, description: str = "") -> None:
        """An endpoint cannot listen. Under `run()` the server stops and `run()` raises
        `ListenFailed`; a server only `start()`-ed (tests) logs it at ERROR, as in 1.4."""
        error = listen_failure(description, failure.value)
        if not self._running:
            logger.error("%s", error)
            return
        if self.listen_error is None:
            self.listen_error = error
        if self.reactor.running:
            self.reactor.stop()

    def _started_factory(self) -> HTTPFactory:
        """The factory `start()` built: the readers and the stop steps run after it."""
        if self.factory is None:
            raise RuntimeError("Server.start() has not run")
        return self.factory

    def backend_reader_sync(self) -> None:
        """Start the reader thread (D-14 as the note before it describes)."""
        factory = self._started_factory()
        reader = ThreadReader(
            self.reactor,
            self.channel_layer,
            self.send_channel,
            factory.dispatch_reply,
            factory.layer_health,
        )
        reader.metrics = factory.metrics  # its lag (issue 18)
        reader.fan_out = factory.fan_out  # a group message's copies at once (issue 20)
        self.reader = reader
        reader.start()

    def backend_reader_twisted(self) -> None:
        """D-15 for a layer listing `twisted`: the reactor reads the layer's socket.

        A layer offering `socket_receive` (asgi_redis) is read by `ReactorReader`,
        with no thread at all; any other gets the reader thread of D-14.
        `receive_twisted` would cost a thread-pool hop and a Deferred chain per
        reply (issue 9 profile); the D-14..D-16 note allows either.
        """
        factory = self._started_factory()
        self.reader = ReactorReader.open(
            self.reactor,
            self.channel_layer,
            self.send_channel,
            factory.dispatch_reply,
            factory.layer_health,
        )
        if self.reader is None:
            self.backend_reader_sync()
        else:
            # Set before the reactor's next turn, when the reader first dispatches.
            self.reader.fan_out = factory.fan_out  # issue 20, as the thread reader's

    def timeout_checker(self) -> None:
        """Run every connection's timeout checks once (D-16); per-connection timers
        normally do this, so nothing schedules it."""
        try:
            self._started_factory().check_timeouts()
        except Exception:
            logger.exception("Error checking timeouts")

    def _stop_readers(self) -> None:
        if self.reader is not None:
            self.reader.stop()
        if self.factory is not None:
            self.factory.routed.stop()

    # -- graceful stop (D-17): see `GracefulStop` -------------------------------------

    def graceful_stop(self) -> defer.Deferred[None]:
        """D-17 steps 1-4; the Deferred fires once every connection is gone."""
        return self._graceful.begin()

    def _stop_requested(self) -> None:
        # What a SIGINT/SIGTERM does: the first starts a graceful stop, the next ends it.
        self._graceful.requested()


# D-12's option arguments: all but channel_layer, the deprecated host/port/unix_socket/
# file_descriptor and config.
_SERVER_OPTIONS = option_arguments(Server.__init__, {})
