"""The Channels 4.3 control's own venv (issue 20), built on first use.

`benchmarks/.venv-channels4` gets the pinned versions of
`benchmarks/control_channels4/requirements.txt` from PyPI with the ordinary `pip`. It is
separate from the project's environment on purpose: the control needs Channels 4 and
daphne 4, the project *is* Channels 1.x and daphne 1.x, and neither may see the other.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from benchmarks.e2e import BENCH_DIR
from benchmarks.e2e.procs import BenchmarkError

CONTROL_DIR = BENCH_DIR / "control_channels4"
REQUIREMENTS = CONTROL_DIR / "requirements.txt"
VENV_DIR = BENCH_DIR / ".venv-channels4"
BUILD_TIMEOUT = 600.0
# What the venv must hold, checked after a build and before every use.
CHECK = (
    "import channels, daphne, channels_redis, django; "
    "assert channels.__version__.startswith('4.3'), channels.__version__; "
    "assert daphne.__version__.startswith('4.2'), daphne.__version__; "
    "assert django.__version__.startswith('5.2'), django.__version__; "
    "import redis; assert int(redis.__version__.split('.')[0]) < 8, redis.__version__"
)


# Recorded with every run that uses the control: the pins leave patch levels and the
# dependencies (redis-py, Twisted, msgpack) free, so a reader must see what ran.
VERSIONS = (
    "import json, importlib.metadata as m; print(json.dumps({name: m.version(name) for name in "
    "('channels', 'daphne', 'channels-redis', 'Django', 'redis', 'Twisted', 'msgpack')}))"
)


def venv_python(venv: Path = VENV_DIR) -> Path:
    return venv / "bin" / "python"


def ready(venv: Path = VENV_DIR) -> bool:
    """Whether the venv exists and holds the pinned versions (tests use it only then)."""
    python = venv_python(venv)
    if not python.exists():
        return False
    done = subprocess.run(
        [str(python), "-c", CHECK],
        capture_output=True,
        timeout=60,
        check=False,
        cwd=CONTROL_DIR,
        env={"PATH": "/usr/bin:/bin"},  # no PYTHONPATH: the project must not shadow them
    )
    return done.returncode == 0


def ensure(venv: Path = VENV_DIR, log: Path | None = None) -> Path:
    """Build the venv if it is missing or incomplete; return its python. BenchmarkError if not."""
    if ready(venv):
        return venv_python(venv)
    print(f"building the Channels 4.3 control venv in {venv} (once)", file=sys.stderr)
    steps = [
        [sys.executable, "-m", "venv", str(venv)],
        [str(venv_python(venv)), "-m", "pip", "install", "--quiet", "-r", str(REQUIREMENTS)],
    ]
    for argv in steps:
        try:
            done = subprocess.run(
                argv, capture_output=True, text=True, timeout=BUILD_TIMEOUT, check=False
            )
        except (OSError, subprocess.TimeoutExpired) as error:
            raise BenchmarkError(_failed(venv, argv, str(error))) from None
        if log is not None:
            with open(log, "a") as handle:
                handle.write(f"$ {' '.join(argv)}\n{done.stdout}{done.stderr}\n")
        if done.returncode != 0:
            raise BenchmarkError(_failed(venv, argv, (done.stderr or done.stdout)[-2000:]))
    if not ready(venv):
        raise BenchmarkError(_failed(venv, ["import check"], CHECK))
    return venv_python(venv)


def _failed(venv: Path, argv: list[str], detail: str) -> str:
    return (
        f"the Channels 4.3 control venv ({venv}) could not be built: `{' '.join(argv)}` "
        f"failed:\n{detail}\nIt needs PyPI (pip install -r {REQUIREMENTS}); run with "
        "--no-controls to measure the project alone."
    )


def versions(venv: Path = VENV_DIR) -> dict[str, str]:
    """The versions of the control's packages in the venv (for the run's record)."""
    done = subprocess.run(
        [str(venv_python(venv)), "-c", VERSIONS],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
        # Not this checkout's directory: `python -c` puts the working directory first on
        # sys.path, where channels.egg-info would report this project's version.
        cwd=CONTROL_DIR,
        env={"PATH": "/usr/bin:/bin"},
    )
    if done.returncode != 0:
        raise BenchmarkError(f"cannot read the control venv's versions: {done.stderr}")
    return json.loads(done.stdout)
