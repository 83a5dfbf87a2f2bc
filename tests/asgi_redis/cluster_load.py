"""WebSocket echo and broadcast load against daphne (issue 19 item 1, item 3).

One asyncio client (the ``websockets`` package) opens `echo` sockets on ``/echo/`` and
`room` sockets on ``/room/`` (cluster_e2e_routing), each first told its reply channel.
While running, every echo socket sends a numbered frame every `echo_interval` seconds
(the pace of the load, not a synchronisation) and records each echo; room socket 0
broadcasts a numbered frame every `room_interval` seconds and every room socket records
what it got. `stop` ends the sending, then waits (bounded) for what is still owed.

What is counted, at-most-once (A-24): echoes lost (sent, never echoed), duplicated,
broadcast copies lost per socket, sockets closed by the server, and the longest time
any frame waited for its echo (the stall while a master fails over).
"""

from __future__ import annotations

import asyncio
import itertools
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed

__all__ = ["LoadClient", "LoadResult"]

OPEN_TIMEOUT = 20.0


@dataclass
class LoadResult:
    echo_sent: int = 0
    echo_received: int = 0
    echo_lost: int = 0
    echo_duplicated: int = 0
    broadcasts_sent: int = 0
    broadcast_copies_expected: int = 0
    broadcast_copies_lost: int = 0
    broadcast_copies_duplicated: int = 0
    sockets_closed: list[str] = field(default_factory=list)
    send_errors: int = 0
    max_echo_wait: float = 0.0
    # Echoes that waited over 1 s: (first sent, last sent, longest wait), seconds from start.
    stalls: list[tuple[float, float, float]] = field(default_factory=list)
    seconds: float = 0.0

    def summary(self) -> dict[str, Any]:
        return {
            "echo_sent": self.echo_sent,
            "echo_lost": self.echo_lost,
            "echo_duplicated": self.echo_duplicated,
            "broadcasts_sent": self.broadcasts_sent,
            "broadcast_copies_lost": self.broadcast_copies_lost,
            "broadcast_copies_duplicated": self.broadcast_copies_duplicated,
            "sockets_closed": len(self.sockets_closed),
            "send_errors": self.send_errors,
            "max_echo_wait_s": round(self.max_echo_wait, 3),
            "stalls": [tuple(round(value, 2) for value in stall) for stall in self.stalls],
            "seconds": round(self.seconds, 1),
        }


class _Socket:
    def __init__(self, index: int, ws: ClientConnection, reply_channel: str) -> None:
        self.index = index
        self.ws = ws
        self.reply_channel = reply_channel
        self.sent: dict[int, float] = {}  # number -> monotonic send time
        self.received: dict[int, int] = {}  # number -> copies
        self.waits: list[tuple[float, float]] = []  # (sent, waited)
        self.closed: str | None = None


