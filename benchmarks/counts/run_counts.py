"""Deterministic per-message costs of daphne and the worker (PROFILE.md, session 6).

    python benchmarks/counts/run_counts.py CODE_ROOT OUT_PREFIX ws|http|broadcast
        CLIENTS WARMUP COUNT [--metrics] [--callgrind daphne|worker
        [--region module:Qualified.name]] [--strace] [--deflate] [--cpu] [--redis-commands]

Starts a private redis-server, daphne and ``runworker`` (the bench app, with CODE_ROOT
first on PYTHONPATH: this tree, or ``git archive REF | tar -x -C DIR``), warms up with
CLIENTS closed-loop clients (WebSocket echo or keep-alive GET /hello/), then measures
COUNT messages per client. With ``broadcast`` (session 7), CLIENTS members of the bench
app's group get COUNT broadcasts of one frame, each sent once the last reached every
member; a message is one delivery, and ``--deflate`` makes the members offer
permessage-deflate. Measured: cProfile in both processes (OUT_PREFIX.daphne.prof,
.worker.prof; compare with diff_counts.py), or callgrind instructions in one of them
(OUT_PREFIX.<which>.cg.1; printed per message), and with --strace the syscalls of
daphne, the worker and Redis (OUT_PREFIX.<name>.strace), and with --redis-commands
Redis's commands per message (``INFO commandstats`` over the window, Lua-internal calls
included; and the microseconds each command took inside Redis, per
message). With --region, callgrind counts only the instructions inside calls of that
function (inclusive; see profiled.py). With --cpu nothing is profiled: the CPU time
(user + system, from /proc) each process used in the window is printed per message, a
rough figure on a shared machine. Every wait is bounded.
"""

import json
import os
import signal
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import redis as redis_py

HERE = Path(__file__).resolve().parent
REPO = HERE.parent.parent
sys.path.insert(0, str(REPO))
from support.redis_harness import RedisServer, free_port  # noqa: E402

APP = REPO / "benchmarks" / "app"
WS_MODULE = REPO / "benchmarks" / "loadgen" / "node_modules" / "ws"


def cpu_seconds(pid: int) -> tuple[float, float]:
    """User and system CPU time of a process and its threads so far (/proc/PID/stat)."""
    with open(f"/proc/{pid}/stat") as stat:
        fields = stat.read().rsplit(")", 1)[1].split()
    tick = os.sysconf("SC_CLK_TCK")
    return int(fields[11]) / tick, int(fields[12]) / tick


