"""Chaos runs for at-least-once delivery (issue 17): real daphne, several ``runworker``
processes and a private Redis, numbered echo traffic, workers killed or restarted meanwhile.

`NumberedClients` opens WebSockets on ``/echo/`` (tests.testproject.e2e_routing) and sends
``"<socket>:<n>"`` for n in 0..messages-1 on a fixed schedule, counting what comes back
(lost = sent and never echoed, duplicates = echoed more than once). `Workers` keeps a set of
worker processes and replaces one by SIGKILL (`kill_one`) or by SIGTERM (`restart_one`).
Every wait is bounded; everything started is stopped.

Run as a script for the figures (scratch use, not part of the suite)::

    PYTHONPATH=. python -m tests.channels.chaos --sockets 50 --messages 200
"""

from __future__ import annotations

import asyncio
import signal
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

from support.redis_harness import free_port
from tests.channels import e2e
from tests.examples import processes

READY_TIMEOUT = 60.0


@dataclass
class Tally:
    """What the clients saw: per socket, how often each number came back."""

    sockets: int
    messages: int
    received: list[Counter] = field(default_factory=list)
    opened: int = 0
    closed: int = 0
    close_codes: Counter = field(default_factory=Counter)
    sent: int = 0
    seconds: float = 0.0
    # Slow readers: sockets that send and never read (their echoes pile up in daphne).
    slow_sent: int = 0
    slow_closed: int = 0

    # Per socket: how many numbers it sent (0..n-1, in order).
    sent_upto: list[int] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.received = [Counter() for _ in range(self.sockets)]
        self.sent_upto = [0] * self.sockets

    @property
    def lost(self) -> int:
        """Numbers sent and never echoed (a socket closed by the server sends no more)."""
        return sum(
            upto - sum(1 for n in counts if n < upto)
            for upto, counts in zip(self.sent_upto, self.received, strict=True)
        )

    @property
    def gaps(self) -> int:
        """Lost numbers below the highest number echoed on their socket: not merely the
        tail still in flight when the socket closed."""
        return sum(
            sum(1 for n in range(max(counts, default=-1)) if n not in counts)
            for counts in self.received
        )

    @property
    def duplicates(self) -> int:
        return sum(n - 1 for counts in self.received for n in counts.values() if n > 1)

    @property
    def complete(self) -> bool:
        return self.lost == 0

    def summary(self) -> dict[str, object]:
        return {
            "sockets": self.sockets,
            "opened": self.opened,
            "messages_per_socket": self.messages,
            "sent": self.sent,
            "expected": self.sockets * self.messages,
            "lost": self.lost,
            "gaps": self.gaps,
            "duplicates": self.duplicates,
            "closed": self.closed,
            "close_codes": dict(self.close_codes),
            "seconds": round(self.seconds, 1),
            "slow_sent": self.slow_sent,
            "slow_closed": self.slow_closed,
        }


