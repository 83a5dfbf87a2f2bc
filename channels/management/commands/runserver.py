"""``manage.py runserver``: daphne plus worker threads in one process (C-78..C-81)."""

from __future__ import annotations

import atexit
import datetime
import errno
import logging
import os
import signal
import sys
import threading
from typing import Any

from django.apps import apps
from django.conf import settings
from django.core.management.base import CommandError
from django.core.management.commands.runserver import Command as RunserverCommand
from django.db import connections
from django.utils import autoreload

from channels import DEFAULT_CHANNEL_LAYER
from channels.asgi import InvalidChannelLayerError, channel_layers
from channels.checks import misspelt_settings
from channels.handler import ViewConsumer
from channels.log import setup_logger
from channels.management.commands.runworker import load_layer
from channels.staticfiles import StaticFilesConsumer
from channels.worker import Worker
from daphne.errors import ListenFailed


def _runserver_name(field: str) -> str:
    """How runserver's users spell a `ServerConfig` field (for its error messages)."""
    return _RUNSERVER_NAMES.get(field, field)


_RUNSERVER_NAMES = {
    "http_timeout": "--http_timeout",
    "websocket_handshake_timeout": "--websocket_handshake_timeout",
    "ws_protocols": "the CHANNELS_WS_PROTOCOLS setting",
    "root_path": "the FORCE_SCRIPT_NAME setting",
}

# C-79: one worker thread per request in flight is enough for development.
WORKER_THREADS = 4

# Django's runserver words for a port it cannot listen on (issue 14).
LISTEN_ERRORS = {
    errno.EACCES: "You don't have permission to access that port.",
    errno.EADDRINUSE: "That port is already in use.",
    errno.EADDRNOTAVAIL: "That IP address can't be assigned to.",
}


class _DaphneServer:
    """`Command.server_cls`: ``daphne.server.Server`` (C-79), imported on first access.

    Importing daphne's server installs Twisted's reactor, which no process that merely
    loads this module (every Django process does, through C-6) should do. Tests and
    projects replace the attribute (``mock.patch("...runserver.Command.server_cls")``),
    and assigning it on an instance (the WSGI fallback) shadows it as any class
    attribute. Tests written for Channels 1.0 replace this module's ``Server`` instead
    (``mock.patch("...runserver.Server")``); a ``Server`` set here is used too.
    """

    def __get__(self, instance: Any, owner: type | None = None) -> type:
        replaced: type | None = globals().get("Server")
        if replaced is not None:
            return replaced
        from daphne.server import Server

        return Server


def __getattr__(name: str) -> Any:
    """``Server``: daphne's, imported on first access (see `_DaphneServer`)."""
    if name == "Server":
        from daphne.server import Server

        return Server
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


