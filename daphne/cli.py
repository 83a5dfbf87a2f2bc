"""The ``daphne`` command (D-5..D-11, D-62)."""

from __future__ import annotations

import argparse
import logging
import sys
from typing import Any, NoReturn

from . import __version__
from .access import AccessLogGenerator
from .errors import ListenFailed
from .loading import (
    LayerLoadError,
    is_process_local,
    load_channel_layer,
    not_a_layer_message,
    process_local_message,
)
from .logfmt import LOG_FORMAT
from .server import NotAChannelLayer, Server, build_endpoint_description_strings
from .utils import InvalidAllowedIP, parse_allowed_ips

__all__ = ["CommandLineInterface", "DEFAULT_HOST", "DEFAULT_PORT"]

logger = logging.getLogger(__name__)

DEFAULT_HOST = "127.0.0.1"
DEFAULT_PORT = 8000


class StartupError(Exception):
    """Daphne cannot start; the message is the one line shown to the user (D-62)."""

    def __init__(self, message: str, status: int) -> None:
        super().__init__(message)
        self.status = status


class _OneLineParser(argparse.ArgumentParser):
    """argparse whose errors are one line without the usage text (D-62)."""

    def error(self, message: str) -> NoReturn:
        raise StartupError(message, 2)


class _HelpFormatter(argparse.RawDescriptionHelpFormatter):
    """Shows each option's default (when it has a meaningful one) and keeps the epilog's
    line breaks (issue 14)."""

    def _get_help_string(self, action: argparse.Action) -> str:
        text = action.help or ""
        default = action.default
        if (
            "%(default)" not in text
            and default is not None
            and default is not False
            and default not in ("", [])
            and default is not argparse.SUPPRESS
            and action.option_strings
        ):
            text += " (default: %(default)s)"
        return text


EPILOG = """\
examples:
  daphne myproject.asgi:channel_layer
  daphne -b 0.0.0.0 -p 8000 myproject.asgi:channel_layer
  daphne -u /run/daphne.sock --proxy-headers myproject.asgi:channel_layer

myproject/asgi.py must define the channel layer (not Django's ASGI application):
  import os
  os.environ.setdefault("DJANGO_SETTINGS_MODULE", "myproject.settings")
  from channels.asgi import get_channel_layer
  channel_layer = get_channel_layer()

Run workers next to it with: python manage.py runworker
"""


def _non_negative(value: str) -> int:
    number = int(value)
    if number < 0:
        raise argparse.ArgumentTypeError(f"{value} is negative; use 0 or more")
    return number


