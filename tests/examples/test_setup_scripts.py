"""The README's set-up commands on a system Python that refuses pip installs (issue 14, point 5).

Debian and Ubuntu mark their Python as externally managed (PEP 668): ``pip install`` into
it fails. ``scripts/example`` and ``scripts/test`` therefore install the project into a
virtualenv (``.venv``, or ``CHANNELS_VENV``) made from that Python, reuse it while
``setup.py`` and ``pyproject.toml`` are unchanged (a stamp file), and say clearly what to
install when the Python has no ``venv``/``ensurepip`` (Debian's ``python3.X-venv``).

The install test is real (pip fetches the dependencies), so it is bounded and slow.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

from support.redis_harness import free_port
from tests.examples import processes

pytestmark = pytest.mark.slow

SCRIPT = processes.REPO / "scripts" / "example"
READY = "Quit the server with CONTROL-C."
INSTALLING = "installing the project"
PEP668_CANDIDATES = ["/usr/bin/python3", "/usr/local/bin/python3"]


def externally_managed_python() -> str | None:
    """A Python 3.11+ on this machine whose pip refuses a global install (PEP 668)."""
    for candidate in PEP668_CANDIDATES:
        if not os.access(candidate, os.X_OK):
            continue
        probe = subprocess.run(
            [
                candidate,
                "-c",
                "import sys, sysconfig, os; sys.exit(sys.version_info < (3, 11) or not "
                "os.path.exists(os.path.join(sysconfig.get_path('stdlib'), 'EXTERNALLY-MANAGED')))",
            ],
            capture_output=True,
            timeout=30,
        )
        if probe.returncode != 0:
            continue
        # The marker alone is not the point: pip itself must refuse.
        refused = subprocess.run(
            [candidate, "-m", "pip", "install", "--dry-run", "--no-index", "pip"],
            capture_output=True,
            text=True,
            timeout=60,
        )
        if refused.returncode != 0 and "externally-managed-environment" in refused.stderr:
            return candidate
    return None


def system_env(python: str, tmp_path: Path, **overrides: str) -> dict[str, str]:
    """A plain user's environment: the system Python first on PATH, nothing of the tests'."""
    env = {
        "HOME": os.environ.get("HOME", str(tmp_path)),
        "PATH": os.pathsep.join([str(Path(python).parent), "/usr/local/bin", "/usr/bin", "/bin"]),
        "LANG": "C.UTF-8",
        "PYTHONUNBUFFERED": "1",
        "PYTHON": python,
        "CHAT_DATABASE": str(tmp_path / "db.sqlite3"),
        "CHANNELS_VENV": str(tmp_path / "venv"),
    }
    for name in ("PIP_CONFIG_FILE", "PIP_INDEX_URL", "PIP_EXTRA_INDEX_URL", "PIP_FIND_LINKS"):
        if name in os.environ:
            env[name] = os.environ[name]
    env.update(overrides)
    return env


@pytest.fixture(scope="module")
def pep668_python() -> str:
    python = externally_managed_python()
    if python is None:
        pytest.skip(f"no externally managed (PEP 668) Python 3.11+ among {PEP668_CANDIDATES}")
    return python


def run_example_until_ready(env: dict[str, str], timeout: float) -> str:
    """Start scripts/example, wait for runserver, fetch the login page, stop; return output."""
    port = free_port()
    process, output = processes.start_command(
        [str(SCRIPT), f"127.0.0.1:{port}", "--noreload"], processes.REPO, env
    )
    try:
        output.wait_for(READY, timeout=timeout)
        processes.wait_for_port(port, process, timeout=30, output=output)
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/login/", timeout=30) as page:
            assert page.status == 200
            assert "channels-demo" in page.read().decode()
    finally:
        processes.stop([process])
        output.close()
    return output.text()


@pytest.fixture(scope="module")
def installed(pep668_python: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple]:
    """scripts/example run once for real: venv made, project installed, runserver up."""
    tmp_path = tmp_path_factory.mktemp("pep668")
    env = system_env(pep668_python, tmp_path)
    first = run_example_until_ready(env, timeout=600)
    yield env, tmp_path, first
    shutil.rmtree(tmp_path / "venv", ignore_errors=True)


def test_example_installs_into_a_venv_and_starts_runserver(installed, pep668_python) -> None:
    env, tmp_path, output = installed
    venv = tmp_path / "venv"
    assert f"creating the project virtualenv {venv}" in output
    assert INSTALLING in output
    assert "externally-managed-environment" not in output
    assert (venv / ".channels-install-stamp").is_file()
    found = subprocess.run(
        [str(venv / "bin" / "python"), "-c", "import channels, daphne; print(channels.__file__)"],
        capture_output=True,
        text=True,
        timeout=60,
        env={"PATH": env["PATH"]},
        cwd=tmp_path,
    )
    assert found.returncode == 0, found.stderr
    assert found.stdout.startswith(str(processes.REPO)), found.stdout  # editable install
    # Nothing went into the system Python.
    system = subprocess.run(
        [pep668_python, "-c", "import channels"],
        capture_output=True,
        env={"PATH": env["PATH"]},
        cwd=tmp_path,
        timeout=60,
    )
    assert system.returncode != 0


def test_second_run_reuses_the_venv_without_pip(installed) -> None:
    env, _, _ = installed
    output = run_example_until_ready(env, timeout=180)
    assert "creating the project virtualenv" not in output
    assert INSTALLING not in output


def test_changed_packaging_files_reinstall(installed) -> None:
    """A stamp that no longer matches setup.py + pyproject.toml makes pip run again."""
    env, tmp_path, _ = installed
    stamp = tmp_path / "venv" / ".channels-install-stamp"
    key, *extras = stamp.read_text().split()
    stamp.write_text(f"{'0' * len(key)} {' '.join(extras)}\n")
    output = run_example_until_ready(env, timeout=600)
    assert "creating the project virtualenv" not in output
    assert INSTALLING in output
    assert stamp.read_text().split()[0] == key


def test_docs_command_adds_the_docs_extra_and_builds_with_w(installed) -> None:
    """scripts/docs (README's Documentation section) reuses the venv, adds the docs extra
    and builds docs/_build/html with warnings as errors."""
    env, tmp_path, _ = installed
    index = processes.REPO / "docs" / "_build" / "html" / "index.html"
    index.unlink(missing_ok=True)
    done = subprocess.run(
        [str(processes.REPO / "scripts" / "docs")],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert "creating the project virtualenv" not in done.stderr
    assert "installing the project with [docs]" in done.stderr
    assert "scripts/docs: built docs/_build/html/index.html" in done.stderr
    assert index.is_file()
    stamp = tmp_path / "venv" / ".channels-install-stamp"
    assert stamp.read_text().split()[1:] == ["docs"]


@pytest.fixture
def world_readable_dir() -> Iterator[Path]:
    """A directory an unprivileged user can read (pytest's tmp_path is private to root)."""
    path = Path(tempfile.mkdtemp(prefix="channels-setup-"))
    path.chmod(0o755)
    try:
        yield path
    finally:
        shutil.rmtree(path, ignore_errors=True)


def as_nobody(*argv: str) -> list[str]:
    return ["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups", *argv]


def test_python_without_venv_module_gets_a_clear_message(world_readable_dir: Path) -> None:
    """Debian's python3 without python3.X-venv has no ensurepip; a non-root user is told
    which package to install (root gets it installed with apt instead)."""
    python = shutil.which("python3", path="/usr/local/bin:/usr/bin") or sys.executable
    if shutil.which("setpriv") is None:
        pytest.skip("setpriv (util-linux) is needed to run the script as an unprivileged user")
    readable = subprocess.run(as_nobody("test", "-r", str(SCRIPT)), timeout=30)
    runnable = subprocess.run(as_nobody(python, "-c", "pass"), capture_output=True, timeout=30)
    if readable.returncode != 0 or runnable.returncode != 0:
        pytest.skip(f"user nobody cannot read {SCRIPT} or run {python} here")
    # Shadow ensurepip the way a missing python3.X-venv package leaves it: not importable.
    shadow = world_readable_dir / "shadow" / "ensurepip"
    shadow.mkdir(parents=True)
    (shadow / "__init__.py").write_text('raise ModuleNotFoundError("No module named ensurepip")\n')
    for directory in (shadow.parent, shadow):
        directory.chmod(0o755)
    env = system_env(
        python,
        world_readable_dir,
        HOME=str(world_readable_dir),
        PYTHONPATH=str(shadow.parent),
    )
    done = subprocess.run(
        as_nobody(str(SCRIPT)), capture_output=True, text=True, env=env, timeout=120
    )
    assert done.returncode == 1, done.stdout + done.stderr
    assert "venv module (with ensurepip) is missing" in done.stderr
    assert "sudo apt-get install python3." in done.stderr
    assert "-venv" in done.stderr
    assert not (world_readable_dir / "venv").exists()
