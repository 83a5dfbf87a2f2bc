"""End-to-end benchmark harness (issues 9, 20): a real stack on loopback, its load clients,
and the controls it is measured against side by side.

`benchmarks/run.py` is the command; this package holds its parts:

- `procs`: starting, watching and stopping child processes; file limits; RSS.
- `stack`: the private redis-server + daphne + runworker stack (this tree or a baseline
  commit), the gunicorn control (W1) and the Channels 4.3 control stack (W2..W4).
- `control_venv`: the Channels 4.3 control's own venv, built on first use.
- `variants`: what runs side by side for each workload; the --baseline export.
- `compare`: interleaved rounds, medians and project ÷ variant ratios.
- `clients`: wrk and the Node.js load clients in `benchmarks/loadgen/`.
- `workloads`: W1..W6 as functions returning one result dict each.
- `targets`: the issue's targets and how each result is judged against them.
- `results`: machine description, the raw JSON lines and the Markdown results file.
- `profiling`: py-spy recordings of daphne and the worker under load, summarised.
"""

from pathlib import Path

BENCH_DIR = Path(__file__).resolve().parent.parent
REPO_ROOT = BENCH_DIR.parent
APP_DIR = BENCH_DIR / "app"
LOADGEN_DIR = BENCH_DIR / "loadgen"
RESULTS_DIR = BENCH_DIR / "results"
OUT_DIR = BENCH_DIR / "out"