class Command(RunserverCommand):
    protocol = "http"
    server_cls = _DaphneServer()

    def add_arguments(self, parser: Any) -> None:
        super().add_arguments(parser)
        parser.add_argument(
            "--noworker",
            action="store_false",
            dest="run_worker",
            default=True,
            help="Tells Django not to run a worker thread; you'll need to run one separately.",
        )
        parser.add_argument(
            "--noasgi",
            action="store_false",
            dest="use_asgi",
            default=True,
            help="Run the old WSGI-based runserver rather than the ASGI-based one",
        )
        parser.add_argument(
            "--http_timeout",
            action="store",
            dest="http_timeout",
            type=int,
            default=60,
            help="Specify the daphne http_timeout interval in seconds (default: 60)",
        )
        parser.add_argument(
            "--websocket_handshake_timeout",
            action="store",
            dest="websocket_handshake_timeout",
            type=int,
            default=5,
            help="Specify the daphne websocket_handshake_timeout interval in seconds (default: 5)",
        )

    def run(self, **options: Any) -> None:
        """Django's, with the first Ctrl-C left to the reloader's child (issue 14).

        Django's reloading parent kills its child 0.25 s after Ctrl-C (subprocess.run
        does), before daphne in the child can answer the requests it holds. Here the
        parent lets the first Ctrl-C pass and exits when the child does; the child stops
        daphne gracefully (`StopAtExit`) within a few seconds. A second Ctrl-C ends both
        at once, as before. (A Python handler, unlike an ignored signal, is not
        inherited: the child takes Ctrl-C as usual from its first instruction.)
        """
        reloading_parent = (
            options.get("use_reloader", True)
            and os.environ.get(autoreload.DJANGO_AUTORELOAD_ENV) != "true"
            and threading.current_thread() is threading.main_thread()
            and signal.getsignal(signal.SIGINT) is signal.default_int_handler
        )
        if not reloading_parent:
            return super().run(**options)
        previous = signal.signal(signal.SIGINT, _FirstInterruptToChild())
        try:
            super().run(**options)
        finally:
            signal.signal(signal.SIGINT, previous)
            if hasattr(signal, "SIGALRM"):
                signal.alarm(0)

    def handle(self, *args: Any, **options: Any) -> None:
        self.verbosity = options.get("verbosity", 1)
        self.logger = setup_logger("django.channels", self.verbosity)
        self.http_timeout = options.get("http_timeout", 60)
        self.websocket_handshake_timeout = options.get("websocket_handshake_timeout", 5)
        super().handle(*args, **options)

    def inner_run(self, *args: Any, **options: Any) -> None:
        autoreload.raise_last_exception()
        fallback = None if options.get("use_asgi", True) else "--noasgi"
        if fallback is None and not self._has_default_layer():
            fallback = self._no_layer_reason()
            # One line saying why WebSockets will get 404 (issue 14).
            self.stderr.write(
                f"{fallback}: running Django's plain WSGI server; WebSocket requests will "
                f"get 404. Configure CHANNEL_LAYERS['{DEFAULT_CHANNEL_LAYER}'] to run Channels.",
                style_func=self.style.WARNING,
            )
        if fallback is not None:
            # Plain Django: restore its WSGI server class and run its loop.
            self.server_cls = RunserverCommand.server_cls
            return RunserverCommand.inner_run(self, *args, **options)
        if not options.get("skip_checks"):
            # Before the layer is built: a bad CHANNEL_LAYERS is explained by the
            # channels.* checks rather than by the first error building it hits.
            self.stdout.write("Performing system checks...\n\n")
            self.check(display_num_errors=True)
        self.channel_layer = load_layer(DEFAULT_CHANNEL_LAYER)
        self.channel_layer.router.check_default(http_consumer=self.get_consumer(**options))
        self.check_migrations()
        for connection in connections.all(initialized_only=True):
            connection.close()
        keywords = self._server_keywords(options)
        self._print_banner(options)
        if options.get("run_worker", True):
            count = WORKER_THREADS if options.get("use_threading", True) else 1
            for index in range(count):
                WorkerThread(self.channel_layer, self.logger, log_listening=index == 0).start()
        self._run_server(options, keywords)

    @staticmethod
    def _has_default_layer() -> bool:
        try:
            return DEFAULT_CHANNEL_LAYER in channel_layers
        except InvalidChannelLayerError:
            # CHANNEL_LAYERS is not a dict (C-88): not a fallback but a mistake, which
            # the checks (channels.E001) or else building the layer report.
            return True

    @staticmethod
    def _no_layer_reason() -> str:
        """Why there is no default layer, in a few words, for the fallback line."""
        configs = getattr(settings, "CHANNEL_LAYERS", None)
        if configs:
            return (
                f"CHANNEL_LAYERS has no {DEFAULT_CHANNEL_LAYER!r} layer "
                f"(only {', '.join(repr(alias) for alias in configs)})"
            )
        misspelt = [wrong for wrong, meant in misspelt_settings() if meant == "CHANNEL_LAYERS"]
        if misspelt:
            return f"CHANNEL_LAYERS is not set ({misspelt[0]} is; did you mean CHANNEL_LAYERS?)"
        if configs is None:
            return "CHANNEL_LAYERS is not set"
        return "CHANNEL_LAYERS is empty"

    def _print_banner(self, options: dict[str, Any]) -> None:
        addr = f"[{self.addr}]" if self._raw_ipv6 else self.addr
        quit_command = "CTRL-BREAK" if sys.platform == "win32" else "CONTROL-C"
        self.stdout.write(
            f"{datetime.datetime.now().strftime('%B %d, %Y - %X')}\n"
            f"Django version {self.get_version()}, using settings "
            f"{settings.SETTINGS_MODULE!r}\n"
            f"Starting Channels development server at {self.protocol}://{addr}:{self.port}/\n"
            f"Channel layer {self.channel_layer}\n"
            f"Quit the server with {quit_command}.\n"
        )

    def _server_keywords(self, options: dict[str, Any]) -> dict[str, Any]:
        """C-79's `server_cls` keywords besides the layer, checked as daphne checks its own
        options (issue 16 item 3) before anything starts."""
        # Imported here: daphne is only needed when this server actually runs.
        from daphne.config import ConfigError, ServerConfig, build_endpoint_description_strings

        keywords = {
            "endpoints": build_endpoint_description_strings(host=self.addr, port=int(self.port)),
            "signal_handlers": not options.get("use_reloader", True),
            "action_logger": self.log_action,
            "http_timeout": self.http_timeout,
            "ws_protocols": getattr(settings, "CHANNELS_WS_PROTOCOLS", None),
            "root_path": getattr(settings, "FORCE_SCRIPT_NAME", "") or "",
            "websocket_handshake_timeout": self.websocket_handshake_timeout,
        }
        try:
            ServerConfig(**keywords)
        except ConfigError as error:
            raise CommandError(error.describe(_runserver_name)) from None
        return keywords

    def _run_server(self, options: dict[str, Any], keywords: dict[str, Any]) -> None:
        # C-79: exactly these keywords, so a mocked server_cls (1.x tests) sees them.
        stop_at_exit = None
        try:
            server = self.server_cls(channel_layer=self.channel_layer, **keywords)
            if not keywords["signal_handlers"]:
                stop_at_exit = StopAtExit(server)
                atexit.register(stop_at_exit)
            server.run()
            self.logger.debug("Daphne exited")
        except KeyboardInterrupt:
            shutdown_message = options.get("shutdown_message", "")
            if shutdown_message:
                self.stdout.write(shutdown_message)
            return
        except ListenFailed as error:
            # daphne's Server.run() raises it before serving (issue 14); Django's words.
            known = LISTEN_ERRORS.get(error.errno) if error.errno is not None else None
            self._listen_failed(known or str(error))
        finally:
            if stop_at_exit is not None:
                stop_at_exit.done.set()

    def _listen_failed(self, text: str) -> None:
        self.stderr.write(f"Error: {text}")
        self.stderr.flush()
        sys.stdout.flush()
        # As Django's runserver: sys.exit does not end the process from the reloader's
        # thread (where this runs when reloading).
        os._exit(1)

    def get_consumer(self, *args: Any, **options: Any) -> ViewConsumer:
        """`StaticFilesConsumer` when static files are served, else `ViewConsumer` (C-79)."""
        use_static_handler = options.get("use_static_handler", True)
        insecure_serving = options.get("insecure_serving", False)
        if (
            apps.is_installed("django.contrib.staticfiles")
            and use_static_handler
            and (settings.DEBUG or insecure_serving)
        ):
            return StaticFilesConsumer()
        return ViewConsumer()

    def log_action(self, protocol: str, action: str, details: dict[str, Any]) -> None:
        """Write one access-log line to stderr (C-80)."""
        msg = "[{}] ".format(datetime.datetime.now().strftime("%Y/%m/%d %H:%M:%S"))
        if protocol == "http" and action == "complete":
            msg += "HTTP {method} {path} {status} [{time_taken:.2f}, {client}]\n".format(**details)
            msg = self._style_http(details["status"])(msg)
        elif protocol == "websocket" and action in _WS_ACTIONS:
            msg += f"WebSocket {_WS_ACTIONS[action]} {details['path']} [{details['client']}]\n"
        sys.stderr.write(msg)

    def _style_http(self, status: int) -> Any:
        if 100 <= status < 200:
            return self.style.HTTP_INFO
        if status == 304:
            return self.style.HTTP_NOT_MODIFIED
        if 200 <= status < 300:
            return self.style.HTTP_SUCCESS
        if 300 <= status < 400:
            return self.style.HTTP_REDIRECT
        if status == 404:
            return self.style.HTTP_NOT_FOUND
        if 400 <= status < 500:
            return self.style.HTTP_BAD_REQUEST
        return self.style.HTTP_SERVER_ERROR