async def _run_clients(
    url: str,
    tally: Tally,
    interval: float,
    drain_timeout: float,
    on_sent: Callable[[], None],
    open_concurrency: int = 50,
    slow_readers: int = 0,
    on_running: Callable[[], None] = lambda: None,
) -> None:
    from websockets.asyncio.client import connect
    from websockets.exceptions import ConnectionClosed

    opening = asyncio.Semaphore(open_concurrency)
    all_open = asyncio.Event()
    all_sent = asyncio.Event()
    finished = asyncio.Event()
    state = {"open": 0, "sent_sockets": 0, "done_sockets": 0}

    async def one(index: int) -> None:
        counts = tally.received[index]
        async with opening:
            ws = await connect(url, compression=None, ping_interval=None, open_timeout=60)
        tally.opened += 1
        state["open"] += 1
        if state["open"] == tally.sockets:
            all_open.set()
            on_running()

        async def reader() -> None:
            try:
                async for text in ws:
                    counts[int(str(text).split(":", 1)[1])] += 1
                    if len(counts) == tally.messages:
                        return
            except ConnectionClosed:
                pass
            if not finished.is_set():
                tally.closed += 1
                tally.close_codes[ws.close_code or 1006] += 1

        reading = asyncio.ensure_future(reader())
        try:
            await all_open.wait()
            start = time.monotonic()
            for n in range(tally.messages):
                # The load's schedule (not synchronisation): one message every `interval`.
                delay = start + n * interval - time.monotonic()
                if delay > 0:
                    await asyncio.sleep(delay)
                if reading.done():
                    break
                try:
                    await ws.send(f"{index}:{n}")
                except ConnectionClosed:
                    break  # counted by the reader
                tally.sent += 1
                tally.sent_upto[index] = n + 1
            state["sent_sockets"] += 1
            if state["sent_sockets"] == tally.sockets:
                all_sent.set()
            await reading
        finally:
            state["done_sockets"] += 1
            reading.cancel()
            ws.transport.abort()

    async def bounded() -> None:
        await all_sent.wait()
        on_sent()
        done = asyncio.gather(*tasks, return_exceptions=True)
        try:
            await asyncio.wait_for(asyncio.shield(done), drain_timeout)
        except TimeoutError:
            pass
        finished.set()

    async def slow(index: int) -> None:
        # max_queue=1: the client library stops reading the TCP socket once one message
        # waits unread, and nothing ever reads it: a reader that never reads.
        async with opening:
            ws = await connect(
                url, compression=None, ping_interval=None, open_timeout=60, max_queue=1
            )
        payload = "x" * 4096
        try:
            await all_open.wait()
            for n in range(tally.messages * 4):
                await asyncio.wait_for(ws.send(f"slow{index}:{n}:{payload}"), 5)
                tally.slow_sent += 1
                await asyncio.sleep(interval / 4)  # the load's schedule
        except (ConnectionClosed, TimeoutError):
            if not finished.is_set():
                tally.slow_closed += 1
        finally:
            ws.transport.abort()

    started = time.monotonic()
    tasks = [asyncio.ensure_future(one(i)) for i in range(tally.sockets)]
    slow_tasks = [asyncio.ensure_future(slow(i)) for i in range(slow_readers)]
    sending_budget = tally.messages * interval + READY_TIMEOUT
    try:
        await asyncio.wait_for(bounded(), sending_budget + drain_timeout)
    except TimeoutError:
        pass
    finished.set()
    tally.seconds = time.monotonic() - started
    for task in tasks + slow_tasks:
        task.cancel()
    await asyncio.gather(*tasks, *slow_tasks, return_exceptions=True)


def run_numbered(
    url: str,
    sockets: int,
    messages: int,
    interval: float,
    drain_timeout: float,
    on_sent: Callable[[], None] = lambda: None,
    slow_readers: int = 0,
    on_running: Callable[[], None] = lambda: None,
) -> Tally:
    """Send `messages` numbered frames on each of `sockets` WebSockets, one every `interval`
    seconds per socket; wait at most `drain_timeout` after the last send for every echo."""
    tally = Tally(sockets, messages)
    asyncio.run(
        _run_clients(
            url,
            tally,
            interval,
            drain_timeout,
            on_sent,
            slow_readers=slow_readers,
            on_running=on_running,
        )
    )
    return tally


class Workers:
    """Some ``runworker`` processes sharing one environment, replaced on demand."""

    def __init__(self, env: dict[str, str], count: int, *args: str) -> None:
        self.env = env
        self.args = args
        self.procs: list[e2e.Proc] = []
        self.retired: list[e2e.Proc] = []
        self.killed = 0
        self.restarted = 0
        for _ in range(count):
            self.procs.append(self._start())
        for proc in self.procs:
            proc.output.wait_for("Listening on channels", timeout=READY_TIMEOUT)

    def _start(self) -> e2e.Proc:
        return e2e.start_worker(self.env, *self.args)

    def kill_one(self, index: int) -> None:
        """SIGKILL worker `index` and start a new one in its place (not waited for)."""
        old = self.procs[index]
        old.process.send_signal(signal.SIGKILL)
        old.process.wait(timeout=READY_TIMEOUT)
        self.retired.append(old)
        self.procs[index] = self._start()
        self.killed += 1

    def restart_one(self, index: int, timeout: float = READY_TIMEOUT) -> int:
        """Rolling restart of one worker: start its successor, wait until it listens, then
        SIGTERM the old one and wait (bounded) for it to exit; returns its exit status."""
        new = self._start()
        new.output.wait_for("Listening on channels", timeout=timeout)
        old, self.procs[index] = self.procs[index], new
        old.process.send_signal(signal.SIGTERM)
        code = old.process.wait(timeout=timeout)
        self.retired.append(old)
        self.restarted += 1
        return code

    def stop(self) -> None:
        for proc in self.procs + self.retired:
            proc.stop()


