"""daphne + runworker as real processes on a Redis Cluster (issue 19 item 1).

`ClusterStack` starts a `support.redis_harness.RedisCluster` (3 masters, 3 replicas),
one ``manage.py runworker`` and one daphne on `RedisClusterChannelLayer`, with the
consumers of `cluster_e2e_routing`; every wait bounded, everything stopped at the end.
"""

from __future__ import annotations

import sys
from dataclasses import dataclass, field
from pathlib import Path

from asgi_redis.slots import name_slot
from support.redis_harness import RedisCluster, RedisServer, free_port
from tests.channels.e2e import DAPHNE, Proc, start_worker
from tests.examples import processes

__all__ = ["ClusterStack", "cluster_env"]

SETTINGS = "tests.asgi_redis.cluster_e2e_settings"


def cluster_env(db: Path, cluster: RedisCluster, **extra: str) -> dict[str, str]:
    urls = ",".join(f"redis://{host}:{port}/0" for host, port in cluster.startup_nodes)
    return processes.example_env(
        DJANGO_SETTINGS_MODULE=SETTINGS,
        CHANNELS_E2E_DB=str(db),
        CHANNELS_E2E_REDIS_CLUSTER=urls,
        **extra,
    )


def start_daphne(env: dict[str, str], port: int, *options: str) -> Proc:
    process, output = processes.start(
        [
            *DAPHNE,
            "-b",
            "127.0.0.1",
            "-p",
            str(port),
            *options,
            "tests.testproject.e2e_asgi:channel_layer",
        ],
        processes.REPO,
        env,
    )
    proc = Proc(process, output)
    processes.wait_for_port(port, process, timeout=60, output=output)
    return proc


@dataclass
class ClusterStack:
    """A cluster, a worker and daphne; `daphne_options` e.g. ``["--force-sync"]``."""

    tmp_path: Path
    daphne_options: list[str] = field(default_factory=list)
    worker_threads: int = 2

    def __post_init__(self) -> None:
        self.cluster = RedisCluster()
        self.port = free_port()
        self.started: list[Proc] = []

    def start(self) -> ClusterStack:
        try:
            # Inside: nodes started before one that fails are stopped by close().
            self.cluster.start()
            self.env = cluster_env(self.tmp_path / "db.sqlite3", self.cluster)
            self.worker = start_worker(self.env, "--threads", str(self.worker_threads))
            self.started.append(self.worker)
            self.worker.output.wait_for("Listening on channels", timeout=60)
            self.daphne = start_daphne(self.env, self.port, *self.daphne_options)
            self.started.append(self.daphne)
        except BaseException:
            self.close()
            raise
        return self

    @property
    def ws_base(self) -> str:
        return f"ws://127.0.0.1:{self.port}"

    def master_of(self, name: str) -> RedisServer:
        """The node serving the slot of channel `name` now."""
        return self.cluster.master_of_slot(name_slot(name))

    def group_members(self, group: str) -> list[str]:
        """The members of `group` now (A-43), read through a layer of this process."""
        from asgi_redis import RedisClusterChannelLayer

        layer = RedisClusterChannelLayer(hosts=self.cluster.startup_nodes)
        try:
            return sorted(layer.group_channels(group))
        finally:
            layer.close()

    def output(self) -> str:
        return (
            "--- daphne ---\n"
            + self.daphne.output.text()
            + "--- worker ---\n"
            + self.worker.output.text()
        )

    def close(self) -> None:
        for proc in reversed(self.started):
            try:
                proc.stop()
            except Exception as exc:  # keep stopping the others
                print(f"stopping {proc.process.args}: {exc!r}", file=sys.stderr)
        self.started = []
        self.cluster.close()

    def __enter__(self) -> ClusterStack:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.close()
