"""daphne, two workers and a Redis Cluster on different hosts (issue 19 item 3).

Hosts are network namespaces joined by one bridge (`netns.Hosts`, made and removed
here; the module is skipped where ``ip netns add`` is not permitted). Three Redis
hosts carry two cluster nodes each (a master and another master's replica, as
``redis-cli --cluster create`` spreads them); daphne and each worker have a host of
their own; the load client (`cluster_load`) runs in the test's namespace, talking to
daphne over the bridge. A host "cut off" keeps running with its link down: packets
are dropped, nothing is refused.

Scenarios, with W2 echo and W3 broadcast load running:
- a worker host cut off: the other worker takes over; what the cut worker had taken is
  lost (at-most-once, A-24; redelivered once issue 17's at-least-once is used), counted;
- a Redis master host cut off: its replicas on the other hosts are promoted without
  manual action; no socket closed, losses counted;
- a daphne host restarted behind a second daphne: the second daphne's sockets are not
  touched, the first's are closed with 1012 and new ones work once it is back.
"""

from __future__ import annotations

import asyncio
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import redis

from asgi_redis.slots import name_slot
from support.redis_harness import _wait_until, redis_server_path
from tests.asgi_redis import netns
from tests.asgi_redis.cluster_load import LoadClient, LoadResult, run_disrupted
from tests.asgi_redis.cluster_stack import SETTINGS
from tests.channels.e2e import DAPHNE, Proc
from tests.examples import processes

pytestmark = [pytest.mark.redis, pytest.mark.slow]

PORTS = (7000, 7001)
DAPHNE_PORT = 8000
NODE_TIMEOUT_MS = 1000


@pytest.fixture(scope="module", autouse=True)
def _permitted():
    if redis_server_path() is None or shutil.which("redis-cli") is None:
        pytest.skip("redis-server / redis-cli are not installed")
    why = netns.available()
    if why is not None:
        pytest.skip(f"no network namespaces here: {why}")


class Cluster:
    """Six cluster nodes on three Redis hosts (two each), created with redis-cli."""

    def __init__(self, hosts: netns.Hosts, names: list[str], tmp_path: Path) -> None:
        self.hosts = hosts
        self.nodes: dict[tuple[str, int], subprocess.Popen] = {}
        self.names = names
        self.tmp_path = tmp_path

    def start(self) -> Cluster:
        for port in PORTS:
            for name in self.names:
                host = self.hosts[name]
                directory = self.tmp_path / f"{name}-{port}"
                directory.mkdir()
                argv = [
                    redis_server_path() or "redis-server",
                    "--port",
                    str(port),
                    "--bind",
                    host.address,
                    "--save",
                    "",
                    "--appendonly",
                    "no",
                    "--protected-mode",
                    "no",  # reached over the bridge; nothing else is on it
                    "--dir",
                    str(directory),
                    "--cluster-enabled",
                    "yes",
                    "--cluster-node-timeout",
                    str(NODE_TIMEOUT_MS),
                    "--cluster-replica-validity-factor",
                    "0",
                    # The first full sync starts at once, not after Redis 7's 5 s wait
                    # for other replicas (see `wait_synced`).
                    "--repl-diskless-sync-delay",
                    "0",
                ]
                self.nodes[(host.address, port)] = subprocess.Popen(
                    host.command(argv), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
                )
        for address, port in self.nodes:
            _wait_until(lambda a=address, p=port: self._client(a, p).ping(), 10, "redis up")
        order = [(self.hosts[n].address, p) for p in PORTS for n in self.names]
        subprocess.run(
            [
                shutil.which("redis-cli") or "redis-cli",
                "--cluster",
                "create",
                *(f"{address}:{port}" for address, port in order),
                "--cluster-replicas",
                "1",
                "--cluster-yes",
            ],
            check=True,
            capture_output=True,
            timeout=60,
        )
        self.wait_ok(list(self.nodes))
        self.wait_synced()
        return self

    def _client(self, address: str, port: int) -> redis.Redis:
        return redis.Redis(host=address, port=port, socket_timeout=2, socket_connect_timeout=2)

    @property
    def urls(self) -> str:
        return ",".join(f"redis://{address}:{port}/0" for address, port in self.nodes)

    def wait_ok(self, nodes: list[tuple[str, int]], timeout: float = 30) -> None:
        def ok() -> bool:
            for address, port in nodes:
                info = self._client(address, port).execute_command("CLUSTER INFO")  # a dict
                if info.get("cluster_state") != "ok":
                    return False
            return True

        _wait_until(ok, timeout, "cluster_state:ok on every node")

    def wait_synced(self, timeout: float = 30) -> None:
        """Until every replica's link to its master is up (its first full sync done).
        A master cut off before that is replaced by its replica all the same (validity
        factor 0), empty: the ``room`` group would be gone and every later broadcast
        counted as the layer's loss (CI saw 510 of 535 copies lost that way)."""

        def synced() -> bool:
            for address, port in self.nodes:
                info = self._client(address, port).info("replication")
                if info.get("role") == "slave" and info.get("master_link_status") != "up":
                    return False
            return True

        _wait_until(synced, timeout, "every cluster replica in sync with its master")

    def master_of(self, name: str, via: tuple[str, int]) -> tuple[str, int]:
        slot = name_slot(name)
        for start, end, master, *_ in self._client(*via).execute_command("CLUSTER SLOTS"):
            if start <= slot <= end:
                return master[0].decode(), int(master[1])
        raise LookupError(slot)

    def host_of(self, address: str) -> str:
        return next(name for name in self.names if self.hosts[name].address == address)

    def close(self) -> None:
        for process in self.nodes.values():
            if process.poll() is None:
                process.kill()
            process.wait(10)


