"""A daphne process with an in-process worker stand-in, for subprocess tests.

Run as ``python -m tests.daphne.app <daphne arguments> tests.daphne.app:channel_layer``.
It prints ``READY <port>`` once every endpoint listens. The worker echoes
WebSocket frames (leaving connects to ``/silent/`` unanswered), answers
``GET /slow/<seconds>/`` after that long (simulated work) and everything else at
once with ``ok``.
"""

from __future__ import annotations

import sys
import threading
import time

from twisted.internet import defer, reactor

from channels.layers.inmemory import ChannelLayer

channel_layer = ChannelLayer(capacity=1000)


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
    channels = ["http.request", "websocket.connect", "websocket.receive"]
    # As a real worker does (issue 14): nobody here consumes http.disconnect.
    channel_layer.announce_channels("tests.daphne.app", channels, 24 * 3600)
    while True:
        channel, message = channel_layer.receive(channels, block=True)
        if channel is None:
            continue
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

    threading.Thread(target=_worker, name="worker", daemon=True).start()
    cli = CommandLineInterface()
    # daphne and its worker share this process, so the in-memory layer reaches it.
    cli.allow_process_local_layer = True
    reactor.callWhenRunning(_announce, cli)
    cli.run(argv)


if __name__ == "__main__":
    from tests.daphne.app import main as imported_main

    imported_main(sys.argv[1:])
