"""The stack under test: private redis-server, one daphne, one runworker (1 thread).

Also the controls (issue 20): the same Django view under gunicorn (sync workers) for W1, and
the Channels 4.3 stack (daphne 4.2 + channels-redis 4.3, in its own venv) for W2..W4; and a
`Stack` may run an older commit of the project (`code_root`, for --baseline).
Everything binds 127.0.0.1 on free ports and is stopped on exit, error or Ctrl-C.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

from benchmarks.e2e import APP_DIR, REPO_ROOT
from benchmarks.e2e.procs import (
    STOP_TIMEOUT,
    BenchmarkError,
    Child,
    child_pids,
    cpu_seconds,
    http_get,
    port_open,
    wait_until,
)
from support.redis_harness import RedisServer, free_port, redis_server_path

START_TIMEOUT = 60.0
HELLO_BODY = b"Hello, world!\n"  # what benchapp.views.hello returns (14 bytes)
WSGI_SETTINGS = "benchapp.wsgi_settings"  # the gunicorn control's: no Channels app

# `daphne` as the console script would run it, but with this interpreter, so the checkout
# and the Python that runs the benchmark are the ones measured.
DAPHNE_ARGV = [
    sys.executable,
    "-c",
    "import sys; sys.argv[0] = 'daphne'; "
    "from daphne.cli import CommandLineInterface; CommandLineInterface.entrypoint()",
]


# Issue 18: BENCH_METRICS=1 runs daphne and the worker with --metrics-port (metrics on),
# to compare a workload with and without them; nothing scrapes during the run.
METRICS_ENV = "BENCH_METRICS"


def metrics_args(env: dict[str, str] | None = None) -> list[str]:
    """``--metrics-port`` on a free port when ``BENCH_METRICS=1`` (in the stack's `env`,
    else this process's), else nothing."""
    if (os.environ if env is None else env).get(METRICS_ENV) != "1":
        return []
    return ["--metrics-port", str(free_port())]


def child_env(redis_url: str | None = None, code_root: Path = REPO_ROOT) -> dict[str, str]:
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(code_root), env.get("PYTHONPATH")]))
    env["DJANGO_SETTINGS_MODULE"] = "benchapp.settings"
    env["PYTHONUNBUFFERED"] = "1"
    if redis_url is not None:
        env["BENCH_REDIS_URL"] = redis_url
    return env


def per_message(
    before: dict[str, float], after: dict[str, float], messages: int
) -> dict[str, float]:
    """CPU microseconds per message of each process between two `cpu()` readings, and total."""
    per_process = {
        f"{name}_us": (after[name] - before[name]) * 1e6 / max(1, messages) for name in after
    }
    return {**per_process, "total_us": sum(per_process.values())}