class LoadClient:
    def __init__(
        self,
        base_url: str,
        echo: int = 10,
        room: int = 5,
        echo_interval: float = 0.05,
        room_interval: float = 0.1,
        paths: tuple[str, str] = ("/echo/", "/room/"),
        hello: bool = True,
    ) -> None:
        """`paths`: the echo and the broadcast consumers; `hello`: each socket is first
        told its reply channel (cluster_e2e_routing; not the benchmark app)."""
        self.base_url = base_url
        self.paths = paths
        self.hello = hello
        self.echo_count = echo
        self.room_count = room
        self.echo_interval = echo_interval
        self.room_interval = room_interval
        self.echo: list[_Socket] = []
        self.room: list[_Socket] = []
        self.broadcasts: dict[int, float] = {}
        self._sending = False
        self._tasks: list[asyncio.Task] = []
        self._progress = asyncio.Event()
        self._started = 0.0
        self.send_errors = 0

    # -- opening ----------------------------------------------------------------------

    async def open(self) -> None:
        """Connect every socket and read its reply channel (bounded)."""
        self.echo = list(
            await asyncio.gather(*(self._open(self.paths[0], i) for i in range(self.echo_count)))
        )
        self.room = list(
            await asyncio.gather(*(self._open(self.paths[1], i) for i in range(self.room_count)))
        )

    async def _open(self, path: str, index: int) -> _Socket:
        ws = await connect(
            self.base_url + path,
            open_timeout=OPEN_TIMEOUT,
            ping_interval=None,  # only the server closes, and only if it must
            close_timeout=5,
            max_queue=None,
        )
        if not self.hello:
            return _Socket(index, ws, f"{path}#{index}")
        first = await asyncio.wait_for(ws.recv(), OPEN_TIMEOUT)
        assert isinstance(first, str) and first.startswith("reply-channel "), first
        return _Socket(index, ws, first.split(" ", 1)[1])

    @property
    def reply_channels(self) -> list[str]:
        return [sock.reply_channel for sock in self.echo + self.room]

    # -- running ----------------------------------------------------------------------

    def start(self) -> None:
        self._sending = True
        self._started = time.monotonic()
        for sock in self.echo:
            self._tasks.append(asyncio.ensure_future(self._send_echo(sock)))
            self._tasks.append(asyncio.ensure_future(self._read(sock, echo=True)))
        for sock in self.room:
            self._tasks.append(asyncio.ensure_future(self._read(sock, echo=False)))
        if self.room:
            self._tasks.append(asyncio.ensure_future(self._send_broadcast(self.room[0])))

    async def _send_echo(self, sock: _Socket) -> None:
        for number in itertools.count():
            if not self._sending or sock.closed:
                return
            sock.sent[number] = time.monotonic()
            if not await self._send(sock, f"e:{sock.index}:{number}"):
                return
            await asyncio.sleep(self.echo_interval)  # the load's pace

    async def _send_broadcast(self, sock: _Socket) -> None:
        for number in itertools.count():
            if not self._sending or sock.closed:
                return
            self.broadcasts[number] = time.monotonic()
            if not await self._send(sock, f"b:{number}"):
                return
            await asyncio.sleep(self.room_interval)

    async def _send(self, sock: _Socket, text: str) -> bool:
        try:
            # Bounded: daphne holding frames stops reading, and TCP pushes back.
            await asyncio.wait_for(sock.ws.send(text), 60)
        except ConnectionClosed as exc:
            sock.closed = sock.closed or f"closed while sending: {exc}"
            return False
        except TimeoutError:
            self.send_errors += 1
            return False
        return True

    async def _read(self, sock: _Socket, echo: bool) -> None:
        try:
            async for text in sock.ws:
                assert isinstance(text, str), text
                kind, _, rest = text.partition(":")
                number = int(rest.rsplit(":", 1)[-1])
                sock.received[number] = sock.received.get(number, 0) + 1
                sent = sock.sent.get(number) if echo else self.broadcasts.get(number)
                if sent is not None:
                    sock.waits.append((sent, time.monotonic() - sent))
                self._progress.set()
        except ConnectionClosed as exc:
            if self._sending or self._owed():
                sock.closed = sock.closed or f"closed: {exc}"
        if sock.closed is None and (self._sending or self._owed()):
            sock.closed = "closed by the server"
        self._progress.set()

    def _owed(self) -> int:
        owed = sum(len(sock.sent) - len(sock.received) for sock in self.echo if not sock.closed)
        owed += sum(
            len(self.broadcasts) - len(sock.received) for sock in self.room if not sock.closed
        )
        return max(owed, 0)

    def echoed(self) -> int:
        return sum(len(sock.received) for sock in self.echo)

    async def wait_echoed(self, count: int, timeout: float) -> None:
        """Until at least `count` more echoes arrived than now (bounded)."""
        target = self.echoed() + count
        deadline = time.monotonic() + timeout
        while self.echoed() < target:
            left = deadline - time.monotonic()
            if left <= 0:
                raise AssertionError(f"{count} echoes did not arrive within {timeout} s")
            self._progress.clear()
            try:
                await asyncio.wait_for(self._progress.wait(), left)
            except TimeoutError:
                pass

    async def stop(self, owed_timeout: float = 30.0) -> LoadResult:
        """Stop sending, wait (bounded) for echoes and copies still owed, close, count."""
        self._sending = False
        deadline = time.monotonic() + owed_timeout
        while self._owed() and time.monotonic() < deadline:
            self._progress.clear()
            try:
                await asyncio.wait_for(self._progress.wait(), max(deadline - time.monotonic(), 0))
            except TimeoutError:
                break
        result = self.result()
        for sock in self.echo + self.room:
            await sock.ws.close()
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        return result

    def result(self) -> LoadResult:
        result = LoadResult(seconds=time.monotonic() - self._started, send_errors=self.send_errors)
        slow: list[tuple[float, float]] = []
        for sock in self.echo:
            result.echo_sent += len(sock.sent)
            result.echo_received += len(sock.received)
            result.echo_lost += len(set(sock.sent) - set(sock.received))
            result.echo_duplicated += sum(copies - 1 for copies in sock.received.values())
            for sent, waited in sock.waits:
                result.max_echo_wait = max(result.max_echo_wait, waited)
                if waited > 1.0:
                    slow.append((sent - self._started, waited))
        result.stalls = _windows(slow)
        result.broadcasts_sent = len(self.broadcasts)
        for sock in self.room:
            result.broadcast_copies_expected += len(self.broadcasts)
            result.broadcast_copies_lost += len(set(self.broadcasts) - set(sock.received))
            result.broadcast_copies_duplicated += sum(
                copies - 1 for copies in sock.received.values()
            )
        result.sockets_closed = [
            f"{sock.reply_channel}: {sock.closed}" for sock in self.echo + self.room if sock.closed
        ]
        return result


def _windows(slow: list[tuple[float, float]]) -> list[tuple[float, float, float]]:
    """Slow echoes merged into windows of send times less than 1 s apart."""
    windows: list[tuple[float, float, float]] = []
    for sent, waited in sorted(slow):
        if windows and sent - windows[-1][1] < 1.0:
            first, _, longest = windows[-1]
            windows[-1] = (first, sent, max(longest, waited))
        else:
            windows.append((sent, sent, waited))
    return windows


def run_disrupted(
    url: str,
    disrupt: Callable[[str], None],
    output: Callable[[], str],
    *,
    echo: int = 10,
    room: int = 5,
    recover_echoes: int = 200,
    recover_timeout: float = 60,
) -> LoadResult:
    """Open the load on `url` and start it; once 100 echoes came back, run
    `disrupt(reply_prefix)` in a thread while the load goes on; wait for
    `recover_echoes` echoes after it, then stop (every wait bounded). On an error the
    stack's `output()` is printed."""

    async def main() -> LoadResult:
        load = LoadClient(url, echo=echo, room=room)
        await load.open()
        reply_prefix = load.reply_channels[0].split("!")[0] + "!"
        load.start()
        try:
            await load.wait_echoed(100, 30)
            started = time.monotonic()
            await asyncio.to_thread(disrupt, reply_prefix)
            print(f"disruption took {time.monotonic() - started:.2f} s")
            await load.wait_echoed(recover_echoes, recover_timeout)
        finally:
            result = await load.stop(owed_timeout=30)
        return result

    try:
        result = asyncio.run(main())
    except BaseException:
        print(output())
        raise
    print(result.summary())
    return result
