"""Daphne's RSS per idle WebSocket with and without permessage-deflate (issue 21 item 1).

Standalone: starts daphne (in-memory layer, an echo worker thread in the same process) in
a child process, opens N sockets from this one (raw sockets, each handshake offering
permessage-deflate or not), reads the child's VmRSS from /proc, then has every socket
send one repetitive JSON message and read its echo (so any per-socket zlib state would
now exist), and reads VmRSS again. Prints one JSON line per mode.

    python benchmarks/ws_compression_rss.py --sockets 2000
"""

from __future__ import annotations

import argparse
import base64
import json
import os
import socket
import subprocess
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

SERVER = """
import sys
sys.path.insert(0, {root!r})
from channels.layers.inmemory import ChannelLayer
from tests.daphne.live import LiveServer, Responder, echo_worker
if {autobahn_defaults!r}:  # for comparison: autobahn's own choices, state kept per socket
    from autobahn.websocket.compress import PerMessageDeflateOfferAccept
    from daphne import http_factory, ws_deflate
    ws_deflate.bound = lambda protocol: None
    http_factory.accept_offers = lambda offers, size: PerMessageDeflateOfferAccept(offers[0])
live = LiveServer(ChannelLayer(capacity=5000), websocket_connect_timeout=30).start()
Responder(live.layer, ["websocket.connect", "websocket.receive"], echo_worker).start()
print(live.port, flush=True)
sys.stdin.read()  # until the parent closes it
"""

OFFER = b"Sec-WebSocket-Extensions: permessage-deflate; client_max_window_bits\r\n"
MESSAGE = json.dumps([{"user": "alice", "room": "lobby", "text": "hello"}] * 20).encode()


def rss_kb(pid: int) -> int:
    with open(f"/proc/{pid}/status") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    raise RuntimeError("no VmRSS")


def masked_text(payload: bytes) -> bytes:
    mask = os.urandom(4)
    body = bytes(byte ^ mask[i % 4] for i, byte in enumerate(payload))
    return bytes([0x81, 0x80 | 126]) + len(payload).to_bytes(2, "big") + mask + body


def open_socket(port: int, offer: bool) -> socket.socket:
    sock = socket.create_connection(("127.0.0.1", port), timeout=30)
    key = base64.b64encode(os.urandom(16))
    sock.sendall(
        b"GET /ws/ HTTP/1.1\r\nHost: localhost\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
        b"Sec-WebSocket-Key: "
        + key
        + b"\r\nSec-WebSocket-Version: 13\r\n"
        + (OFFER if offer else b"")
        + b"\r\n"
    )
    head = b""
    while b"\r\n\r\n" not in head:
        chunk = sock.recv(4096)
        if not chunk:
            raise RuntimeError("closed during the handshake")
        head += chunk
    if not head.startswith(b"HTTP/1.1 101") or (offer and b"permessage-deflate" not in head):
        raise RuntimeError(head.decode(errors="replace"))
    return sock


def settle(pid: int) -> int:
    """RSS once it stops moving (bounded: 20 reads, 0.25 s apart)."""
    last = rss_kb(pid)
    for _ in range(20):
        time.sleep(0.25)
        now = rss_kb(pid)
        if abs(now - last) < 64:
            return now
        last = now
    return last


def measure(count: int, offer: bool, autobahn_defaults: bool = False) -> dict:
    child = subprocess.Popen(
        [sys.executable, "-c", SERVER.format(root=ROOT, autobahn_defaults=autobahn_defaults)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        port = int(child.stdout.readline())
        warm = [open_socket(port, offer) for _ in range(50)]  # allocator and code paths warm
        for sock in warm:
            sock.close()
        before = settle(child.pid)
        sockets = [open_socket(port, offer) for _ in range(count)]
        idle = settle(child.pid)
        for sock in sockets:
            sock.sendall(masked_text(MESSAGE))
            received = 0
            while received < 4:  # at least the echo frame's head
                received += len(sock.recv(65536))
        talked = settle(child.pid)
        for sock in sockets:
            sock.close()
        return {
            "offer_deflate": offer,
            "autobahn_defaults": autobahn_defaults,
            "sockets": count,
            "rss_before_kb": before,
            "rss_idle_kb": idle,
            "rss_after_one_echo_kb": talked,
            "per_idle_socket_kb": round((idle - before) / count, 2),
            "per_socket_after_echo_kb": round((talked - before) / count, 2),
        }
    finally:
        child.stdin.close()
        child.wait(timeout=30)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--sockets", type=int, default=2000)
    parser.add_argument(
        "--autobahn-defaults",
        action="store_true",
        help="also measure autobahn's default parameters (zlib state kept per socket)",
    )
    args = parser.parse_args()
    for offer in (False, True):
        print(json.dumps(measure(args.sockets, offer)), flush=True)
    if args.autobahn_defaults:
        print(json.dumps(measure(args.sockets, True, autobahn_defaults=True)), flush=True)


if __name__ == "__main__":
    main()
