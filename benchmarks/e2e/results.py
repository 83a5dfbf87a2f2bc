"""Machine description, raw JSON lines (results/e2e.jsonl) and results/e2e.md.

e2e.jsonl is append-only history; e2e.md is rewritten after every run from the latest
record of each workload, so a run of one workload does not erase the others' figures.
"""

from __future__ import annotations

import json
import os
import platform
import subprocess
from pathlib import Path
from typing import Any

from benchmarks.e2e import REPO_ROOT, RESULTS_DIR
from benchmarks.e2e.compare import COMPARED, CPU_KEYS, PROJECT, SHOWN

JSONL = RESULTS_DIR / "e2e.jsonl"
MARKDOWN = RESULTS_DIR / "e2e.md"
WORKLOADS = [
    "W1",
    "W2",
    "W2-alo",
    "W3",
    "W3-2000",
    "W4",
    "W5",
    "W5-deflate",
    "W5-100k",
    "W6",
    "W8",
    "W9",
]


def _first_line(argv: list[str], any_status: bool = False) -> str:
    """First line a version-style command prints, or "unknown" when it fails."""
    try:
        done = subprocess.run(argv, capture_output=True, text=True, timeout=10, check=False)
    except (OSError, subprocess.TimeoutExpired):
        return "unknown"
    output = (done.stdout or done.stderr).strip()
    if (done.returncode != 0 and not any_status) or not output:
        return "unknown"
    return output.splitlines()[0]


def machine() -> dict[str, Any]:
    cpu = "unknown"
    with open("/proc/cpuinfo") as info:
        for line in info:
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    import django
    import twisted

    return {
        "nproc": os.cpu_count(),
        "cpu": cpu,
        "kernel": platform.release(),
        "python": platform.python_version(),
        "redis": _first_line(["redis-server", "--version"]),
        "node": _first_line(["node", "--version"]),
        "wrk": _first_line(["wrk", "-v"], any_status=True),  # wrk -v exits with status 1
        "django": django.__version__,
        "twisted": twisted.__version__,
        # BENCH_COMMIT names the commit when the tree is an export (git archive), not a clone.
        "commit": os.environ.get("BENCH_COMMIT")
        or _first_line(["git", "-C", str(REPO_ROOT), "rev-parse", "--short", "HEAD"]),
    }


def append(record: dict[str, Any]) -> None:
    RESULTS_DIR.mkdir(parents=True, exist_ok=True)
    with open(JSONL, "a") as handle:
        handle.write(json.dumps(record, sort_keys=True) + "\n")


def latest_records(path: Path = JSONL) -> dict[str, dict[str, Any]]:
    latest: dict[str, dict[str, Any]] = {}
    if path.exists():
        for line in path.read_text().splitlines():
            if line.strip():
                record = json.loads(line)
                latest[record["workload"]] = record
    return latest


HISTORY_FIGURES = {
    "W1": ("requests_per_s", "req/s"),
    "W2": ("messages_per_s", "msg/s"),
    "W3": ("fanout_p99_ms", "p99 ms"),
    "W3-2000": ("fanout_p99_ms", "p99 ms"),
    "W4": ("connections_per_s", "conn/s"),
    "W5": ("echo_beside_ratio", "beside/alone"),
    "W5-deflate": ("per_socket_kb", "KB/socket"),
    "W5-100k": ("per_socket_kb", "KB/socket"),
    "W6": ("first_echo_after_restart_s", "first echo s"),
    "W2-alo": ("messages_per_s", "msg/s"),
    "W8": ("lost", "lost"),
    "W9": ("lost", "lost"),
}