class CommandLineInterface:
    """Parses arguments, loads the layer and builds the `Server` (D-5)."""

    description = "Django HTTP/WebSocket server"
    # The in-memory layer cannot reach workers in other processes, so it is refused;
    # a program running daphne and its workers in one process may set this (tests).
    allow_process_local_layer = False

    def __init__(self) -> None:
        self.parser = _OneLineParser(
            prog="daphne",
            description=self.description,
            epilog=EPILOG,
            formatter_class=_HelpFormatter,
        )
        self.server = None
        add = self.parser.add_argument
        add("--version", action="version", version=f"daphne {__version__}")
        add(
            "-p",
            "--port",
            type=int,
            help=f"Port number to listen on (default: {DEFAULT_PORT} when no other endpoint "
            "option is given)",
            default=None,
        )
        add(
            "-b",
            "--bind",
            dest="host",
            help=f"The host/address to bind to (default: {DEFAULT_HOST})",
            default=None,
        )
        add("-u", "--unix-socket", dest="unix_socket", help="Bind to a UNIX socket rather than TCP")
        add("--fd", type=int, dest="file_descriptor", help="Bind to a file descriptor")
        add(
            "-e",
            "--endpoint",
            dest="socket_strings",
            action="append",
            default=[],
            help="Use raw server strings passed directly to twisted",
        )
        add("-v", "--verbosity", type=int, default=1, help="How verbose to make the output")
        add(
            "-t",
            "--http-timeout",
            metavar="SECONDS",
            type=_non_negative,
            default=120,
            help="How long to wait for worker server before timing out HTTP connections",
        )
        add(
            "--access-log",
            help="Where to write the access log (- for stdout, the default at verbosity 1 and up)",
        )
        add(
            "--ping-interval",
            metavar="SECONDS",
            type=_non_negative,
            default=20,
            help="The number of seconds a WebSocket must be idle before a keepalive ping is sent",
        )
        add(
            "--ping-timeout",
            metavar="SECONDS",
            type=_non_negative,
            default=30,
            help="The number of seconds before a WebSocket is closed if no response to a ping",
        )
        add(
            "--websocket_timeout",
            "--websocket-timeout",
            metavar="SECONDS",
            type=int,
            default=None,
            help="Maximum time to allow a websocket to be connected. -1 for infinite. "
            "(default: the layer's group_expiry, or 86400)",
        )
        add(
            "--websocket_connect_timeout",
            "--websocket-connect-timeout",
            metavar="SECONDS",
            type=_non_negative,
            default=5,
            help="Maximum time to wait for the application to accept or reject a WebSocket",
        )
        add(
            "--ws-protocol",
            nargs="*",
            dest="ws_protocols",
            help="The WebSocket protocols you wish to support",
            default=None,
        )
        add(
            "--root-path",
            dest="root_path",
            default="",
            help="The setting for the ASGI root_path variable",
        )
        add(
            "--proxy-headers",
            dest="proxy_headers",
            action="store_true",
            default=False,
            help="Enable parsing and using of X-Forwarded-For and X-Forwarded-Port headers",
        )
        add(
            "--force-sync",
            dest="force_sync",
            action="store_true",
            default=False,
            help="Force the server to use synchronous mode on its ASGI channel layer",
        )
        add(
            "--forwarded-allow-ips",
            dest="forwarded_allow_ips",
            default=None,
            help="Comma-separated proxy addresses/networks whose forwarded headers are trusted",
        )
        add(
            "--websocket-max-message-size",
            metavar="BYTES",
            dest="websocket_max_message_size",
            type=_non_negative,
            default=1048576,
            help="Largest WebSocket message in bytes (0 = no limit)",
        )
        add(
            "--http-max-body-size",
            metavar="BYTES",
            dest="http_max_body_size",
            type=_non_negative,
            default=0,
            help="Largest HTTP request body in bytes (0 = no limit)",
        )
        add(
            "--max-outbound-buffer",
            "--max_outbound_buffer",
            metavar="BYTES",
            dest="max_outbound_buffer",
            type=_non_negative,
            default=1048576,
            help="Unsent bytes a client may leave unread before it is closed (0 = no limit)",
        )
        add(
            "--http-body-timeout",
            "--http_body_timeout",
            metavar="SECONDS",
            dest="http_body_timeout",
            type=_non_negative,
            default=120,
            help="Seconds a request body may take to arrive in all; slower gets 408 (0 = no limit)",
        )
        add(
            "--max-connections",
            "--max_connections",
            metavar="N",
            dest="max_connections",
            type=_non_negative,
            default=0,
            help="Open connections beyond which new ones get 503 (0 = no limit)",
        )
        add(
            "--graceful-timeout",
            metavar="SECONDS",
            dest="graceful_timeout",
            type=_non_negative,
            default=10,
            help="Seconds a stop lets in-flight HTTP responses finish",
        )
        add(
            "channel_layer",
            help="The ASGI channel layer to use, as path.to.module:instance.path",
        )

    @classmethod
    def entrypoint(cls) -> None:
        cls().run(sys.argv[1:])

    def run(self, args: list[str]) -> None:
        try:
            self._run(args)
        except StartupError as error:
            self._exit(str(error), error.status)

    def _exit(self, message: str, status: int) -> NoReturn:
        logger.debug("Start-up failed", exc_info=True)
        sys.stderr.write(f"daphne: error: {message}\n")
        sys.stderr.flush()
        raise SystemExit(status)

    def _run(self, args: list[str]) -> None:
        args = self.parser.parse_args(args)
        forwarded_allow_ips = self._allowed_ips(args)
        verbosity = min(max(args.verbosity, 0), 2)
        logging.basicConfig(
            level={0: logging.WARNING, 1: logging.INFO, 2: logging.DEBUG}[verbosity],
            format=LOG_FORMAT,  # one format with runworker/runserver (issue 14)
        )
        access_log_stream = None
        if args.access_log:
            if args.access_log == "-":
                access_log_stream = sys.stdout
            else:
                try:
                    access_log_stream = open(args.access_log, "a", 1)  # noqa: SIM115
                except OSError as error:
                    raise StartupError(f"cannot open access log {args.access_log!r}: {error}", 2)
        elif verbosity >= 1:
            access_log_stream = sys.stdout
        channel_layer = self._load_layer(args.channel_layer)
        if not any(
            [
                args.host,
                args.port is not None,
                args.unix_socket,
                args.file_descriptor is not None,
                args.socket_strings,
            ]
        ):
            args.host, args.port = DEFAULT_HOST, DEFAULT_PORT
        elif args.host and args.port is None:
            args.port = DEFAULT_PORT
        elif args.port is not None and not args.host:
            args.host = DEFAULT_HOST
        endpoints = sorted(
            args.socket_strings
            + build_endpoint_description_strings(
                host=args.host,
                port=args.port,
                unix_socket=args.unix_socket,
                file_descriptor=args.file_descriptor,
            )
        )
        logger.info(
            "Starting server at %s, channel layer %s.", ", ".join(endpoints), args.channel_layer
        )
        proxy = args.proxy_headers
        self.server = Server(
            channel_layer=channel_layer,
            endpoints=endpoints,
            http_timeout=args.http_timeout,
            ping_interval=args.ping_interval,
            ping_timeout=args.ping_timeout,
            websocket_timeout=args.websocket_timeout,
            websocket_connect_timeout=args.websocket_connect_timeout,
            action_logger=AccessLogGenerator(access_log_stream) if access_log_stream else None,
            ws_protocols=args.ws_protocols,
            root_path=args.root_path,
            verbosity=args.verbosity,
            proxy_forwarded_address_header="X-Forwarded-For" if proxy else None,
            proxy_forwarded_port_header="X-Forwarded-Port" if proxy else None,
            proxy_forwarded_proto_header="X-Forwarded-Proto" if proxy else None,
            force_sync=args.force_sync,
            forwarded_allow_ips=forwarded_allow_ips,
            websocket_max_message_size=args.websocket_max_message_size,
            http_max_body_size=args.http_max_body_size,
            max_outbound_buffer=args.max_outbound_buffer,
            graceful_timeout=args.graceful_timeout,
            http_body_timeout=args.http_body_timeout,
            max_connections=args.max_connections,
        )
        try:
            self.server.run()
        except NotAChannelLayer:
            # D-62: Server.run refuses an object that is not a channel layer.
            raise StartupError(not_a_layer_message(args.channel_layer, channel_layer), 1)
        except ListenFailed as error:
            # D-62, issue 14: e.g. "cannot listen on 127.0.0.1:8000: address already in use".
            raise StartupError(str(error), 1)

    def _allowed_ips(self, args: argparse.Namespace) -> list | None:
        if args.forwarded_allow_ips is None:
            return None
        if not args.proxy_headers:
            raise StartupError("--forwarded-allow-ips requires --proxy-headers", 2)
        try:
            return parse_allowed_ips(args.forwarded_allow_ips)
        except InvalidAllowedIP as error:
            raise StartupError(str(error), 2)

    def _load_layer(self, path: str) -> Any:
        """Import ``module:object.path`` (D-6); errors say what to write (issue 14)."""
        try:
            layer = load_channel_layer(path)
        except LayerLoadError as error:
            raise StartupError(str(error), 1)
        if is_process_local(layer) and not self.allow_process_local_layer:
            raise StartupError(process_local_message(path), 1)
        return layer