_WS_ACTIONS = {
    "connecting": "HANDSHAKING",
    "connected": "CONNECT",
    "disconnected": "DISCONNECT",
    "rejected": "REJECT",
}


class _FirstInterruptToChild:
    """The reloading parent's SIGINT handler: the first one passes (the child, in the
    same process group, got it too and stops gracefully), the next interrupts as usual.
    Should the child not end (a SIGINT sent to the parent's pid alone never reached it),
    the parent interrupts itself, and so kills the child, after the child's grace."""

    def __init__(self) -> None:
        self.seen = 0

    def __call__(self, signum: int, frame: Any) -> None:
        self.seen += 1
        if self.seen > 1:
            raise KeyboardInterrupt
        if hasattr(signal, "SIGALRM"):
            signal.signal(signal.SIGALRM, self._child_did_not_end)
            signal.alarm(int(StopAtExit.GRACE) + 6)

    @staticmethod
    def _child_did_not_end(signum: int, frame: Any) -> None:
        raise KeyboardInterrupt


class StopAtExit:
    """Stops daphne gracefully when a reloading runserver's process exits (issue 14).

    With the reloader, daphne runs in a daemon thread and the main thread watches files:
    Ctrl-C (or a code change) ends the main thread, and the process would drop every
    connection mid-request. Called at exit, this stops daphne as its own signal handler
    does without the reloader: requests still waiting for the application get 503 and a
    log line, the others finish, WebSockets close with 1012 at once. A development server
    stops quickly: within `GRACE` seconds (or the server's own graceful timeout if shorter).
    """

    GRACE = 3.0

    def __init__(self, server: Any) -> None:
        self.server = server
        self.done = threading.Event()

    def __call__(self) -> None:
        server = self.server
        reactor: Any = getattr(server, "reactor", None)
        graceful_stop = getattr(server, "graceful_stop", None)
        if self.done.is_set() or not getattr(reactor, "running", False) or graceful_stop is None:
            return
        grace = min(float(getattr(server, "graceful_timeout", self.GRACE)), self.GRACE)
        try:
            server.graceful_timeout = grace
            server.websocket_drain_time = 0
        except AttributeError:  # a server_cls without these options: its defaults
            pass

        def stop() -> None:
            graceful_stop().addBoth(lambda _: reactor.stop() if reactor.running else None)

        try:
            reactor.callFromThread(stop)
            self.done.wait(grace + 5)
        except KeyboardInterrupt:  # a second Ctrl-C: stop waiting, exit now
            pass


class WorkerThread(threading.Thread):
    """A daemon thread running a `Worker` without signal handlers (C-81).

    With ``log_listening=False`` its worker does not log "Listening on channels": runserver's
    threads all listen on the same channels, and one line says so (issue 14).
    """

    def __init__(
        self, channel_layer: Any, logger: logging.Logger, log_listening: bool = True
    ) -> None:
        super().__init__(daemon=True)
        self.channel_layer = channel_layer
        self.logger = logger
        self.log_listening = log_listening

    def run(self) -> None:
        self.logger.debug("Worker thread running")
        worker = Worker(channel_layer=self.channel_layer, signal_handlers=False)
        worker.log_listening = self.log_listening
        worker.ready()
        worker.run()
        self.logger.debug("Worker thread exited")