def all_records(path: Path = JSONL) -> list[dict[str, Any]]:
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def render_history(records: list[dict[str, Any]]) -> list[str]:
    """One row per run: the headline figure of each workload, to show trend and noise."""
    runs: dict[str, dict[str, Any]] = {}
    for record in records:
        run = runs.setdefault(record["run_id"], {"commit": record["machine"]["commit"]})
        if record.get("error"):
            run[record["workload"]] = "error"
            continue
        key, _ = HISTORY_FIGURES.get(record["workload"], ("-", ""))
        run[record["workload"]] = _shown(record["result"].get(key))
        first_control = next(iter(record["result"].get("vs", {}).values()), None)
        if first_control and first_control.get(key) is not None:  # ratio to the first control
            run[record["workload"]] += f" ({_shown(first_control[key])}×)"
        run.setdefault("load", record.get("loadavg_before", ["?"])[0])
    header = " | ".join(f"{w} {unit}" for w, (_, unit) in HISTORY_FIGURES.items())
    lines = [
        "## History",
        "",
        "The headline figure of each workload in every recorded run (load average before the",
        "run's first workload beside it), oldest first; in brackets, this tree ÷ the first",
        "control or baseline of a side-by-side run.",
        "",
        f"| run | commit | load | {header} |",
        "|---|---|---|" + "---|" * len(HISTORY_FIGURES),
    ]
    for run_id, run in runs.items():
        cells = " | ".join(str(run.get(w, "")) for w in HISTORY_FIGURES)
        lines.append(f"| {run_id} | {run['commit']} | {run.get('load', '')} | {cells} |")
    return lines + [""]


def _shown(value: Any) -> str:
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, float):
        return f"{value:,.3f}" if abs(value) < 10 else f"{value:,.0f}"
    if isinstance(value, int):
        return f"{value:,}"
    return "—" if value is None else str(value)


def render(latest: dict[str, dict[str, Any]]) -> str:
    lines = [
        "# End-to-end benchmark results (issue 9)",
        "",
        "Written by `python benchmarks/run.py`; see benchmarks/README.md for what each workload",
        "does. Each table row is the latest run of that workload; raw records (every figure)",
        "are in `e2e.jsonl` beside this file. Profile notes: benchmarks/PROFILE.md.",
        "",
        "| workload | figure | value | target | met |",
        "|---|---|---|---|---|",
    ]
    runs: dict[str, list[str]] = {}
    for workload in WORKLOADS:
        record = latest.get(workload)
        if record is None:
            lines.append(f"| {workload} | not run yet | | | |")
            continue
        runs.setdefault(record["run_id"], []).append(workload)
        if record.get("error"):
            lines.append(f"| {workload} | **failed to run**: {record['error'][:200]} | | | no |")
            continue
        for check in record["checks"]:
            met = "yes" if check["met"] else "**no**"
            lines.append(
                f"| {workload} | {check['figure']} | {_shown(check['value'])} | "
                f"{check['target']} | {met} |"
            )
    lines += ["", "## Runs", ""]
    for run_id, workloads in runs.items():
        record = latest[workloads[0]]
        m = record["machine"]
        lines += [
            f"- **{run_id}** ({', '.join(workloads)}): `{record['command']}` at {record['date']}",
            f"  on {m['nproc']} × {m['cpu']}, kernel {m['kernel']}, Python {m['python']},",
            f"  {m['redis']}, Node {m['node']}, {m['wrk']}, Django {m['django']},",
            f"  Twisted {m['twisted']}, commit {m['commit']}; load average before each",
            "  workload: "
            + ", ".join(f"{w} {latest[w].get('loadavg_before', '?')}" for w in workloads)
            + ".",
        ]
    lines += ["", "## Other figures of the latest runs", ""]
    for workload in WORKLOADS:
        record = latest.get(workload)
        if record is None or record.get("error"):
            continue
        extra = {k: v for k, v in record["result"].items() if not isinstance(v, dict | list)}
        shown = ", ".join(f"{k} = {_shown(v)}" for k, v in extra.items() if k != "workload")
        lines.append(f"- {workload}: {shown}")
    lines += render_side_by_side(latest)
    lines += ["", "## CPU and Redis commands per message (W1, W2, W3, W4)", ""]
    lines += [
        "CPU microseconds per request (W1), echo (W2), delivery (W3) or connection (W4) in",
        "each process,",
        "and Redis commands per message (Lua-internal calls included). These move less than",
        "rates with the machine's load (±30% seen), so they show progress between runs better.",
        "",
    ]
    for workload, cpu_key, commands_key in (
        ("W1", "cpu_per_request", "redis_commands_per_request"),
        ("W2", "cpu_per_message", "redis_commands_per_message"),
        ("W2-alo", "cpu_per_message", "redis_commands_per_message"),
        ("W3", "cpu_per_delivery", "-"),
        ("W3-2000", "cpu_per_delivery", "-"),
        ("W4", "cpu_per_connection", "-"),
    ):
        record = latest.get(workload)
        if record is None or record.get("error") or cpu_key not in record["result"]:
            continue
        cpu = record["result"][cpu_key]
        commands = record["result"].get(commands_key, {})
        cpu_text = ", ".join(f"{name.removesuffix('_us')} {us:,.0f} µs" for name, us in cpu.items())
        redis_text = ", ".join(f"{name} {n:g}" for name, n in commands.items() if n >= 0.01)
        lines.append(f"- {workload}: {cpu_text}" + (f"; Redis: {redis_text}" if commands else ""))
    lines.append("")
    return "\n".join(lines)