class Stack:
    """redis-server + daphne + runworker, started in that order and stopped in reverse.

    `code_root` is the tree whose daphne, channels and asgi_redis run (first on PYTHONPATH):
    this checkout, or a `git worktree` of an older commit for --baseline. The bench app is
    always this checkout's, so only the project's code differs between the two.
    """

    def __init__(
        self,
        log_dir: Path,
        code_root: Path = REPO_ROOT,
        workers: int = 1,
        extra_env: dict[str, str] | None = None,
    ) -> None:
        if redis_server_path() is None:
            raise BenchmarkError("redis-server is not installed: apt-get install redis-server")
        self.log_dir = log_dir
        self.code_root = code_root
        self.redis = RedisServer()
        self.port = free_port()
        env = {**child_env(self.redis.url, code_root), **(extra_env or {})}
        self.env = env
        self.daphne = Child(
            "daphne",
            [
                *DAPHNE_ARGV,
                "-b",
                "127.0.0.1",
                "-p",
                str(self.port),
                *metrics_args(env),
                "benchapp.asgi:channel_layer",
            ],
            log_dir,
            cwd=APP_DIR,
            env=env,
        )
        self.worker = self._worker_child("worker")
        # Issue 17 (W8, W9): more workers, and the ones replaced (stopped at the end too).
        self.workers = [self.worker] + [
            self._worker_child(f"worker-{n}") for n in range(2, workers + 1)
        ]
        self.retired: list[Child] = []
        self._started_workers = workers

    def _worker_child(self, name: str) -> Child:
        return Child(
            name,
            [sys.executable, "manage.py", "runworker", *metrics_args(self.env)],
            self.log_dir,
            cwd=APP_DIR,
            env=self.env,
        )

    @property
    def http_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def ws_url(self) -> str:
        return f"ws://127.0.0.1:{self.port}"

    def start(self) -> Stack:
        self.redis.start()
        self.daphne.start()
        for worker in self.workers:
            worker.start()
        try:
            wait_until(self._daphne_listening, START_TIMEOUT, "daphne listening")
            wait_until(self._hello_served, START_TIMEOUT, "GET /hello/ answered through the worker")
            for worker in self.workers[1:]:
                self.wait_listening(worker)
        except BenchmarkError as error:
            raise BenchmarkError(
                f"{error}\n--- daphne log ---\n{self.daphne.log_tail()}"
                f"\n--- worker log ---\n{self.worker.log_tail()}"
            ) from None
        return self

    def _daphne_listening(self) -> bool:
        self.daphne.check_alive()
        return port_open(self.port)

    def _hello_served(self) -> bool:
        self.daphne.check_alive()
        self.worker.check_alive()
        status, body = http_get(f"{self.http_url}/hello/")
        if status == 200 and body != HELLO_BODY:
            raise BenchmarkError(f"GET /hello/ returned {body!r}, expected {HELLO_BODY!r}")
        return status == 200

    def pids(self) -> dict[str, int]:
        """The measured processes by name."""
        assert self.redis.process is not None
        return {
            "daphne": self.daphne.pid,
            "worker": self.worker.pid,
            "redis": self.redis.process.pid,
        }

    def cpu(self) -> dict[str, float]:
        """CPU seconds used so far by each measured process (daphne, worker, redis-server)."""
        return {name: cpu_seconds(pid) for name, pid in self.pids().items()}

    def cpu_per_message(self, before: dict[str, float], messages: int) -> dict[str, float]:
        """CPU microseconds per message in each process since `before`.

        Unlike throughput, this hardly depends on what else runs on the machine, so it is
        the figure to compare between runs on a busy machine.
        """
        return per_message(before, self.cpu(), messages)

    def redis_commands(self) -> dict[str, int]:
        """Calls per Redis command so far (INFO commandstats), e.g. {"evalsha": 1200}."""
        import redis

        client = redis.Redis(host="127.0.0.1", port=self.redis.port, socket_timeout=5)
        try:
            stats = client.info("commandstats")
        finally:
            client.close()
        return {name.removeprefix("cmdstat_"): value["calls"] for name, value in stats.items()}

    def redis_commands_per_message(self, before: dict[str, int], messages: int) -> dict[str, float]:
        after = self.redis_commands()
        return {
            name: round((calls - before.get(name, 0)) / max(1, messages), 3)
            for name, calls in sorted(after.items())
            if calls - before.get(name, 0) > 0 and name != "info"
        }

    def check_alive(self) -> None:
        self.daphne.check_alive()
        for worker in self.workers:
            worker.check_alive()

    def wait_listening(self, worker: Child) -> None:
        """Until `worker` logs that it listens (its routing loaded, its layer reached)."""

        def listening() -> bool:
            worker.check_alive()
            try:
                return "Listening on channels" in worker.log_path.read_text(errors="replace")
            except FileNotFoundError:
                return False

        wait_until(listening, START_TIMEOUT, f"{worker.name} listening")

    def new_worker(self) -> Child:
        """Start one more worker (its own log file); not waited for."""
        self._started_workers += 1
        return self._worker_child(f"worker-{self._started_workers}").start()

    def kill_worker(self, index: int) -> None:
        """SIGKILL worker `index` and start its replacement at once (not waited for)."""
        old = self.workers[index]
        assert old.process is not None
        old.process.kill()
        old.process.wait(STOP_TIMEOUT)
        self.retired.append(old)
        self.workers[index] = self.new_worker()

    def restart_worker(self, index: int) -> int | None:
        """Rolling restart of worker `index`: its successor is started and listening first,
        then the old one gets SIGTERM; returns the old one's exit status."""
        new = self.new_worker()
        self.wait_listening(new)
        old, self.workers[index] = self.workers[index], new
        self.retired.append(old)
        return old.stop()

    def stop(self) -> None:
        try:
            self.daphne.stop()
            for worker in self.workers + self.retired:
                worker.stop()
        finally:
            self.redis.close()

    def __enter__(self) -> Stack:
        try:
            return self.start()
        except BaseException:
            self.stop()
            raise

    def __exit__(self, *exc_info: object) -> None:
        self.stop()


