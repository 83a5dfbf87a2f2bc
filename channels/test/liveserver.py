"""`ChannelLiveServerTestCase`: real Daphne and worker processes per test (C-71).

Both children are forked from the test process, so they share its settings
(including overrides) and its test database, and they talk to each other and
to the test through the default layer's ``TEST_CONFIG`` backend, which must
therefore work across processes.
"""

from __future__ import annotations

import multiprocessing
import sys
import traceback
from multiprocessing.connection import Connection, wait
from multiprocessing.context import ForkProcess
from typing import Any

import django
from django.apps import apps
from django.core.exceptions import ImproperlyConfigured
from django.db import connections
from django.test.testcases import TransactionTestCase
from django.utils.functional import classproperty

from .. import DEFAULT_CHANNEL_LAYER
from ..asgi import ChannelLayerWrapper, channel_layers

__all__ = ["ChannelLiveServerTestCase", "DaphneProcess", "WorkerProcess"]

# C-71: fork explicitly; the children inherit settings and test databases.
_fork = multiprocessing.get_context("fork")


class ChildStartupError(RuntimeError):
    """A live-server child process failed to start; the message holds its traceback."""


class ProcessSetup(ForkProcess):  # the class `_fork.Process` names
    """A forked child that prepares Django, then reports readiness on a pipe."""

    def __init__(self, ready: Connection) -> None:
        super().__init__(daemon=True)
        self.ready = ready

    def run(self) -> None:
        try:
            self.common_setup()
            self.start_serving()
        except BaseException:
            # Tell the parent why, instead of leaving it to wait for the timeout.
            self.report(("error", traceback.format_exc()))
            raise

    def common_setup(self) -> None:
        # Settings overrides are inherited through fork; django.setup is a no-op
        # for apps already loaded but (re)configures logging and the URL prefix.
        django.setup(set_prefix=False)
        # Database connections opened by the parent must not be shared: each
        # child opens its own to the same (test) database.
        for connection in connections.all(initialized_only=True):
            connection.close()
        channel_layers.set(DEFAULT_CHANNEL_LAYER, build_test_layer())

    def start_serving(self) -> None:
        raise NotImplementedError

    def report(self, message: tuple) -> None:
        try:
            self.ready.send(message)
        except OSError:
            pass  # the parent already gave up on us


class WorkerProcess(ProcessSetup):
    """Runs a `Worker` (or a `WorkerGroup`) on the default layer."""

    def __init__(self, ready: Connection, n_threads: int, serve_static: bool) -> None:
        super().__init__(ready)
        self.n_threads = n_threads
        self.serve_static = serve_static

    def start_serving(self) -> None:
        from ..worker import Worker, WorkerGroup

        wrapper = channel_layers[DEFAULT_CHANNEL_LAYER]
        if self.serve_static and apps.is_installed("django.contrib.staticfiles"):
            from ..staticfiles import StaticFilesConsumer

            wrapper.router.check_default(http_consumer=StaticFilesConsumer())
        else:
            wrapper.router.check_default()
        if self.n_threads == 1:
            worker = Worker(channel_layer=wrapper, signal_handlers=False)
        else:
            worker = WorkerGroup(
                channel_layer=wrapper, signal_handlers=False, n_threads=self.n_threads
            )
        worker.ready()
        self.report(("ready", None))
        worker.run()


class DaphneProcess(ProcessSetup):
    """Runs Daphne on an ephemeral port of `host` and publishes the port."""

    def __init__(self, ready: Connection, host: str, port: Any) -> None:
        super().__init__(ready)
        self.host = host
        self.port = port

    def start_serving(self) -> None:
        reactor = _fresh_reactor()
        from daphne.server import Server

        server = Server(
            channel_layer=channel_layers[DEFAULT_CHANNEL_LAYER].channel_layer,
            endpoints=[f"tcp:interface={self.host}:port=0"],
            signal_handlers=False,
        )
        server.reactor = self.reactor = reactor
        reactor.callWhenRunning(self._publish_port, server)
        server.run()

    def _publish_port(self, server: Any) -> None:
        listener = server.listeners[0]
        listener.addCallbacks(self._listening, self._listen_failed)

    def _listening(self, port: Any) -> None:
        self.port.value = port.getHost().port
        self.report(("ready", None))

    def _listen_failed(self, failure: Any) -> None:
        self.report(("error", f"Daphne could not listen on {self.host}: {failure.value}"))
        self.reactor.stop()


def _fresh_reactor() -> Any:
    """Install a new global reactor in this child.

    A reactor inherited through fork (for example one the test process runs in
    a thread) is marked running but has no thread; Daphne needs its own.
    """
    import twisted.internet
    from twisted.internet import default

    sys.modules.pop("twisted.internet.reactor", None)
    if hasattr(twisted.internet, "reactor"):
        del twisted.internet.reactor
    default.install()
    from twisted.internet import reactor

    return reactor