def _cpu_text(cpu: dict[str, float]) -> str:
    parts = [f"{k.removesuffix('_us')} {v:,.0f}" for k, v in cpu.items() if k != "total_us"]
    total = f" (total {cpu['total_us']:,.0f})" if "total_us" in cpu else ""
    return ", ".join(parts) + total


def render_side_by_side(latest: dict[str, dict[str, Any]]) -> list[str]:
    """Issue 20: each variant's medians, CPU per message per process, and project ÷ variant."""
    lines = [
        "",
        "## Side by side (issue 20)",
        "",
        "The project against its controls and baselines in the same run: medians over the",
        "interleaved rounds (failure counts summed, delivered fraction the worst round), CPU",
        "µs per message in each process (medians), and this tree ÷ each variant (above 1 is",
        "better for rates, below 1 for latencies and CPU; per-round ratios of the headline",
        "figure in brackets).",
    ]
    for workload in WORKLOADS:
        record = latest.get(workload)
        if record is None or record.get("error") or "controls" not in record["result"]:
            continue
        result = record["result"]
        figures = [key for key, _ in COMPARED.get(workload, [])]
        columns = figures + SHOWN.get(workload, [])
        cpu_key = CPU_KEYS.get(workload)
        lines += [
            "",
            f"### {workload} — run {record['run_id']}, {result['rounds']} round(s), "
            f"load average before {record.get('loadavg_before', '?')}",
            "",
            "Order: " + " ".join(result.get("order", [])) + ".",
            "",
            "| variant | " + " | ".join(columns) + " | rounds | CPU µs/msg | this tree ÷ it |",
            "|---|" + "---|" * (len(columns) + 3),
        ]
        rows = {PROJECT: result, **result["controls"]}
        for name, figures_of in rows.items():
            per_round = result.get("per_round", {}).get(name, [])
            headline = figures[0] if figures else None
            rounds_text = " / ".join(_shown(r.get(headline)) for r in per_round)
            cpu = figures_of.get(cpu_key, {}) if cpu_key else {}
            vs = result.get("vs", {}).get(name)
            vs_text = ""
            if vs:
                parts = [f"{k} {_shown(vs.get(k))}" for k in figures if vs.get(k) is not None]
                if vs.get("cpu_total_us") is not None:
                    parts.append(f"CPU {_shown(vs['cpu_total_us'])}")
                per = vs.get(f"per_round_{headline}", [])
                vs_text = "; ".join(parts) + (f" ({' / '.join(map(_shown, per))})" if per else "")
            label = result.get("labels", {}).get(name, name)
            cells = " | ".join(_shown(figures_of.get(k)) for k in columns)
            lines.append(
                f"| {label} | {cells} | {rounds_text} | {_cpu_text(cpu) if cpu else ''} "
                f"| {vs_text} |"
            )
    return lines


def write_markdown() -> Path:
    history = "\n".join(render_history(all_records()))
    MARKDOWN.write_text(render(latest_records()) + "\n" + history)
    return MARKDOWN
