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
    "RedisCluster",
    "RedisServer",
    "SentinelCluster",
    "free_port",
    "redis_server_path",
]

STARTUP_TIMEOUT = 10.0
# First starts tried on fresh ports when the chosen one was taken meanwhile.
_BIND_ATTEMPTS = 3


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
        # Whether it ever started: from then on clients know its port, which stays.
        self._started = False

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    @property
    def address(self) -> tuple[str, int]:
        return ("127.0.0.1", self.port)

    def start(self) -> RedisServer:
        # `free_port` only finds a port that was free a moment ago: another process (a
        # client's ephemeral port, a second test run) may take it before redis-server
        # binds it. On a first start nobody knows the ports yet, so new ones are tried.
        for attempt in range(_BIND_ATTEMPTS):
            try:
                self._start_once()
            except RuntimeError:
                if self._started or attempt == _BIND_ATTEMPTS - 1 or not self._port_taken():
                    raise
                self._new_ports()
                continue
            self._started = True
            return self
        raise AssertionError("unreachable")  # pragma: no cover

    def _port_taken(self) -> bool:
        try:
            with open(os.path.join(self.directory, "redis.log")) as log:
                return "Address already in use" in log.read()
        except OSError:
            return False

    def _new_ports(self) -> None:
        """Fresh ports for the server and, if it has one, its cluster bus."""
        self.port = free_port()
        args = self.extra_args
        if "--cluster-port" in args:
            args[args.index("--cluster-port") + 1] = str(free_port())

    def _start_once(self) -> None:
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


