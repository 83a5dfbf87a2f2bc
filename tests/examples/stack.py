"""Run a Django example the production way: daphne + runworker on a private Redis."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from support.redis_harness import free_port
from tests.examples import processes


@dataclass
class Stack:
    url: str
    ws_url: str
    directory: Path
    env: dict[str, str]
    daphne: processes.Output
    worker: processes.Output

    def manage(self, *args: str) -> str:
        """Run ``manage.py <args>`` of the example with the stack's settings."""
        return manage(self.directory, self.env, *args)


def manage(directory: Path, env: dict[str, str], *args: str) -> str:
    done = subprocess.run(
        [sys.executable, "manage.py", *args],
        cwd=directory,
        env=env,
        capture_output=True,
        text=True,
        timeout=180,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    return done.stdout


@contextmanager
def django_stack(directory: Path, asgi: str, settings_env: dict[str, str]) -> Iterator[Stack]:
    """Migrate, then start ``daphne <asgi>`` and ``runworker --threads 2``; stop both after.

    ``settings_env`` are the example's own environment variables, pointing at a private
    Redis and database.
    """
    env = processes.example_env(**settings_env)
    manage(directory, env, "migrate", "--verbosity", "0")
    port = free_port()
    daphne_args = [
        "-c",
        "from daphne.cli import CommandLineInterface; CommandLineInterface.entrypoint()",
        *("-b", "127.0.0.1", "-p", str(port), asgi),
    ]
    started = [
        processes.start(daphne_args, directory, env),
        processes.start(["manage.py", "runworker", "--threads", "2"], directory, env),
    ]
    (daphne, daphne_output), (_, worker_output) = started
    try:
        daphne_output.wait_for("Listening on endpoint", timeout=60)
        worker_output.wait_for("Listening on channels", timeout=60)
        processes.wait_for_port(port, daphne, timeout=30, output=daphne_output)
        yield Stack(
            f"http://127.0.0.1:{port}",
            f"ws://127.0.0.1:{port}",
            directory,
            env,
            daphne_output,
            worker_output,
        )
    finally:
        processes.stop(process for process, _ in started)
        for _, output in started:
            output.close()
