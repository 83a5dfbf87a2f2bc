"""examples/services: channels without Django, against a private Redis (issues 8, 14).

Three service processes (a plain blocking ``receive()`` loop A-32, asyncio via
``receive_async`` A-51, Twisted via ``receive_twisted`` A-50) share the requests of the
three clients written the same three ways; every request is answered exactly once on its
``new_channel`` reply channel (A-12, A-24). Issue 14: the Redis URL is ``CHANNELS_REDIS_URL``
with no default; unset or unreachable, every script says so in one line and exits 1; on
SIGTERM a service says it stopped and exits 0.
"""

from __future__ import annotations

import importlib.util
import json
import subprocess
import sys
import time
from collections.abc import Iterator

import pytest

from support.redis_harness import RedisServer, free_port, redis_server_path
from tests.examples import processes

pytestmark = pytest.mark.redis

SERVICES_DIR = processes.EXAMPLES / "services"
# One service of each kind; they share the work of every client.
SERVICE_SCRIPTS = ["service.py", "service_asyncio.py", "service_twisted.py"]
SERVICE_COUNT = len(SERVICE_SCRIPTS)
BASE_N = 30_000


def primes_below(n: int) -> int:
    """Independent reference for the service's answer (trial division)."""
    return sum(1 for k in range(2, n) if all(k % d for d in range(2, int(k**0.5) + 1)))


@pytest.fixture(scope="module")
def redis() -> Iterator[RedisServer]:
    """One private Redis for the module: the services keep running across its tests."""
    if redis_server_path() is None:
        pytest.skip("redis-server is not installed; .ci/run installs it")
    with RedisServer() as server:
        yield server


@pytest.fixture(scope="module")
def env(redis: RedisServer) -> dict[str, str]:
    return processes.example_env(CHANNELS_REDIS_URL=redis.url)


@pytest.fixture(scope="module")
def services(env: dict[str, str]) -> Iterator[list[str]]:
    """Start the service processes; yield the names they answer with (``pid@host``)."""
    started = [processes.start([script], SERVICES_DIR, env) for script in SERVICE_SCRIPTS]
    try:
        names = []
        for _, output in started:
            ready = output.wait_for(" ready on services.tasks", timeout=30)
            names.append(ready.split()[1])
        yield names
    finally:
        codes = processes.stop(process for process, _ in started)
        for _, output in started:
            output.close()
    # SIGTERM stops an idle service (a busy one after its task): a clean exit, not a kill.
    assert codes == [0] * SERVICE_COUNT
    for name, (_, output) in zip(names, started, strict=True):
        assert f"service {name} stopped\n" in output.lines, output.text()


def run_client(script: str, env: dict[str, str], count: int, concurrency: int) -> dict:
    args = [sys.executable, script, "--json", "--count", str(count), "--n", str(BASE_N)]
    args += ["--concurrency", str(concurrency), "--timeout", "30"]
    done = subprocess.run(
        args, cwd=SERVICES_DIR, env=env, capture_output=True, text=True, timeout=180
    )
    assert done.returncode == 0, done.stdout + done.stderr
    return json.loads(done.stdout.strip().splitlines()[-1])


@pytest.mark.parametrize(
    ("script", "count", "concurrency"),
    [("client_sync.py", 12, 1), ("client_asyncio.py", 30, 9), ("client_twisted.py", 30, 9)],
)
def test_every_request_answered_by_the_services(
    services: list[str], env: dict[str, str], script: str, count: int, concurrency: int
) -> None:
    summary = run_client(script, env, count, concurrency)

    assert summary["missing"] == []
    answers = summary["answers"]
    assert [a["id"] for a in answers] == list(range(count))
    reference = {}
    for a in answers:
        n = BASE_N + a["id"]
        assert a["n"] == n
        if n not in reference:
            reference[n] = primes_below(n)
        assert a["primes"] == reference[n], a
    assert set(summary["served_by"]) <= set(services)
    assert sum(summary["served_by"].values()) == count
    if concurrency > 1:
        # With requests in flight at once, the blocked services all get some: the work
        # is shared, not funnelled through one reader.
        assert len(summary["served_by"]) >= 2, summary["served_by"]


