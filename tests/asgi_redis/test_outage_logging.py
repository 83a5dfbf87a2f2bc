"""What asgi_redis logs while a shard's Redis is killed and restarted under load
(issue 15 item 8, L-62.4).

The probe saw 1,725 ERROR lines and 3,432 tracebacks for a 3 s outage. Here threads
keep sending (``send``, ``send_many``, group sends) and receiving (non-blocking, and
blocking over both shards) while one of two real redis-servers is SIGKILLed and
started again. The layer itself must log one WARNING for the outage, one INFO when
the shard answers again and one WARNING for the restart (it came back empty), and no
traceback and no ERROR at all; the callers see the errors as exceptions.
"""

from __future__ import annotations

import logging
import threading
import time

import pytest
import redis

from asgi_redis import RedisChannelLayer

pytestmark = pytest.mark.redis


class Load:
    """Threads calling the layer in a loop, counting what succeeded and failed."""

    def __init__(self, layer: RedisChannelLayer) -> None:
        self.layer = layer
        self.stop = threading.Event()
        self.lock = threading.Lock()
        self.ok = 0
        self.failed = 0
        self.unexpected: list[BaseException] = []
        self.threads = [
            threading.Thread(target=self._run, args=(work,), daemon=True)
            for work in (self._send, self._send_many, self._group, self._receive, self._wait)
        ]

    def _send(self, n: int) -> None:
        self.layer.send(f"load.q?{n % 7}", {"n": n})  # hashed: both shards in turn

    def _send_many(self, n: int) -> None:
        outcomes = self.layer.send_many([(f"load.m?{k}", {"n": n}) for k in range(4)])
        errors = [o for o in outcomes if o is not None and not isinstance(o, Exception)]
        assert not errors
        failure = next((o for o in outcomes if isinstance(o, redis.RedisError)), None)
        if failure is not None:
            raise failure

    def _group(self, n: int) -> None:
        self.layer.group_add(f"load.g{n % 3}", f"load.m?{n % 4}")
        self.layer.send_group(f"load.g{n % 3}", {"n": n})

    def _receive(self, n: int) -> None:
        self.layer.receive([f"load.q?{k}" for k in range(7)])

    def _wait(self, n: int) -> None:
        # Normal name: the blocking receive waits on both shards at once.
        layer = self.layer
        original, layer.blpop_timeout = layer.blpop_timeout, 0.2
        try:
            layer.receive(["load.normal"], block=True)
        finally:
            layer.blpop_timeout = original

    def _run(self, work) -> None:
        n = 0
        while not self.stop.is_set():
            n += 1
            try:
                work(n)
            except (redis.ConnectionError, redis.TimeoutError):
                with self.lock:
                    self.failed += 1
                time.sleep(0.01)  # a caller's retry delay (C-31 retries after <= 5 s)
                continue
            except BaseException as exc:
                with self.lock:
                    self.unexpected.append(exc)
                continue
            with self.lock:
                self.ok += 1

    def counts(self) -> tuple[int, int]:
        with self.lock:
            return self.ok, self.failed

    def wait_for(self, predicate, what: str, timeout: float = 30.0) -> None:
        give_up = time.monotonic() + timeout
        while not predicate(*self.counts()):
            assert time.monotonic() < give_up, f"{what}: ok/failed = {self.counts()}"
            time.sleep(0.05)  # watching other threads' progress: no event to wait on


def test_kill_and_restart_under_load_logs_three_lines(redis_server_factory, caplog):
    servers = [redis_server_factory(), redis_server_factory()]
    # Capacity well above what the load sends: only the outage may make lines.
    layer = RedisChannelLayer(hosts=[s.url for s in servers], capacity=1_000_000)
    load = Load(layer)
    with caplog.at_level(logging.DEBUG, logger="asgi_redis"):
        for thread in load.threads:
            thread.start()
        try:
            load.wait_for(lambda ok, failed: ok >= 50, "load before the outage")
            servers[0].kill()
            _, failed_before = load.counts()
            load.wait_for(lambda ok, failed: failed >= failed_before + 100, "failures")
            servers[0].start()
            ok_now, _ = load.counts()
            load.wait_for(lambda ok, failed: ok >= ok_now + 200, "recovery")
        finally:
            load.stop.set()
            for thread in load.threads:
                thread.join(10)
    assert not load.unexpected, load.unexpected[:3]
    records = [r for r in caplog.records if r.name.startswith("asgi_redis")]
    shown = [(r.levelname, r.getMessage()) for r in records if r.levelno >= logging.INFO]
    assert not [r for r in records if r.exc_info], shown
    assert [level for level, _ in shown].count("ERROR") == 0, shown
    port = str(servers[0].port)
    unreachable = [m for level, m in shown if level == "WARNING" and "unreachable" in m]
    again = [m for level, m in shown if level == "INFO" and "answers again" in m]
    restarted = [m for level, m in shown if "restarted (run id changed)" in m]
    assert len(unreachable) == 1 and port in unreachable[0], shown
    assert len(again) == 1 and port in again[0], shown
    assert len(restarted) == 1 and port in restarted[0], shown
    assert len(shown) == 3, shown
    layer.close()


def test_socket_receive_and_sender_log_once_per_outage(redis_server, caplog):
    """daphne's socket paths (socket_receive.py, socket_send.py): an open receive and an
    open send pipe losing the server, then many reconnect attempts during the outage,
    make one WARNING; the first successful connection makes one INFO. Over 100 failed
    connects on one client must not exhaust its pool (they were counted against
    redis-py's max_connections of 100 and never released: no reconnect after that)."""
    from .test_socket_receive import read_until
    from .test_socket_send import Outcomes, drive

    layer = RedisChannelLayer(hosts=[redis_server.url])
    prefix = "daphne.response.out!"
    sender = layer.socket_sender()
    drive(sender.submit([(prefix + "a", {"n": 0})], Outcomes()))
    receive = layer.socket_receive([prefix])
    assert read_until(receive, 1) == [(prefix + "a", {"n": 0})]
    with caplog.at_level(logging.DEBUG, logger="asgi_redis"):
        redis_server.kill()
        with pytest.raises(redis.ConnectionError):
            read_until(receive, 1)
        receive.close()
        [pipe] = sender.pipes.values()
        outcomes = Outcomes()
        sender.submit([(prefix + "b", {"n": 1})], outcomes)
        pipe.read()  # the closed connection fails what waited on it
        for _ in range(60):  # daphne's reconnect attempts during the outage (120 connects)
            with pytest.raises(redis.ConnectionError):
                layer.socket_receive([prefix])
            with pytest.raises(redis.ConnectionError):
                pipe.connect()
        redis_server.start()
        receive = layer.socket_receive([prefix])
        outcomes = Outcomes()
        drive(sender.submit([(prefix + "c", {"n": 2})], outcomes))
        assert outcomes.results == [None]
        assert read_until(receive, 1) == [(prefix + "c", {"n": 2})]
    receive.close()
    sender.close()
    layer.close()
    records = [r for r in caplog.records if r.name.startswith("asgi_redis")]
    shown = [(r.levelname, r.getMessage()) for r in records if r.levelno >= logging.INFO]
    assert not [r for r in records if r.exc_info], shown
    levels = [level for level, _ in shown]
    assert levels.count("ERROR") == 0, shown
    assert sum("unreachable" in m for _, m in shown) == 1, shown
    assert sum("answers again" in m for _, m in shown) == 1, shown
    assert sum("restarted (run id changed)" in m for _, m in shown) == 1, shown
    assert len(shown) == 3, shown