def main() -> None:
    code_root, out, mode, clients, warmup, count = sys.argv[1:7]
    metrics = "--metrics" in sys.argv
    cpu = "--cpu" in sys.argv
    callgrind = sys.argv[sys.argv.index("--callgrind") + 1] if "--callgrind" in sys.argv else None
    redis = RedisServer()
    redis.start()
    port = free_port()
    env = dict(
        os.environ,
        PYTHONPATH=code_root,
        DJANGO_SETTINGS_MODULE="benchapp.settings",
        PYTHONUNBUFFERED="1",
        BENCH_REDIS_URL=redis.url,
    )
    procs: dict[str, subprocess.Popen] = {}
    logs = []
    try:
        for name, argv in [
            (
                "daphne",
                ["daphne", "-b", "127.0.0.1", "-p", str(port), "benchapp.asgi:channel_layer"],
            ),
            ("worker", ["worker", "runworker"]),
        ]:
            if metrics:
                argv += ["--metrics-port", str(free_port())]
            prof = f"{out}.{name}.prof"
            for stale in (prof, prof + ".done"):
                if os.path.exists(stale):
                    os.unlink(stale)
            vg = []
            if callgrind == name:
                vg = [
                    "valgrind",
                    "--tool=callgrind",
                    "--instr-atstart=no",
                    f"--callgrind-out-file={out}.{name}.cg",
                ]
                if "--region" in sys.argv:
                    vg += ["--collect-atstart=no", "--toggle-collect=functools_reduce"]
            logs.append(open(f"{out}.{name}.log", "w"))  # noqa: SIM115 (closed in finally)
            procs[name] = subprocess.Popen(
                [*vg, sys.executable, str(HERE / "profiled.py"), *argv],
                cwd=APP,
                env=dict(
                    env,
                    PROF_OUT=prof,
                    PROF_REGION=sys.argv[sys.argv.index("--region") + 1]
                    if "--region" in sys.argv and callgrind == name
                    else "",
                ),
                stdout=logs[-1],
                stderr=subprocess.STDOUT,
            )
        deadline = time.monotonic() + 240
        while True:
            try:
                if (
                    urllib.request.urlopen(f"http://127.0.0.1:{port}/hello/", timeout=5).status
                    == 200
                ):
                    break
            except OSError:
                pass
            for name, proc in procs.items():
                if proc.poll() is not None:
                    raise SystemExit(f"{name} exited: see {out}.{name}.log")
            if time.monotonic() > deadline:
                raise SystemExit("the stack did not start in 240 s")
            time.sleep(0.2)
        script, url = {
            "ws": ("echo_client.js", f"ws://127.0.0.1:{port}/echo/"),
            "http": ("http_client.js", f"http://127.0.0.1:{port}/hello/"),
            "broadcast": ("broadcast_client.js", f"ws://127.0.0.1:{port}/broadcast/"),
        }[mode]
        client = subprocess.Popen(
            ["node", str(HERE / script), url, clients, warmup, count],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
            env=dict(
                os.environ,
                WS_MODULE=str(WS_MODULE),
                DEFLATE="1" if "--deflate" in sys.argv else "0",
            ),
        )
        assert client.stdout is not None and client.stdin is not None
        line = client.stdout.readline().strip()
        if line != "warm":
            raise SystemExit(f"client: {line}")
        if callgrind:
            pid = str(procs[callgrind].pid)
            subprocess.run(["callgrind_control", "-i", "on", pid], check=True, capture_output=True)
            time.sleep(0.5)
            subprocess.run(["callgrind_control", "-z", pid], check=True, capture_output=True)
        elif not cpu:
            for proc in procs.values():
                proc.send_signal(signal.SIGUSR1)
        cpu_pids = {name: proc.pid for name, proc in procs.items()}
        cpu_pids["redis"] = redis.process.pid
        cpu_before = {name: cpu_seconds(pid) for name, pid in cpu_pids.items()}
        straces = []
        if "--strace" in sys.argv:
            pids = {name: proc.pid for name, proc in procs.items()}
            pids["redis"] = redis.process.pid
            straces = [
                subprocess.Popen(
                    ["strace", "-c", "-f", "-o", f"{out}.{name}.strace", "-p", str(pid)],
                    stderr=subprocess.DEVNULL,
                )
                for name, pid in pids.items()
            ]
        time.sleep(0.5)
        redis_commands = "--redis-commands" in sys.argv
        if redis_commands:
            redis_py.Redis(port=redis.port).config_resetstat()
        started = time.monotonic()
        client.stdin.write("go\n")
        client.stdin.flush()
        line = client.stdout.readline().strip()
        if line != "done":
            raise SystemExit(f"client: {line}")
        seconds = time.monotonic() - started
        cpu_after = {name: cpu_seconds(pid) for name, pid in cpu_pids.items()}
        for trace in straces:
            trace.send_signal(signal.SIGINT)
        for trace in straces:
            trace.wait(30)
        messages = int(clients) * int(count)
        result: dict = {"messages": messages, "seconds": round(seconds, 2)}
        if redis_commands:
            stats = redis_py.Redis(port=redis.port).info("commandstats")
            result["redis_commands_per_message"] = {
                key.removeprefix("cmdstat_"): round(value["calls"] / messages, 2)
                for key, value in sorted(stats.items())
                if key not in ("cmdstat_config", "cmdstat_info")
            }
            result["redis_command_usec_per_message"] = {
                key.removeprefix("cmdstat_"): round(value["usec"] / messages, 2)
                for key, value in sorted(stats.items())
                if key not in ("cmdstat_config", "cmdstat_info")
            }
        if callgrind:
            subprocess.run(["callgrind_control", "-d", pid], check=True, capture_output=True)
            subprocess.run(["callgrind_control", "-i", "off", pid], check=True, capture_output=True)
            with open(f"{out}.{callgrind}.cg.1") as dump:
                total = next(int(row.split()[1]) for row in dump if row.startswith("summary:"))
            result[f"{callgrind}_instructions_per_message"] = total // messages
        elif cpu:
            for name in cpu_pids:
                (user, system), (user0, system0) = cpu_after[name], cpu_before[name]
                per = 1e6 / messages
                used = user + system - user0 - system0
                result[f"{name}_cpu_us_per_message"] = round(used * per, 2)
                result[f"{name}_system_us_per_message"] = round((system - system0) * per, 2)
        else:
            for proc in procs.values():
                proc.send_signal(signal.SIGUSR2)
            deadline = time.monotonic() + 60
            for name in procs:
                while not os.path.exists(f"{out}.{name}.prof.done"):
                    if time.monotonic() > deadline:
                        raise SystemExit(f"{name} wrote no profile")
                    time.sleep(0.1)
        client.stdin.write("go\n")
        client.stdin.flush()
        client.wait(10)
        print(json.dumps(result))
    finally:
        for proc in procs.values():
            proc.send_signal(signal.SIGTERM)
        for proc in procs.values():
            try:
                proc.wait(15)
            except subprocess.TimeoutExpired:
                proc.kill()
        redis.close()
        for log in logs:
            log.close()


if __name__ == "__main__":
    main()
