"""`HTTPFactory`: builds HTTP connections, owns the reply-channel registry the reply
reader dispatches into, and holds the `ServerConfig` every connection reads (D-18..D-25).

Also importable as ``daphne.http_protocol.HTTPFactory`` (the same object), where 1.4 had it.
"""

from __future__ import annotations

import logging
import operator
from typing import Any

from twisted.internet.interfaces import IProtocolNegotiationFactory
from twisted.web import http
from zope.interface import implementer

from . import layer_api, ws_fanout
from .config import ConfigOption, DefaultedOption, ServerConfig, option_arguments, refuse_both
from .deadlines import DeadlineSweep, OrderedDeadlines
from .draining import DrainingFactory
from .edge_log import MergedLog
from .expired_requests import ExpiredRequests
from .http_channel import HTTPChannel, NegotiatingChannel
from .layer_health import HealthReporter, LayerHealth
from .metrics import NULL_METRICS, DaphneMetrics, NullMetrics
from .outbox import Outbox
from .routed import RoutedChannels
from .web_request import SENDING, WS_SENDING, WebRequest, _letters
from .web_request import full_channels as http_full_channels
from .ws_deflate import accept_offers
from .ws_flow import full_channels as ws_full_channels
from .ws_handover import handshake_timeout
from .ws_protocol import WebSocketFactory, WebSocketProtocol

__all__ = ["HTTP2_AVAILABLE", "HTTPFactory"]

try:  # D-25: HTTP/2 needs Twisted's http2 and tls extras.
    from twisted.web._http2 import H2Connection  # noqa: F401

    HTTP2_AVAILABLE = True
except ImportError:
    HTTP2_AVAILABLE = False

# One logger with the requests': `channels.log.setup_logger` configures it (C-76).
logger = logging.getLogger("daphne.http_protocol")

# Options autobahn keeps its own copy of: assigning one calls this method (D-19).
_AUTOBAHN = "_configure_autobahn"
# D-18's keyword arguments that name a `ServerConfig` field differently.
_RENAMED = {"timeout": "http_timeout"}


