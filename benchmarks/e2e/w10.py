"""W10 (issue 19 item 4): W2 echo and W3 broadcast on RedisClusterChannelLayer (3 masters,
3 replicas) vs the sharded RedisChannelLayer over 3 plain Redis; then a master killed
mid-run.

Each layer gets its own fresh stack (daphne + one runworker, as W2/W3): W2 (100
closed-loop echo clients, 10 s) and W3 (200 members, 200 messages at 10/s) through the
node load client, then a kill run: paced echo (10 sockets x 20/s) and broadcast (5
members, 10/s) from an asyncio client (`tests.asgi_redis.cluster_load`) while a master
is SIGKILLed. Cluster: the master serving ``websocket.receive``, its replica promoted by
the cluster (no manual action). Sharded: the first of the three Redis, restarted at once
(empty) as a supervisor would; that layer has no replica to fail over to. Figures:
seconds to recover (the longest an echo waited), messages lost (echoes and broadcast
copies never delivered, waited for 30 s), sockets closed.
"""

from __future__ import annotations

import asyncio
import sys
import time
from pathlib import Path
from typing import Any

from benchmarks.e2e import APP_DIR, REPO_ROOT
from benchmarks.e2e.procs import BenchmarkError, Child, cpu_seconds, port_open, wait_until
from benchmarks.e2e.stack import DAPHNE_ARGV, START_TIMEOUT, Stack, child_env
from benchmarks.e2e.workloads import w2, w3
from support.redis_harness import RedisCluster, RedisServer, free_port, redis_server_path

__all__ = ["w10"]

KILL_RUN_S = 12  # load before + after the kill
KILL_AT_S = 3


class MultiRedisStack(Stack):
    """daphne + runworker on a Redis Cluster (`cluster=True`) or on 3 plain Redis shards."""

    def __init__(self, log_dir: Path, cluster: bool) -> None:
        if redis_server_path() is None:
            raise BenchmarkError("redis-server is not installed: apt-get install redis-server")
        self.log_dir = log_dir
        self.code_root = REPO_ROOT
        self.cluster = RedisCluster() if cluster else None
        self.shards = [] if cluster else [RedisServer() for _ in range(3)]
        self.port = free_port()

    def start(self) -> Stack:
        if self.cluster is not None:
            self.cluster.start()
            urls = [f"redis://{host}:{port}/0" for host, port in self.cluster.startup_nodes]
        else:
            for shard in self.shards:
                shard.start()
            urls = [shard.url for shard in self.shards]
        env = child_env(urls[0], self.code_root)
        env["BENCH_REDIS_HOSTS"] = ",".join(urls)
        if self.cluster is not None:
            env["BENCH_REDIS_CLUSTER"] = "1"
        argv = [*DAPHNE_ARGV, "-b", "127.0.0.1", "-p", str(self.port)]
        argv.append("benchapp.asgi:channel_layer")
        self.daphne = Child("daphne", argv, self.log_dir, cwd=APP_DIR, env=env)
        self.worker = Child(
            "worker", [sys.executable, "manage.py", "runworker"], self.log_dir, cwd=APP_DIR, env=env
        )
        self.daphne.start()
        self.worker.start()
        try:
            wait_until(lambda: port_open(self.port), START_TIMEOUT, "daphne listening")
            wait_until(self._hello_served, START_TIMEOUT, "GET /hello/ answered through the worker")
        except BenchmarkError as error:
            raise BenchmarkError(
                f"{error}\n--- daphne log ---\n{self.daphne.log_tail()}"
                f"\n--- worker log ---\n{self.worker.log_tail()}"
            ) from None
        return self

    def redis_processes(self) -> list[Any]:
        servers = self.cluster.nodes if self.cluster is not None else self.shards
        return [server.process for server in servers if server.process is not None]

    def cpu(self) -> dict[str, float]:
        return {
            "daphne": cpu_seconds(self.daphne.pid),
            "worker": cpu_seconds(self.worker.pid),
            "redis": sum(cpu_seconds(process.pid) for process in self.redis_processes()),
        }

    def redis_commands(self) -> dict[str, int]:
        return {}  # summed over nodes it would mix masters and replicas; not reported

    def kill_a_master(self) -> RedisServer:
        """Kill the Redis serving ``websocket.receive`` (see the module doc)."""
        if self.cluster is not None:
            from asgi_redis.slots import name_slot

            master = self.cluster.master_of_slot(name_slot("websocket.receive"))
            master.kill()
            return master
        shard = self.shards[0]
        shard.kill()
        shard.start()
        return shard

    def stop(self) -> None:
        try:
            self.daphne.stop()
            self.worker.stop()
        finally:
            if self.cluster is not None:
                self.cluster.close()
            for shard in self.shards:
                shard.close()


def _kill_run(stack: MultiRedisStack) -> dict[str, Any]:
    sys.path.insert(0, str(REPO_ROOT))
    from tests.asgi_redis.cluster_load import LoadClient

    async def main() -> tuple[Any, float]:
        load = LoadClient(stack.ws_url, paths=("/echo/", "/broadcast/"), hello=False)
        await load.open()
        load.start()
        await asyncio.sleep(KILL_AT_S)  # the run's schedule, not a synchronisation
        killed_at = time.monotonic()
        await asyncio.to_thread(stack.kill_a_master)
        await asyncio.sleep(KILL_RUN_S - KILL_AT_S)
        result = await load.stop(owed_timeout=30)
        return result, killed_at - load._started

    result, killed_at = asyncio.run(main())
    after = [stall for stall in result.stalls if stall[1] >= killed_at - 1]
    return {
        "recover_s": round(max((stall[2] for stall in after), default=0.0), 2),
        "echo_sent": result.echo_sent,
        "echo_lost": result.echo_lost,
        "broadcast_copies_lost": result.broadcast_copies_lost,
        "broadcast_copies_expected": result.broadcast_copies_expected,
        "duplicated": result.echo_duplicated + result.broadcast_copies_duplicated,
        "closed": len(result.sockets_closed),
        "max_echo_wait_s": round(result.max_echo_wait, 2),
    }


def w10(log_dir: Path) -> dict[str, Any]:
    figures: dict[str, Any] = {"workload": "W10"}
    for name, cluster in (("cluster", True), ("sharded", False)):
        side = log_dir / name
        side.mkdir()
        echo = w2(side / "w2", stack_factory=lambda d, c=cluster: _made(d, c))
        broadcast = w3(side / "w3", stack_factory=lambda d, c=cluster: _made(d, c))
        kill_dir = side / "kill"
        kill_dir.mkdir()
        with MultiRedisStack(kill_dir, cluster) as stack:
            killed = _kill_run(stack)
            stack.check_alive()
        figures[name] = {
            "w2_messages_per_s": echo["messages_per_s"],
            "w2_rtt_p99_ms": echo["rtt_p99_ms"],
            "w2_closed": echo["closed"],
            "w3_delivered_ratio": broadcast["delivered_ratio"],
            "w3_fanout_p99_ms": broadcast["fanout_p99_ms"],
            "w3_closed": broadcast["closed"],
            "kill": killed,
        }
    return figures


def _made(log_dir: Path, cluster: bool) -> MultiRedisStack:
    log_dir.mkdir(parents=True, exist_ok=True)
    return MultiRedisStack(log_dir, cluster)
