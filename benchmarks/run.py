#!/usr/bin/env python
"""End-to-end benchmarks of issues 9 and 20: one command, a real stack on loopback, W1..W6.

    python benchmarks/run.py                      # every workload, beside its controls
    python benchmarks/run.py --workload W2 -w W3  # some of them
    python benchmarks/run.py -w W2 --no-controls  # the project alone, one round
    python benchmarks/run.py -w W2 --baseline HEAD~3  # also an older commit, interleaved
    python benchmarks/run.py -w W1 -w W2 --profile  # also py-spy daphne and the worker

Each workload starts a private redis-server, one daphne and one runworker (1 thread), runs,
and stops everything it started (also on Ctrl-C or an error). Workloads that have controls
(W1: gunicorn with 1 and 2 sync workers; W2, W3, W3-2000, W4: the Channels 4.3 stack) run
them interleaved with the project, 3 rounds by default, and report medians and ratios. One
JSON line per workload goes to stdout and to benchmarks/results/e2e.jsonl;
benchmarks/results/e2e.md is rewritten with the latest figure of every workload against its
target. Logs of the children are kept under benchmarks/out/<run id>/.
"""

from __future__ import annotations

import argparse
import json
import os
import shlex
import shutil
import signal
import sys
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchmarks.e2e import OUT_DIR, compare, results, variants
from benchmarks.e2e.clients import check_tools
from benchmarks.e2e.procs import BenchmarkError, raise_file_limit
from benchmarks.e2e.profiling import Recording
from benchmarks.e2e.targets import judge

WORKLOADS = variants.RUNNERS
# W3-2000 and W2-alo (W2 with at-least-once on, beside W2 with it off) on request.
DEFAULT_WORKLOADS = ["W1", "W2", "W3", "W4", "W5", "W6", "W8", "W9"]
PROFILED = {"W1", "W2", "W2-alo", "W4", "W5"}  # W5: during the echo run beside the idle sockets
SIDE_BY_SIDE_ROUNDS = 3
# W5: 10,000 sockets in the client and as many in daphne; the limit is per process.
NEEDED_FILES = 10000 + 1000
NEEDED_FILES_100K = 100000 + 1000  # W5-100k (issue 20)


def parse_args(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "-w",
        "--workload",
        action="append",
        choices=sorted(WORKLOADS),
        help="workload to run (repeatable); default: W1..W6, W8, W9, in order",
    )
    parser.add_argument(
        "--controls",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="run the controls beside the project (default: on): gunicorn for W1, the "
        "Channels 4.3 stack for W2, W3, W3-2000, W4 (its venv is built on first use)",
    )
    parser.add_argument(
        "--baseline",
        metavar="GIT_REF",
        help="also run the project's code at GIT_REF (exported under benchmarks/out/), "
        "interleaved with this tree, and report this tree ÷ baseline",
    )
    parser.add_argument(
        "--rounds",
        type=int,
        help=f"interleaved rounds per variant (default: {SIDE_BY_SIDE_ROUNDS} when anything "
        "runs beside the project, else 1)",
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


def profiled_round(name: str, log_dir: Path) -> tuple[dict[str, Any], list[str]]:
    """One run of the project with py-spy on daphne and the worker; (result, profile paths)."""
    recordings: list[Recording] = []

    def profiler(stack, duration_s: int) -> Recording:
        recording = Recording(stack, duration_s, log_dir, name)
        recordings.append(recording)
        return recording

    result = WORKLOADS[name](log_dir, profiler=profiler)
    paths = [str(path) for recording in recordings for path in recording.finish().values()]
    return result, paths


def run_one(
    name: str, run_dir: Path, args: argparse.Namespace, baseline: tuple[Path, str] | None
) -> dict[str, Any]:
    log_dir = run_dir / name
    log_dir.mkdir()
    profile = args.profile and name in PROFILED
    sides = variants.build(name, args.controls, baseline, log=log_dir / "control-venv.log")
    rounds = args.rounds or (SIDE_BY_SIDE_ROUNDS if len(sides) > 1 else 1)
    if len(sides) == 1 and rounds == 1:  # the project alone, as in issue 9
        if profile:
            result, paths = profiled_round(name, log_dir)
            return {**result, "profiles": paths}
        return WORKLOADS[name](log_dir)

    def announce(text: str) -> None:
        print(f"{name} {text}", file=sys.stderr, flush=True)

    per_round, order = compare.run_interleaved(sides, rounds, log_dir, announce)
    labels = {side.name: side.label for side in sides}
    result = compare.side_by_side(name, per_round, order, labels)
    if profile:
        # An extra project round, outside the medians: py-spy slows what it watches.
        profile_dir = log_dir / "profiled"
        profile_dir.mkdir()
        announce("profiled extra round of this tree (not in the medians)")
        result["profiles"] = profiled_round(name, profile_dir)[1]
    return result


def main(argv: list[str]) -> int:
    args = parse_args(argv)
    signal.signal(signal.SIGTERM, _terminate)
    # Explicitly, since a shell starting us in the background leaves SIGINT ignored.
    signal.signal(signal.SIGINT, signal.default_int_handler)
    check_tools()
    if args.rounds is not None and args.rounds < 1:
        raise BenchmarkError("--rounds must be at least 1")
    if args.profile and shutil.which("py-spy") is None:  # before any round, not after them
        raise BenchmarkError("py-spy is missing (--profile): pip install -e .[bench]")
    held = args.workload is None or any(name.startswith("W5") for name in args.workload)
    needed = NEEDED_FILES_100K if "W5-100k" in (args.workload or []) else NEEDED_FILES
    files = raise_file_limit(2 * needed)
    if files < needed and held:
        raise BenchmarkError(
            f"W5 needs about {needed} open files; the limit is {files}: "
            f"run `ulimit -Hn {2 * needed}` as root first"
        )
    run_id = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    run_dir = OUT_DIR / run_id
    run_dir.mkdir(parents=True, exist_ok=True)
    command = shlex.join(["python", "benchmarks/run.py", *argv])
    machine = results.machine()
    baseline = variants.baseline_tree(args.baseline) if args.baseline else None
    if baseline is not None:
        machine["baseline"] = baseline[1]
    failed = 0
    for name in args.workload or DEFAULT_WORKLOADS:
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
            result = run_one(name, run_dir, args, baseline)
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
