"""Side-by-side runs (issue 20): the project against controls and baselines, interleaved.

A workload runs as several *variants* — the project (this tree), an older commit of it
(--baseline), and the controls that have the same workload (gunicorn for W1, the Channels 4.3
stack for W2..W4) — in `rounds` rounds. Every round runs each variant once; the order flips
every round (A B C, C B A, A B C, ...) so that neither side always runs first on a machine
whose load drifts. The figures of each variant are the medians over its rounds, and the
ratios are project ÷ variant of those medians (with the per-round ratios beside them, each
pairing the project with the variant in the same round).

This module is the arithmetic only; run.py builds the variants and runs them.
"""

from __future__ import annotations

import statistics
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

PROJECT = "project"

# Raw client output and other per-round detail: kept in the rounds, not combined.
RAW_KEYS = frozenset(
    {"wrk", "echo", "broadcast", "storm", "probe", "profiles", "rss_mb", "numbered", "restarts"}
)
# Counts of things that went wrong: summed over the rounds, so that none hides in a median.
SUMMED_KEYS = frozenset(
    {
        "non_2xx",
        "errors",
        "socket_errors",
        "failed",
        "failures",
        "stalls",
        "closed",
        "closed_while_held",
        "handshake_errors",
        "delivered",
        "expected",
        "lost",
        "unsent",
        "duplicates",
    }
)
# Fractions that must be whole: the worst round counts.
MIN_KEYS = frozenset({"delivered_ratio"})

# Per workload: the figures compared side by side, and whether higher is better.
COMPARED: dict[str, list[tuple[str, bool]]] = {
    "W1": [("requests_per_s", True), ("p99_ms", False), ("p50_ms", False)],
    "W2": [("messages_per_s", True), ("rtt_p99_ms", False), ("rtt_p50_ms", False)],
    "W2-alo": [("messages_per_s", True), ("rtt_p99_ms", False), ("rtt_p50_ms", False)],
    "W1-metrics": [("requests_per_s", True), ("p99_ms", False), ("p50_ms", False)],
    "W2-metrics": [("messages_per_s", True), ("rtt_p99_ms", False), ("rtt_p50_ms", False)],
    "W3": [("delivered_ratio", True), ("fanout_p99_ms", False), ("fanout_p50_ms", False)],
    "W3-2000": [("delivered_ratio", True), ("fanout_p99_ms", False), ("fanout_p50_ms", False)],
    "W4": [("connections_per_s", True), ("failed", False)],
    "W5": [("connected", True), ("per_socket_kb", False), ("echo_beside_ratio", True)],
    "W5-100k": [("connected", True), ("per_socket_kb", False), ("echo_beside_ratio", True)],
    "W5-deflate": [
        ("connected", True),
        ("negotiated_deflate", True),
        ("per_socket_kb", False),
        ("echo_beside_ratio", True),
    ],
    "W6": [("first_echo_after_restart_s", False), ("half_rate_after_restart_s", False)],
}
# Shown beside them without a ratio (counts where a ratio to 0 means nothing).
SHOWN: dict[str, list[str]] = {
    "W1": ["non_2xx"],
    "W2": ["stalls", "closed"],
    "W2-alo": ["stalls", "closed"],
    "W1-metrics": ["non_2xx"],
    "W2-metrics": ["stalls", "closed"],
    "W3": ["closed"],
    "W3-2000": ["closed"],
    "W6": ["closed"],
}
# Where each workload keeps its CPU per message (per process, µs, with "total_us").
CPU_KEYS = {
    "W1": "cpu_per_request",
    "W2": "cpu_per_message",
    "W2-alo": "cpu_per_message",
    "W1-metrics": "cpu_per_request",
    "W2-metrics": "cpu_per_message",
    "W3": "cpu_per_delivery",
    "W3-2000": "cpu_per_delivery",
    "W4": "cpu_per_connection",
}


@dataclass(frozen=True)
class Variant:
    """One side of the comparison: a name, how it reads in e2e.md, and one round of it."""

    name: str
    label: str
    run: Callable[[Path], dict[str, Any]]


def schedule(names: list[str], rounds: int) -> list[tuple[int, str]]:
    """(round, variant) in running order: forward in odd rounds, reversed in even ones."""
    order = []
    for round_number in range(1, rounds + 1):
        names_now = names if round_number % 2 == 1 else list(reversed(names))
        order += [(round_number, name) for name in names_now]
    return order


