"""``manage.py runserver``: daphne plus worker threads in one process (C-78..C-81)."""

from __future__ import annotations

import datetime
import logging
import sys
import threading
from typing import Any

from django.apps import apps
from django.conf import settings
from django.core.management.commands.runserver import Command as RunserverCommand
from django.core.servers.basehttp import WSGIServer
from django.utils import autoreload

from channels import DEFAULT_CHANNEL_LAYER
from channels.asgi import channel_layers
from channels.handler import ViewConsumer
from channels.log import setup_logger
from channels.management.commands.runworker import load_layer
from channels.staticfiles import StaticFilesConsumer
from channels.worker import Worker

# C-79: one worker thread per request in flight is enough for development.
WORKER_THREADS = 4


class Command(RunserverCommand):
    protocol = "http"
    # The ASGI server class; None means daphne.server.Server, imported only when the
    # server starts because importing it installs Twisted's reactor.
    asgi_server_cls: type | None = None

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

    def handle(self, *args: Any, **options: Any) -> None:
        self.verbosity = options.get("verbosity", 1)
        self.logger = setup_logger("django.channels", self.verbosity)
        self.http_timeout = options.get("http_timeout", 60)
        self.websocket_handshake_timeout = options.get("websocket_handshake_timeout", 5)
        super().handle(*args, **options)

    def inner_run(self, *args: Any, **options: Any) -> None:
        autoreload.raise_last_exception()
        if not options.get("use_asgi", True) or DEFAULT_CHANNEL_LAYER not in channel_layers:
            # Plain Django: restore its WSGI server class and run its loop.
            self.server_cls = WSGIServer
            return RunserverCommand.inner_run(self, *args, **options)
        self.channel_layer = load_layer(DEFAULT_CHANNEL_LAYER)
        self.channel_layer.router.check_default(http_consumer=self.get_consumer(**options))
        if not options.get("skip_checks"):
            self.stdout.write("Performing system checks...\n\n")
            self.check(display_num_errors=True)
        self.check_migrations()
        self._print_banner(options)
        if options.get("run_worker", True):
            count = WORKER_THREADS if options.get("use_threading", True) else 1
            for _ in range(count):
                WorkerThread(self.channel_layer, self.logger).start()
        self._run_server(options)

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

    def _run_server(self, options: dict[str, Any]) -> None:
        # Imported here: daphne is only needed when this server actually runs.
        from daphne.server import Server, build_endpoint_description_strings

        server_cls = self.asgi_server_cls or Server
        endpoints = build_endpoint_description_strings(host=self.addr, port=int(self.port))
        try:
            server_cls(
                channel_layer=self.channel_layer,
                endpoints=endpoints,
                signal_handlers=not options.get("use_reloader", True),
                action_logger=self.log_action,
                http_timeout=self.http_timeout,
                ws_protocols=getattr(settings, "CHANNELS_WS_PROTOCOLS", None),
                root_path=getattr(settings, "FORCE_SCRIPT_NAME", "") or "",
                websocket_handshake_timeout=self.websocket_handshake_timeout,
            ).run()
            self.logger.debug("Daphne exited")
        except KeyboardInterrupt:
            shutdown_message = options.get("shutdown_message", "")
            if shutdown_message:
                self.stdout.write(shutdown_message)
            return

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


class WorkerThread(threading.Thread):
    """A daemon thread running a `Worker` without signal handlers (C-81)."""

    def __init__(self, channel_layer: Any, logger: logging.Logger) -> None:
        super().__init__(daemon=True)
        self.channel_layer = channel_layer
        self.logger = logger

    def run(self) -> None:
        self.logger.debug("Worker thread running")
        worker = Worker(channel_layer=self.channel_layer, signal_handlers=False)
        worker.ready()
        worker.run()
        self.logger.debug("Worker thread exited")
