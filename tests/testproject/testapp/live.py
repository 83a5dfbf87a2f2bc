"""Run the test project for real: migrate, daphne, runworker, rundelay as subprocesses.

Each `LiveProject` has its own SQLite file and talks to a private redis-server from
`support.redis_harness`; processes are started with the shared helpers of
`tests.examples.processes` and always stopped (bounded) by `close()`.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from support.redis_harness import RedisServer, free_port
from tests.examples import processes
from tests.examples.processes import Output

SETTINGS = "tests.testproject.testapp.live_settings"


class LiveProject:
    def __init__(self, redis: RedisServer, directory: Path) -> None:
        self.env = processes.example_env(
            DJANGO_SETTINGS_MODULE=SETTINGS,
            CHANNELS_TEST_REDIS=redis.url,
            CHANNELS_TEST_DB=str(directory / "live.sqlite3"),
        )
        self.started: list[tuple[subprocess.Popen, Output]] = []
        self.port: int | None = None

    def migrate(self) -> None:
        result = subprocess.run(
            [sys.executable, "-m", "django", "migrate", "--noinput", "-v", "0"],
            cwd=processes.REPO,
            env=self.env,
            capture_output=True,
            text=True,
            timeout=120,
        )
        if result.returncode:
            raise processes.ProcessFailed(f"migrate failed:\n{result.stdout}{result.stderr}")

    def manage(self, *args: str) -> tuple[subprocess.Popen, Output]:
        """Start ``django-admin <args>`` with the live settings."""
        return self._start(["-m", "django", *args])

    def start_daphne(self) -> tuple[subprocess.Popen, Output]:
        """Start daphne on a free port (kept for restarts) and wait until it listens."""
        if self.port is None:
            self.port = free_port()
        # The `daphne` console script's entry point, run with this interpreter.
        entrypoint = "from daphne.cli import CommandLineInterface as C; C.entrypoint()"
        args = ["-c", entrypoint, "-b", "127.0.0.1", "-p", str(self.port)]
        process, output = self._start([*args, "tests.testproject.testapp.live_asgi:channel_layer"])
        processes.wait_for_port(self.port, process, timeout=30)
        return process, output

    def start_worker(self) -> tuple[subprocess.Popen, Output]:
        process, output = self.manage("runworker")
        output.wait_for("Listening on channels", timeout=30)
        return process, output

    def _start(self, args: list[str]) -> tuple[subprocess.Popen, Output]:
        started = processes.start(args, processes.REPO, self.env)
        self.started.append(started)
        return started

    def stop(self, process: subprocess.Popen) -> int:
        [code] = processes.stop([process])
        for started, output in self.started:
            if started is process:
                output.close()
        return code

    def close(self) -> None:
        processes.stop([process for process, _ in self.started])
        for _, output in self.started:
            output.close()
        self.started.clear()

    def output(self) -> str:
        return "\n".join(f"--- {p.args}\n{o.text()}" for p, o in self.started)