class Channels4Stack(Stack):
    """The W2..W4 control: redis-server + daphne 4.2 serving benchmarks/control_channels4.

    Its daphne runs the control venv's python with PYTHONPATH on the control app only, so
    neither this checkout's daphne nor its channels can shadow daphne 4 and Channels 4.
    """

    def __init__(self, log_dir: Path, python: Path) -> None:
        from benchmarks.e2e.control_venv import CONTROL_DIR

        if redis_server_path() is None:
            raise BenchmarkError("redis-server is not installed: apt-get install redis-server")
        self.log_dir = log_dir
        self.code_root = CONTROL_DIR
        self.redis = RedisServer()
        self.port = free_port()
        env = {
            "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
            "PYTHONPATH": str(CONTROL_DIR),
            "DJANGO_SETTINGS_MODULE": "c4app.settings",
            "PYTHONUNBUFFERED": "1",
            "BENCH_REDIS_URL": self.redis.url,
        }
        argv = [str(python), "-m", "daphne", "-b", "127.0.0.1", "-p", str(self.port)]
        self.daphne = Child(
            "daphne4", [*argv, "c4app.asgi:application"], log_dir, cwd=CONTROL_DIR, env=env
        )

    def start(self) -> Stack:
        self.redis.start()
        self.daphne.start()
        try:
            wait_until(self._daphne_listening, START_TIMEOUT, "daphne 4 listening")
            wait_until(self._hello_served, START_TIMEOUT, "GET /hello/ answered by daphne 4")
        except BenchmarkError as error:
            tail = self.daphne.log_tail()
            raise BenchmarkError(f"{error}\n--- daphne 4 log ---\n{tail}") from None
        return self

    def _hello_served(self) -> bool:
        self.daphne.check_alive()
        status, _ = http_get(f"{self.http_url}/hello/")
        return status == 200

    def pids(self) -> dict[str, int]:
        assert self.redis.process is not None
        return {"daphne": self.daphne.pid, "redis": self.redis.process.pid}

    def check_alive(self) -> None:
        self.daphne.check_alive()

    def stop(self) -> None:
        try:
            self.daphne.stop()
        finally:
            self.redis.close()


class GunicornControl:
    """The W1 control: the same view under gunicorn's sync workers (default: one)."""

    def __init__(self, log_dir: Path, workers: int = 1) -> None:
        self.port = free_port()
        # Plain Django: settings without the Channels app. The Redis URL only satisfies the
        # settings module it extends; nothing connects to it.
        env = {**child_env("redis://127.0.0.1:1/0"), "DJANGO_SETTINGS_MODULE": WSGI_SETTINGS}
        self.child = Child(
            f"gunicorn-{workers}",
            [
                sys.executable,
                "-m",
                "gunicorn",
                "--workers",
                str(workers),
                "--bind",
                f"127.0.0.1:{self.port}",
                "benchapp.wsgi:application",
            ],
            log_dir,
            cwd=APP_DIR,
            env=env,
        )

    @property
    def http_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def _hello_served(self) -> bool:
        self.child.check_alive()
        status, body = http_get(f"{self.http_url}/hello/")
        return status == 200 and body == HELLO_BODY

    def __enter__(self) -> GunicornControl:
        try:
            import gunicorn  # noqa: F401
        except ImportError:
            raise BenchmarkError(
                "gunicorn is missing (W1 control): pip install -e .[bench]"
            ) from None
        self.child.start()
        try:
            wait_until(self._hello_served, START_TIMEOUT, "gunicorn serving /hello/")
        except BaseException:
            self.child.stop()
            raise
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.child.stop()

    def cpu(self) -> dict[str, float]:
        """CPU seconds so far of gunicorn's master and of its workers (summed)."""
        workers = child_pids(self.child.pid)
        return {
            "gunicorn_master": cpu_seconds(self.child.pid),
            "gunicorn_workers": sum(cpu_seconds(pid) for pid in workers),
        }

    def cpu_per_message(self, before: dict[str, float], messages: int) -> dict[str, float]:
        return per_message(before, self.cpu(), messages)