def build_test_layer() -> ChannelLayerWrapper:
    """The default alias built from its ``TEST_CONFIG`` (C-71)."""
    return channel_layers.make_test_backend(DEFAULT_CHANNEL_LAYER)


class ChannelLiveServerTestCase(TransactionTestCase):
    """Starts Daphne and a worker around each test; use real HTTP/WebSocket clients.

    The default layer must be cross-process (Redis or IPC, built from
    ``TEST_CONFIG``) and the database must not be in-memory SQLite.
    """

    host = "localhost"
    ProtocolServerProcess = DaphneProcess
    WorkerProcess = WorkerProcess
    worker_threads = 1
    serve_static = True
    # Bounds on waiting for a child to start and to exit.
    startup_timeout = 30.0
    shutdown_timeout = 10.0

    @classproperty
    def live_server_url(cls) -> str:
        return f"http://{cls.host}:{cls._port_storage.value}"

    @classproperty
    def live_server_ws_url(cls) -> str:
        return f"ws://{cls.host}:{cls._port_storage.value}"

    @classmethod
    def _pre_setup(cls) -> None:
        # A classmethod in Django 5.2, also run eagerly from setUpClass (C-67).
        cls._check_configuration()
        wrapper = build_test_layer()
        if wrapper.local_only():
            raise ImproperlyConfigured(
                "ChannelLiveServerTestCase needs a cross-process channel layer: the default "
                f"layer's TEST_CONFIG builds {wrapper}; use asgi_redis or asgi_ipc"
            )
        if "flush" in wrapper.extensions:
            wrapper.flush()
        super()._pre_setup()
        # The test itself talks to the same backend (Channel/Group sends reach the children).
        cls._old_layer = channel_layers.set(DEFAULT_CHANNEL_LAYER, wrapper)
        cls._children = []
        try:
            cls._port_storage = _fork.Value("i", 0)
            cls._start_child(cls.ProtocolServerProcess, cls.host, cls._port_storage)
            cls._start_child(cls.WorkerProcess, cls.worker_threads, cls.serve_static)
        except BaseException:
            # _post_teardown will not run: undo everything here.
            cls._stop_children()
            channel_layers.set(DEFAULT_CHANNEL_LAYER, cls._old_layer)
            raise

    @classmethod
    def _check_configuration(cls) -> None:
        for connection in connections.all():
            if connection.vendor == "sqlite" and connection.is_in_memory_db():
                raise ImproperlyConfigured(
                    "ChannelLiveServerTestCase can not be used with in-memory SQLite "
                    f"databases (alias {connection.alias!r}): set DATABASES[...]['TEST']"
                    "['NAME'] to a file"
                )
        if len(channel_layers.configs) > 1:
            raise ImproperlyConfigured(
                "ChannelLiveServerTestCase does not support multiple CHANNEL_LAYERS: "
                f"configure only 'default' (found {sorted(channel_layers.configs)})"
            )

    @classmethod
    def _start_child(cls, process_class: type[ProcessSetup], *args: Any) -> None:
        reader, writer = _fork.Pipe(duplex=False)
        process = process_class(writer, *args)
        process.start()
        cls._children.append(process)
        writer.close()
        try:
            ready = wait([reader, process.sentinel], timeout=cls.startup_timeout)
            if reader in ready:
                try:
                    status, detail = reader.recv()
                except EOFError:
                    status, detail = "error", "it exited without reporting"
            elif ready:
                status, detail = "error", f"it exited with code {process.exitcode}"
            else:
                status, detail = "error", f"not ready after {cls.startup_timeout} s"
        finally:
            reader.close()
        if status != "ready":
            raise ChildStartupError(f"{process_class.__name__} failed to start: {detail}")

    @classmethod
    def _stop_children(cls) -> None:
        for process in cls._children:
            if process.is_alive():
                process.terminate()
        for process in cls._children:
            process.join(cls.shutdown_timeout)
            if process.is_alive():
                # Ignored SIGTERM; the test run must not hang on it.
                process.kill()
                process.join(cls.shutdown_timeout)
        cls._children = []

    def _post_teardown(self) -> None:
        cls = type(self)
        try:
            cls._stop_children()
        finally:
            wrapper = channel_layers[DEFAULT_CHANNEL_LAYER]
            if "flush" in wrapper.extensions:
                wrapper.flush()
            channel_layers.set(DEFAULT_CHANNEL_LAYER, cls._old_layer)
            super()._post_teardown()