@contextmanager
def chaos_stack(
    env: dict[str, str], workers: int = 2, *worker_args: str, daphne_args: tuple[str, ...] = ()
) -> Iterator[tuple[str, Workers, e2e.Proc]]:
    """daphne + `workers` runworker processes; yields (ws url of /echo/, Workers, daphne)."""
    port = free_port()
    pool: Workers | None = None
    daphne: e2e.Proc | None = None
    try:
        pool = Workers(env, workers, *worker_args)
        process, output = processes.start(
            [
                *e2e.DAPHNE,
                "-b",
                "127.0.0.1",
                "-p",
                str(port),
                *daphne_args,
                "tests.testproject.e2e_asgi:channel_layer",
            ],
            e2e.REPO,
            env,
        )
        daphne = e2e.Proc(process, output)
        processes.wait_for_port(port, process, timeout=READY_TIMEOUT, output=output)
        yield f"ws://127.0.0.1:{port}/echo/", pool, daphne
    finally:
        if daphne is not None:
            daphne.stop()
        if pool is not None:
            pool.stop()


class Killer(threading.Thread):
    """SIGKILLs the workers in turn every `every` seconds (each replaced at once) until
    stopped or `limit` kills were made; with `rolling`, restarts them in turn instead
    (successor listening first, then SIGTERM, `Workers.restart_one`)."""

    def __init__(self, pool: Workers, every: float, limit: int, rolling: bool = False) -> None:
        super().__init__(daemon=True)
        self.pool = pool
        self.every = every
        self.limit = limit
        self.rolling = rolling
        self.exit_codes: list[int] = []
        self.stopping = threading.Event()
        self.error: BaseException | None = None

    def run(self) -> None:
        try:
            for kill in range(self.limit):
                if self.stopping.wait(self.every):  # the chaos schedule, not synchronisation
                    return
                if self.rolling:
                    self.exit_codes.append(self.pool.restart_one(kill % len(self.pool.procs)))
                else:
                    self.pool.kill_one(kill % len(self.pool.procs))
        except BaseException as error:  # reported by the test
            self.error = error

    def stop(self) -> None:
        self.stopping.set()
        self.join(READY_TIMEOUT)


def alo_env(database: Path, redis_url: str, ack_timeout: float = 2.0) -> dict[str, str]:
    return e2e.e2e_env(
        database,
        redis_url,
        CHANNELS_E2E_AT_LEAST_ONCE="websocket.receive",
        CHANNELS_E2E_ACK_TIMEOUT=str(ack_timeout),
        CHANNELS_E2E_MAX_DELIVERIES="20",
    )


def main() -> None:
    import argparse
    import json
    import tempfile

    from support.redis_harness import RedisServer

    parser = argparse.ArgumentParser()
    parser.add_argument("--sockets", type=int, default=50)
    parser.add_argument("--messages", type=int, default=200)
    parser.add_argument("--interval", type=float, default=0.1)
    parser.add_argument("--kill-every", type=float, default=2.0)
    parser.add_argument("--ack-timeout", type=float, default=2.0)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--no-alo", action="store_true")
    parser.add_argument("--rolling", action="store_true")
    parser.add_argument("--slow-readers", type=int, default=0)
    parser.add_argument("--threads", type=int, default=1)
    options = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        database = Path(tmp) / "db.sqlite3"
        e2e.prepare_database(e2e.e2e_env(database))
        redis = RedisServer()
        redis.start()
        try:
            env = alo_env(database, redis.url, options.ack_timeout)
            if options.no_alo:
                env.pop("CHANNELS_E2E_AT_LEAST_ONCE")
            threads = ("--threads", str(options.threads)) if options.threads > 1 else ()
            with chaos_stack(env, options.workers, *threads) as (url, pool, _daphne):
                killer = Killer(pool, options.kill_every, limit=1000, rolling=options.rolling)
                killer.start()
                tally = run_numbered(
                    url,
                    options.sockets,
                    options.messages,
                    options.interval,
                    drain_timeout=options.ack_timeout + 20,
                    on_sent=killer.stopping.set,
                    slow_readers=options.slow_readers,
                )
                killer.stop()
                from asgi_redis import RedisChannelLayer

                layer = RedisChannelLayer(hosts=[redis.url], at_least_once=["websocket.receive"])
                stats = layer.global_statistics()
                layer.close()
                print(
                    json.dumps(
                        {
                            **tally.summary(),
                            "killed": pool.killed,
                            "restarted": pool.restarted,
                            "exit_codes": killer.exit_codes,
                            "killer_error": repr(killer.error) if killer.error else None,
                            "redelivered_count": stats.get("redelivered_count"),
                            "dead_lettered_count": stats.get("dead_lettered_count"),
                        }
                    )
                )
        finally:
            redis.close()


if __name__ == "__main__":
    main()
