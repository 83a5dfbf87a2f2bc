"""py-spy recordings of daphne and the worker while a workload runs, and their summary.

`py-spy record --format raw` writes collapsed stacks ("frame;frame;... count"); `summarise`
turns them into self and inclusive sample shares per function and per file, which is what
PROFILE.md quotes.
"""

from __future__ import annotations

import shutil
import subprocess
from collections import Counter
from pathlib import Path

from benchmarks.e2e.procs import BenchmarkError
from benchmarks.e2e.stack import Stack

TOP = 30
# Samples per second. py-spy's default of 100 leaves a few hundred GIL samples per
# workload, too few for the flat profiles seen here; py-spy itself then costs more
# CPU, so profiled runs are for shares, not for rates.
RATE = 500


class Recording:
    """py-spy attached to daphne and the worker for `duration_s` seconds, in two modes.

    "wall": every thread that is not idle, including time blocked in Redis round trips (where
    each thread waits). "gil": only the thread holding the GIL (where the CPU goes).
    """

    MODES = {"wall": [], "gil": ["--gil"]}

    def __init__(self, stack: Stack, duration_s: int, out_dir: Path, label: str) -> None:
        if shutil.which("py-spy") is None:
            raise BenchmarkError("py-spy is missing (--profile): pip install -e .[bench]")
        self.outputs: dict[str, Path] = {}
        self.processes: list[subprocess.Popen] = []
        self.duration_s = duration_s
        for name, child in (("daphne", stack.daphne), ("worker", stack.worker)):
            for mode, flags in self.MODES.items():
                raw = out_dir / f"profile-{label}-{name}-{mode}.txt"
                self.outputs[f"{name}-{mode}"] = raw
                argv = ["py-spy", "record", "--nonblocking", "--rate", str(RATE), "--format", "raw"]
                argv += flags
                argv += ["--duration", str(duration_s), "--pid", str(child.pid)]
                self.processes.append(
                    subprocess.Popen(
                        [*argv, "--output", str(raw)],
                        stdout=subprocess.DEVNULL,
                        stderr=subprocess.DEVNULL,
                        start_new_session=True,
                    )
                )

    def finish(self) -> dict[str, Path]:
        """Wait (bounded) for both recordings; write a summary next to each; return them."""
        summaries = {}
        for process in self.processes:
            try:
                process.wait(self.duration_s + 30)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait(10)
        for name, raw in self.outputs.items():
            if raw.exists():
                summary = raw.with_suffix(".summary.txt")
                summary.write_text(summarise(raw.read_text()))
                summaries[name] = summary
        return summaries


def _frame_name(frame: str) -> tuple[str, str, str]:
    """'func (pkg/mod/file.py:123)' -> ('mod/file.py:func', 'mod/file.py', 'pkg').

    py-spy gives paths from the package root (``twisted/internet/base.py``) and a
    bare file name for the standard library (``threading.py``), whose "package"
    is then that file.
    """
    function, _, location = frame.partition(" (")
    path = location.rstrip(")").rsplit(":", 1)[0]
    parts = Path(path).parts
    short = "/".join(parts[-2:])
    return f"{short}:{function}", short, parts[0] if parts else path


def summarise(collapsed: str) -> str:
    self_by_function: Counter[str] = Counter()
    self_by_file: Counter[str] = Counter()
    self_by_package: Counter[str] = Counter()
    inclusive: Counter[str] = Counter()
    total = 0
    for line in collapsed.splitlines():
        stack, _, count_text = line.rpartition(" ")
        if not stack or not count_text.isdigit():
            continue
        count = int(count_text)
        total += count
        frames = [_frame_name(f) for f in stack.split(";") if "(" in f]
        if not frames:
            continue
        self_by_function[frames[-1][0]] += count
        self_by_file[frames[-1][1]] += count
        self_by_package[frames[-1][2]] += count
        for name in {f[0] for f in frames}:
            inclusive[name] += count
    if total == 0:
        return "no samples (the process was idle or py-spy could not attach)\n"

    def table(title: str, counter: Counter[str]) -> list[str]:
        rows = [f"## {title}"]
        rows += [f"{100 * n / total:6.1f}%  {name}" for name, n in counter.most_common(TOP)]
        return rows + [""]

    lines = [f"{total} samples (non-idle)", ""]
    lines += table("self time by function", self_by_function)
    lines += table("self time by package", self_by_package)
    lines += table("self time by file", self_by_file)
    lines += table("inclusive time by function", inclusive)
    return "\n".join(lines)
