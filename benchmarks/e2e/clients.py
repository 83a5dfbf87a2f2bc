"""Load clients: wrk for W1, and benchmarks/loadgen/loadgen.js (Node.js + ws) for the rest.

Every client runs with a budget: the Node script stops itself after `max_s`, and this side
kills it (and wrk) if it outlives that budget plus a margin.
"""

from __future__ import annotations

import json
import queue
import resource
import shutil
import subprocess
import threading
from typing import Any

from benchmarks.e2e import LOADGEN_DIR
from benchmarks.e2e.procs import BenchmarkError

MARGIN_S = 30.0
LOADGEN_JS = LOADGEN_DIR / "loadgen.js"
WRK_REPORT_LUA = LOADGEN_DIR / "wrk_report.lua"


def check_tools() -> None:
    """Fail early, saying how to install whatever load client is missing."""
    if shutil.which("wrk") is None:
        raise BenchmarkError("wrk is not installed (W1): apt-get install wrk")
    if shutil.which("node") is None:
        raise BenchmarkError("Node.js is not installed (W2..W6): apt-get install nodejs npm")
    if not (LOADGEN_DIR / "node_modules" / "ws").is_dir():
        raise BenchmarkError(f"the ws package is missing (W2..W6): npm ci --prefix {LOADGEN_DIR}")


def run_wrk(url: str, threads: int, connections: int, duration_s: int) -> dict[str, Any]:
    """`wrk -t<threads> -c<connections> -d<duration>s` with a JSON summary; latency in ms."""
    argv = [
        "wrk",
        f"-t{threads}",
        f"-c{connections}",
        f"-d{duration_s}s",
        "-s",
        str(WRK_REPORT_LUA),
        url,
    ]
    usage_before = resource.getrusage(resource.RUSAGE_CHILDREN)
    try:
        done = subprocess.run(
            argv, capture_output=True, text=True, timeout=duration_s + MARGIN_S, check=False
        )
    except subprocess.TimeoutExpired:
        raise BenchmarkError(f"wrk did not finish within {duration_s + MARGIN_S:.0f} s")
    for line in done.stdout.splitlines():
        if line.startswith("WRKJSON "):
            raw = json.loads(line[len("WRKJSON ") :])
            break
    else:
        raise BenchmarkError(f"wrk printed no summary:\n{done.stdout}\n{done.stderr}")
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    wrk_cpu = (usage.ru_utime - usage_before.ru_utime) + (usage.ru_stime - usage_before.ru_stime)
    seconds = raw["duration_us"] / 1e6
    errors = raw["errors"]
    return {
        "command": " ".join(argv[:4] + [url]),
        "requests": raw["requests"],
        "seconds": seconds,
        "requests_per_s": raw["requests"] / seconds,
        "latency": {k + "_ms": v / 1000 for k, v in raw["latency_us"].items()},
        # wrk counts status >= 400 as "status" errors; socket errors are counted apart.
        "non_2xx": errors["status"],
        "client_cpu_us_per_request": wrk_cpu * 1e6 / max(1, raw["requests"]),
        "socket_errors": {k: v for k, v in errors.items() if k != "status"},
    }


class NodeClient:
    """One run of loadgen.js in a mode; its progress events can be awaited line by line."""

    def __init__(self, config: dict[str, Any], keep_stdin: bool = False) -> None:
        self.config = config
        self.budget = config["max_s"] + MARGIN_S
        self.process = subprocess.Popen(
            ["node", str(LOADGEN_JS), json.dumps(config)],
            stdin=subprocess.PIPE if keep_stdin else subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            start_new_session=True,
        )
        self.lines: queue.Queue[dict[str, Any] | None] = queue.Queue()
        self.reader = threading.Thread(target=self._read, daemon=True)
        self.reader.start()

    def _read(self) -> None:
        assert self.process.stdout is not None
        for line in self.process.stdout:
            line = line.strip()
            if line:
                self.lines.put(json.loads(line))
        self.lines.put(None)

    def next_line(self, timeout: float) -> dict[str, Any]:
        """The next JSON line; BenchmarkError if the client ends or stays silent `timeout` s."""
        try:
            line = self.lines.get(timeout=timeout)
        except queue.Empty:
            self.kill()
            raise BenchmarkError(
                f"load client ({self.config['mode']}) silent for {timeout:.0f} s"
            ) from None
        if line is None:
            stderr = self.process.stderr.read() if self.process.stderr else ""
            self.kill()
            raise BenchmarkError(f"load client ({self.config['mode']}) ended early: {stderr}")
        return line

    def wait_event(self, event: str, timeout: float) -> dict[str, Any]:
        while True:
            line = self.next_line(timeout)
            if line.get("event") == event:
                return line
            if "event" not in line:
                raise BenchmarkError(f"load client ended before {event!r}: {line}")

    def result(self, measured_failure: bool = False) -> dict[str, Any]:
        """Wait (bounded by the budget) for the final line, which has no "event" key.

        A line with ``ok: false`` means the load could not be run, except with
        `measured_failure`, where failing is the outcome being measured (the W6 probe).
        """
        while True:
            line = self.next_line(self.budget)
            if "event" not in line:
                break
        self.kill()
        if not line.get("ok") and not measured_failure:
            raise BenchmarkError(f"load client ({self.config['mode']}) failed: {line}")
        return line

    def close_stdin(self) -> None:
        if self.process.stdin is not None:
            self.process.stdin.close()

    def kill(self) -> None:
        """Stop the client if it still runs, and release its pipes."""
        if self.process.poll() is None:
            self.process.kill()
        self.process.wait(MARGIN_S)
        self.reader.join(MARGIN_S)
        for pipe in (self.process.stdin, self.process.stdout, self.process.stderr):
            if pipe is not None and not pipe.closed:
                pipe.close()

    def __enter__(self) -> NodeClient:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.kill()


def run_node(config: dict[str, Any], measured_failure: bool = False) -> dict[str, Any]:
    with NodeClient(config) as client:
        return client.result(measured_failure)
