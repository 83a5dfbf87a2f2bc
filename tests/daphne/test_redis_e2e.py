"""daphne in its own process on asgi_redis, a worker thread here on another layer instance.

Checks the reply path end to end (A-20, D-13..D-15) in both reader modes, and that a
Redis restart closes no WebSocket (issue 9's W6; L-62).
"""

from __future__ import annotations

import http.client
import socket
import subprocess
import sys
import threading
from pathlib import Path

import pytest
import websocket

from asgi_redis import RedisChannelLayer
from support.redis_harness import free_port
from tests.daphne.live import Responder, echo_worker

pytestmark = pytest.mark.redis

ROOT = Path(__file__).resolve().parents[2]


class DaphneOnRedis:
    def __init__(self, tmp_path: Path, url: str, *options: str) -> None:
        (tmp_path / "redis_layer_config.py").write_text(
            "from asgi_redis import RedisChannelLayer\n"
            f"channel_layer = RedisChannelLayer(hosts=[{url!r}])\n"
        )
        self.port = free_port()
        self.proc = subprocess.Popen(
            [
                sys.executable,
                "-c",
                "import sys; sys.path.insert(1, sys.argv.pop(1)); "
                "from daphne.cli import CommandLineInterface as C; C.entrypoint()",
                str(ROOT),
                "-v",
                "1",
                "-p",
                str(self.port),
                *options,
                "redis_layer_config:channel_layer",
            ],
            cwd=tmp_path,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            text=True,
        )
        self.stderr: list[str] = []
        listening = threading.Event()

        def pump() -> None:
            for line in self.proc.stderr:
                self.stderr.append(line)
                if "Listening on endpoint" in line:
                    listening.set()

        threading.Thread(target=pump, daemon=True).start()
        assert listening.wait(30), "".join(self.stderr)
        # "Listening on" is logged as listen() starts; the port is bound right after.
        for _ in range(100):
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=1).close()
                break
            except ConnectionRefusedError:
                threading.Event().wait(0.05)

    def close(self) -> None:
        self.proc.terminate()
        try:
            self.proc.wait(20)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(10)
        self.proc.stderr.close()


@pytest.fixture(params=["twisted-reader", "thread-reader"])
def stack(request, tmp_path, redis_server):
    options = ["--force-sync"] if request.param == "thread-reader" else []
    worker = Responder(
        RedisChannelLayer(hosts=[redis_server.url]),
        ["http.request", "websocket.connect", "websocket.receive"],
        echo_worker,
        survive_layer_errors=True,
    ).start()
    daphne = DaphneOnRedis(tmp_path, redis_server.url, *options)
    yield daphne, worker, redis_server
    daphne.close()
    worker.stop()


def test_http_and_websocket_round_trips(stack):
    daphne, worker, _ = stack
    mode = (
        "Using native Twisted mode"
        if "--force-sync" not in daphne.proc.args
        else "in a background thread"
    )
    assert any(mode in line for line in daphne.stderr)
    connection = http.client.HTTPConnection("127.0.0.1", daphne.port, timeout=20)
    try:
        for index in range(3):
            connection.request("GET", f"/r/{index}/")
            response = connection.getresponse()
            assert response.status == 200
            assert response.read() == f"hello /r/{index}/".encode()
    finally:
        connection.close()
    ws = websocket.create_connection(f"ws://127.0.0.1:{daphne.port}/ws/", timeout=20)
    try:
        for text in ("one", "two", "three"):
            ws.send(text)
            assert ws.recv() == text
    finally:
        ws.close()
        ws.shutdown()


@pytest.mark.slow
def test_redis_restart_keeps_websockets_open(stack):
    daphne, worker, redis = stack
    ws = websocket.create_connection(f"ws://127.0.0.1:{daphne.port}/ws/", timeout=30)
    try:
        ws.send("before")
        assert ws.recv() == "before"
        redis.kill()
        redis.restart()
        ws.send("after")  # held by daphne until the layer reaches Redis again
        # "before" may come back once more: a send of it (daphne's, or the stand-in
        # worker's reply) was answered by nobody when Redis went, so it was sent again
        # (at least once, docs/deploying.rst; seen 1 in 12 runs on a loaded machine).
        echoes = [ws.recv()]
        if echoes[0] == "before":
            echoes.append(ws.recv())
        assert echoes[-1] == "after", echoes
        assert daphne.proc.poll() is None
    finally:
        ws.close()
        ws.shutdown()