def _start(env: dict[str, str], host: netns.Host, argv: list[str]) -> Proc:
    process, output = processes.start_command(
        host.command([sys.executable, *argv]), processes.REPO, env
    )
    return Proc(process, output)


def _daphne(env: dict[str, str], host: netns.Host) -> Proc:
    proc = _start(
        env,
        host,
        [
            *DAPHNE,
            "-b",
            "0.0.0.0",
            "-p",
            str(DAPHNE_PORT),
            "tests.testproject.e2e_asgi:channel_layer",
        ],
    )
    processes.wait_for_port(
        DAPHNE_PORT, proc.process, timeout=60, output=proc.output, host=host.address
    )
    return proc


class World:
    """The hosts, the cluster, two workers and one or two daphnes."""

    def __init__(self, tmp_path: Path, daphnes: int = 1) -> None:
        self.redis_names = ["redis1", "redis2", "redis3"]
        self.daphne_names = [f"daphne{index}" for index in range(1, daphnes + 1)]
        self.hosts = netns.Hosts([*self.redis_names, *self.daphne_names, "worker1", "worker2"])
        self.tmp_path = tmp_path
        self.procs: dict[str, Proc] = {}
        self.cluster: Cluster | None = None

    def start(self) -> World:
        self.hosts.start()
        try:
            self.cluster = Cluster(self.hosts, self.redis_names, self.tmp_path).start()
            self.env = processes.example_env(
                DJANGO_SETTINGS_MODULE=SETTINGS,
                CHANNELS_E2E_DB=str(self.tmp_path / "db.sqlite3"),
                CHANNELS_E2E_REDIS_CLUSTER=self.cluster.urls,
            )
            for name in ("worker1", "worker2"):
                self.procs[name] = _start(
                    self.env, self.hosts[name], ["-m", "django", "runworker", "--threads", "2"]
                )
            for name in ("worker1", "worker2"):
                self.procs[name].output.wait_for("Listening on channels", timeout=60)
            for name in self.daphne_names:
                self.procs[name] = _daphne(self.env, self.hosts[name])
        except BaseException:
            self.close()
            raise
        return self

    def url(self, daphne: str = "daphne1") -> str:
        return f"ws://{self.hosts[daphne].address}:{DAPHNE_PORT}"

    def output(self) -> str:
        return "".join(f"--- {name} ---\n{proc.output.text()}" for name, proc in self.procs.items())

    def close(self) -> None:
        for name, proc in list(self.procs.items()):
            try:
                proc.stop()
            except Exception as exc:  # keep stopping the others
                print(f"stopping {name}: {exc!r}", file=sys.stderr)
        self.procs = {}
        if self.cluster is not None:
            self.cluster.close()
        self.hosts.close()


