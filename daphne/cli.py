"""The ``daphne`` command (D-5..D-11, D-62)."""

from __future__ import annotations

import argparse
import dataclasses
import logging
import sys
from typing import Any, NoReturn

from . import __version__
from .access import AccessLogGenerator
from .config import DEFAULT_HOST, DEFAULT_PORT, ConfigError, ServerConfig, cli_endpoints
from .errors import ListenFailed
from .loading import (
    LayerLoadError,
    is_process_local,
    load_channel_layer,
    not_a_layer_message,
    process_local_message,
)
from .logfmt import LOG_FORMAT
from .server import NotAChannelLayer, Server

__all__ = ["CommandLineInterface", "DEFAULT_HOST", "DEFAULT_PORT"]

logger = logging.getLogger(__name__)

# DEFAULT_HOST and DEFAULT_PORT (D-1) live in `config` with the rest of D-9's defaulting.

# The options the CLI turns into `ServerConfig` fields of other names (D-8, D-10).
COMPOSED_OPTIONS = {
    "endpoints": "-b/-p/-u/--fd/-e",
    "action_logger": "--access-log",
    "proxy_forwarded_address_header": "--proxy-headers",
    "proxy_forwarded_port_header": "--proxy-headers",
    "proxy_forwarded_proto_header": "--proxy-headers",
}


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


def add_config_options(parser: argparse.ArgumentParser) -> list[str]:
    """Add an option for each `ServerConfig` field that names CLI flags (D-6); returns
    their fields. Flags, help and argparse settings are the field's metadata, so a new
    option is one field in `daphne.config`."""
    names = []
    for spec in dataclasses.fields(ServerConfig):
        flags = spec.metadata["flags"]
        if not flags:
            continue
        settings = dict(spec.metadata["cli"])
        settings.setdefault("default", spec.default)
        parser.add_argument(*flags, dest=spec.name, help=spec.metadata["help"], **settings)
        names.append(spec.name)
    return names


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
        self.server: Server | None = None
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
        add(
            "--access-log",
            help="Where to write the access log (- for stdout, the default at verbosity 1 and up)",
        )
        add(
            "--proxy-headers",
            dest="proxy_headers",
            action="store_true",
            default=False,
            help="Enable parsing and using of X-Forwarded-For and X-Forwarded-Port headers",
        )
        self.config_options = add_config_options(self.parser)
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

    def _run(self, argv: list[str]) -> None:
        args = self.parser.parse_args(argv)
        config = self._config(args)
        verbosity = min(max(args.verbosity, 0), 2)
        logging.basicConfig(
            level={0: logging.WARNING, 1: logging.INFO, 2: logging.DEBUG}[verbosity],
            format=LOG_FORMAT,  # one format with runworker/runserver (issue 14)
        )
        config.action_logger = self._access_logger(args.access_log, verbosity)
        channel_layer = self._load_layer(args.channel_layer)
        logger.info(
            "Starting server at %s, channel layer %s.",
            ", ".join(config.endpoints),
            args.channel_layer,
        )
        server = self.server = Server(channel_layer=channel_layer, config=config)
        try:
            server.run()
        except NotAChannelLayer:
            # D-62: Server.run refuses an object that is not a channel layer.
            raise StartupError(not_a_layer_message(args.channel_layer, channel_layer), 1)
        except ListenFailed as error:
            # D-62, issue 14: e.g. "cannot listen on 127.0.0.1:8000: address already in use".
            raise StartupError(str(error), 1)

    def _config(self, args: argparse.Namespace) -> ServerConfig:
        """The `ServerConfig` of the parsed arguments (D-9, D-10); a value it refuses ends
        the program as argparse's own errors do (D-62: status 2)."""
        options = {name: getattr(args, name) for name in self.config_options}
        proxy = args.proxy_headers
        options.update(
            endpoints=cli_endpoints(
                args.host, args.port, args.unix_socket, args.file_descriptor, args.socket_strings
            ),
            proxy_forwarded_address_header="X-Forwarded-For" if proxy else None,
            proxy_forwarded_port_header="X-Forwarded-Port" if proxy else None,
            proxy_forwarded_proto_header="X-Forwarded-Proto" if proxy else None,
        )
        try:
            return ServerConfig(**options)
        except ConfigError as error:
            raise StartupError(error.describe(self.option_name), 2)

    def option_name(self, field_name: str) -> str:
        """How the command line spells `ServerConfig` field `field_name`."""
        if field_name in COMPOSED_OPTIONS:
            return COMPOSED_OPTIONS[field_name]
        for action in self.parser._actions:
            if action.dest == field_name and action.option_strings:
                return "/".join(action.option_strings)
        return field_name

    def _access_logger(self, path: str | None, verbosity: int) -> AccessLogGenerator | None:
        """D-8: ``-`` → stdout; a file, appended line-buffered; none at verbosity ≥ 1 → stdout."""
        if path == "-" or (not path and verbosity >= 1):
            return AccessLogGenerator(sys.stdout)
        if not path:
            return None
        try:
            return AccessLogGenerator(open(path, "a", 1))
        except OSError as error:
            raise StartupError(f"cannot open access log {path!r}: {error}", 2)

    def _load_layer(self, path: str) -> Any:
        """Import ``module:object.path`` (D-6); errors say what to write (issue 14)."""
        try:
            layer = load_channel_layer(path)
        except LayerLoadError as error:
            raise StartupError(str(error), 1)
        if is_process_local(layer) and not self.allow_process_local_layer:
            raise StartupError(process_local_message(path), 1)
        return layer
