"""A daphne process with an in-process worker stand-in, for subprocess tests.

Run as ``python -m tests.daphne.app <daphne arguments> tests.daphne.app:channel_layer``.
It prints ``READY <port>`` once every endpoint listens. The worker echoes
WebSocket frames (leaving connects to ``/silent/`` unanswered), answers
``GET /slow/<seconds>/`` after that long (simulated work) and everything else at
once with ``ok``. Each ``websocket.disconnect`` is printed as ``WS DISCONNECT <code>
<reply channel>``, those left on the layer when daphne stops included.
"""

from __future__ import annotations

import sys
import threading
import time

from twisted.internet import defer, reactor

from channels.layers.inmemory import ChannelLayer

channel_layer = ChannelLayer(capacity=1000)
# Sent by `main` once daphne stopped: the worker empties the layer, then ends.
STOP_CHANNEL = "tests.daphne.app.stop"


def _send(reply: str, message: dict) -> None:
    for _ in range(2000):
        try:
            channel_layer.send(reply, message)
            return
        except channel_layer.ChannelFull:
            time.sleep(0.005)  # a full reply queue: wait for daphne to read


def _answer_slow(reply: str, seconds: float) -> None:
    time.sleep(seconds)  # simulated work of a slow view
    _send(reply, {"status": 200, "content": b"slow done"})


def _worker() -> None:
    channels = ["http.request", "websocket.connect", "websocket.receive", "websocket.disconnect"]
    # As a real worker does (issue 14): nobody here consumes http.disconnect.
    channel_layer.announce_channels("tests.daphne.app", channels, 24 * 3600)
    stopping = False
    while True:
        channel, message = channel_layer.receive([*channels, STOP_CHANNEL], block=not stopping)
        if channel == STOP_CHANNEL:
            stopping = True
            continue
        if channel is None:
            if stopping:
                return  # daphne is gone and the layer is empty
            continue
        if channel == "websocket.disconnect":
            # One write: the access log's lines come from another thread.
            sys.stdout.write(f"WS DISCONNECT {message['code']} {message['reply_channel']}\n")
            sys.stdout.flush()
            continue
        if stopping:
            continue  # nobody to answer any more
        reply = message["reply_channel"]
        if channel == "http.request":
            if message["path"].startswith("/slow/"):
                print("SLOW STARTED", flush=True)
                seconds = float(message["path"].split("/")[2])
                threading.Thread(target=_answer_slow, args=(reply, seconds), daemon=True).start()
            else:
                _send(reply, {"status": 200, "content": b"ok"})
        elif channel == "websocket.connect":
            if message["path"] != "/silent/":  # /silent/: never answered (issue 14)
                _send(reply, {"accept": True})
        elif message.get("text") is not None:
            _send(reply, {"text": message["text"]})
        else:
            _send(reply, {"bytes": message["bytes"]})


def _announce(cli) -> None:
    def ready(ports):
        print("READY", " ".join(str(p.getHost().port) for p in ports), flush=True)

    defer.gatherResults(cli.server.listeners).addCallback(ready)


def main(argv: list[str]) -> None:
    from daphne.cli import CommandLineInterface

    worker = threading.Thread(target=_worker, name="worker", daemon=True)
    worker.start()
    cli = CommandLineInterface()
    # daphne and its worker share this process, so the in-memory layer reaches it.
    cli.allow_process_local_layer = True
    reactor.callWhenRunning(_announce, cli)
    cli.run(argv)
    # What daphne sent last (the disconnects of its stop) is printed before exiting.
    channel_layer.send(STOP_CHANNEL, {})
    worker.join(timeout=10)


if __name__ == "__main__":
    from tests.daphne.app import main as imported_main

    imported_main(sys.argv[1:])