@pytest.fixture
def world(tmp_path):
    built: list[World] = []

    def build(daphnes: int = 1) -> World:
        made = World(tmp_path, daphnes).start()
        built.append(made)
        return made

    yield build
    for made in built:
        made.close()


def _run(world: World, disrupt, recover_echoes: int = 600) -> LoadResult:
    """The load on the world's daphne with `disrupt(world, reply_prefix)` under it."""
    return run_disrupted(
        world.url(),
        lambda prefix: disrupt(world, prefix),
        lambda: world.output()[-20000:],
        recover_echoes=recover_echoes,
        recover_timeout=90,
    )


def test_worker_host_cut_off(world):
    """A worker's host loses its network mid-load: the other worker serves everything;
    only what the cut worker had taken is lost (A-24), and no socket is closed."""
    running = world()

    def cut(world: World, prefix: str) -> None:
        world.hosts.cut("worker1")

    result = _run(running, cut)
    assert result.sockets_closed == [], result.sockets_closed
    assert result.echo_duplicated == 0
    # The cut worker holds at most a pop per slot it waits on and the messages it was
    # handling; a handful at this load.
    assert result.echo_lost <= 20, result.summary()
    assert result.broadcast_copies_lost <= 100, result.summary()


def test_redis_master_host_cut_off(world):
    """The host of the master serving daphne's reply prefix loses its network: the
    replicas on the other hosts are promoted by the cluster, no manual action; echoes
    flow again and no socket is closed. Losses (unreplicated writes, pops in flight)
    are counted."""
    running = world()
    cluster = running.cluster
    assert cluster is not None

    def cut(world: World, prefix: str) -> None:
        survivor = (world.hosts["redis1"].address, PORTS[0])
        address, _ = cluster.master_of(prefix, survivor)
        name = cluster.host_of(address)
        world.hosts.cut(name)
        others = [node for node in cluster.nodes if node[0] != address]
        survivor = others[0]
        _wait_until(
            lambda: cluster.master_of(prefix, survivor)[0] != address,
            60,
            "a replica on another host promoted",
        )
        cluster.wait_ok(others, timeout=60)
        print(f"cut {name}; promoted and ok again")

    result = _run(running, cut)
    assert result.sockets_closed == [], result.sockets_closed
    assert result.echo_duplicated == 0
    assert result.echo_lost <= 30, result.summary()
    assert result.broadcast_copies_lost <= 150, result.summary()
    # The lost host is noticed within ~5 s (`cluster.dead_node_detection`) and nothing
    # waits on it a second time (`test_host_loss`): the stall was 10-11 s before.
    assert result.max_echo_wait < 8.5, result.summary()


def test_daphne_restarted_behind_a_second_daphne(world):
    """Two daphne hosts: the first is restarted (SIGTERM, then started again) while the
    second carries load. The second's sockets lose nothing and stay open; the first's
    sockets are closed by its stop, and it serves new sockets once back (D-17)."""
    running = world(daphnes=2)

    async def main() -> tuple[LoadResult, int]:
        staying = LoadClient(running.url("daphne2"), echo=10, room=5)
        leaving = LoadClient(running.url("daphne1"), echo=5, room=0)
        await staying.open()
        await leaving.open()
        staying.start()
        leaving.start()
        await staying.wait_echoed(100, 30)
        await asyncio.to_thread(running.procs["daphne1"].stop)
        running.procs["daphne1"] = await asyncio.to_thread(
            _daphne, running.env, running.hosts["daphne1"]
        )
        again = LoadClient(running.url("daphne1"), echo=5, room=0)
        await again.open()
        again.start()
        await again.wait_echoed(50, 30)
        await staying.wait_echoed(100, 30)
        result = await staying.stop()
        gone = len((await leaving.stop(owed_timeout=1)).sockets_closed)
        after = await again.stop()
        assert after.sockets_closed == [] and after.echo_lost == 0, after.summary()
        return result, gone

    try:
        result, gone = asyncio.run(main())
    except BaseException:
        print(running.output()[-20000:])
        raise
    print(result.summary(), "closed on the restarted daphne:", gone)
    assert result.sockets_closed == [], result.sockets_closed
    assert result.echo_lost == 0 and result.broadcast_copies_lost == 0, result.summary()
    assert gone == 5