@implementer(IProtocolNegotiationFactory)
class HTTPFactory(DrainingFactory, http.HTTPFactory):
    """Builds HTTP connections and routes reply messages to them (D-18..D-25).

    Pass a `ServerConfig` as ``config``, or D-18's keyword arguments (1.4's way), from
    which the factory builds one that checks no Host (D-53). Either way the option
    attributes (``timeout``, ``ping_interval``, ``root_path``...) read and write
    ``self.config``, so assigning one takes effect for later requests (D-18).
    """

    # buildProtocol below makes the protocols. Twisted's HTTPFactory types this as its
    # own channel class, never None.
    protocol = None  # type: ignore[assignment]
    request_class = WebRequest
    websocket_class = WebSocketProtocol

    # The options, read at request time (D-18); autobahn's copies follow assignments.
    action_logger = ConfigOption("action_logger")
    timeout = ConfigOption("http_timeout")
    websocket_timeout = ConfigOption("websocket_timeout")
    ping_interval = ConfigOption("ping_interval")
    ping_timeout = ConfigOption("ping_timeout", _AUTOBAHN)
    ws_protocols = ConfigOption("ws_protocols")
    root_path = ConfigOption("root_path")
    websocket_connect_timeout = ConfigOption("websocket_connect_timeout", _AUTOBAHN)
    websocket_handshake_timeout = ConfigOption("websocket_handshake_timeout", _AUTOBAHN)
    proxy_forwarded_address_header = ConfigOption("proxy_forwarded_address_header")
    proxy_forwarded_port_header = ConfigOption("proxy_forwarded_port_header")
    proxy_forwarded_proto_header = ConfigOption("proxy_forwarded_proto_header")
    forwarded_allow_ips = ConfigOption("forwarded_allow_ips")
    websocket_max_message_size = ConfigOption("websocket_max_message_size", _AUTOBAHN)
    http_max_body_size = ConfigOption("http_max_body_size")
    max_outbound_buffer = ConfigOption("max_outbound_buffer")
    http_body_timeout = ConfigOption("http_body_timeout")
    max_connections = ConfigOption("max_connections")
    # Issue 17: how long a request waits for room on a full http.request channel.
    http_queue_timeout = ConfigOption("http_queue_timeout")
    # D-64: limits on the request head; a request body that stops arriving for
    # `body_idle_timeout` gets 408 (not in 1.4).
    max_header_size = DefaultedOption("max_header_size")
    max_header_count = DefaultedOption("max_header_count")
    head_timeout = ConfigOption("head_timeout")
    body_idle_timeout = ConfigOption("body_idle_timeout")
    # Seconds a connection may stay over max_outbound_buffer before it is closed.
    outbound_full_timeout = ConfigOption("outbound_full_timeout")
    # RFC 9112 §3.2: a missing, repeated or malformed Host gets 400 (issue 15).
    require_host = ConfigOption("require_host")
    # Issue 21: permessage-deflate (RFC 7692), and HTTP/2 over cleartext.
    ws_compression = ConfigOption("ws_compression")
    h2c = ConfigOption("h2c")

    def __init__(
        self,
        channel_layer: layer_api.ChannelLayer,
        action_logger: Any = None,
        send_channel: str | None = None,
        timeout: int | float = 120,
        websocket_timeout: int | float = 86400,
        ping_interval: int | float = 20,
        ping_timeout: int | float = 30,
        ws_protocols: list[str] | None = None,
        root_path: str = "",
        websocket_connect_timeout: int | float = 30,
        proxy_forwarded_address_header: str | None = None,
        proxy_forwarded_port_header: str | None = None,
        proxy_forwarded_proto_header: str | None = None,
        websocket_handshake_timeout: int | float = 5,
        forwarded_allow_ips: list[Any] | None = None,
        websocket_max_message_size: int = 1048576,
        http_max_body_size: int = 0,
        max_outbound_buffer: int = 1048576,
        http_body_timeout: int | float = 120,
        max_connections: int = 0,
        config: ServerConfig | None = None,
    ) -> None:
        given = locals()  # the arguments by name: the signature is the one option list
        if config is None:
            # D-18's compatibility path. A factory built alone takes any Host, as 1.4's
            # test helpers and the hypothesis suites written with them need (D-53).
            options = {field: given[name] for name, (field, _) in _FACTORY_OPTIONS.items()}
            config = ServerConfig(require_host=False, **options)
        else:
            refuse_both(given, _FACTORY_OPTIONS, "HTTPFactory")
        self.config = config
        # Twisted's idle timer resets on every read; D-64's head timer replaces it. Twisted
        # documents None as "no timeout" but types the argument as a number.
        super().__init__(timeout=None)  # type: ignore[arg-type]
        if send_channel is None:
            raise AssertionError("send_channel must be the process-specific prefix ending in '!'")
        # Every layer send of every connection, batched per reactor tick (issue 9); the
        # outbox holds the layer (`channel_layer` below).
        self.outbox = Outbox(channel_layer, lambda: self.reactor)
        # Issue 18: what the connections report to; `Server` sets a `DaphneMetrics`
        # when ``--metrics-port`` is given.
        self._metrics: DaphneMetrics | NullMetrics = NULL_METRICS
        self._watch_layer(channel_layer)
        self.send_channel = send_channel
        # Issue 15 (`backpressure`): connections closed for leaving too much unread.
        self.outbound_overflows = 0
        # Issue 15: the connections open and those refused over `max_connections`.
        self.open_connections = 0
        self.refused_connections = 0
        self.cap_log = MergedLog(logger, logging.WARNING, lambda: self.reactor)
        self.reply_protocols: dict[str, WebRequest | WebSocketProtocol] = {}
        self.http_channels: set[HTTPChannel] = set()
        # One timer for every WebSocket's connect/ping/lifetime deadline (D-24, D-43).
        self.deadlines = DeadlineSweep(lambda: self.reactor)
        # Every request's HTTP timeout (D-24): in order, as they share one timeout.
        self.request_deadlines = OrderedDeadlines(lambda: self.reactor)
        # Issue 15 item 6: requests whose http.request expired unread get 503 at once.
        self.expired_requests = ExpiredRequests(self)
        # D-19.
        self.ws_factory = WebSocketFactory(self, protocols=config.ws_protocols, server="Daphne")
        self._configure_autobahn()
        self.ws_factory.protocol = WebSocketProtocol
        self.ws_factory.reply_protocols = self.reply_protocols

    def _configure_autobahn(self) -> None:
        """Pass the options autobahn keeps its own copy of on to it (D-19, D-65)."""
        config = self.config
        # autobahn's API is untyped.
        self.ws_factory.setProtocolOptions(  # type: ignore[no-untyped-call, unused-ignore]
            autoPingTimeout=config.ping_timeout,
            allowNullOrigin=True,
            openHandshakeTimeout=self.autobahn_handshake_timeout(),
            maxMessagePayloadSize=config.websocket_max_message_size,
            maxFramePayloadSize=config.websocket_max_message_size,
            # Protocol errors get a close frame (1002/1007/1009) before the TCP
            # close, so clients learn why; autobahn's default just drops the socket.
            failByDrop=False,
            perMessageCompressionAccept=self._accept_compression,
        )

    def _accept_compression(self, offers: list[Any]) -> Any:
        """Issue 21: permessage-deflate when the client offers it and it is on."""
        if not self.config.ws_compression:
            return None
        return accept_offers(offers, self.config.websocket_max_message_size)

    def autobahn_handshake_timeout(self) -> float:
        config = self.config
        return handshake_timeout(
            config.websocket_handshake_timeout, config.websocket_connect_timeout
        )

    @property
    def channel_layer(self) -> layer_api.ChannelLayer:
        return self.outbox.channel_layer

    @channel_layer.setter
    def channel_layer(self, layer: layer_api.ChannelLayer) -> None:
        self.outbox.channel_layer = layer
        self._watch_layer(layer)

    def _watch_layer(self, layer: layer_api.ChannelLayer) -> None:
        # One ERROR per outage of the layer, one INFO when it is back (issue 14).
        self.layer_health = LayerHealth(layer)
        metrics = self._metrics
        self.http_reporter = HealthReporter(http_full_channels, self.layer_health, SENDING, metrics)
        self.ws_reporter = HealthReporter(ws_full_channels, self.layer_health, WS_SENDING, metrics)
        # Whether workers route http.disconnect; `Server` keeps it up to date.
        self.routed = RoutedChannels(layer)

    def _set_metrics(self, metrics: DaphneMetrics | NullMetrics) -> None:
        self._metrics = self.http_reporter.metrics = self.ws_reporter.metrics = metrics

    # The connections' `DaphneMetrics` (issue 18), `NULL_METRICS` with metrics off: a
    # property whose getter is C code, read per event.
    metrics = property(operator.attrgetter("_metrics"), _set_metrics)

    # -- connections ---------------------------------------------------------------

    def buildProtocol(self, addr: Any) -> Any:
        try:
            # Twisted's HTTPChannel.__init__ is untyped.
            wrapper = NegotiatingChannel(HTTPChannel())  # type: ignore[no-untyped-call, unused-ignore]
            # Set on the wrapper, not the channel: ALPN's switch to HTTP/2 builds
            # its H2Connection with the wrapper's factory (D-25).
            wrapper.requestFactory = WebRequest
            wrapper.factory = self
            wrapper.callLater = self.reactor.callLater
            wrapper.timeOut = None
            wrapper.h2c = self.config.h2c and HTTP2_AVAILABLE  # issue 21
            return wrapper
        except Exception:
            logger.exception("Cannot build an HTTP protocol")
            raise

    def startFactory(self) -> None:
        # Twisted's factory would start its own access log here; daphne has its own (D-47).
        pass

    def stopFactory(self) -> None:
        pass

    def log(self, request: http.Request) -> None:
        """Twisted's per-request log line: replaced by `action_logger` (D-36)."""

    def acceptableProtocols(self) -> list[bytes]:
        return [b"h2", b"http/1.1"] if HTTP2_AVAILABLE else [b"http/1.1"]

    # -- reply channels (D-21, D-22) ---------------------------------------------

    def make_send_channel(self) -> str:
        return self.send_channel + _letters(10)

    def reply_channels(self) -> list[str]:
        return list(self.reply_protocols)

    def dispatch_reply(self, channel: str, message: dict[str, Any]) -> None:
        protocol = self.reply_protocols.get(channel)
        if protocol is None:
            # Normal after a disconnect.
            logger.debug("Reply for unknown channel %s discarded", channel)
            self._metrics.dropped(channel, "reply_channel_unknown")
            return
        if isinstance(protocol, WebRequest):
            metrics = self._metrics
            if metrics.enabled and protocol.waiting_for_response():
                # Issue 18: the application's first reply (daphne's own 503 and timeout
                # pages do not come through here).
                start = protocol.request_start
                if start is not None:
                    clock: Any = self.reactor  # Twisted types it as a zope interface
                    metrics.first_reply(clock.seconds() - start)
            protocol.serverResponse(message)
        elif isinstance(protocol, WebSocketProtocol):
            # One data frame on a plainly open socket: written here (issue 20, W2).
            if not ws_fanout.reply_one(self, protocol, message):
                protocol.dispatch_reply(message)
        else:
            raise ValueError("Unknown protocol class")

    def fan_out(self, channels: list[str], message: dict[str, Any], dispatch_one: Any) -> None:
        """Issue 20: copies of one message to several reply channels (a group send),
        as `dispatch_reply` would send them one by one; the reply reader calls it."""
        ws_fanout.fan_out(self, channels, message, dispatch_one)

    def connection_refused(self) -> None:
        """A connection over `max_connections` gets 503: counted, logged merged (issue 15)."""
        self.refused_connections += 1
        self._metrics.backpressure("http_503")
        self.cap_log.report(
            "max_connections",
            f"max_connections ({self.max_connections}) reached: a new connection gets 503",
        )

    def log_action(self, protocol: str, action: str, details: dict[str, Any]) -> None:
        if self.action_logger:
            self.action_logger(protocol, action, details)

    # -- timeouts (D-24) ------------------------------------------------------------

    def check_timeouts(self) -> None:
        """Run every connection's timeout checks once (per-connection timers do this too)."""
        for protocol in list(self.reply_protocols.values()):
            if isinstance(protocol, WebRequest):
                protocol.check_timeout()
            elif isinstance(protocol, WebSocketProtocol):
                protocol.check_timeouts()


# D-18's option arguments: all but channel_layer, send_channel and config.
_FACTORY_OPTIONS = option_arguments(HTTPFactory.__init__, _RENAMED)