@dataclass
class RedisCluster:
    """A Redis Cluster of ``masters`` masters with one replica each (issue 19 item 1).

    Each node is a `RedisServer` started with ``--cluster-enabled yes`` in its own
    temporary directory (its ``nodes.conf`` there); ``redis-cli --cluster create``
    assigns the slots and the replicas, and `start` returns once every node says
    ``cluster_state:ok`` and knows every other node. `node_timeout_ms` is short so a
    killed master's replica is promoted within a few seconds.
    """

    masters: int = 3
    node_timeout_ms: int = 1000

    def __post_init__(self) -> None:
        self.nodes = [RedisServer() for _ in range(self.masters * 2)]
        for node in self.nodes:
            node.extra_args = [
                "--cluster-enabled",
                "yes",
                "--cluster-config-file",
                os.path.join(node.directory, "nodes.conf"),
                # The bus port explicitly: the default (port + 10000) overflows for
                # the high ports `free_port` often returns.
                "--cluster-port",
                str(free_port()),
                "--cluster-node-timeout",
                str(self.node_timeout_ms),
                # A replica whose master is gone may always take over (tests kill
                # masters right after writing, before any replication lag check).
                "--cluster-replica-validity-factor",
                "0",
                # A replica's first full sync starts at once, not after Redis 7's
                # default 5 s wait for other replicas (see `wait_synced`).
                "--repl-diskless-sync-delay",
                "0",
            ]

    @property
    def startup_nodes(self) -> list[tuple[str, int]]:
        return [node.address for node in self.nodes]

    def start(self) -> RedisCluster:
        for node in self.nodes:
            node.start()
        redis_cli = shutil.which("redis-cli")
        if redis_cli is None:
            raise RuntimeError("redis-cli is not installed (apt-get install redis-tools)")
        subprocess.run(
            [
                redis_cli,
                "--cluster",
                "create",
                *(f"127.0.0.1:{node.port}" for node in self.nodes),
                "--cluster-replicas",
                "1",
                "--cluster-yes",
            ],
            check=True,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            timeout=STARTUP_TIMEOUT * 3,
        )
        self.wait_ok(self.nodes)
        self.wait_synced()
        return self

    def running(self) -> list[RedisServer]:
        return [node for node in self.nodes if node.process is not None]

    def wait_ok(self, nodes: list[RedisServer] | None = None, timeout: float = 30.0) -> None:
        """Wait until every running node says cluster_state:ok and sees every running node
        as connected (none flagged failing), with its slots served by masters only."""
        nodes = self.running() if nodes is None else nodes
        alive = {str(node.port).encode() for node in nodes}

        def settled() -> bool:
            for node in nodes:
                if b"cluster_state:ok" not in _command(node.port, b"CLUSTER INFO"):
                    return False
                listing = _command(node.port, b"CLUSTER NODES", timeout=2.0)
                lines = [line for line in listing.split(b"\n") if b"127.0.0.1:" in line]
                seen = {line.split(b":")[1].split(b"@")[0] for line in lines if b"fail" not in line}
                if not alive <= seen:
                    return False
            return True

        _wait_until(settled, timeout, "every cluster node reporting cluster_state:ok")

    def wait_synced(self, timeout: float = 30.0) -> None:
        """Wait until every running replica has its link to its master up (its first
        full sync done). A master killed before that takes its data with it: its
        replica is promoted all the same (validity factor 0), empty, and a test would
        see the loss of everything written before as the layer's."""

        def synced() -> bool:
            for node in self.running():
                info = _command(node.port, b"INFO replication", timeout=2.0)
                if b"role:slave" in info and b"master_link_status:up" not in info:
                    return False
            return True

        _wait_until(synced, timeout, "every cluster replica in sync with its master")

    def node_roles(self) -> dict[int, str]:
        """Port -> 'master' / 'slave', as the first running node sees it."""
        first = self.running()[0]
        listing = _command(first.port, b"CLUSTER NODES", timeout=2.0).decode()
        roles = {}
        for line in listing.splitlines():
            parts = line.split()
            if len(parts) < 3 or ":" not in parts[1]:
                continue
            port = int(parts[1].split(":")[1].split("@")[0])
            flags = parts[2].split(",")
            if "fail" in flags or "fail?" in flags:
                continue
            roles[port] = "master" if "master" in flags else "slave"
        return roles

    def master_nodes(self) -> list[RedisServer]:
        roles = self.node_roles()
        return [node for node in self.running() if roles.get(node.port) == "master"]

    def node(self, port: int) -> RedisServer:
        return next(node for node in self.nodes if node.port == port)

    def master_of_slot(self, slot: int) -> RedisServer:
        """The running node that serves `slot` (``CLUSTER SHARDS``-free: ``CLUSTER SLOTS``)."""
        import redis

        client = redis.Redis(port=self.running()[0].port)
        try:
            for start, end, master, *_ in client.execute_command("CLUSTER SLOTS"):
                if start <= slot <= end:
                    return self.node(int(master[1]))
        finally:
            client.close()
        raise LookupError(f"no node serves slot {slot}")

    def slots_of(self, node: RedisServer) -> list[int]:
        """The slots `node` serves, ascending."""
        import redis

        client = redis.Redis(port=self.running()[0].port)
        try:
            ranges = client.execute_command("CLUSTER SLOTS")
        finally:
            client.close()
        served = []
        for start, end, master, *_ in ranges:
            if int(master[1]) == node.port:
                served.extend(range(start, end + 1))
        return sorted(served)

    def replica_of(self, master: RedisServer, timeout: float = 10.0) -> RedisServer:
        """The running replica of `master`, as the master's ``INFO replication`` lists its
        connected replicas (its ``CLUSTER NODES`` may not show a new replica's role
        yet: gossip carries it, and CI once looked before it had)."""
        found: list[RedisServer] = []

        def listed() -> bool:
            info = _command(master.port, b"INFO replication", timeout=2.0).decode()
            for line in info.splitlines():
                if line.startswith("slave") and "state=online" in line:
                    fields = dict(part.split("=", 1) for part in line.split(":", 1)[1].split(","))
                    node = next((n for n in self.nodes if n.port == int(fields["port"])), None)
                    if node is not None and node.process is not None:
                        found.append(node)
                        return True
            return False

        try:
            _wait_until(listed, timeout, f"a replica of {master.port} online")
        except TimeoutError:
            raise LookupError(f"no running replica of {master.port}") from None
        return found[0]

    def has_replica(self, master: RedisServer) -> bool:
        """Whether `master` has a replica online now (no wait)."""
        try:
            self.replica_of(master, timeout=0)
        except LookupError:
            return False
        return True

    def promote(self, replica: RedisServer, timeout: float = 30.0) -> None:
        """A graceful ``CLUSTER FAILOVER`` on `replica`: it syncs, then takes over."""
        assert _command(replica.port, b"CLUSTER FAILOVER").startswith(b"+OK")
        _wait_until(
            lambda: self.node_roles().get(replica.port) == "master",
            timeout,
            f"replica {replica.port} promoted",
        )
        self.wait_ok()

    def fail_over(self, master: RedisServer, timeout: float = 30.0) -> None:
        """Kill `master` (once its replica is in sync) and wait until the replica is
        promoted and the cluster is ok."""
        self.replica_of(master)  # LookupError: none would take over
        self.wait_synced(timeout)
        master.kill()
        survivors = self.running()
        self.wait_ok(survivors, timeout)
        _wait_until(
            lambda: len(self.master_nodes()) == self.masters,
            timeout,
            "a replica promoted in place of the killed master",
        )

    def reshard(self, source: RedisServer, target: RedisServer, slots: int) -> None:
        """Move `slots` slots from `source` to `target` with ``redis-cli --cluster reshard``."""

        self.wait_agreed()

        def node_id(server: RedisServer) -> str:
            return _command(server.port, b"CLUSTER MYID").split(b"\r\n")[1].decode()

        subprocess.run(
            [
                shutil.which("redis-cli") or "redis-cli",
                "--cluster",
                "reshard",
                f"127.0.0.1:{self.running()[0].port}",
                "--cluster-from",
                node_id(source),
                "--cluster-to",
                node_id(target),
                "--cluster-slots",
                str(slots),
                "--cluster-yes",
            ],
            check=True,
            capture_output=True,
            timeout=120,
        )
        self.wait_agreed()

    def move_slot(self, slot: int, target: RedisServer, finish: bool = True) -> None:
        """Move one slot and its keys to `target` as ``redis-cli --cluster reshard`` does:
        IMPORTING / MIGRATING, ``MIGRATE`` the keys, then ``SETSLOT NODE`` everywhere.
        `finish` false stops before ``SETSLOT NODE``: the slot stays migrating, its keys
        on `target`, and its owner answers ``ASK`` for them (`finish_slot_move`)."""
        import redis

        source = self.master_of_slot(slot)
        if source is target:
            return
        clients = {node.port: redis.Redis(port=node.port) for node in self.running()}
        try:
            target_id = clients[target.port].execute_command("CLUSTER MYID").decode()
            source_id = clients[source.port].execute_command("CLUSTER MYID").decode()
            clients[target.port].execute_command("CLUSTER SETSLOT", slot, "IMPORTING", source_id)
            clients[source.port].execute_command("CLUSTER SETSLOT", slot, "MIGRATING", target_id)
            while keys := clients[source.port].execute_command("CLUSTER GETKEYSINSLOT", slot, 100):
                clients[source.port].execute_command(
                    "MIGRATE", "127.0.0.1", target.port, "", 0, 5000, "KEYS", *keys
                )
        finally:
            for client in clients.values():
                client.close()
        if finish:
            self.finish_slot_move(slot, target, source)

    def finish_slot_move(
        self, slot: int, target: RedisServer, source: RedisServer | None = None
    ) -> None:
        """``SETSLOT NODE`` `target` for a slot `move_slot` left migrating (on `source`,
        which still serves it, and `target` first, then everywhere), and wait for all
        nodes to agree."""
        import redis

        source = source or self.master_of_slot(slot)
        clients = {node.port: redis.Redis(port=node.port) for node in self.running()}
        try:
            target_id = clients[target.port].execute_command("CLUSTER MYID").decode()
            for port in (target.port, source.port):
                clients[port].execute_command("CLUSTER SETSLOT", slot, "NODE", target_id)
            for port, client in clients.items():
                if port not in (target.port, source.port):
                    try:
                        client.execute_command("CLUSTER SETSLOT", slot, "NODE", target_id)
                    except redis.ResponseError:
                        pass  # a replica: it learns from its master
        finally:
            for client in clients.values():
                client.close()
        self.wait_agreed()

    def wait_agreed(self, timeout: float = 30.0) -> None:
        """Wait until ``redis-cli --cluster check`` finds every node agreeing on the slots
        and no slot open (migrating or importing)."""

        def agreed() -> bool:
            check = subprocess.run(
                [
                    shutil.which("redis-cli") or "redis-cli",
                    "--cluster",
                    "check",
                    f"127.0.0.1:{self.running()[0].port}",
                ],
                capture_output=True,
                timeout=30,
            )
            return check.returncode == 0 and b"[WARNING]" not in check.stdout

        _wait_until(agreed, timeout, "cluster nodes agreeing about the slots")

    def close(self) -> None:
        for node in self.nodes:
            node.close()

    def __enter__(self) -> RedisCluster:
        try:
            return self.start()
        except BaseException:
            self.close()
            raise

    def __exit__(self, *exc_info) -> None:
        self.close()
