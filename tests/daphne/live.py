"""A daphne `Server` listening on a real loopback port inside the test process.

The server runs in the shared Twisted reactor thread (`run_reactor_in_thread`)
on an in-memory layer; a `Responder` thread stands in for the workers, reading
request channels with blocking receives and answering through a handler.
"""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Callable, Iterable
from typing import Any

from twisted.internet import defer
from twisted.internet.threads import blockingCallFromThread

from channels.layers import conformance
from channels.layers.inmemory import ChannelLayer
from daphne.server import Server

Handler = Callable[[ChannelLayer, str, dict], None]


class Responder:
    """A worker stand-in: one thread calling `handler(layer, channel, message)`."""

    def __init__(
        self,
        layer: ChannelLayer,
        channels: Iterable[str],
        handler: Handler,
        survive_layer_errors: bool = False,
    ) -> None:
        self.layer = layer
        # For a layer on a Redis the test restarts: a failed receive is retried.
        self.survive_layer_errors = survive_layer_errors
        # A private channel whose message wakes the thread for stop().
        self.wake_channel = self.layer.new_channel("test.responder.stop?")
        self.channels = [*channels, self.wake_channel]
        self.handler = handler
        self.stopping = threading.Event()
        self.errors: list[BaseException] = []
        self.thread = threading.Thread(target=self._run, name="test-responder", daemon=True)

    def start(self) -> Responder:
        self.thread.start()
        return self

    def _run(self) -> None:
        while not self.stopping.is_set():
            try:
                channel, message = self.layer.receive(self.channels, block=True)
            except Exception:
                if not self.survive_layer_errors:
                    raise
                self.stopping.wait(0.05)  # Redis away: bounded retry until stop()
                continue
            if channel is None or channel == self.wake_channel:
                continue
            try:
                self.handler(self.layer, channel, message)
            except BaseException as error:  # recorded and re-raised by stop()
                self.errors.append(error)

    def stop(self) -> None:
        self.stopping.set()
        try:
            self.layer.send(self.wake_channel, {})
        except Exception:
            if not self.survive_layer_errors:
                raise
            # Redis gone: the blocking receive ends by its own timeout.
        self.thread.join(timeout=10)
        if self.thread.is_alive():
            raise RuntimeError("responder thread did not stop within 10 s")
        if self.errors:
            raise self.errors[0]


def echo_worker(layer: Any, channel: str, message: dict) -> None:
    """A `Responder` handler standing in for a worker on any layer: HTTP answers
    ``hello <path>``, WebSocket connects are accepted and text frames echoed.

    Replies are retried (bounded) while the reply channel is full or the layer's
    Redis restarts, as a real worker's would be.
    """
    if channel == "http.request":
        reply = {"status": 200, "content": b"hello " + message["path"].encode()}
    elif channel == "websocket.connect":
        reply = {"accept": True}
    elif channel == "websocket.receive":
        reply = {"text": message["text"]}
    else:
        return
    for _ in range(200):
        try:
            layer.send(message["reply_channel"], reply)
            return
        except Exception:  # full, or Redis restarting
            time.sleep(0.02)
    raise RuntimeError(f"could not reply on {message['reply_channel']} within 4 s")


class LiveServer:
    """Start a daphne `Server` on 127.0.0.1:<free port> in the reactor thread."""

    def __init__(
        self,
        layer: ChannelLayer | None = None,
        endpoint: str = "tcp:port=0:interface=127.0.0.1",
        **options: Any,
    ) -> None:
        self.layer = layer or ChannelLayer()
        self.reactor = conformance.run_reactor_in_thread()
        options.setdefault("signal_handlers", False)
        self.server = Server(self.layer, endpoints=[endpoint], **options)
        self.port: int | None = None
        self.sockets: list[socket.socket] = []

    def __enter__(self) -> LiveServer:
        return self.start()

    def __exit__(self, *exc: Any) -> None:
        self.stop()

    def start(self) -> LiveServer:
        listeners = blockingCallFromThread(self.reactor, self.server.start)
        results = blockingCallFromThread(
            self.reactor, lambda: defer.gatherResults(listeners, consumeErrors=True)
        )
        self.port = results[0].getHost().port
        return self

    @property
    def factory(self) -> Any:
        return self.server.factory

    def call(self, function: Callable, *args: Any) -> Any:
        """Run `function` in the reactor thread and return its result."""
        return blockingCallFromThread(self.reactor, function, *args)

    def stop(self) -> None:
        def stop_in_reactor() -> defer.Deferred:
            stopped = []
            for listener in self.server.listeners:
                port = getattr(listener, "result", None)
                if port is not None and hasattr(port, "stopListening"):
                    stopped.append(defer.maybeDeferred(port.stopListening))
            self.server.factory.drop_all()
            self.server._stop_readers()  # the reply reader and the routing refresh
            return defer.gatherResults(stopped)

        for sock in self.sockets:
            sock.close()
        self.call(stop_in_reactor)

    def connect(self, timeout: float = 10) -> socket.socket:
        sock = socket.create_connection(("127.0.0.1", self.port), timeout=timeout)
        self.sockets.append(sock)  # closed by stop()
        return sock

    def url(self, path: str = "/", scheme: str = "http") -> str:
        return f"{scheme}://127.0.0.1:{self.port}{path}"


def recv_until_closed(sock: socket.socket, limit: int = 10 * 1024 * 1024) -> bytes:
    """Read until the server closes the connection (bounded by the socket timeout)."""
    chunks = []
    size = 0
    while size < limit:
        data = sock.recv(65536)
        if not data:
            break
        chunks.append(data)
        size += len(data)
    return b"".join(chunks)


def recv_response_head(sock: socket.socket) -> bytes:
    """Read up to the end of an HTTP response head."""
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = sock.recv(65536)
        if not chunk:
            break
        data += chunk
    return data


def http_responder(status: int = 200, content: bytes = b"ok") -> Handler:
    """Answer every http.request with `status` and `content`."""

    def handle(layer: ChannelLayer, channel: str, message: dict) -> None:
        if channel == "http.request":
            send_retrying(
                layer,
                message["reply_channel"],
                {
                    "status": status,
                    "headers": [[b"content-type", b"text/plain"]],
                    "content": content,
                },
            )

    return handle


def send_retrying(layer: ChannelLayer, channel: str, message: dict, tries: int = 2000) -> None:
    """Send, waiting on the layer for room when the reply queue is full (A-89)."""
    for _ in range(tries):
        try:
            layer.send(channel, message)
            return
        except layer.ChannelFull:
            threading.Event().wait(0.005)
    raise RuntimeError(f"{channel} stayed full")


def wait_until(predicate: Callable[[], bool], timeout: float = 20) -> bool:
    """Poll `predicate` every 20 ms until it is true or `timeout` seconds passed."""
    pause = threading.Event()
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        pause.wait(0.02)
    return predicate()