def load_tasks_module():
    """examples/services/tasks.py, loaded by path (the examples are not a package)."""
    spec = importlib.util.spec_from_file_location("services_tasks", SERVICES_DIR / "tasks.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_bad_request_gets_a_refusal_naming_the_fix(services: list[str], redis: RedisServer) -> None:
    tasks = load_tasks_module()
    layer = tasks.make_layer([redis.url])
    reply = layer.new_channel(tasks.REPLY_PATTERN)
    layer.send(tasks.TASK_CHANNEL, {"id": "x", "n": "many", "reply_channel": reply})
    deadline = time.monotonic() + 30
    channel = None
    while channel is None and time.monotonic() < deadline:
        channel, message = layer.receive([reply], block=True)
    assert channel == reply
    assert message == {"id": "x", "error": f"n must be an int from 0 to {tasks.MAX_N}"}


ALL_SCRIPTS = [*SERVICE_SCRIPTS, "client_sync.py", "client_asyncio.py", "client_twisted.py"]


def run_script(script: str, env: dict[str, str]) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, script, "--count", "1"]
        if script.startswith("client")
        else [sys.executable, script],
        cwd=SERVICES_DIR,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )


@pytest.mark.parametrize("script", ALL_SCRIPTS)
def test_unset_redis_url_is_one_line_naming_the_variable(script: str) -> None:
    """Issue 14: no default Redis (a shared db 0 is someone else's); say what to set."""
    env = processes.example_env()
    env.pop("CHANNELS_REDIS_URL", None)
    done = run_script(script, env)
    assert done.returncode == 1
    assert done.stdout == ""
    assert done.stderr.splitlines() == [
        f"{script}: set CHANNELS_REDIS_URL to the Redis database this example may use, "
        "e.g. CHANNELS_REDIS_URL=redis://127.0.0.1:6379/5 (comma-separate several to shard)"
    ]


@pytest.mark.parametrize("script", ALL_SCRIPTS)
def test_unreachable_redis_is_one_line_naming_the_url(script: str) -> None:
    """Issue 14: no 67-line traceback without Redis, but the URL and what to do."""
    url = f"redis://127.0.0.1:{free_port()}/3"  # nothing listens there
    done = run_script(script, processes.example_env(CHANNELS_REDIS_URL=url))
    assert done.returncode == 1
    lines = done.stderr.splitlines()
    assert len(lines) == 1, done.stderr
    assert lines[0].startswith(f"{script}: cannot reach Redis at {url} (")
    assert lines[0].endswith("); start it or set CHANNELS_REDIS_URL")


@pytest.mark.parametrize("script", SERVICE_SCRIPTS)
def test_service_losing_redis_says_so_and_exits_1(script: str) -> None:
    """Issue 14: Redis going away under a running service ends it with a line saying so."""
    if redis_server_path() is None:
        pytest.skip("redis-server is not installed; .ci/run installs it")
    with RedisServer() as redis:
        env = processes.example_env(CHANNELS_REDIS_URL=redis.url)
        process, output = processes.start([script], SERVICES_DIR, env)
        try:
            output.wait_for(" ready on services.tasks", timeout=30)
        except BaseException:
            processes.stop([process])
            output.close()
            raise
    try:
        line = output.wait_for("lost the connection to Redis", timeout=60)
        assert process.wait(timeout=30) == 1
    finally:
        processes.stop([process])
        output.close()
    assert line.startswith(f"{script}: lost the connection to Redis (")
    assert line.rstrip().endswith("); check CHANNELS_REDIS_URL")
    assert "Traceback" not in output.text()
