"""What runs side by side for each workload (issue 20): the project, a baseline, controls.

- project: this tree's daphne, channels and asgi_redis;
- baseline (--baseline REF): the same stack running the code of an older commit, exported
  with `git archive` under benchmarks/out/baseline-<sha>/ and put first on PYTHONPATH (the
  bench app stays this tree's, so only the project's code differs);
- gunicorn-1 and gunicorn-2 (W1): the same Django view under gunicorn's sync workers, one
  (gunicorn's default) and two (the same two cores the project's three processes share);
- channels4 (W2, W3, W3-2000, W4): daphne 4.2 + Channels 4.3 + channels-redis 4.3 in
  benchmarks/.venv-channels4 serving benchmarks/control_channels4 on a private Redis.
"""

from __future__ import annotations

import functools
import io
import subprocess
import sys
import tarfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

from benchmarks.e2e import APP_DIR, OUT_DIR, REPO_ROOT, control_venv, w10, workloads
from benchmarks.e2e.compare import PROJECT, Variant
from benchmarks.e2e.procs import BenchmarkError
from benchmarks.e2e.stack import Channels4Stack, Stack, child_env

Runner = Callable[..., dict[str, Any]]

RUNNERS: dict[str, Runner] = {
    "W1": workloads.w1,
    "W2": workloads.w2,
    "W3": workloads.w3,
    "W3-2000": functools.partial(workloads.w3, members=2000),
    "W4": workloads.w4,
    "W5": workloads.w5,
    "W5-deflate": functools.partial(workloads.w5, deflate=True),
    "W5-100k": functools.partial(workloads.w5, total=100000),
    "W6": workloads.w6,
    # Issue 17: W2 with websocket.receive at-least-once (beside W2 as "alo-off"), W8, W9.
    "W2-alo": functools.partial(workloads.w2, at_least_once=True),
    # Issue 18: W1 and W2 with metrics on (beside the same with them off, "metrics-off").
    "W1-metrics": functools.partial(workloads.w1, metrics=True),
    "W2-metrics": functools.partial(workloads.w2, metrics=True),
    "W8": workloads.w8,
    "W9": workloads.w9,
    "W10": w10.w10,  # issue 19: cluster vs sharded layer, a master killed; on request
}
CHANNELS4_WORKLOADS = {"W2", "W3", "W3-2000", "W4"}
GUNICORN_WORKERS = (1, 2)  # 1: gunicorn's default; 2: the stretch control of issue 20


def baseline_tree(ref: str, out_dir: Path = OUT_DIR) -> tuple[Path, str]:
    """Export commit `ref` to benchmarks/out/baseline-<sha>/ (once); return (path, sha).

    `git archive` rather than `git worktree`: nothing is registered in the repository, and a
    second run with the same ref reuses the export.
    """
    try:
        sha = subprocess.run(
            ["git", "-C", str(REPO_ROOT), "rev-parse", "--short", f"{ref}^{{commit}}"],
            capture_output=True,
            text=True,
            check=True,
            timeout=30,
        ).stdout.strip()
    except (OSError, subprocess.SubprocessError) as error:
        raise BenchmarkError(f"--baseline {ref}: not a commit of {REPO_ROOT} ({error})") from None
    tree = out_dir / f"baseline-{sha}"
    if not (tree / "daphne").is_dir():
        archive = subprocess.run(
            ["git", "-C", str(REPO_ROOT), "archive", "--format=tar", sha],
            capture_output=True,
            check=True,
            timeout=120,
        ).stdout
        tree.mkdir(parents=True, exist_ok=True)
        with tarfile.open(fileobj=io.BytesIO(archive)) as tar:
            tar.extractall(tree, filter="data")
    _check_imports_from(tree)
    return tree, sha


def _check_imports_from(tree: Path) -> None:
    """The baseline's children must import daphne, channels and asgi_redis from `tree`."""
    probe = "import daphne, channels, asgi_redis; print(daphne.__file__, channels.__file__)"
    done = subprocess.run(
        [sys.executable, "-c", probe],
        cwd=APP_DIR,
        env=child_env(None, tree),
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    paths = done.stdout.split()
    if done.returncode != 0 or not all(p.startswith(str(tree)) for p in paths):
        raise BenchmarkError(
            f"the baseline in {tree} does not import as expected: {done.stdout}{done.stderr}"
        )


def build(
    workload: str,
    controls: bool,
    baseline: tuple[Path, str] | None,
    log: Path | None = None,
) -> list[Variant]:
    """The variants of `workload`, the project first."""
    runner = RUNNERS[workload]
    label = {
        "W2-alo": "this tree, at-least-once on websocket.receive",
        "W1-metrics": "this tree, metrics on",
        "W2-metrics": "this tree, metrics on",
    }.get(workload, "this tree")
    variants = [Variant(PROJECT, label, stack_round(runner, Stack))]
    if baseline is not None:
        tree, sha = baseline
        factory = functools.partial(Stack, code_root=tree)
        variants.append(Variant("baseline", f"baseline {sha}", stack_round(runner, factory)))
    if workload == "W2-alo":
        # Its cost, side by side (issue 17): the same W2 with at-least-once off.
        run = stack_round(workloads.w2, Stack)
        variants.append(Variant("alo-off", "this tree, at-least-once off (W2)", run))
    if workload in ("W1-metrics", "W2-metrics"):
        # Their cost, side by side (issue 18): the same workload with metrics off.
        plain = workloads.w1 if workload == "W1-metrics" else workloads.w2
        run = stack_round(plain, Stack)
        variants.append(Variant("metrics-off", f"this tree, metrics off ({workload[:2]})", run))
    if controls and workload == "W1":
        for workers in GUNICORN_WORKERS:
            label = f"gunicorn, {workers} sync worker{'s' if workers > 1 else ''}"
            run = functools.partial(workloads.w1_gunicorn, workers=workers)
            variants.append(Variant(f"gunicorn-{workers}", label, run))
    if controls and workload in CHANNELS4_WORKLOADS:
        python = control_venv.ensure(log=log)
        factory = functools.partial(Channels4Stack, python=python)
        found = control_venv.versions()
        label = (
            f"Channels {found['channels']} stack (daphne {found['daphne']}, channels-redis "
            f"{found['channels-redis']}, Django {found['Django']}, redis-py {found['redis']})"
        )
        variants.append(Variant("channels4", label, stack_round(runner, factory)))
    return variants


def stack_round(runner: Runner, factory: Callable[[Path], Stack]) -> Callable[[Path], Any]:
    """One round of `runner` on the stack `factory` makes (this tree, a baseline, Channels 4)."""
    return functools.partial(runner, stack_factory=factory)
