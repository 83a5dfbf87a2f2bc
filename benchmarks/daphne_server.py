"""daphne alone: HTTP requests/s and WebSocket echo messages/s beside plain Twisted/Autobahn.

    python benchmarks/daphne_server.py [--duration 10]

Starts, one at a time, as separate processes on loopback:
  - daphne on the in-memory layer, with a minimal responder thread in the same process
    standing in for the workers (14-byte HTTP reply; WebSocket echo);
  - a plain twisted.web server returning the same 14 bytes;
  - a plain Autobahn (Twisted) echo server;
and drives each with `wrk -t1 -c50` (HTTP) and the Node.js echo client of
benchmarks/loadgen (100 WebSockets, each sending the next message when the previous
echo arrived). Prints one JSON line and rewrites benchmarks/results/daphne_server.md.
Needs wrk, node and `npm ci --prefix benchmarks/loadgen` (see benchmarks/README.md).
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from benchmarks.e2e.clients import check_tools, run_node, run_wrk  # noqa: E402

RESULTS = ROOT / "benchmarks" / "results" / "daphne_server.md"
BODY = b"Hello, world!\n"  # 14 bytes, as in issue 9's W1


# -- the servers (run in child processes) -------------------------------------------------


def serve_daphne(port: int) -> None:
    from channels.layers.inmemory import ChannelLayer
    from daphne.server import Server

    # Capacity 100 as the Redis layer's default; the in-memory default of 10 is sized for
    # runserver and would answer a 100-socket connect burst with 503s.
    layer = ChannelLayer(capacity=100)

    def send(channel: str, message: dict) -> None:
        while True:
            try:
                layer.send(channel, message)
                return
            except layer.ChannelFull:
                time.sleep(0.001)  # daphne's reply queue is full: give its reader a moment

    def worker() -> None:
        channels = ["http.request", "websocket.connect", "websocket.receive"]
        response = {"status": 200, "headers": [[b"content-type", b"text/plain"]], "content": BODY}
        while True:
            channel, message = layer.receive(channels, block=True)
            if channel == "http.request":
                send(message["reply_channel"], response)
            elif channel == "websocket.connect":
                send(message["reply_channel"], {"accept": True})
            elif channel == "websocket.receive":
                send(message["reply_channel"], {"text": message["text"]})

    threading.Thread(target=worker, daemon=True).start()
    Server(layer, endpoints=[f"tcp:port={port}:interface=127.0.0.1"], verbosity=0).run()


def serve_twisted(port: int) -> None:
    from twisted.internet import reactor
    from twisted.web import resource, server

    class Hello(resource.Resource):
        isLeaf = True

        def render_GET(self, request):
            request.setHeader(b"content-type", b"text/plain")
            return BODY

    reactor.listenTCP(port, server.Site(Hello()), interface="127.0.0.1")
    reactor.run()


def serve_autobahn(port: int) -> None:
    from autobahn.twisted.websocket import WebSocketServerFactory, WebSocketServerProtocol
    from twisted.internet import reactor

    class Echo(WebSocketServerProtocol):
        def onMessage(self, payload, is_binary):
            self.sendMessage(payload, is_binary)

    factory = WebSocketServerFactory()
    factory.protocol = Echo
    reactor.listenTCP(port, factory, interface="127.0.0.1")
    reactor.run()


# Where daphne's time goes (py-spy), kept with the figures it explains.
PROFILE_NOTES = """## Profile notes

