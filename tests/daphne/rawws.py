"""A raw WebSocket client on a plain socket, for tests that need the exact frames daphne
writes (their order, RSV bits and payload sizes) or must send invalid ones."""

from __future__ import annotations

import os
import socket
import struct

from tests.daphne.live import recv_response_head
from tests.daphne.test_websocket_live import handshake


def frame(opcode: int, payload: bytes, fin: bool = True, rsv: int = 0) -> bytes:
    """A masked client frame (RFC 6455 §5.2); `rsv` are the bits 0x40/0x20/0x10."""
    mask = os.urandom(4)
    head = bytes([(0x80 if fin else 0) | rsv | opcode])
    length = len(payload)
    if length < 126:
        head += bytes([0x80 | length])
    elif length < 65536:
        head += bytes([0x80 | 126]) + struct.pack("!H", length)
    else:
        head += bytes([0x80 | 127]) + struct.pack("!Q", length)
    masked = bytes(byte ^ mask[i % 4] for i, byte in enumerate(payload))
    return head + mask + masked


class RawSocket:
    """One WebSocket after its handshake; `frames()` parses what the server writes."""

    def __init__(self, sock: socket.socket, path: str = "/ws/", extra: bytes = b"") -> None:
        self.sock = sock
        sock.sendall(handshake(path, extra))
        head = recv_response_head(sock)
        self.head, self.buffer = head.split(b"\r\n\r\n", 1)
        if not self.head.startswith(b"HTTP/1.1 101"):
            raise AssertionError(f"handshake refused: {self.head!r}")

    def send(self, data: bytes) -> None:
        self.sock.sendall(data)

    def _need(self, size: int) -> bool:
        while len(self.buffer) < size:
            chunk = self.sock.recv(65536)  # bounded by the socket's timeout
            if not chunk:
                return False
            self.buffer += chunk
        return True

    def next_frame(self) -> tuple[int, int, bytes] | None:
        """``(opcode, rsv bits, payload)`` of the next server frame, or None at EOF."""
        if not self._need(2):
            return None
        first, second = self.buffer[0], self.buffer[1]
        length, offset = second & 0x7F, 2
        if length == 126:
            self._need(4)
            length, offset = struct.unpack("!H", self.buffer[2:4])[0], 4
        elif length == 127:
            self._need(10)
            length, offset = struct.unpack("!Q", self.buffer[2:10])[0], 10
        if not self._need(offset + length):
            return None
        payload = self.buffer[offset : offset + length]
        self.buffer = self.buffer[offset + length :]
        return first & 0x0F, first & 0x70, payload

    def frames_until_close(self) -> list[tuple[int, int, bytes]]:
        """Every frame up to and including the close frame (or EOF)."""
        frames = []
        while (item := self.next_frame()) is not None:
            frames.append(item)
            if item[0] == 0x8:
                break
        return frames
