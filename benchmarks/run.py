#!/usr/bin/env python
"""End-to-end benchmarks of issue 9: one command, a real stack on loopback, W1..W6.

    python benchmarks/run.py                      # every workload (about 6 minutes)
    python benchmarks/run.py --workload W2 -w W3  # some of them
    python benchmarks/run.py -w W1 -w W2 --profile  # also py-spy daphne and the worker

Each workload starts a private redis-server, one daphne and one runworker (1 thread), runs,
and stops everything it started (also on Ctrl-C or an error). One JSON line per workload goes
to stdout and to benchmarks/results/e2e.jsonl; benchmarks/results/e2e.md is rewritten with the
latest figure of every workload against its target. Logs of the children are kept under
benchmarks/out/<run id>/.
"""

from __future__ import annotations

import argparse
import json
import os
import shlex
import signal
import sys
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchmarks.e2e import OUT_DIR, results, workloads
from benchmarks.e2e.clients import check_tools
from benchmarks.e2e.procs import BenchmarkError, raise_file_limit
from benchmarks.e2e.profiling import Recording
from benchmarks.e2e.targets import judge

WORKLOADS = {
    "W1": workloads.w1,
    "W2": workloads.w2,
    "W3": workloads.w3,
    "W4": workloads.w4,
    "W5": workloads.w5,
    "W6": workloads.w6,
}
PROFILED = {"W1", "W2", "W4", "W5"}  # W5: during the echo run beside the idle sockets
# W5: 10,000 sockets in the client and as many in daphne; the limit is per process.
NEEDED_FILES = 10000 + 1000


def parse_args(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "-w",
        "--workload",
        action="append",
        choices=sorted(WORKLOADS),
        help="workload to run (repeatable); default: all, in order",
    )
    parser.add_argument(
        "--profile",
        action="store_true",
        help="record daphne and the worker with py-spy during W1, W2, W4 and W5 (slows them)",
    )
    parser.add_argument(
        "--no-record",
        action="store_true",
        help="print the JSON lines only; leave benchmarks/results/ untouched",
    )
    return parser.parse_args(argv)


def _terminate(signum: int, frame: object) -> None:
    # SIGTERM takes the same path as Ctrl-C: every `with Stack(...)` stops its children.
    raise KeyboardInterrupt


def run_one(name: str, run_dir: Path, profile: bool) -> dict[str, Any]:
    function = WORKLOADS[name]
    log_dir = run_dir / name
    log_dir.mkdir()
    if profile and name in PROFILED:
        recordings: list[Recording] = []

        def profiler(stack, duration_s: int) -> Recording:
            recording = Recording(stack, duration_s, log_dir, name)
            recordings.append(recording)
            return recording

        result = function(log_dir, profiler=profiler)
        result["profiles"] = [
            str(path) for recording in recordings for path in recording.finish().values()
        ]
        return result
    return function(log_dir)


def main(argv: list[str]) -> int:
    args = parse_args(argv)
    signal.signal(signal.SIGTERM, _terminate)
    # Explicitly, since a shell starting us in the background leaves SIGINT ignored.
    signal.signal(signal.SIGINT, signal.default_int_handler)
    check_tools()
    files = raise_file_limit(2 * NEEDED_FILES)
    if files < NEEDED_FILES and (args.workload is None or "W5" in args.workload):
        raise BenchmarkError(
            f"W5 needs about {NEEDED_FILES} open files; the limit is {files}: "
            f"run `ulimit -Hn {NEEDED_FILES}` as root first"
        )
    run_id = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    run_dir = OUT_DIR / run_id
    run_dir.mkdir(parents=True, exist_ok=True)
    command = shlex.join(["python", "benchmarks/run.py", *argv])
    machine = results.machine()
    failed = 0
    for name in args.workload or list(WORKLOADS):
        started = time.monotonic()
        record: dict[str, Any] = {
            "workload": name,
            "run_id": run_id,
            "command": command,
            "date": datetime.now(UTC).isoformat(timespec="seconds"),
            "machine": machine,
            # The 2 cores may be shared: a high load average before a run explains low figures.
            "loadavg_before": [round(x, 2) for x in os.getloadavg()],
        }
        try:
            result = run_one(name, run_dir, args.profile)
        except BenchmarkError as error:
            failed += 1
            record["error"] = str(error)
            print(f"{name} could not run: {error}", file=sys.stderr)
        else:
            record["result"] = result
            record["checks"] = judge(result)
            record["all_met"] = all(check["met"] for check in record["checks"])
        record["seconds"] = round(time.monotonic() - started, 1)
        print(json.dumps(record, sort_keys=True), flush=True)
        if not args.no_record:
            results.append(record)
            results.write_markdown()
    if not args.no_record:
        print(f"results: {results.MARKDOWN}; child logs: {run_dir}", file=sys.stderr)
    return 1 if failed else 0


if __name__ == "__main__":
    try:
        sys.exit(main(sys.argv[1:]))
    except BenchmarkError as error:
        print(f"run.py: error: {error}", file=sys.stderr)
        sys.exit(2)
    except KeyboardInterrupt:
        print("run.py: interrupted; everything it started has been stopped", file=sys.stderr)
        sys.exit(130)
