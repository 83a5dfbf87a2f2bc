"""Start example processes, wait (bounded) for them to be ready, stop them cleanly."""

from __future__ import annotations

import os
import selectors
import socket
import subprocess
import sys
import time
from collections.abc import Iterable
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
EXAMPLES = REPO / "examples"


class ProcessFailed(AssertionError):
    """An example process did not become ready; carries what it printed."""


def example_env(**overrides: str) -> dict[str, str]:
    """The current environment plus the repository on PYTHONPATH and the overrides."""
    env = dict(os.environ)
    env.pop("DJANGO_SETTINGS_MODULE", None)  # pytest's test settings are not the example's
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO), env.get("PYTHONPATH")]))
    env["PYTHONUNBUFFERED"] = "1"
    env.update(overrides)
    return env


def start(args: list[str], cwd: Path, env: dict[str, str]) -> subprocess.Popen:
    """Start ``python <args>`` with stdout and stderr merged into one text pipe."""
    return subprocess.Popen(
        [sys.executable, *args],
        cwd=cwd,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )


def wait_for_line(process: subprocess.Popen, needle: str, timeout: float) -> list[str]:
    """Read output lines until one contains ``needle``; fail after ``timeout`` seconds."""
    seen: list[str] = []
    deadline = time.monotonic() + timeout
    with selectors.DefaultSelector() as selector:
        selector.register(process.stdout, selectors.EVENT_READ)
        while (left := deadline - time.monotonic()) > 0:
            if not selector.select(left):
                break
            line = process.stdout.readline()
            if not line:  # EOF: the process ended
                break
            seen.append(line)
            if needle in line:
                return seen
    raise ProcessFailed(f"{process.args} never printed {needle!r}; output:\n{''.join(seen)}")


def wait_for_port(port: int, process: subprocess.Popen, timeout: float) -> None:
    """Wait until something accepts TCP connections on 127.0.0.1:port."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise ProcessFailed(f"{process.args} exited with {process.returncode}")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=1):
                return
        except OSError:
            # Nothing to await here: the child gives no readiness signal of its own
            # before it listens, so connecting is the event. Brief pause between tries.
            time.sleep(0.1)
    raise ProcessFailed(f"nothing listened on port {port} within {timeout} s")


def stop(processes: Iterable[subprocess.Popen], timeout: float = 15.0) -> list[int]:
    """SIGTERM each process, wait (bounded), SIGKILL stragglers; return the exit codes."""
    processes = list(processes)
    for process in processes:
        if process.poll() is None:
            process.terminate()
    codes = []
    for process in processes:
        try:
            codes.append(process.wait(timeout=timeout))
        except subprocess.TimeoutExpired:
            process.kill()
            codes.append(process.wait(timeout=timeout))
        if process.stdout:
            process.stdout.close()
    return codes
