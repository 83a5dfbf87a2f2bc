"""Private redis-server and Sentinel processes for tests and benchmarks (L-59).

Every server binds a free loopback port in its own temporary directory and
keeps nothing on disk. Nothing here touches a Redis already running on 6379.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from dataclasses import dataclass, field

__all__ = [
    "RedisServer",
    "SentinelCluster",
    "free_port",
    "redis_server_path",
]

STARTUP_TIMEOUT = 10.0


def redis_server_path() -> str | None:
    return shutil.which("redis-server")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _command(port: int, command: bytes, timeout: float = 1.0) -> bytes:
    """Send one inline command and return the raw first reply chunk."""
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as sock:
        sock.sendall(command + b"\r\n")
        return sock.recv(65536)


def _wait_until(predicate, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    delay = 0.005
    while True:
        try:
            if predicate():
                return
        except OSError:
            pass
        if time.monotonic() >= deadline:
            raise TimeoutError(f"{what} did not happen within {timeout} s")
        time.sleep(delay)  # waiting on another process to come up: no event to await
        delay = min(delay * 2, 0.1)


@dataclass
class RedisServer:
    """One redis-server process on a free loopback port.

    ``stop()`` / ``start()`` keep the port, so a restart looks to clients like
    the same server coming back (empty, since nothing is persisted).
    """

    port: int = field(default_factory=free_port)
    extra_args: list[str] = field(default_factory=list)
    process: subprocess.Popen | None = None

    def __post_init__(self) -> None:
        self.directory = tempfile.mkdtemp(prefix=f"redis-{self.port}-")

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    @property
    def address(self) -> tuple[str, int]:
        return ("127.0.0.1", self.port)

    def start(self) -> RedisServer:
        executable = redis_server_path()
        if executable is None:
            raise RuntimeError("redis-server is not installed (apt-get install redis-server)")
        self.process = subprocess.Popen(
            [
                executable,
                "--port",
                str(self.port),
                "--bind",
                "127.0.0.1",
                "--save",
                "",
                "--appendonly",
                "no",
                "--dir",
                self.directory,
                "--logfile",
                os.path.join(self.directory, "redis.log"),
                *self.extra_args,
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        _wait_until(self.ping, STARTUP_TIMEOUT, f"redis-server on port {self.port} answering PING")
        return self

    def ping(self) -> bool:
        if self.process is None or self.process.poll() is not None:
            raise RuntimeError(f"redis-server on port {self.port} exited; see {self.directory}")
        return _command(self.port, b"PING").startswith(b"+PONG")

    def stop(self, sig: int = signal.SIGTERM) -> None:
        if self.process is None:
            return
        if self.process.poll() is None:
            self.process.send_signal(sig)
            try:
                self.process.wait(10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(10)
        self.process = None

    def kill(self) -> None:
        self.stop(signal.SIGKILL)

    def restart(self) -> RedisServer:
        self.stop()
        return self.start()

    def close(self) -> None:
        self.stop()
        shutil.rmtree(self.directory, ignore_errors=True)

    def __enter__(self) -> RedisServer:
        return self.start()

    def __exit__(self, *exc_info) -> None:
        self.close()


@dataclass
class SentinelCluster:
    """A primary, a replica and one Sentinel monitoring them as ``service``.

    ``quorum`` is 1 and timeouts are short so that killing the primary leads
    to a promoted replica within a few seconds.
    """

    service: str = "mymaster"
    down_after_ms: int = 1000
    failover_timeout_ms: int = 5000

    def __post_init__(self) -> None:
        self.primary = RedisServer()
        self.replica = RedisServer()
        self.sentinel_port = free_port()
        self.sentinel_process: subprocess.Popen | None = None
        self.directory = tempfile.mkdtemp(prefix="sentinel-")

    @property
    def sentinel_address(self) -> tuple[str, int]:
        return ("127.0.0.1", self.sentinel_port)

    def start(self) -> SentinelCluster:
        self.primary.start()
        self.replica.extra_args = ["--replicaof", "127.0.0.1", str(self.primary.port)]
        self.replica.start()
        _wait_until(
            lambda: b"master_link_status:up" in _command(self.replica.port, b"INFO replication"),
            STARTUP_TIMEOUT,
            "replica linked to primary",
        )
        config = os.path.join(self.directory, "sentinel.conf")
        with open(config, "w") as handle:
            handle.write(
                f"port {self.sentinel_port}\n"
                "bind 127.0.0.1\n"
                f"dir {self.directory}\n"
                f"sentinel monitor {self.service} 127.0.0.1 {self.primary.port} 1\n"
                f"sentinel down-after-milliseconds {self.service} {self.down_after_ms}\n"
                f"sentinel failover-timeout {self.service} {self.failover_timeout_ms}\n"
                f"sentinel parallel-syncs {self.service} 1\n"
            )
        self.sentinel_process = subprocess.Popen(
            [redis_server_path(), config, "--sentinel"],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        _wait_until(
            lambda: (
                str(self.primary.port).encode()
                in _command(
                    self.sentinel_port, f"SENTINEL get-master-addr-by-name {self.service}".encode()
                )
            ),
            STARTUP_TIMEOUT,
            "Sentinel monitoring the primary",
        )
        return self

    def master_port(self) -> int:
        reply = _command(
            self.sentinel_port, f"SENTINEL get-master-addr-by-name {self.service}".encode()
        )
        # RESP array: *2 $9 127.0.0.1 $4 6380
        return int(reply.split(b"\r\n")[4])

    def fail_over(self, timeout: float = 30.0) -> int:
        """Kill the primary and wait until Sentinel names the replica; return its port."""
        self.primary.kill()
        _wait_until(
            lambda: self.master_port() == self.replica.port,
            timeout,
            "Sentinel promoting the replica",
        )
        return self.replica.port

    def close(self) -> None:
        if self.sentinel_process is not None:
            self.sentinel_process.terminate()
            try:
                self.sentinel_process.wait(10)
            except subprocess.TimeoutExpired:
                self.sentinel_process.kill()
            self.sentinel_process = None
        self.replica.close()
        self.primary.close()
        shutil.rmtree(self.directory, ignore_errors=True)

    def __enter__(self) -> SentinelCluster:
        return self.start()

    def __exit__(self, *exc_info) -> None:
        self.close()
