"""Start example processes, wait (bounded) for them to be ready, stop them cleanly."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import threading
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
    # Scripts that call ``python3`` (scripts/example) get the interpreter running the tests.
    env["PATH"] = os.pathsep.join([str(Path(sys.executable).parent), env.get("PATH", "")])
    env.update(overrides)
    return env


class Output:
    """Collects a process's output lines in a thread, so waiting for one is an event.

    Reading continuously also keeps the pipe from filling up and stalling the child.
    """

    def __init__(self, process: subprocess.Popen) -> None:
        self.process = process
        self.lines: list[str] = []
        self._changed = threading.Condition()
        self._ended = False
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        for line in self.process.stdout:
            with self._changed:
                self.lines.append(line)
                self._changed.notify_all()
        with self._changed:
            self._ended = True
            self._changed.notify_all()

    def text(self) -> str:
        with self._changed:
            return "".join(self.lines)

    def wait_for(self, needle: str, timeout: float) -> str:
        """Return the first line containing ``needle``; fail after ``timeout`` seconds."""
        deadline = time.monotonic() + timeout
        with self._changed:
            while True:
                for line in self.lines:
                    if needle in line:
                        return line
                left = deadline - time.monotonic()
                if self._ended or left <= 0:
                    break
                self._changed.wait(left)
        raise ProcessFailed(f"{self.process.args} never printed {needle!r}; output:\n{self.text()}")

    def close(self, timeout: float = 15.0) -> None:
        """After the process ended: finish reading and close the pipe."""
        self._reader.join(timeout)
        self.process.stdout.close()


def start(args: list[str], cwd: Path, env: dict[str, str]) -> tuple[subprocess.Popen, Output]:
    """Start ``python <args>`` with stdout and stderr merged and collected."""
    return start_command([sys.executable, *args], cwd, env)


def start_command(
    argv: list[str], cwd: Path, env: dict[str, str]
) -> tuple[subprocess.Popen, Output]:
    """Start ``argv`` with stdout and stderr merged and collected."""
    process = subprocess.Popen(
        argv,
        cwd=cwd,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    return process, Output(process)


def wait_for_port(
    port: int,
    process: subprocess.Popen,
    timeout: float,
    output: Output | None = None,
    host: str = "127.0.0.1",
) -> None:
    """Wait until something accepts TCP connections on host:port."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            printed = f"; output:\n{output.text()}" if output else ""
            raise ProcessFailed(f"{process.args} exited with {process.returncode}{printed}")
        try:
            with socket.create_connection((host, port), timeout=1):
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
    return codes
