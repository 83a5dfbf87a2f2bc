"""Run `tests.daphne.app` (daphne + worker stand-in) as a subprocess and watch its output."""

from __future__ import annotations

import os
import queue
import signal
import subprocess
import sys
import threading
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


class DaphneProcess:
    """``python -m tests.daphne.app <args>``; output lines are collected by threads."""

    def __init__(self, *args: str, preexec_fn=None) -> None:
        self.args = [*args, "tests.daphne.app:channel_layer"]
        # Run in the child before daphne starts (e.g. resource.setrlimit, issue 15).
        self.preexec_fn = preexec_fn
        self.lines: queue.Queue[tuple[str, str]] = queue.Queue()
        self.output: list[str] = []
        self.proc: subprocess.Popen | None = None
        self.port: int | None = None

    def start(self, timeout: float = 30) -> DaphneProcess:
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "tests.daphne.app", *self.args],
            cwd=ROOT,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env={**os.environ, "PYTHONUNBUFFERED": "1"},
            preexec_fn=self.preexec_fn,
        )
        for name, stream in (("out", self.proc.stdout), ("err", self.proc.stderr)):
            threading.Thread(target=self._pump, args=(name, stream), daemon=True).start()
        line = self.wait_for("READY", timeout)
        self.port = int(line.split()[1])
        return self

    def _pump(self, name: str, stream) -> None:
        for line in stream:
            self.output.append(line)
            self.lines.put((name, line))
        self.lines.put((name, ""))

    def wait_for(self, text: str, timeout: float = 10) -> str:
        """Return the first new output line containing `text` (bounded by `timeout`)."""
        while True:
            try:
                _, line = self.lines.get(timeout=timeout)
            except queue.Empty:
                raise AssertionError(
                    f"no line with {text!r} within {timeout} s; output:\n{''.join(self.output)}"
                )
            if text in line:
                return line

    def signal(self, signum: int = signal.SIGTERM) -> None:
        self.proc.send_signal(signum)

    def wait(self, timeout: float = 20) -> int:
        return self.proc.wait(timeout=timeout)

    def close(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(timeout=10)
        if self.proc is not None:
            self.proc.stdout.close()
            self.proc.stderr.close()

    def __enter__(self) -> DaphneProcess:
        return self.start()

    def __exit__(self, *exc) -> None:
        self.close()