(see below)
"""

SERVERS = {"daphne": serve_daphne, "twisted": serve_twisted, "autobahn": serve_autobahn}


# -- the driver ---------------------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class Child:
    """One server process; waits (bounded) until its port accepts connections."""

    def __init__(self, kind: str) -> None:
        self.port = free_port()
        self.process = subprocess.Popen(
            [sys.executable, __file__, "--serve", kind, "--port", str(self.port)],
            cwd=ROOT,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=1).close()
                return
            except OSError:
                if self.process.poll() is not None:
                    raise RuntimeError(f"{kind} server exited with {self.process.returncode}")
                time.sleep(0.05)  # the child is still importing; nothing to wait on but its port
        raise RuntimeError(f"{kind} server did not listen within 30 s")

    def __enter__(self) -> Child:
        return self

    def __exit__(self, *exc: object) -> None:
        self.process.terminate()
        try:
            self.process.wait(15)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait(10)


def http_rate(kind: str, duration: int) -> dict:
    with Child(kind) as child:
        url = f"http://127.0.0.1:{child.port}/hello/"
        run_wrk(url, threads=1, connections=50, duration_s=2)  # warm-up
        return run_wrk(url, threads=1, connections=50, duration_s=duration)


def ws_rate(kind: str, duration: int) -> dict:
    with Child(kind) as child:
        return run_node(
            {
                "mode": "echo",
                "url": f"ws://127.0.0.1:{child.port}/echo/",
                "clients": 100,
                "warmup_s": 2,
                "duration_s": duration,
                "stall_ms": 5000,
                "max_s": duration + 60,
            }
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--duration", type=int, default=10, help="seconds per measurement")
    parser.add_argument("--serve", choices=sorted(SERVERS), help=argparse.SUPPRESS)
    parser.add_argument("--port", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.serve:
        SERVERS[args.serve](args.port)
        return
    check_tools()
    load_before = os.getloadavg()
    figures = {
        "http_daphne": http_rate("daphne", args.duration),
        "http_twisted": http_rate("twisted", args.duration),
        "ws_daphne": ws_rate("daphne", args.duration),
        "ws_autobahn": ws_rate("autobahn", args.duration),
    }
    summary = {
        "command": "python benchmarks/daphne_server.py" + (
            f" --duration {args.duration}" if args.duration != 10 else ""
        ),
        "date": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
        "machine": f"{os.cpu_count()} CPUs, {platform.platform()}, Python {platform.python_version()}",
        "load_average_before": [round(x, 2) for x in load_before],
        "http_requests_per_s": {
            "daphne": round(figures["http_daphne"]["requests_per_s"]),
            "twisted.web": round(figures["http_twisted"]["requests_per_s"]),
        },
        "http_p99_ms": {
            "daphne": figures["http_daphne"]["latency"].get("p99_ms"),
            "twisted.web": figures["http_twisted"]["latency"].get("p99_ms"),
        },
        "http_non_2xx": figures["http_daphne"]["non_2xx"],
        "ws_echo_messages_per_s": {
            "daphne": round(figures["ws_daphne"]["messages_per_s"]),
            "autobahn": round(figures["ws_autobahn"]["messages_per_s"]),
        },
        "ws_rtt_p99_ms": {
            "daphne": figures["ws_daphne"]["rtt"]["p99_ms"],
            "autobahn": figures["ws_autobahn"]["rtt"]["p99_ms"],
        },
    }
    summary["http_ratio"] = round(
        summary["http_requests_per_s"]["daphne"] / summary["http_requests_per_s"]["twisted.web"], 3
    )
    summary["ws_ratio"] = round(
        summary["ws_echo_messages_per_s"]["daphne"]
        / summary["ws_echo_messages_per_s"]["autobahn"],
        3,
    )
    print(json.dumps(summary))
    write_results(summary)


def write_results(s: dict) -> None:
    http, ws = s["http_requests_per_s"], s["ws_echo_messages_per_s"]
    lines = [
        "# daphne alone vs plain Twisted / Autobahn",
        "",
        f"Command: `{s['command']}`  ",
        f"Date: {s['date']}  ",
        f"Machine: {s['machine']}; load average before: {s['load_average_before']}",
        "",
        "Load: `wrk -t1 -c50` (HTTP, 14-byte reply) and the Node.js echo client of",
        "benchmarks/loadgen (100 WebSockets, ping-pong). daphne runs on the in-memory layer",
        "(capacity 100) with a one-thread responder in its process; the load client shares",
        "the 2 cores.",
        "",
        "| figure | daphne | plain | daphne / plain | target |",
        "|---|---|---|---|---|",
        f"| HTTP requests/s (vs twisted.web) | {http['daphne']:,} | {http['twisted.web']:,} "
        f"| {s['http_ratio']} | ≥ 0.5 |",
        f"| HTTP latency p99 ms | {s['http_p99_ms']['daphne']} | {s['http_p99_ms']['twisted.web']} "
        "| | |",
        f"| WebSocket echo messages/s (vs autobahn) | {ws['daphne']:,} | {ws['autobahn']:,} "
        f"| {s['ws_ratio']} | ≥ 0.5 |",
        f"| WebSocket RTT p99 ms | {s['ws_rtt_p99_ms']['daphne']} "
        f"| {s['ws_rtt_p99_ms']['autobahn']} | | |",
        "",
        f"Non-2xx HTTP responses from daphne: {s['http_non_2xx']}.",
        "",
    ]
    lines += [PROFILE_NOTES]
    RESULTS.write_text("\n".join(lines))


if __name__ == "__main__":
    main()
