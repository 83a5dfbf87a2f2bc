"""Checks of the side-by-side logic of issue 20: interleaving order, medians, ratios,
targets judged on ratios, rendering, the variants each workload gets, the baseline export.

Pure arithmetic on made-up results, except `test_baseline_tree_imports_from_the_export`
(git archive of HEAD into a temporary directory); no stack is started here.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from benchmarks.e2e import REPO_ROOT, compare, control_venv, results, targets, variants
from benchmarks.e2e.compare import PROJECT, Variant


def echo_round(rate: float, p99: float, daphne_us: float, stalls: int = 0) -> dict:
    return {
        "workload": "W2",
        "messages_per_s": rate,
        "rtt_p99_ms": p99,
        "rtt_p50_ms": p99 / 2,
        "stalls": stalls,
        "cpu_per_message": {"daphne_us": daphne_us, "total_us": daphne_us * 2},
        "echo": {"timeline": [[0, 1]]},
    }


def test_schedule_alternates_direction_every_round():
    assert compare.schedule(["project", "channels4"], 3) == [
        (1, "project"),
        (1, "channels4"),
        (2, "channels4"),
        (2, "project"),
        (3, "project"),
        (3, "channels4"),
    ]
    order = compare.schedule(["project", "baseline", "gunicorn-1"], 2)
    assert [name for _, name in order] == [
        "project",
        "baseline",
        "gunicorn-1",
        "gunicorn-1",
        "baseline",
        "project",
    ]
    assert compare.schedule(["project"], 1) == [(1, "project")]


def test_combine_takes_medians_sums_failures_and_keeps_the_worst_delivery():
    combined = compare.combine(
        [
            {"workload": "W3", "fanout_p99_ms": 30.0, "delivered_ratio": 1.0, "delivered": 40},
            {"workload": "W3", "fanout_p99_ms": 10.0, "delivered_ratio": 0.5, "delivered": 20},
            {"workload": "W3", "fanout_p99_ms": 20.0, "delivered_ratio": 1.0, "delivered": 40},
        ]
    )
    assert combined == {
        "workload": "W3",
        "fanout_p99_ms": 20.0,
        "delivered_ratio": 0.5,
        "delivered": 100,
    }


def test_combine_nested_dicts_and_raw_output():
    rounds = [
        {
            "cpu_per_message": {"daphne_us": 100.0, "worker_us": 50.0},
            "failures": {"timeout": 1},
            "paced_300": {"p50_ms": 1.0, "non_2xx": 1},
            "echo": {"rtt": 1},
            "timeline": [1, 2],
            "ok": True,
        },
        {
            "cpu_per_message": {"daphne_us": 300.0, "worker_us": 70.0},
            "failures": {"timeout": 2, "http 500": 1},
            "paced_300": {"p50_ms": 3.0, "non_2xx": 0},
            "echo": {"rtt": 2},
            "timeline": [3],
            "ok": False,
        },
    ]
    combined = compare.combine(rounds)
    assert combined["cpu_per_message"] == {"daphne_us": 200.0, "worker_us": 60.0}
    assert combined["failures"] == {"timeout": 3, "http 500": 1}  # counts summed, key by key
    assert combined["paced_300"] == {"p50_ms": 2.0, "non_2xx": 1}
    assert "echo" not in combined and "timeline" not in combined
    assert combined["ok"] is False
    with pytest.raises(ValueError):
        compare.combine([])


def test_ratios_of_medians_and_per_round():
    per_round = {
        PROJECT: [echo_round(3000, 20, 150), echo_round(3300, 30, 160), echo_round(3600, 25, 170)],
        "channels4": [
            echo_round(4000, 40, 250),
            echo_round(3000, 50, 240),
            echo_round(4400, 45, 260),
        ],
    }
    vs = compare.ratios("W2", per_round)["channels4"]
    assert vs["messages_per_s"] == pytest.approx(3300 / 4000)
    assert vs["rtt_p99_ms"] == pytest.approx(25 / 45)
    assert vs["cpu_total_us"] == pytest.approx(320 / 500)
    assert vs["per_round_messages_per_s"] == pytest.approx([0.75, 1.1, 3600 / 4400])
    assert compare.ratio(1.0, 0) is None and compare.ratio(None, 2.0) is None


def side_by_side_w2() -> dict:
    per_round = {
        PROJECT: [echo_round(3000, 20, 150, stalls=1), echo_round(3300, 30, 160)],
        "channels4": [echo_round(2000, 40, 250), echo_round(2200, 50, 240)],
    }
    order = compare.schedule([PROJECT, "channels4"], 2)
    labels = {PROJECT: "this tree", "channels4": "Channels 4.3 stack"}
    return compare.side_by_side("W2", per_round, order, labels)


def test_side_by_side_result_is_judged_on_the_project_medians_and_ratios():
    result = side_by_side_w2()
    assert result["messages_per_s"] == 3150  # the project's median at the top level
    assert result["stalls"] == 1
    assert result["rounds"] == 2
    assert result["order"] == ["project#1", "channels4#1", "channels4#2", "project#2"]
    assert result["controls"]["channels4"]["messages_per_s"] == 2100
    checks = {c["figure"]: c for c in targets.judge(result)}
    assert checks["issue 20: × Channels 4.3"]["value"] == pytest.approx(1.5)
    assert checks["issue 20: × Channels 4.3"]["met"]
    assert checks["issue 20 stretch: × Channels 4.3"]["met"]
    assert not checks["messages/s"]["met"]


def test_targets_against_controls_are_skipped_without_them():
    figures = [c["figure"] for c in targets.judge(echo_round(7000, 10, 100))]
    assert figures == ["messages/s", "RTT p99 (ms)"]
    w1 = {"workload": "W1", "requests_per_s": 4000.0, "vs": {"gunicorn-1": {"p99_ms": 1.2}}}
    checks = {c["figure"]: c for c in targets.judge(w1)}
    assert checks["issue 20: p99 ÷ gunicorn's p99 (1 worker)"]["met"] is False
    assert "issue 20 stretch: × gunicorn, 2 sync workers" not in checks


def record_of(result: dict) -> dict:
    return {
        "workload": result["workload"],
        "run_id": "r9",
        "command": "python benchmarks/run.py -w W2",
        "date": "2026-01-01T00:00:00+00:00",
        "machine": {
            "nproc": 2,
            "cpu": "cpu",
            "kernel": "k",
            "python": "3",
            "redis": "r",
            "node": "n",
            "wrk": "w",
            "django": "d",
            "twisted": "t",
            "commit": "abc1234",
        },
        "loadavg_before": [0.5, 0.5, 0.5],
        "result": result,
        "checks": targets.judge(result),
    }


def test_rendering_shows_each_variant_with_cpu_and_ratios():
    text = results.render({"W2": record_of(side_by_side_w2())})
    assert "## Side by side (issue 20)" in text
    assert "Order: project#1 channels4#1 channels4#2 project#2." in text
    rows = [line for line in text.splitlines() if line.startswith("| this tree |")]
    assert rows and "3,150" in rows[0] and "3,000 / 3,300" in rows[0]
    assert "daphne 155 (total 310)" in rows[0]
    control = next(line for line in text.splitlines() if line.startswith("| Channels 4.3"))
    assert "messages_per_s 1.500" in control and "(1.500 / 1.500)" in control
    history = results.render_history([record_of(side_by_side_w2())])
    assert any("3,150 (1.500×)" in line for line in history)


def test_run_interleaved_runs_each_variant_in_order(tmp_path: Path):
    ran = []

    def runner(name: str, rate: float):
        def run(log_dir: Path) -> dict:
            ran.append((name, log_dir.name))
            return echo_round(rate, 10, 100)

        return run

    sides = [Variant(PROJECT, "this tree", runner(PROJECT, 2)), Variant("b", "B", runner("b", 1))]
    per_round, order = compare.run_interleaved(sides, 2, tmp_path, lambda text: None)
    assert ran == [
        ("project", "project-r1"),
        ("b", "b-r1"),
        ("b", "b-r2"),
        ("project", "project-r2"),
    ]
    assert [len(per_round[name]) for name in (PROJECT, "b")] == [2, 2]
    assert order == compare.schedule([PROJECT, "b"], 2)
    assert (tmp_path / "b-r2").is_dir()


def test_variants_per_workload():
    def names(workload: str, controls: bool = True) -> list[str]:
        return [v.name for v in variants.build(workload, controls, None)]

    assert names("W1") == ["project", "gunicorn-1", "gunicorn-2"]
    assert names("W1", controls=False) == ["project"]
    assert names("W5") == ["project"]
    assert names("W6") == ["project"]
    with_baseline = variants.build("W6", False, (Path("/nowhere"), "abc1234"))
    assert [(v.name, v.label) for v in with_baseline] == [
        ("project", "this tree"),
        ("baseline", "baseline abc1234"),
    ]


def test_baseline_tree_imports_from_the_export(tmp_path: Path):
    tree, sha = variants.baseline_tree("HEAD", out_dir=tmp_path)
    assert tree == tmp_path / f"baseline-{sha}"
    assert (tree / "daphne" / "__init__.py").exists()
    assert variants.baseline_tree("HEAD", out_dir=tmp_path) == (tree, sha)  # reused
    with pytest.raises(variants.BenchmarkError):
        variants.baseline_tree("no-such-ref-anywhere", out_dir=tmp_path)
    assert tree != REPO_ROOT


def test_control_venv_that_cannot_be_built_says_what_to_do(tmp_path: Path):
    blocker = tmp_path / "a-file"
    blocker.write_text("not a directory")
    assert not control_venv.ready(blocker / "venv")
    with pytest.raises(variants.BenchmarkError) as raised:
        control_venv.ensure(blocker / "venv", log=tmp_path / "build.log")
    message = str(raised.value)
    assert "could not be built" in message and "--no-controls" in message
    assert "requirements.txt" in message
