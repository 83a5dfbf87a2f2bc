"""Real processes for the core runtime tests: migrate, daphne, runworker, runserver.

Built on the shared process helpers (tests/examples/processes.py): output collected in a
thread so readiness is an awaited line, every wait bounded, every process stopped.
"""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from support.redis_harness import free_port, redis_server_path
from tests.examples import processes

REPO = processes.REPO
SETTINGS = "tests.testproject.e2e_settings"
DAPHNE = ["-c", "from daphne.cli import CommandLineInterface; CommandLineInterface.entrypoint()"]


def e2e_env(db: Path, redis_url: str | None = None, **extra: str) -> dict[str, str]:
    env = processes.example_env(DJANGO_SETTINGS_MODULE=SETTINGS, CHANNELS_E2E_DB=str(db), **extra)
    if redis_url:
        env["CHANNELS_E2E_REDIS"] = redis_url
    return env


def django_admin(
    env: dict[str, str], *args: str, timeout: float = 120
) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "django", *args],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def prepare_database(env: dict[str, str]) -> None:
    """Migrate the SQLite file and create the user the WebSocket tests log in as."""
    done = django_admin(env, "migrate", "--verbosity", "0")
    assert done.returncode == 0, done.stdout + done.stderr
    done = django_admin(
        env,
        "shell",
        "-c",
        "from django.contrib.auth.models import User; "
        "User.objects.create_user('alice', password='secret')",
    )
    assert done.returncode == 0, done.stdout + done.stderr


def database_for(tmp_path_factory, name: str, needs_redis: bool = True):
    """A migrated SQLite file for one test module (its ``database`` fixture); skips the
    module when it runs on Redis and ``redis-server`` is not installed."""
    if needs_redis and redis_server_path() is None:
        pytest.skip("redis-server is not installed")
    path = tmp_path_factory.mktemp(name) / "db.sqlite3"
    prepare_database(e2e_env(path))
    return path


@dataclass
class Proc:
    process: subprocess.Popen
    output: processes.Output

    def stop(self, timeout: float = 15) -> int:
        (code,) = processes.stop([self.process], timeout)
        self.output.close()
        return code


def start_worker(env: dict[str, str], *args: str) -> Proc:
    process, output = processes.start(["-m", "django", "runworker", *args], REPO, env)
    return Proc(process, output)


@dataclass
class Stack:
    env: dict[str, str]
    port: int
    daphne: Proc
    worker: Proc
    extra: list[Proc] = field(default_factory=list)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def ws_url(self) -> str:
        return f"ws://127.0.0.1:{self.port}"


@contextmanager
def daphne_and_worker(env: dict[str, str], *worker_args: str) -> Iterator[Stack]:
    port = free_port()
    started: list[Proc] = []
    try:
        worker = start_worker(env, *worker_args)
        started.append(worker)
        daphne_process, daphne_output = processes.start(
            [
                *DAPHNE,
                "-b",
                "127.0.0.1",
                "-p",
                str(port),
                "tests.testproject.e2e_asgi:channel_layer",
            ],
            REPO,
            env,
        )
        daphne = Proc(daphne_process, daphne_output)
        started.append(daphne)
        worker.output.wait_for("Listening on channels", timeout=60)
        processes.wait_for_port(port, daphne_process, timeout=60, output=daphne_output)
        yield Stack(env, port, daphne, worker)
    finally:
        for proc in started:
            proc.stop()