def _number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _combine_values(key: str, values: list[Any]) -> Any:
    present = [v for v in values if v is not None]
    if not present:
        return None
    if all(isinstance(v, dict) for v in present):
        keys = list(dict.fromkeys(k for v in present for k in v))
        combined = {
            k: _combine_values(k if key not in SUMMED_KEYS else key, [v.get(k) for v in present])
            for k in keys
        }
        return {k: v for k, v in combined.items() if v is not None}
    if all(_number(v) for v in present):
        if key in SUMMED_KEYS:
            return sum(present)
        if key in MIN_KEYS:
            return min(present)
        return statistics.median(present)
    if all(isinstance(v, bool) for v in present):
        return all(present)
    if all(isinstance(v, str) for v in present) and len(set(present)) == 1:
        return present[0]
    return None  # lists and disagreeing strings stay in the rounds only


def combine(results: list[dict[str, Any]]) -> dict[str, Any]:
    """One result from several rounds of the same variant.

    Numbers: the median (counts of failures summed, the delivered fraction the worst);
    dictionaries key by key (a count missing from a round counts as absent there);
    raw client output and lists are left out (they stay in each round's record).
    """
    if not results:
        raise ValueError("no rounds to combine")
    keys = [k for k in dict.fromkeys(k for r in results for k in r) if k not in RAW_KEYS]
    combined = {k: _combine_values(k, [r.get(k) for r in results]) for k in keys}
    return {k: v for k, v in combined.items() if v is not None}


def ratio(project: Any, other: Any) -> float | None:
    """project ÷ other, or None when either is missing or the divisor is 0."""
    if not (_number(project) and _number(other)) or other == 0:
        return None
    return project / other


def ratios(workload: str, per_round: dict[str, list[dict[str, Any]]]) -> dict[str, Any]:
    """For each variant but the project: project ÷ variant of the medians, and per round.

    Above 1 is better for rates, below 1 for latencies and CPU (see COMPARED).
    """
    medians = {name: combine(results) for name, results in per_round.items()}
    project = medians[PROJECT]
    figures = [key for key, _ in COMPARED.get(workload, [])]
    cpu_key = CPU_KEYS.get(workload)
    out: dict[str, Any] = {}
    for name, median in medians.items():
        if name == PROJECT:
            continue
        entry: dict[str, Any] = {key: ratio(project.get(key), median.get(key)) for key in figures}
        if cpu_key:
            entry["cpu_total_us"] = ratio(
                project.get(cpu_key, {}).get("total_us"), median.get(cpu_key, {}).get("total_us")
            )
        if figures:
            headline = figures[0]
            pairs = zip(per_round[PROJECT], per_round[name], strict=False)
            entry[f"per_round_{headline}"] = [
                ratio(mine.get(headline), theirs.get(headline)) for mine, theirs in pairs
            ]
        out[name] = entry
    return out


def side_by_side(
    workload: str,
    per_round: dict[str, list[dict[str, Any]]],
    order: list[tuple[int, str]],
    labels: dict[str, str],
) -> dict[str, Any]:
    """The workload's result: the project's medians at the top level (what targets judge),
    the other variants' medians under "controls", ratios under "vs", every round kept."""
    project = combine(per_round[PROJECT])
    return {
        **project,
        "workload": workload,
        "rounds": len(per_round[PROJECT]),
        "order": [f"{name}#{round_number}" for round_number, name in order],
        "labels": labels,
        "controls": {
            name: combine(results) for name, results in per_round.items() if name != PROJECT
        },
        "vs": ratios(workload, per_round),
        "per_round": per_round,
    }


def run_interleaved(
    variants: list[Variant], rounds: int, log_dir: Path, announce: Callable[[str], None]
) -> tuple[dict[str, list[dict[str, Any]]], list[tuple[int, str]]]:
    """Run every variant `rounds` times in `schedule` order; logs in <variant>-r<round>/."""
    by_name = {variant.name: variant for variant in variants}
    order = schedule([variant.name for variant in variants], rounds)
    per_round: dict[str, list[dict[str, Any]]] = {variant.name: [] for variant in variants}
    for round_number, name in order:
        round_dir = log_dir / f"{name}-r{round_number}"
        round_dir.mkdir(parents=True, exist_ok=True)
        announce(f"round {round_number}/{rounds}: {by_name[name].label}")
        per_round[name].append(by_name[name].run(round_dir))
    return per_round, order
